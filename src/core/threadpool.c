#include "core/threadpool.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"

struct sd_pool {
  int n;
};

int sd_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int sd_pool_create(int n_threads, sd_pool **out) {
  *out = NULL;
  if (n_threads <= 0) n_threads = sd_cpu_count();
  if (n_threads > 256) return sd_fail(SD_E_ARG, "thread count %d is too large (at most 256)", n_threads);
  sd_pool *p = calloc(1, sizeof *p);
  if (!p) return sd_fail(SD_E_NOMEM, "out of memory creating the thread pool");
  p->n = n_threads;
  *out = p;
  return SD_OK;
}

void sd_pool_destroy(sd_pool *p) { free(p); }

int sd_pool_threads(const sd_pool *p) { return p ? p->n : 1; }

void sd_parallel_for(sd_pool *p, int64_t n, int64_t grain, sd_task_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = p ? p->n : 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  const int n_chunks = (int)(max_chunks < nt ? max_chunks : nt);
  if (n_chunks <= 1) { fn(ctx, 0, n, 0); return; }
  const int64_t chunk = (n + n_chunks - 1) / n_chunks;
  /* chunk c covers [c·chunk, (c+1)·chunk): the bounds depend on n, grain and the thread count
   * only; if OpenMP grants fewer threads than asked, a thread runs several chunks */
#pragma omp parallel num_threads(n_chunks)
  {
    const int team = omp_get_num_threads();
    for (int c = omp_get_thread_num(); c < n_chunks; c += team) {
      int64_t b = (int64_t)c * chunk, e = b + chunk;
      if (e > n) e = n;
      if (b < e) fn(ctx, b, e, c);
    }
  }
}
