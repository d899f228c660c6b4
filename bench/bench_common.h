/* Shared by the benchmark programs: the precision option and the per-op-class breakdown
 * printed from the op layer's profiler (sd_exec.prof). */
#ifndef SD_BENCH_COMMON_H
#define SD_BENCH_COMMON_H

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"

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
