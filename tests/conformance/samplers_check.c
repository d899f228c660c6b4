/* Conformance helper: run one sampler of sampling/ with the synthetic model
 *   eps(x, t) = tanh(0.5 x) + 0.1 sin(t / 100)      (x = the scaled model input)
 * and compare with the PyTorch reference run of tools/ref/sdref_sched.py (same seed, same
 * generator stream).
 *
 *   samplers_check CASE_DIR SAMPLER SIGMAS PRED SPACING ETA STEPS SEED [--tol T]
 *
 * SIGMAS discrete|karras, PRED eps|v, SPACING leading|trailing|linspace. The config is the
 * SD 1.x scheduler_config.json resolved for SAMPLER, with those overrides. Checks: timesteps,
 * sigmas and init_noise_sigma (to 1e-6 relative), the initial latents (bit for bit: the RNG),
 * every step, and the final latents: max |c - ref| / max |ref| <= T (default 1e-5).
 * Exit 0 on success.
 *
 *   samplers_check --rng-sweep radius|sincos
 *
 * writes float32 values to stdout for tools/ref/sdref_sched.py rng-exhaustive, which feeds
 * torch the same crafted generator states: sd_rng_randn(608) on mt19937 states whose next
 * outputs are chosen 24-bit uniforms, covering every possible u of the Box-Muller radius
 * (with angle 0: the output is the radius) or of the angle (with a radius of 1.0: the outputs
 * are cos and sin), i.e. every input of the >= 16-element path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/npy.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "common/check_err.h"

static int read_npy(const char *dir, const char *name, sd_tensor *t, int required) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (!required) {
    FILE *f = fopen(p, "rb");
    if (!f) { memset(t, 0, sizeof *t); return 1; }
    fclose(f);
  }
  if (sd_npy_read_f32(p, t)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    exit(1);
  }
  return 0;
}

static double rel_err(const float *a, const float *b, int64_t n) {
  double m = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    m = sd_check_max(m, d);
    if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
  }
  return s > 0 ? m / s : m;
}

/* Inverse of the mt19937 tempering. */
static uint32_t untemper(uint32_t y) {
  y ^= y >> 18;
  y ^= (y << 15) & 0xefc60000u;
  uint32_t t = y;
  for (int i = 0; i < 5; i++) t = y ^ ((t << 7) & 0x9d2c5680u);
  y = t;
  t = y;
  for (int i = 0; i < 3; i++) t = y ^ (t >> 11);
  return t;
}

enum { SWEEP_BLOCKS = 38, SWEEP_LANES = SWEEP_BLOCKS * 8, SWEEP_U1_RADIUS_ONE = 6601320 };

