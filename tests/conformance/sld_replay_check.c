/* Conformance helper: the SLD update rule (safety/sld.c) and the sampler replayed on the
 * UNet predictions that the PyTorch reference run of tools/ref/safety_case.py recorded.
 *
 *   sld_replay_check CASE_DIR SAMPLER PRESET PRED STEPS SEED [--tol T]
 *
 * CASE_DIR holds sld_eps.npy ([STEPS, 3, 4, h, w]: ε_u, ε_p, ε_S of every step) and
 * final_latents.npy (the reference's result). The initial latents come from the generator
 * seeded with SEED (bit-identical to torch's), then each step applies sd_sld_guide (CFG 7.5)
 * to the recorded predictions and steps the sampler (SD 1.x scheduler config, PRED eps|v).
 * The end-to-end test (`safesd generate --sld`) cannot check the max preset within 1e-3: its
 * rule has slope 5000 around |ε_p − ε_S| = 0, so float32 rounding in the UNet moves the
 * trajectory. Fed the same predictions, the rule and the sampler must agree far closer.
 * Check: max |final − reference| <= T (default 1e-4). Exit 0 on success, 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/npy.h"
#include "safety/sld.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

static void die(const char *what) {
  fprintf(stderr, "sld_replay_check: %s: %s\n", what, sd_errmsg());
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s CASE_DIR SAMPLER PRESET PRED STEPS SEED [--tol T]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  double tol = 1e-4;
  for (int i = 7; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_sampler_kind kind;
  const sd_sld_preset *preset;
  if (sd_sampler_kind_parse(argv[2], &kind)) die("sampler");
  if (sd_sld_preset_parse(argv[3], &preset) || !preset) die("preset");
  sd_sched_config c;
  sd_sched_config_sd15(&c, kind);
  c.prediction = !strcmp(argv[4], "v") ? SD_PRED_V : SD_PRED_EPSILON;
  const int steps = atoi(argv[5]);
  const uint64_t seed = strtoull(argv[6], NULL, 10);
  sd_schedule *s;
  if (sd_schedule_create(&c, steps, &s)) die("schedule");

  char p[4096];
  sd_tensor eps, ref;
  snprintf(p, sizeof p, "%s/sld_eps.npy", dir);
  if (sd_npy_read_f32(p, &eps)) die(p);
  snprintf(p, sizeof p, "%s/final_latents.npy", dir);
  if (sd_npy_read_f32(p, &ref)) die(p);
  const int64_t n = sd_numel(&ref);
  int nt;
  sd_schedule_timesteps(s, &nt);
  if (sd_numel(&eps) != (int64_t)nt * 3 * n) {
    fprintf(stderr, "sld_replay_check: sld_eps.npy holds %lld values, expected %d x 3 x %lld\n",
            (long long)sd_numel(&eps), nt, (long long)n);
    return 1;
  }
  float *x = malloc(sizeof(float) * (size_t)n), *e = malloc(sizeof(float) * 3 * (size_t)n),
        *nu = calloc((size_t)n, sizeof(float));
  if (!x || !e || !nu) { fprintf(stderr, "sld_replay_check: out of memory\n"); return 1; }
  sd_rng g;
  sd_rng_seed(&g, seed);
  sd_sampler_init_latents(s, &g, x, n);
  sd_sampler_state st;
  if (sd_sampler_init(s, n, &st)) die("sampler state");
  for (int i = 0; i < nt; i++) {
    memcpy(e, (const float *)eps.data + (size_t)i * 3 * (size_t)n, sizeof(float) * 3 * (size_t)n);
    sd_sld_guide(preset, 7.5f, i, e, nu, n);
    if (sd_sampler_step(s, &st, e, x, &g)) die("step");
  }
  double m = 0, scale = 0;
  for (int64_t i = 0; i < n; i++) {
    const double d = fabs((double)x[i] - ((const float *)ref.data)[i]);
    if (d > m) m = d;
    if (fabs(((const float *)ref.data)[i]) > scale) scale = fabs(((const float *)ref.data)[i]);
  }
  const char *slash = strrchr(dir, '/');
  printf("%s %s: replayed final latents max abs error %.3g (latents up to %.3g, tol %.3g)\n",
         slash ? slash + 1 : dir, m <= tol ? "ok" : "FAIL", m, scale, tol);
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
  free(x);
  free(e);
  free(nu);
  free(eps.data);
  free(ref.data);
  return m <= tol ? 0 : 1;
}
