/* `safesd serve`: the HTTP side (libmicrohttpd, one thread per connection), the bounded job
 * queue, the worker that runs generations one at a time, metrics, the access log and the
 * graceful shutdown. The concurrency model is described in server.h; the routes and their
 * fields in docs/server.md. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/server_internal.h"

#define WAIT_SLICE_MS 100
#define N_BUCKETS 13
static const double k_buckets[N_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, INFINITY};

void sd_server_config_defaults(sd_server_config *c) {
  memset(c, 0, sizeof *c);
  c->host = "127.0.0.1";
  c->port = 7860;
  c->safety = "medium";
  c->min_safety = "off";
  c->queue = 8;
  c->max_connections = 64;
  c->timeout_s = 300;
  c->max_body = 1 << 20;
  c->max_images = 16;
  c->max_steps = 150;
  c->max_side = 0; /* 0: twice the model's native size */
  c->shutdown_grace_s = 30;
}

/* ---- server state --------------------------------------------------------------------- */

typedef struct metric_row {
  char route[40];
  int code;
  unsigned long long n;
} metric_row;

typedef struct server {
  srv_info info;
  const sd_server_config *cfg;
  safesd_model *model;
  struct MHD_Daemon *daemon;
  FILE *log;
  pthread_mutex_t lock;
  pthread_cond_t work_cv, done_cv; /* a job queued / a job finished or state changed */
  srv_job *head, *tail;
  int queued;
  srv_job *running;
  int draining;     /* SIGTERM seen: no new jobs */
  int stop_worker;
  int active;       /* requests between arrival and completion */
  /* progress of the running job */
  int step, total, iter;
  double job_start;
  /* metrics */
  metric_row rows[64];
  int n_rows;
  unsigned long long hist[N_BUCKETS], n_images, n_flagged, n_unsafe, n_blocked, n_cancelled[3], n_jobs;
  double hist_sum, gen_sum, mean_job_s;
  unsigned long long hist_n;
} server;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int g_sigpipe[2] = {-1, -1};
static void on_signal(int sig) {
  int saved = errno;
  char c = (char)sig;
  if (write(g_sigpipe[1], &c, 1) < 0) {}
  errno = saved;
}

/* ---- per-request context ---------------------------------------------------------------- */

typedef struct request {
  char *body;
  size_t len, cap;
  int too_large;
  double t0;
  int status;
  size_t bytes;
  int flagged;
  double queue_ms;
  char method[8];
  char *url;
} request;

static void count(server *s, const char *route, int code) {
  pthread_mutex_lock(&s->lock);
  int i;
  for (i = 0; i < s->n_rows; i++)
    if (s->rows[i].code == code && !strcmp(s->rows[i].route, route)) break;
  if (i == s->n_rows && s->n_rows < (int)(sizeof s->rows / sizeof *s->rows)) {
    snprintf(s->rows[i].route, sizeof s->rows[i].route, "%s", route);
    s->rows[i].code = code;
    s->n_rows++;
  }
  if (i < s->n_rows) s->rows[i].n++;
  pthread_mutex_unlock(&s->lock);
}

/* The route label of a URL for the metrics (unknown paths share one label). */
static const char *route_label(const char *url) {
  static const char *const known[] = {"/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/samplers", "/sdapi/v1/sd-models",
                                      "/sdapi/v1/options", "/sdapi/v1/progress", "/v1/images/generations",
                                      "/health", "/metrics"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (!strcmp(url, known[i])) return known[i];
  return "other";
}

static enum MHD_Result send_body(server *s, struct MHD_Connection *c, request *rq, int status, char *body,
                                 const char *ctype, const char *h1, const char *v1) {
  if (!body) {
    status = 500;
    body = strdup("{\"error\":\"ServerError\",\"detail\":\"out of memory\"}");
    if (!body) return MHD_NO;
  }
  size_t len = strlen(body);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "application/json");
  if (h1) MHD_add_response_header(r, h1, v1);
  if (s->draining) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  rq->status = status;
  rq->bytes = len;
  count(s, route_label(rq->url), status);
  return ret;
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, request *rq, srv_api api, int status,
                                  const char *msg, const char *field, const char *h1, const char *v1) {
  return send_body(s, c, rq, status, srv_error_body(api, status, msg, field, NULL), NULL, h1, v1);
}

