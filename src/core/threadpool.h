/* A deterministic parallel-for on OpenMP threads.
 *
 * sd_parallel_for splits [0, n) into at most n_threads contiguous chunks whose bounds
 * depend only on n, grain and the thread count, so results are bit-identical from run to
 * run at a given thread count. It runs on OpenMP's thread team, the same threads oneDNN
 * uses, so the library has one set of worker threads: separate pools (ours, OpenBLAS's,
 * OpenMP's) spin-waiting after their jobs took cores from each other and cost about 20% of a
 * UNet pass on two cores. Calls do not nest (a task must not call sd_parallel_for).
 */
#ifndef SD_CORE_THREADPOOL_H
#define SD_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct sd_pool sd_pool;

/* Task body: process items [begin, end); tid in [0, n_threads). */
typedef void (*sd_task_fn)(void *ctx, int64_t begin, int64_t end, int tid);

/* n_threads <= 0 means "all online CPUs". */
int sd_pool_create(int n_threads, sd_pool **out);
void sd_pool_destroy(sd_pool *p);
int sd_pool_threads(const sd_pool *p);
/* Run fn over [0, n) in chunks of at least `grain` items (grain >= 1). */
void sd_parallel_for(sd_pool *p, int64_t n, int64_t grain, sd_task_fn fn, void *ctx);
/* Number of online CPUs. */
int sd_cpu_count(void);

#endif
