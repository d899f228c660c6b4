/* A deterministic parallel-for on OpenMP threads.
 *
 * sd_parallel_for splits [0, n) into up to SD_POOL_OVERSPLIT chunks per thread, whose bounds
 * depend only on n, grain and the thread count; the threads take chunks from a shared
 * counter (whichever is free takes the next), so that a thread descheduled by another
 * process holds up one chunk instead of a fixed half of the work. A task must compute each
 * output from its own range only (never from tid or from which chunks it ran before):
 * then results are bit-identical from run to run and whoever runs which chunk. It runs on
 * OpenMP's thread team, the same threads oneDNN uses, so the library has one set of worker
 * threads: separate pools (ours, OpenBLAS's, OpenMP's) spin-waiting after their jobs took
 * cores from each other and cost about 20% of a UNet pass on two cores. Calls do not nest
 * (a task must not call sd_parallel_for).
 */
#ifndef SD_CORE_THREADPOOL_H
#define SD_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct sd_pool sd_pool;

#define SD_POOL_OVERSPLIT 4 /* chunks per thread (when there are enough items) */

/* Task body: process items [begin, end); tid in [0, n_threads): the thread running it (for
 * per-thread scratch only). */
typedef void (*sd_task_fn)(void *ctx, int64_t begin, int64_t end, int tid);

/* n_threads <= 0 means "all online CPUs". */
int sd_pool_create(int n_threads, sd_pool **out);
void sd_pool_destroy(sd_pool *p);
int sd_pool_threads(const sd_pool *p);
/* Run fn over [0, n) in chunks of at least `grain` items (grain >= 1). */
void sd_parallel_for(sd_pool *p, int64_t n, int64_t grain, sd_task_fn fn, void *ctx);
/* OpenMP's idle threads spin at the end of each parallel region before they sleep (libgomp:
 * 300 000 rounds by default, milliseconds): on a machine shared with another busy process
 * the spinning threads take the CPU from the ones with work, and a pass slows several times.
 * Call first thing in main(): unless $OMP_WAIT_POLICY or $GOMP_SPINCOUNT is set, it sets
 * GOMP_SPINCOUNT=SD_GOMP_SPINCOUNT (tens of microseconds: back-to-back regions still find
 * their threads awake) and re-executes the program once (/proc/self/exe), because libgomp
 * reads its settings when it is loaded. Returns when there is nothing to do or exec failed. */
#define SD_GOMP_SPINCOUNT "2000"
void sd_threads_setup(char **argv);
/* Number of online CPUs. */
int sd_cpu_count(void);

#endif
