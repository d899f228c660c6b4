/* Benchmark (not a test): VAE decode (default) or encode at SD size: a 64x64x4 latent ->
 * 512x512 image (SD 1.x's 512-px output), on any diffusers folder with a vae/ (random
 * weights are fine: tools/ref/sdref_vae.py OUT --preset sd15 --no-encoder writes one).
 *
 *   bench_vae MODEL [--latent HxW] [--encode] [--threads N] [--repeat R] [--warmup]
 *
 * Times R passes (default 1; --warmup adds one untimed pass first) and prints one line of
 * key=value fields: median and best wall time, CPU time (user+sys) per pass, GFLOP and
 * GFLOP/s, the planned activation arena and the peak RSS. tools/bench/vae_torch.py prints
 * the same line for PyTorch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "models/model_source.h"
#include "models/vae.h"
#include "bench_common.h"

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
  sd_threads_setup(argv); /* the same OpenMP waits as the safesd program */
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL [--latent HxW] [--encode] [--threads N] [--repeat R] [--warmup] [--precision fp32|bf16]\n", argv[0]);
    return 2;
  }
  int threads = 0, repeat = 1, warmup = 0, encode = 0, h = 64, w = 64;
  const char *prec = "fp32";
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--latent") && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%d", &h, &w) != 2) { fprintf(stderr, "--latent takes HxW\n"); return 2; }
    } else if (!strcmp(argv[i], "--warmup")) warmup = 1;
    else if (!strcmp(argv[i], "--encode")) encode = 1;
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  if (repeat < 1 || repeat > 1000) repeat = 1;
  sd_model_source *m;
  sd_vae *v;
  sd_exec *ex;
  if (sd_model_open(argv[1], &m) || sd_vae_create(m, &v) || sd_exec_create(threads, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  sd_model_attach(m, ex);

  if (bench_set_precision(ex, prec)) return 1;
  const sd_vae_config *c = sd_vae_cfg(v);
  const int f = sd_vae_factor(v), H = h * f, W = w * f;
  const int64_t n_lat = (int64_t)c->latent_channels * h * w;
  const int64_t n_img = (int64_t)(encode ? c->in_channels : c->out_channels) * H * W;
  float *lat = malloc(sizeof(float) * (size_t)n_lat), *img = malloc(sizeof(float) * (size_t)n_img);
  double *t = malloc(sizeof(double) * (size_t)repeat);
  if (!lat || !img || !t) { fprintf(stderr, "out of memory\n"); return 1; }
  /* deterministic inputs: latents ~ N(0,1)-ish (sum of 4 uniforms), image in [-1, 1] */
  uint32_t s = 12345;
  for (int64_t i = 0; i < n_lat; i++) {
    float acc = 0;
    for (int k = 0; k < 4; k++) { s = s * 1664525u + 1013904223u; acc += (float)(s >> 8) / 16777216.0f - 0.5f; }
    lat[i] = acc * 1.7320508f;
  }
  for (int64_t i = 0; i < n_img; i++) { s = s * 1664525u + 1013904223u; img[i] = (float)(s >> 8) / 8388608.0f - 1.0f; }
  double cpu0 = 0, cpu_total = 0, wall = 0;
  for (int r = -warmup; r < repeat; r++) {
    double t0 = bench_now();
    cpu0 = cpu_now();
    int rc = encode ? sd_vae_encode(v, ex, img, H, W, NULL, NULL, lat) : sd_vae_decode(v, ex, lat, h, w, img);
    if (rc) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    if (r == -1) bench_prof_reset(ex); /* the warm-up run just ended */
    if (r >= 0) {
      t[r] = bench_now() - t0;
      wall += t[r];
      cpu_total += cpu_now() - cpu0;
    }
  }
  qsort(t, (size_t)repeat, sizeof *t, bench_cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double gflop = (encode ? sd_vae_encode_flops(v, H, W) : sd_vae_decode_flops(v, h, w)) / 1e9;
  size_t arena = encode ? sd_vae_encode_arena_bytes(v, H, W) : sd_vae_decode_arena_bytes(v, h, w);
  printf("impl=safesd precision=%s op=%s threads=%d latent=%dx%d image=%dx%d median_s=%.3f best_s=%.3f cpu_s=%.3f gflop=%.1f "
         "gflops=%.1f arena_mib=%.0f peak_rss_mib=%.0f\n",
         sd_precision_name(ex->precision), encode ? "encode" : "decode", ex->n_threads, h, w, H, W, t[repeat / 2], t[0], cpu_total / repeat, gflop,
         gflop / t[repeat / 2], arena / 1048576.0, ru.ru_maxrss / 1024.0);
  bench_print_profile(ex, repeat, wall);
  free(lat);
  free(img);
  free(t);
  sd_vae_free(v);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return 0;
}
