/* Shared by the benchmark programs: the precision option and the per-op-class breakdown
 * printed from the op layer's profiler (sd_exec.prof). */
#ifndef SD_BENCH_COMMON_H
#define SD_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"

/* Wall clock (monotonic) in seconds. */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the process: with --threads 1 the op's own thread, which on a loaded machine
 * is a steadier measure than the wall clock (time spent descheduled is not counted). */
static inline double bench_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort comparator for doubles (medians of repeated runs). */
static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Deterministic inputs in [-1, 1) from a 64-bit LCG. */
static inline void bench_fill(float *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float)((double)(seed >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
  }
}

/* Apply --precision (fp32|bf16): 0 on success; bf16 on a CPU without it prints why and
 * returns 1 (a benchmark must not silently measure something else). */
static inline int bench_set_precision(sd_exec *ex, const char *prec) {
  if (!prec || !strcmp(prec, "fp32")) return 0;
  if (strcmp(prec, "bf16")) {
    fprintf(stderr, "--precision takes fp32 or bf16\n");
    return 1;
  }
  if (sd_exec_set_precision(ex, SD_PREC_BF16)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  return 0;
}

static inline void bench_prof_reset(sd_exec *ex) {
  int on = ex->prof.on;
  memset(&ex->prof, 0, sizeof ex->prof);
  ex->prof.on = on;
}

/* One "op=..." line per class over `runs` timed runs that took `wall_s` in all. */
static inline void bench_print_profile(const sd_exec *ex, int runs, double wall_s) {
  if (!ex->prof.on || runs < 1) return;
  double sum = 0;
  for (int c = 0; c < SD_OPC_N; c++) {
    double t = ex->prof.t[c] / runs, f = ex->prof.flop[c] / runs / 1e9;
    sum += t;
    char name[32];
    snprintf(name, sizeof name, "%s", sd_opc_name(c));
    for (char *p = name; *p; p++)
      if (*p == ' ') *p = '_';
    printf("op=%s time_s=%.3f share=%.1f%% calls=%lld gflop=%.1f gflops=%.1f\n", name, t,
           100.0 * t / (wall_s / runs), (long long)(ex->prof.calls[c] / runs), f, t > 0 && f > 0 ? f / t : 0.0);
  }
  double rest = wall_s / runs - sum;
  printf("op=unaccounted time_s=%.3f share=%.1f%%\n", rest, 100.0 * rest / (wall_s / runs));
}

#endif