/* ---- the worker ----------------------------------------------------------------------- */

static int job_cancelled(void *user) {
  srv_job *j = user;
  return atomic_load(&j->cancel) != 0;
}

static void on_progress(void *user, int step, int total, double seconds) {
  server *s = user;
  (void)seconds;
  pthread_mutex_lock(&s->lock);
  s->step = step;
  s->total = total;
  pthread_mutex_unlock(&s->lock);
}

static uint64_t random_seed(void) {
  uint32_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
  return v;
}

/* Run one job on the model: n_iter generations of batch images, their infotexts, verdicts
 * and the merged safety report. */
static void run_job(server *s, srv_job *j) {
  safesd_gen_params p = j->p;
  p.seed = j->seed_requested < 0 ? random_seed() : (uint64_t)j->seed_requested;
  p.cancel = job_cancelled;
  p.cancel_user = j;
  p.progress = on_progress;
  p.progress_user = s;
  j->rc = safesd_gen_resolve(s->model, &p);
  if (j->rc) {
    snprintf(j->err, sizeof j->err, "%s", safesd_last_error());
    return;
  }
  j->p = p;
  pthread_mutex_lock(&s->lock);
  s->total = p.steps; /* until the first step reports the schedule's evaluations */
  pthread_mutex_unlock(&s->lock);
  const int B = p.batch, N = B * j->n_iter;
  const size_t per = (size_t)p.width * p.height * 3;
  j->width = p.width;
  j->height = p.height;
  j->rgb = malloc(per * (size_t)N);
  j->infotext = calloc((size_t)N, sizeof *j->infotext);
  j->nsfw = calloc((size_t)N, sizeof *j->nsfw);
  j->blocked = calloc((size_t)N, sizeof *j->blocked);
  if (!j->rgb || !j->infotext || !j->nsfw || !j->blocked) {
    j->rc = SAFESD_E_NOMEM;
    snprintf(j->err, sizeof j->err, "out of memory");
    return;
  }
  json_t *images = json_array(), *flags = json_array();
  double seconds = 0;
  for (int it = 0; it < j->n_iter && !j->rc; it++) {
    safesd_gen_params q = p;
    q.seed = p.seed + (uint64_t)it * (uint64_t)B;
    pthread_mutex_lock(&s->lock);
    s->iter = it;
    pthread_mutex_unlock(&s->lock);
    safesd_safety_report rep;
    if ((j->rc = safesd_generate_ex(s->model, &q, j->rgb + per * (size_t)(it * B), NULL, &rep))) {
      snprintf(j->err, sizeof j->err, "%s", safesd_last_error());
      break;
    }
    for (int b = 0; b < B; b++) {
      int k = it * B + b;
      j->infotext[k] = safesd_gen_parameters_text(s->model, &q, b);
      j->nsfw[k] = rep.images ? rep.images[b].nsfw : -1;
      j->blocked[k] = rep.images && !strcmp(rep.images[b].action, "blocked");
    }
    j->n_images = (it + 1) * B;
    char *js = safesd_safety_report_json(&rep, 0);
    json_t *r = js ? json_loads(js, 0, NULL) : NULL;
    free(js);
    if (!r) {
      j->rc = SAFESD_E_NOMEM;
      snprintf(j->err, sizeof j->err, "out of memory");
      break;
    }
    seconds += rep.seconds;
    json_t *ic = json_object_get(r, "image_check");
    if (json_is_object(ic)) json_array_extend(images, json_object_get(ic, "images"));
    json_t *f = json_object_get(r, "nsfw_content_detected");
    if (json_is_array(f)) json_array_extend(flags, f);
    j->flagged = rep.flagged;
    if (!j->report) j->report = r;
    else json_decref(r);
  }
  for (int k = 0; k < j->n_images && !j->rc; k++)
    if (!j->infotext[k]) {
      j->rc = SAFESD_E_NOMEM;
      snprintf(j->err, sizeof j->err, "out of memory");
    }
  if (!j->rc && j->report) {
    json_object_set_new(j->report, "seconds", json_real(seconds));
    json_object_set_new(j->report, "iterations", json_integer(j->n_iter));
    json_t *ic = json_object_get(j->report, "image_check");
    if (json_is_object(ic)) {
      json_object_set(ic, "images", images);
      json_object_set(j->report, "nsfw_content_detected", flags);
    }
  }
  json_decref(images);
  json_decref(flags);
}

