#include "core/threadpool.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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
  const int nt = p ? p->n : 1;
  const int64_t max_chunks = n / grain; /* every chunk at least `grain` items */
  const int64_t want = (int64_t)nt * SD_POOL_OVERSPLIT;
  const int n_chunks = (int)(max_chunks < want ? max_chunks : want);
  if (n_chunks <= 1 || nt <= 1) {
    fn(ctx, 0, n, 0);
    return;
  }
  /* chunk c covers [c·n/n_chunks, (c+1)·n/n_chunks): the bounds depend on n, grain and the
   * thread count only. Threads take chunks in turn from a counter, so a thread slowed by
   * another process on its core holds up one small chunk, not a fixed share of the work;
   * which thread computes a chunk does not change its values (tasks compute each output
   * from their range alone). */
  atomic_int next;
  atomic_init(&next, 0);
#ifdef _OPENMP /* (the fuzz build compiles the library without OpenMP: one thread runs every chunk) */
  const int team = nt < n_chunks ? nt : n_chunks;
#pragma omp parallel num_threads(team)
#endif
  {
    const int tid = omp_get_thread_num();
    for (;;) {
      const int c = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
      if (c >= n_chunks) break;
      const int64_t b = (int64_t)((__int128)n * c / n_chunks), e = (int64_t)((__int128)n * (c + 1) / n_chunks);
      if (b < e) fn(ctx, b, e, tid);
    }
  }
}

void sd_threads_setup(char **argv) {
  /* libgomp reads its settings once, when it is loaded (before main): setting them later has
   * no effect, hence the one re-execution, marked so that it happens once */
  if (!argv || !argv[0] || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("SAFESD_THREADS_SETUP"))
    return;
  if (setenv("GOMP_SPINCOUNT", SD_GOMP_SPINCOUNT, 1) || setenv("SAFESD_THREADS_SETUP", "1", 1)) return;
  execv("/proc/self/exe", argv);
  /* no /proc: go on with OpenMP's defaults (the environment says what was tried) */
}
