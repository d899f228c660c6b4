#include "core/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"

struct sd_pool {
  int n;
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  uint64_t generation;
  int pending;   /* workers still running the current job */
  int stop;
  /* the current job */
  sd_task_fn fn;
  void *ctx;
  int64_t total, chunk;
  int n_chunks;
};

typedef struct { sd_pool *p; int tid; } worker_arg;

static void run_chunk(sd_pool *p, int tid) {
  if (tid >= p->n_chunks) return;
  int64_t b = (int64_t)tid * p->chunk;
  int64_t e = b + p->chunk;
  if (e > p->total) e = p->total;
  if (b < e) p->fn(p->ctx, b, e, tid);
}

static void *worker(void *arg) {
  worker_arg *wa = arg;
  sd_pool *p = wa->p;
  int tid = wa->tid;
  free(wa);
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->stop) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, tid);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

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
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
  if (!p->threads) { free(p); return sd_fail(SD_E_NOMEM, "out of memory creating the thread pool"); }
  for (int i = 1; i < n_threads; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) { p->n = i; sd_pool_destroy(p); return sd_fail(SD_E_NOMEM, "out of memory creating threads"); }
    wa->p = p;
    wa->tid = i;
    if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
      free(wa);
      p->n = i;
      sd_pool_destroy(p);
      return sd_fail(SD_E_NOMEM, "cannot start worker thread %d of %d", i, n_threads);
    }
  }
  *out = p;
  return SD_OK;
}

void sd_pool_destroy(sd_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->done_cv);
  free(p->threads);
  free(p);
}

int sd_pool_threads(const sd_pool *p) { return p ? p->n : 1; }

void sd_parallel_for(sd_pool *p, int64_t n, int64_t grain, sd_task_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = p ? p->n : 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int n_chunks = (int)(max_chunks < nt ? max_chunks : nt);
  if (n_chunks <= 1) { fn(ctx, 0, n, 0); return; }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->total = n;
  p->n_chunks = n_chunks;
  p->chunk = (n + n_chunks - 1) / n_chunks;
  p->pending = p->n - 1;
  p->generation++;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  run_chunk(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