static void *worker_main(void *arg) {
  server *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    /* while draining no job starts: the queued ones are answered 503 by their threads */
    while ((!s->head || s->draining) && !s->stop_worker) pthread_cond_wait(&s->work_cv, &s->lock);
    if (!s->head || s->draining) break;
    srv_job *j = s->head;
    s->head = j->next;
    if (!s->head) s->tail = NULL;
    s->queued--;
    j->state = JOB_RUNNING;
    j->t_start = now_s();
    s->running = j;
    s->step = 0;
    s->total = 0;
    s->iter = 0;
    s->job_start = j->t_start;
    pthread_mutex_unlock(&s->lock);
    if (atomic_load(&j->cancel)) {
      j->rc = SAFESD_E_CANCELLED;
      snprintf(j->err, sizeof j->err, "cancelled");
    } else {
      run_job(s, j);
    }
    pthread_mutex_lock(&s->lock);
    j->t_end = now_s();
    double dt = j->t_end - j->t_start;
    s->gen_sum += dt;
    s->n_jobs++;
    s->mean_job_s = s->mean_job_s == 0 ? dt : 0.8 * s->mean_job_s + 0.2 * dt;
    if (!j->rc) {
      s->n_images += (unsigned long long)j->n_images;
      s->n_flagged += (unsigned long long)j->flagged;
      for (int k = 0; k < j->n_images; k++) {
        s->n_unsafe += j->nsfw[k] == 1;
        s->n_blocked += (unsigned long long)j->blocked[k];
      }
    }
    s->running = NULL;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&s->done_cv);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* ---- generation requests ---------------------------------------------------------------- */