static int rng_sweep(const char *mode) {
  int radius = !strcmp(mode, "radius");
  if (!radius && strcmp(mode, "sincos")) { fprintf(stderr, "--rng-sweep radius|sincos\n"); return 2; }
  static float out[SWEEP_BLOCKS * 16];
  for (uint32_t start = 0; start < (1u << 24); start += SWEEP_LANES) {
    sd_rng g;
    sd_rng_seed(&g, 0);
    for (int b = 0; b < SWEEP_BLOCKS; b++)
      for (int j = 0; j < 8; j++) {
        uint32_t k = start + (uint32_t)(b * 8 + j);
        if (k >= (1u << 24)) k = 0;
        uint32_t u1 = radius ? k : SWEEP_U1_RADIUS_ONE, u2 = radius ? 0 : k;
        g.mt[b * 16 + j] = untemper(u1);
        g.mt[b * 16 + 8 + j] = untemper(u2);
      }
    g.mti = 0;
    sd_rng_randn(&g, out, SWEEP_BLOCKS * 16);
    uint32_t m = (1u << 24) - start < SWEEP_LANES ? (1u << 24) - start : SWEEP_LANES;
    for (uint32_t l = 0; l < m; l++) {
      uint32_t b = l / 8, j = l % 8;
      if (fwrite(&out[b * 16 + j], 4, 1, stdout) != 1) return 1;
      if (!radius && fwrite(&out[b * 16 + 8 + j], 4, 1, stdout) != 1) return 1;
    }
  }
  return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--rng-sweep")) return rng_sweep(argv[2]);
  if (argc < 9) {
    fprintf(stderr, "usage: %s CASE_DIR SAMPLER SIGMAS PRED SPACING ETA STEPS SEED [--tol T]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  double tol = 1e-5;
  for (int i = 9; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_sampler_kind kind;
  sd_sigma_schedule sig;
  if (sd_sampler_kind_parse(argv[2], &kind) || sd_sigma_schedule_parse(argv[3], &sig)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 2;
  }
  sd_sched_config c;
  sd_sched_config_sd15(&c, kind);
  c.sigmas = sig;
  c.prediction = !strcmp(argv[4], "v") ? SD_PRED_V : SD_PRED_EPSILON;
  if (!strcmp(argv[5], "trailing")) c.spacing = SD_SPACING_TRAILING;
  else if (!strcmp(argv[5], "linspace")) c.spacing = SD_SPACING_LINSPACE;
  else c.spacing = SD_SPACING_LEADING;
  c.eta = atof(argv[6]);
  int steps = atoi(argv[7]);
  uint64_t seed = strtoull(argv[8], NULL, 10);
  sd_schedule *s;
  if (sd_schedule_create(&c, steps, &s)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  int fail = 0;
  const char *label = dir;
  const char *slash = strrchr(dir, '/');
  if (slash) label = slash + 1;

  /* schedule tables */
  sd_tensor rt, rs, rins, rinit, rsteps, rfin;
  read_npy(dir, "timesteps.npy", &rt, 1);
  int nt;
  const float *t = sd_schedule_timesteps(s, &nt);
  if (sd_numel(&rt) != nt) {
    printf("FAIL %s: %d timesteps, reference has %lld\n", label, nt, (long long)sd_numel(&rt));
    return 1;
  }
  double t_err = 0;
  for (int i = 0; i < nt; i++) {
    double d = fabs((double)t[i] - ((float *)rt.data)[i]) / fmax(1.0, fabs(((float *)rt.data)[i]));
    t_err = sd_check_max(t_err, d);
  }
  if (t_err > 1e-6) { printf("FAIL %s: timesteps differ (rel %.3g)\n", label, t_err); fail = 1; }
  double s_err = 0;
  int ns;
  const float *sg = sd_schedule_sigmas(s, &ns);
  if (!read_npy(dir, "sigmas.npy", &rs, 0)) {
    if (sd_numel(&rs) != ns) {
      printf("FAIL %s: %d sigmas, reference has %lld\n", label, ns, (long long)sd_numel(&rs));
      return 1;
    }
    s_err = rel_err(sg, rs.data, ns);
    if (s_err > 1e-6) { printf("FAIL %s: sigmas differ (rel %.3g)\n", label, s_err); fail = 1; }
    free(rs.data);
  } else if (ns) {
    printf("FAIL %s: sigmas without a reference\n", label);
    fail = 1;
  }
  read_npy(dir, "init_noise_sigma.npy", &rins, 1);
  double ins_err = fabs((double)sd_schedule_init_noise_sigma(s) - ((float *)rins.data)[0]) / ((float *)rins.data)[0];
  if (ins_err > 1e-6) { printf("FAIL %s: init_noise_sigma %.9g vs %.9g\n", label,
                               (double)sd_schedule_init_noise_sigma(s), (double)((float *)rins.data)[0]); fail = 1; }

  /* the run */
  read_npy(dir, "init_latents.npy", &rinit, 1);
  read_npy(dir, "step_latents.npy", &rsteps, 1);
  read_npy(dir, "final.npy", &rfin, 1);
  const int64_t n = sd_numel(&rinit);
  float *x = malloc(sizeof(float) * (size_t)n), *in = malloc(sizeof(float) * (size_t)n),
        *e = malloc(sizeof(float) * (size_t)n);
  sd_rng g;
  sd_rng_seed(&g, seed);
  sd_sampler_init_latents(s, &g, x, n);
  int64_t init_bits = 0;
  for (int64_t i = 0; i < n; i++) init_bits += memcmp(&x[i], &((float *)rinit.data)[i], 4) != 0;
  if (init_bits) { printf("FAIL %s: %lld initial latents differ in bits\n", label, (long long)init_bits); fail = 1; }
  if (sd_numel(&rsteps) != (int64_t)nt * n) {
    printf("FAIL %s: step_latents has %lld values, expected %lld\n", label, (long long)sd_numel(&rsteps),
           (long long)nt * n);
    return 1;
  }
  sd_sampler_state st;
  if (sd_sampler_init(s, n, &st)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  double worst_step = 0;
  for (int i = 0; i < nt; i++) {
    float ti = sd_sampler_timestep(s, &st);
    sd_sampler_scale_input(s, &st, x, in);
    const float k = 0.1f * sinf(ti / 100.0f);
    for (int64_t j = 0; j < n; j++) e[j] = tanhf(0.5f * in[j]) + k;
    if (sd_sampler_step(s, &st, e, x, &g)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    double r = rel_err(x, (float *)rsteps.data + (size_t)i * n, n);
    worst_step = sd_check_max(worst_step, r);
  }
  double fin = rel_err(x, rfin.data, n);
  int ok = !fail && fin <= tol;
  printf("%s %s: final rel err %.3g (worst step %.3g; timesteps %.2g, sigmas %.2g, init sigma %.2g; "
         "initial latents bit-identical: %s)\n", ok ? "ok  " : "FAIL", label, fin, worst_step, t_err, s_err,
         ins_err, init_bits ? "no" : "yes");
  sd_sampler_state_free(&st);
  sd_schedule_free(s);
  free(x);
  free(in);
  free(e);
  free(rt.data);
  free(rins.data);
  free(rinit.data);
  free(rsteps.data);
  free(rfin.data);
  return ok ? 0 : 1;
}
