/* Benchmark (not a test): one SD text-encoder pass, batch 2 × 77 tokens (the
 * [unconditional, prompt] pair a guided image needs).
 *
 *   bench_text_encoder MODEL [--threads N] [--repeat R]
 *
 * Prints the median and best time over R passes (after one warm-up), GFLOP/s and peak RSS
 * as one line of "key=value" fields that tools/bench/text_encoder.sh tabulates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "bench_common.h"

int main(int argc, char **argv) {
  sd_threads_setup(argv); /* the same OpenMP waits as the safesd program */
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL [--threads N] [--repeat R]\n", argv[0]);
    return 2;
  }
  int threads = 0, repeat = 5;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
  }
  if (repeat < 1 || repeat > 1000) repeat = 5;
  sd_model_source *m;
  sd_clip_text *te;
  sd_exec *ex;
  if (sd_model_open(argv[1], &m) || sd_clip_text_create(m, &te) || sd_exec_create(threads, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  sd_model_attach(m, ex);

  const sd_clip_text_config *c = sd_clip_text_cfg(te);
  const int B = 2, S = 77;
  int32_t ids[2 * 77];
  for (int i = 0; i < B * S; i++) ids[i] = (int32_t)((i * 7919) % (c->vocab_size - 2));
  float *out = malloc(sizeof(float) * B * S * c->hidden);
  double *t = malloc(sizeof(double) * repeat);
  sd_clip_text_opts o = {1, 1};
  if (sd_clip_text_encode(te, ex, ids, B, S, &o, out)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
  for (int r = 0; r < repeat; r++) {
    double t0 = bench_now();
    sd_clip_text_encode(te, ex, ids, B, S, &o, out);
    t[r] = bench_now() - t0;
  }
  qsort(t, (size_t)repeat, sizeof *t, bench_cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double gflop = sd_clip_text_flops(te, B, S) / 1e9;
  printf("impl=safesd threads=%d median_s=%.4f best_s=%.4f gflop=%.2f gflops=%.1f peak_rss_mib=%.0f\n",
         ex->n_threads, t[repeat / 2], t[0], gflop, gflop / t[repeat / 2], ru.ru_maxrss / 1024.0);
  free(out);
  free(t);
  sd_clip_text_free(te);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return 0;
}