/* 1 when the client has closed its end (EOF or an error on the socket). */
static int client_gone(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return 0;
  struct pollfd pf = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
  if (poll(&pf, 1, 0) <= 0) return 0;
  if (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
  char b;
  ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void unlink_job(server *s, srv_job *j) {
  srv_job **pp = &s->head, *prev = NULL;
  while (*pp && *pp != j) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp) return;
  *pp = j->next;
  if (s->tail == j) s->tail = prev;
  s->queued--;
}

enum { END_DONE = 0, END_GONE, END_TIMEOUT, END_SHUTDOWN };

static enum MHD_Result generate(server *s, struct MHD_Connection *c, request *rq, srv_api api, int img2img) {
  json_error_t je;
  json_t *body = json_loadb(rq->body ? rq->body : "", rq->len, JSON_REJECT_DUPLICATES, &je);
  char msg[600];
  if (!body) {
    snprintf(msg, sizeof msg, "invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    return send_error(s, c, rq, api, 400, msg, NULL, NULL, NULL);
  }
  if (!json_is_object(body)) {
    json_decref(body);
    return send_error(s, c, rq, api, 400, "the request body must be a JSON object", NULL, NULL, NULL);
  }
  srv_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_decref(body);
    return send_error(s, c, rq, api, 500, "out of memory", NULL, NULL, NULL);
  }
  const char *field = NULL;
  int bad = api == SRV_OPENAI ? srv_parse_openai(&s->info, body, j, msg, sizeof msg, &field)
                              : srv_parse_a1111(&s->info, body, j, img2img, msg, sizeof msg, &field);
  char field_copy[96]; /* the name may point into the body */
  snprintf(field_copy, sizeof field_copy, "%s", field ? field : "");
  srv_clean_text(field_copy);
  json_decref(body);
  if (bad) {
    srv_job_free(j);
    return send_error(s, c, rq, api, 400, msg, field ? field_copy : NULL, NULL, NULL);
  }
  j->t_arrive = rq->t0;
  pthread_mutex_lock(&s->lock);
  if (s->draining) {
    pthread_mutex_unlock(&s->lock);
    srv_job_free(j);
    return send_error(s, c, rq, api, 503, "the server is shutting down", NULL, NULL, NULL);
  }
  if (s->queued >= s->cfg->queue) {
    double wait = (s->queued + 1) * (s->mean_job_s > 0 ? s->mean_job_s : 1.0);
    pthread_mutex_unlock(&s->lock);
    srv_job_free(j);
    char ra[32];
    snprintf(ra, sizeof ra, "%d", (int)ceil(wait < 1 ? 1 : wait));
    snprintf(msg, sizeof msg, "the queue is full (%d waiting, --queue); retry after %s s", s->cfg->queue, ra);
    return send_error(s, c, rq, api, 429, msg, NULL, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  if (s->tail) s->tail->next = j;
  else s->head = j;
  s->tail = j;
  s->queued++;
  pthread_cond_signal(&s->work_cv);
  /* wait: the job done, the client gone, the time limit, or shutdown */
  int end = END_DONE;
  const double deadline = rq->t0 + s->cfg->timeout_s;
  while (j->state != JOB_DONE) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->done_cv, &s->lock, &ts);
    if (j->state == JOB_DONE) break;
    int why = END_DONE;
    if (end == END_DONE) {
      pthread_mutex_unlock(&s->lock);
      if (client_gone(c)) why = END_GONE;
      pthread_mutex_lock(&s->lock);
      if (!why && now_s() > deadline) why = END_TIMEOUT;
      if (!why && s->draining && j->state == JOB_QUEUED) why = END_SHUTDOWN;
      if (!why && s->draining && s->stop_worker) why = END_SHUTDOWN; /* the grace period is over */
    }
    if (why) {
      end = why;
      atomic_store(&j->cancel, 1);
      s->n_cancelled[why - 1]++;
      if (j->state == JOB_QUEUED) {
        unlink_job(s, j);
        break;
      }
    }
  }
  rq->queue_ms = j->t_start > 0 ? (j->t_start - j->t_arrive) * 1e3 : (now_s() - j->t_arrive) * 1e3;
  const double total = now_s() - rq->t0;
  int bucket = 0;
  while (bucket < N_BUCKETS - 1 && total > k_buckets[bucket]) bucket++;
  s->hist[bucket]++;
  s->hist_sum += total;
  s->hist_n++;
  pthread_mutex_unlock(&s->lock);
  enum MHD_Result ret;
  if (end == END_GONE) {
    ret = MHD_NO; /* nobody to answer: close the connection */
    rq->status = 499;
    count(s, route_label(rq->url), 499);
  } else if (end == END_TIMEOUT) {
    snprintf(msg, sizeof msg, "the request took longer than this server's limit of %g s (--timeout)", s->cfg->timeout_s);
    ret = send_error(s, c, rq, api, 504, msg, NULL, NULL, NULL);
  } else if (end == END_SHUTDOWN || (j->rc == SAFESD_E_CANCELLED)) {
    ret = send_error(s, c, rq, api, 503, "the server is shutting down; the request was not completed", NULL,
                     MHD_HTTP_HEADER_RETRY_AFTER, "5");
  } else if (j->rc) {
    /* what the library refused (a size the model cannot take, ...) is the request's fault */
    int st = j->rc == SAFESD_E_ARG || j->rc == SAFESD_E_NOMEM ? 400 : 500;
    ret = send_error(s, c, rq, api, st, j->err, NULL, NULL, NULL);
  } else {
    int st = 200;
    char *out = srv_response(&s->info, j, &st);
    rq->flagged = j->flagged;
    ret = send_body(s, c, rq, st, out, NULL, NULL, NULL);
  }
  srv_job_free(j);
  return ret;
}

/* ---- other routes ----------------------------------------------------------------------- */

static char *progress_body(server *s) {
  pthread_mutex_lock(&s->lock);
  double frac = 0, eta = 0;
  int running = s->running != NULL;
  if (running && s->total > 0) {
    int n_iter = s->running->n_iter;
    frac = ((double)s->iter + (double)s->step / s->total) / n_iter;
    double el = now_s() - s->job_start;
    eta = frac > 0 ? el / frac - el : 0;
  }
  json_t *o = json_pack("{s:f, s:f, s:{s:b, s:b, s:s, s:i, s:i, s:i, s:i}, s:n, s:n}", "progress", frac, "eta_relative",
                        eta, "state", "skipped", 0, "interrupted", 0, "job", running ? "txt2img" : "", "job_count",
                        s->queued + running, "job_no", running ? s->iter : 0, "sampling_step", running ? s->step : 0,
                        "sampling_steps", running ? s->total : 0, "current_image", "textinfo");
  pthread_mutex_unlock(&s->lock);
  return srv_dump(o);
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * sysconf(_SC_PAGESIZE);
}

static char *metrics_body(server *s) {
  size_t cap = 8192;
  char *b = malloc(cap);
  if (!b) return NULL;
  size_t n = 0;
#define EMIT(...) \
  do { \
    int w_ = snprintf(b + n, cap - n, __VA_ARGS__); \
    if (w_ > 0) n += (size_t)w_ < cap - n ? (size_t)w_ : cap - n - 1; \
  } while (0)
  pthread_mutex_lock(&s->lock);
  EMIT("# HELP safesd_http_requests_total HTTP requests answered, by route and status (499: client went away).\n"
       "# TYPE safesd_http_requests_total counter\n");
  for (int i = 0; i < s->n_rows; i++)
    EMIT("safesd_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", s->rows[i].route, s->rows[i].code, s->rows[i].n);
  EMIT("# HELP safesd_queue_depth Generation jobs waiting.\n# TYPE safesd_queue_depth gauge\nsafesd_queue_depth %d\n",
       s->queued);
  EMIT("# HELP safesd_queue_capacity The most jobs that may wait (--queue).\n# TYPE safesd_queue_capacity gauge\n"
       "safesd_queue_capacity %d\n", s->cfg->queue);
  EMIT("# HELP safesd_jobs_running Generation jobs running (0 or 1).\n# TYPE safesd_jobs_running gauge\n"
       "safesd_jobs_running %d\n", s->running != NULL);
  EMIT("# HELP safesd_request_duration_seconds Generation requests, arrival to answer (queueing included).\n"
       "# TYPE safesd_request_duration_seconds histogram\n");
  unsigned long long cum = 0;
  for (int i = 0; i < N_BUCKETS; i++) {
    cum += s->hist[i];
    if (isinf(k_buckets[i])) EMIT("safesd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    else EMIT("safesd_request_duration_seconds_bucket{le=\"%g\"} %llu\n", k_buckets[i], cum);
  }
  EMIT("safesd_request_duration_seconds_sum %.6f\nsafesd_request_duration_seconds_count %llu\n", s->hist_sum, s->hist_n);
  EMIT("# HELP safesd_generation_seconds_total Time the worker spent on jobs.\n"
       "# TYPE safesd_generation_seconds_total counter\nsafesd_generation_seconds_total %.6f\n", s->gen_sum);
  EMIT("# HELP safesd_jobs_total Jobs the worker took.\n# TYPE safesd_jobs_total counter\nsafesd_jobs_total %llu\n",
       s->n_jobs);
  EMIT("# HELP safesd_images_total Images generated.\n# TYPE safesd_images_total counter\nsafesd_images_total %llu\n",
       s->n_images);
  EMIT("# HELP safesd_prompts_flagged_total Jobs whose prompt the detectors flagged.\n"
       "# TYPE safesd_prompts_flagged_total counter\nsafesd_prompts_flagged_total %llu\n", s->n_flagged);
  EMIT("# HELP safesd_images_unsafe_total Images the output-image check called unsafe.\n"
       "# TYPE safesd_images_unsafe_total counter\nsafesd_images_unsafe_total %llu\n", s->n_unsafe);
  EMIT("# HELP safesd_images_blocked_total Images withheld by the output-image check.\n"
       "# TYPE safesd_images_blocked_total counter\nsafesd_images_blocked_total %llu\n", s->n_blocked);
  EMIT("# HELP safesd_jobs_cancelled_total Jobs cancelled, by reason.\n# TYPE safesd_jobs_cancelled_total counter\n"
       "safesd_jobs_cancelled_total{reason=\"client_gone\"} %llu\nsafesd_jobs_cancelled_total{reason=\"timeout\"} %llu\n"
       "safesd_jobs_cancelled_total{reason=\"shutdown\"} %llu\n", s->n_cancelled[0], s->n_cancelled[1], s->n_cancelled[2]);
  pthread_mutex_unlock(&s->lock);
  EMIT("# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\n"
       "process_resident_memory_bytes %ld\n", rss_bytes());
#undef EMIT
  return b;
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static int authorised(server *s, struct MHD_Connection *c) {
  if (!s->cfg->api_key) return 1;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
  h += 7;
  size_t a = strlen(h), b = strlen(s->cfg->api_key);
  unsigned char d = a != b;
  for (size_t i = 0; i < a; i++) d |= (unsigned char)(h[i] ^ s->cfg->api_key[i % (b ? b : 1)]);
  return d == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  server *s = cls;
  (void)version;
  request *rq = *con_cls;
  if (!rq) {
    if (!(rq = calloc(1, sizeof *rq)) || !(rq->url = strdup(url))) {
      free(rq);
      return MHD_NO;
    }
    rq->t0 = now_s();
    snprintf(rq->method, sizeof rq->method, "%s", method);
    pthread_mutex_lock(&s->lock);
    s->active++;
    pthread_mutex_unlock(&s->lock);
    *con_cls = rq;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->cfg->max_body) rq->too_large = 1;
    if (!strcmp(method, "POST") && !rq->too_large) return MHD_YES; /* the body follows */
  }
  if (*upload_size) {
    if (!rq->too_large) {
      if (rq->len + *upload_size > s->cfg->max_body) {
        rq->too_large = 1;
      } else {
        if (rq->len + *upload_size + 1 > rq->cap) {
          size_t cap = (rq->len + *upload_size + 1) * 2;
          if (cap > s->cfg->max_body + 1) cap = s->cfg->max_body + 1;
          char *nb = realloc(rq->body, cap);
          if (!nb) return MHD_NO;
          rq->body = nb;
          rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, *upload_size);
        rq->len += *upload_size;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  const srv_api api = !strncmp(url, "/v1/", 4) ? SRV_OPENAI : SRV_A1111;
  const int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), is_post = !strcmp(method, "POST");
  if (strcmp(url, "/health") && !authorised(s, c))
    return send_error(s, c, rq, api, 401, "missing or wrong API key (Authorization: Bearer KEY)", NULL,
                      MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  if (rq->too_large) {
    char m[128];
    snprintf(m, sizeof m, "the request body is larger than this server's limit of %zu bytes (--max-body)", s->cfg->max_body);
    return send_error(s, c, rq, api, 413, m, NULL, NULL, NULL);
  }
  struct { const char *path; int post; } routes[] = {
      {"/sdapi/v1/txt2img", 1}, {"/v1/images/generations", 1}, {"/sdapi/v1/samplers", 0}, {"/sdapi/v1/sd-models", 0},
      {"/sdapi/v1/options", 0}, {"/sdapi/v1/progress", 0}, {"/health", 0}, {"/metrics", 0}, {"/sdapi/v1/img2img", 1}};
  for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
    if (strcmp(url, routes[i].path)) continue;
    if (routes[i].post ? !is_post : !is_get)
      return send_error(s, c, rq, api, 405, routes[i].post ? "use POST" : "use GET", NULL, MHD_HTTP_HEADER_ALLOW,
                        routes[i].post ? "POST" : "GET, HEAD");
    if (i == 0) return generate(s, c, rq, SRV_A1111, 0);
    if (i == 1) return generate(s, c, rq, SRV_OPENAI, 0);
    if (i == 8) return generate(s, c, rq, SRV_A1111, 1);
    if (i == 2) return send_body(s, c, rq, 200, srv_samplers_body(), NULL, NULL, NULL);
    if (i == 3) return send_body(s, c, rq, 200, srv_models_body(&s->info), NULL, NULL, NULL);
    if (i == 4) return send_body(s, c, rq, 200, srv_options_body(&s->info), NULL, NULL, NULL);
    if (i == 5) return send_body(s, c, rq, 200, progress_body(s), NULL, NULL, NULL);
    if (i == 6) {
      pthread_mutex_lock(&s->lock);
      json_t *h = json_pack("{s:s, s:s, s:s, s:i, s:i, s:b}", "status", s->draining ? "draining" : "ok", "model",
                            s->info.model_name, "version", safesd_version(), "queue_depth", s->queued, "queue_capacity",
                            s->cfg->queue, "busy", s->running != NULL);
      int draining = s->draining;
      pthread_mutex_unlock(&s->lock);
      return send_body(s, c, rq, draining ? 503 : 200, srv_dump(h), NULL, NULL, NULL);
    }
    return send_body(s, c, rq, 200, metrics_body(s), "text/plain; version=0.0.4", NULL, NULL);
  }
  char m[160];
  snprintf(m, sizeof m, "no route %.100s (docs/server.md)", url);
  return send_error(s, c, rq, api, 404, m, NULL, NULL, NULL);
}

/* The access log line, and the end of the request's life. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  server *s = cls;
  request *rq = *con_cls;
  (void)toe;
  if (!rq) return;
  if (s->log) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[64] = "-";
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof ip);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, sizeof ip);
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(s->log, "%s %s \"%s %.200s\" %d %zu %.1fms queue=%.1fms flagged=%d\n", ts, ip, rq->method, rq->url,
            rq->status ? rq->status : 499, rq->bytes, (now_s() - rq->t0) * 1e3, rq->queue_ms, rq->flagged);
    fflush(s->log);
  }
  free(rq->body);
  free(rq->url);
  free(rq);
  *con_cls = NULL;
  pthread_mutex_lock(&s->lock);
  s->active--;
  pthread_cond_broadcast(&s->done_cv);
  pthread_mutex_unlock(&s->lock);
}

/* ---- start-up and shutdown ------------------------------------------------------------- */

static int startup_error(const char *what, const char *detail) {
  fprintf(stderr, "safesd serve: %s: %s\n", what, detail);
  return 1;
}

static int load_model(server *s, const sd_server_config *cfg, char *path, size_t cap) {
  if (cfg->model) snprintf(path, cap, "%s", cfg->model);
  else if (safesd_bundled_model(path, cap)) return startup_error("no -m given, and the bundled model", safesd_last_error());
  safesd_model_options mo = {.n_threads = cfg->threads, .config_dir = cfg->config_dir, .precision = cfg->precision,
                             .mem_budget = cfg->mem_budget};
  if (safesd_model_open(path, &mo, &s->model)) return startup_error("opening model", safesd_last_error());
  /* the model's native size and scheduler; the whole image side and the classifiers load now,
   * so the first request is not slower and a bad --image-check list is a start-up error */
  safesd_gen_params p;
  safesd_gen_defaults(&p);
  p.prompt = "";
  p.safety = cfg->safety;
  p.safety_strategy = cfg->strategy;
  p.detectors = cfg->detectors;
  p.concepts = cfg->concepts;
  p.image_check_action = cfg->image_check_action;
  if (safesd_gen_resolve(s->model, &p)) return startup_error("model", safesd_last_error());
  s->info.native_w = p.width;
  s->info.native_h = p.height;
  s->info.default_sampler = p.sampler;
  if (cfg->image_check && strcmp(cfg->image_check, "none")) {
    uint8_t px[8 * 8 * 3] = {0};
    int nsfw;
    if (safesd_image_check(s->model, cfg->image_check, px, 8, 8, &nsfw, NULL))
      return startup_error("--image-check", safesd_last_error());
  }
  char *v = NULL;
  if (safesd_check_string(s->model, "a test", cfg->concepts, cfg->strategy, cfg->detectors, NAN, 1, &v))
    return startup_error("safety detectors", safesd_last_error());
  free(v);
  const char *slash = strrchr(path, '/');
  while (slash && !slash[1] && slash > path) { /* a trailing slash */
    const char *q = slash - 1;
    while (q > path && *q != '/') q--;
    slash = *q == '/' ? q : NULL;
  }
  s->info.model_name = slash ? slash + 1 : path;
  s->info.model_path = path;
  return 0;
}

int sd_server_run(const sd_server_config *cfg_in) {
  sd_server_config cfg = *cfg_in;
  server *s = calloc(1, sizeof *s);
  if (!s) return startup_error("start", "out of memory");
  static char path[4096], name[4096];
  int rc = 1;
  pthread_t worker;
  int have_worker = 0;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->work_cv, NULL);
  pthread_cond_init(&s->done_cv, NULL);
  s->cfg = &cfg;
  s->info.cfg = &cfg;
  if (safesd_safety_level(cfg.safety, NULL, NULL) < 0) { startup_error("--safety", safesd_last_error()); goto out; }
  s->info.floor_rank = safesd_safety_level(cfg.min_safety, &s->info.floor_weight, &s->info.floor_context);
  if (s->info.floor_rank < 0) { startup_error("--min-safety", safesd_last_error()); goto out; }
  if (safesd_safety_level(cfg.safety, NULL, NULL) < s->info.floor_rank) {
    startup_error("--safety", "the default level is below --min-safety");
    goto out;
  }
  if (load_model(s, &cfg, path, sizeof path)) goto out;
  snprintf(name, sizeof name, "%s", s->info.model_name);
  s->info.model_name = name;
  if (cfg.max_side <= 0) cfg.max_side = 2 * (s->info.native_w > s->info.native_h ? s->info.native_w : s->info.native_h);
  if (!cfg.access_log || !strcmp(cfg.access_log, "-")) s->log = stderr;
  else if (strcmp(cfg.access_log, "off") && !(s->log = fopen(cfg.access_log, "a"))) {
    startup_error("--access-log", strerror(errno));
    goto out;
  }
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr *addr;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
  memset(&a4, 0, sizeof a4);
  memset(&a6, 0, sizeof a6);
  if (inet_pton(AF_INET, cfg.host, &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)cfg.port);
    addr = (struct sockaddr *)&a4;
  } else if (inet_pton(AF_INET6, cfg.host, &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)cfg.port);
    addr = (struct sockaddr *)&a6;
    flags |= MHD_USE_IPv6;
  } else {
    startup_error("--host", "not a numeric IPv4 or IPv6 address");
    goto out;
  }
  if (pipe(g_sigpipe)) { startup_error("start", strerror(errno)); goto out; }
  fcntl(g_sigpipe[1], F_SETFL, O_NONBLOCK);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (pthread_create(&worker, NULL, worker_main, s)) { startup_error("start", "cannot start the worker thread"); goto out; }
  have_worker = 1;
  s->daemon = MHD_start_daemon(flags, (uint16_t)cfg.port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, addr,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg.max_connections,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024, MHD_OPTION_END);
  if (!s->daemon) {
    char m[160];
    snprintf(m, sizeof m, "cannot listen on %s:%d (in use, or not an address of this machine)", cfg.host, cfg.port);
    startup_error("start", m);
    goto out;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  int port = di ? di->port : cfg.port;
  if (cfg.on_listening && cfg.on_listening(cfg.on_listening_user, port)) goto out;
  if (!cfg.quiet)
    fprintf(stderr, "safesd serve: %s on http://%s%s%s:%d (queue %d, safety %s, floor %s, image check %s); SIGTERM stops\n",
            s->info.model_name, strchr(cfg.host, ':') ? "[" : "", cfg.host, strchr(cfg.host, ':') ? "]" : "", port,
            cfg.queue, cfg.safety, cfg.min_safety, cfg.image_check ? cfg.image_check : "none");
  /* serve until a signal */
  for (;;) {
    char sig;
    ssize_t n = read(g_sigpipe[0], &sig, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (!cfg.quiet) fprintf(stderr, "safesd serve: shutting down (grace %g s)\n", cfg.shutdown_grace_s);
  /* drain: no new connections; queued jobs answered 503 by their threads; the running job
   * finishes within the grace period, else it is cancelled; then wait for every response */
  MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
  pthread_mutex_lock(&s->lock);
  s->draining = 1;
  pthread_cond_broadcast(&s->done_cv);
  const double t_end = now_s() + cfg.shutdown_grace_s;
  while ((s->running || s->head) && now_s() < t_end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&s->done_cv, &s->lock, &ts);
  }
  s->stop_worker = 1;  /* waiting requests now see the grace period is over */
  if (s->running) atomic_store(&s->running->cancel, 1);
  pthread_cond_broadcast(&s->work_cv);
  const double t_hard = now_s() + 10;
  while (s->active > 0 && now_s() < t_hard) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&s->done_cv, &s->lock, &ts);
  }
  pthread_mutex_unlock(&s->lock);
  rc = 0;
out:
  if (s->daemon) MHD_stop_daemon(s->daemon);
  if (have_worker) {
    pthread_mutex_lock(&s->lock);
    s->stop_worker = 1;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    pthread_join(worker, NULL);
  }
  safesd_model_close(s->model);
  if (s->log && s->log != stderr) fclose(s->log);
  if (g_sigpipe[0] >= 0) {
    close(g_sigpipe[0]);
    close(g_sigpipe[1]);
  }
  if (rc == 0 && !cfg.quiet) fprintf(stderr, "safesd serve: stopped\n");
  free(s);
  return rc;
}
