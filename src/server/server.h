/* `safesd serve`: an HTTP server over the public API (safesd.h) on GNU libmicrohttpd, with
 * AUTOMATIC1111- and OpenAI-compatible routes (docs/server.md).
 *
 * Concurrency model. One model is loaded. libmicrohttpd runs one thread per connection (at
 * most max_connections); a connection thread reads and validates its request, puts a
 * generation job in a bounded FIFO queue (full: 429 with Retry-After) and waits for it,
 * checking every 100 ms whether its client has gone (then the job is cancelled), whether
 * the time limit has passed (504) and whether the server is shutting down. One worker
 * thread takes the jobs in order and runs them on the model, so generations never overlap:
 * the engine's OpenMP team is per process, and two generations at once would only share the
 * same cores. PNG encoding and base64 happen on the connection threads, beside the worker.
 * SIGTERM/SIGINT: stop accepting, answer queued jobs 503, let the running one finish within
 * the grace period (then cancel it: 503), send every response whole, exit 0.
 *
 * This layer uses only the public API (include/safesd.h), jansson and libmicrohttpd.
 */
#ifndef SD_SERVER_SERVER_H
#define SD_SERVER_SERVER_H

#include <stddef.h>

typedef struct sd_server_config {
  const char *model;          /* NULL: the bundled model */
  const char *config_dir;
  int threads, precision;
  long long mem_budget;       /* safesd_model_options.mem_budget */
  const char *host;           /* "127.0.0.1" */
  int port;                   /* 0: any free port (printed, and given to on_listening) */
  /* called once the server listens, with the port (--port-file); nonzero: a start-up error
   * (the callback has printed why) */
  int (*on_listening)(void *user, int port);
  void *on_listening_user;
  const char *api_key;        /* NULL: no authentication */
  /* safety defaults and floor */
  const char *safety;         /* default level ("medium") */
  const char *min_safety;     /* floor ("off") */
  const char *strategy, *detectors, *concepts;
  const char *image_check, *image_check_action;
  const char *lora_dir;       /* <lora:NAME:W> tags in request prompts: NAME.safetensors there
                                 (NULL: a tag is a 400) */
  /* limits */
  int queue;                  /* jobs waiting (the running one not counted) */
  int max_connections;
  double timeout_s;           /* per request, queueing included */
  size_t max_body;
  int max_images, max_steps, max_side;
  double shutdown_grace_s;
  const char *access_log;     /* NULL or "-": stderr; "off": none */
  int quiet;
} sd_server_config;

void sd_server_config_defaults(sd_server_config *c);
/* Load the model, listen, serve until SIGTERM/SIGINT. Returns 0 after a clean shutdown, 1
 * on a start-up error (message on stderr). */
int sd_server_run(const sd_server_config *c);

#endif
