/* Benchmark (not a test): one UNet forward at SD 1.x sampling shapes, batch 2 (the
 * [unconditional, prompt] pair of a guided step) × 64×64 latents (512 px) × 77 context
 * tokens.
 *
 *   bench_unet MODEL [--threads N] [--repeat R] [--warmup W] [--batch B] [--size HxW] [--ctx S]
 *
 * Prints the median and best wall time over R forwards (after W warm-up forwards, default 1),
 * the median process CPU time (cpu_s: all threads; shows contention on a shared machine),
 * GFLOP/s, the activation arena and peak RSS as one line of "key=value" fields that
 * tools/bench/unet.sh tabulates. Inputs are deterministic pseudo-random values.
 * --precision fp32|bf16 picks the compute precision; with SAFESD_PROFILE=1 it also prints one
 * "op=..." line per op class (time per forward, share, GFLOP/s). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "bench_common.h"

int main(int argc, char **argv) {
  sd_threads_setup(argv); /* the same OpenMP waits as the safesd program */
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL [--threads N] [--repeat R] [--warmup W] [--batch B] [--size HxW] [--ctx S] [--precision fp32|bf16] [--mem-budget MIB]\n",
            argv[0]);
    return 2;
  }
  int threads = 0, repeat = 3, warmup = 1, B = 2, h = 64, w = 64, S = 77;
  const char *prec = "fp32";
  long long budget_mib = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) S = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
    else if (!strcmp(argv[i], "--mem-budget") && i + 1 < argc) budget_mib = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%d", &h, &w) != 2) { fprintf(stderr, "bad --size\n"); return 2; }
    } else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  if (repeat < 1 || repeat > 1000) repeat = 3;
  if (warmup < 0 || warmup > 100) warmup = 1;
  sd_model_source *m;
  sd_unet *u;
  sd_exec *ex;
  if (sd_model_open(argv[1], &m) || sd_unet_create(m, &u) || sd_exec_create(threads, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  if (bench_set_precision(ex, prec)) return 1;
  if (budget_mib > 0) ex->pack_budget = (int64_t)budget_mib << 20; /* as safesd --mem-budget */
  sd_model_attach(m, ex);
  const sd_unet_config *c = sd_unet_cfg(u);
  size_t nx = (size_t)B * c->in_channels * h * w, nc = (size_t)B * S * c->cross_attention_dim;
  size_t ny = (size_t)B * c->out_channels * h * w;
  float *x = malloc(nx * sizeof(float)), *ctx = malloc(nc * sizeof(float)), *y = malloc(ny * sizeof(float));
  double *t = malloc(sizeof(double) * (size_t)repeat), *tc = malloc(sizeof(double) * (size_t)repeat);
  if (!x || !ctx || !y || !t || !tc) { fprintf(stderr, "out of memory\n"); return 1; }
  bench_fill(x, nx, 1);
  bench_fill(ctx, nc, 2);
  for (int r = 0; r < warmup; r++)
    if (sd_unet_forward(u, ex, x, B, h, w, 981.0f, ctx, S, y)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  bench_prof_reset(ex);
  double wall = 0;
  for (int r = 0; r < repeat; r++) {
    double t0 = bench_now(), c0 = bench_cpu_now();
    if (sd_unet_forward(u, ex, x, B, h, w, 981.0f, ctx, S, y)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    t[r] = bench_now() - t0;
    tc[r] = bench_cpu_now() - c0;
    wall += t[r];
  }
  qsort(t, (size_t)repeat, sizeof *t, bench_cmp_double);
  qsort(tc, (size_t)repeat, sizeof *tc, bench_cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double gflop = sd_unet_flops(u, B, h, w, S) / 1e9;
  printf("impl=safesd precision=%s threads=%d batch=%d latent=%dx%d median_s=%.3f best_s=%.3f cpu_s=%.1f gflop=%.1f gflops=%.1f "
         "arena_mib=%.0f peak_rss_mib=%.0f\n",
         sd_precision_name(ex->precision), ex->n_threads, B, h, w, t[repeat / 2], t[0], tc[repeat / 2], gflop, gflop / t[repeat / 2],
         sd_unet_arena_bytes(u, B, h, w, S) / 1048576.0, ru.ru_maxrss / 1024.0);
  bench_print_profile(ex, repeat, wall);
  free(x);
  free(ctx);
  free(y);
  free(t);
  free(tc);
  sd_unet_free(u);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return 0;
}
