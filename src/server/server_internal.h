/* What the server's files share: a generation job, and the request/response shapes of the
 * two APIs (routes.c) used by the HTTP and queue side (server.c). */
#ifndef SD_SERVER_INTERNAL_H
#define SD_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "safesd.h"
#include "server/server.h"

typedef enum { SRV_A1111 = 0, SRV_OPENAI = 1 } srv_api;
typedef enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE } srv_job_state;

/* What the routes need to know about the server. */
typedef struct srv_info {
  const sd_server_config *cfg;
  const char *model_name;     /* the folder's or file's base name */
  const char *model_path;
  int native_w, native_h;     /* the model's native image size */
  const char *default_sampler;/* the model's scheduler (safesd name) */
  int floor_rank;             /* --min-safety's rank */
  float floor_weight, floor_context;
} srv_info;

typedef struct srv_job {
  srv_api api;
  /* the request, validated; p's strings point into the job's own copies */
  safesd_gen_params p;
  char *prompt, *negative, *sampler, *schedule, *level, *strategy;
  int n_iter;
  int send_images;
  int64_t seed_requested;     /* -1: random */
  json_t *parameters;         /* A1111's echo of the request, defaults filled */
  /* state: under the server's lock, except cancel */
  srv_job_state state;
  atomic_int cancel;          /* 1: the client went away, the time limit passed or shutdown */
  struct srv_job *next;
  double t_arrive, t_start, t_end;
  /* result (written by the worker before state = JOB_DONE) */
  int rc;
  char err[512];
  uint8_t *rgb;               /* n_images × height × width × 3 */
  int n_images, width, height;
  char **infotext;            /* the PNG "parameters" of each image */
  int *nsfw;                  /* per image: 1, 0, or -1 (not checked) */
  int *blocked;               /* per image */
  json_t *report;             /* the safety report (iterations merged) */
  int flagged;
  uint8_t *init_rgb, *mask_rgb; /* img2img: the decoded init image and mask (p points at them) */
} srv_job;

void srv_job_free(srv_job *j);

/* Validate a request body into a job (400 on error: *err names the field, *field is the
 * field's name or NULL). img2img: the /sdapi/v1/img2img body (init_images, mask,
 * denoising_strength, ...). */
int srv_parse_a1111(const srv_info *si, json_t *body, srv_job *j, int img2img, char *err, size_t cap,
                    const char **field);
int srv_parse_openai(const srv_info *si, json_t *body, srv_job *j, char *err, size_t cap, const char **field);
/* The response body of a finished job (malloc'ed JSON) and its HTTP status. */
char *srv_response(const srv_info *si, srv_job *j, int *status);
/* An error body in the route's shape: OpenAI {"error": {message, type, param, code}}, else
 * {"error": TYPE, "detail": message, "field": ...}. */
char *srv_error_body(srv_api api, int status, const char *message, const char *field, const char *code);
/* GET bodies. */
char *srv_samplers_body(void);
char *srv_models_body(const srv_info *si);
char *srv_options_body(const srv_info *si);

/* Make request text quoted in a message or a field name safe to log and to encode as JSON,
 * in place: control characters (C0, DEL, C1) become '?', and a UTF-8 sequence cut short by a
 * length limit ends the text. */
void srv_clean_text(char *s);
/* base64 (RFC 4648, with padding) of n bytes: malloc'ed, NUL-terminated. */
char *srv_base64(const uint8_t *data, size_t n);
/* A JSON value as a compact malloc'ed string (the reference is consumed). */
char *srv_dump(json_t *v);

#endif
