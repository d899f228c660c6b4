/* The request and response shapes of `safesd serve` (docs/server.md): AUTOMATIC1111's
 * /sdapi/v1/txt2img and OpenAI's /v1/images/generations, validated strictly (a field of the
 * wrong type or range, or one that is not known, is a 400 naming it; JSON null means
 * "the default"), and the per-request `safety` object with the server's floor. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/server_internal.h"

#define PROMPT_MAX_BYTES 8192

/* ---- small helpers ----------------------------------------------------------------- */

char *srv_dump(json_t *v) {
  char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
  json_decref(v);
  return s;
}

char *srv_base64(const uint8_t *d, size_t n) {
  static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
  if (!o) return NULL;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    *q++ = k[v >> 18];
    *q++ = k[(v >> 12) & 63];
    *q++ = k[(v >> 6) & 63];
    *q++ = k[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
    *q++ = k[v >> 18];
    *q++ = k[(v >> 12) & 63];
    *q++ = i + 1 < n ? k[(v >> 6) & 63] : '=';
    *q++ = '=';
  }
  *q = 0;
  return o;
}

void srv_job_free(srv_job *j) {
  if (!j) return;
  free(j->prompt);
  free(j->negative);
  free(j->sampler);
  free(j->schedule);
  free(j->level);
  free(j->strategy);
  json_decref(j->parameters);
  free(j->rgb);
  for (int i = 0; j->infotext && i < j->n_images; i++) free(j->infotext[i]);
  free(j->infotext);
  free(j->nsfw);
  free(j->blocked);
  json_decref(j->report);
  free(j->init_rgb);
  free(j->mask_rgb);
  free(j);
}

typedef struct req {
  json_t *body;
  char *err;
  size_t cap;
  const char **field;
} req;

static int badf(req *r, const char *field, const char *fmt, const char *detail) {
  snprintf(r->err, r->cap, fmt, field, detail);
  *r->field = field;
  return -1;
}

/* The field's value, or NULL when absent or JSON null (= the default). */
static json_t *get(req *r, const char *key) {
  json_t *v = json_object_get(r->body, key);
  return v && !json_is_null(v) ? v : NULL;
}

static int get_int(req *r, const char *key, long long lo, long long hi, long long *out) {
  json_t *v = get(r, key);
  if (!v) return 0;
  char range[96];
  snprintf(range, sizeof range, "%lld..%lld", lo, hi);
  if (!json_is_integer(v)) return badf(r, key, "field '%s': expected an integer in %s", range);
  long long x = json_integer_value(v);
  if (x < lo || x > hi) return badf(r, key, "field '%s': out of range (%s)", range);
  *out = x;
  return 1;
}

static int get_num(req *r, const char *key, double lo, double hi, double *out) {
  json_t *v = get(r, key);
  if (!v) return 0;
  char range[96];
  snprintf(range, sizeof range, "%g..%g", lo, hi);
  if (!json_is_number(v)) return badf(r, key, "field '%s': expected a number in %s", range);
  double x = json_number_value(v);
  if (!(x >= lo && x <= hi)) return badf(r, key, "field '%s': out of range (%s)", range);
  *out = x;
  return 1;
}

static int get_str(req *r, const char *key, size_t max, const char **out) {
  json_t *v = get(r, key);
  if (!v) return 0;
  if (!json_is_string(v)) return badf(r, key, "field '%s': expected a string%s", "");
  if (json_string_length(v) > max) return badf(r, key, "field '%s': too long%s", "");
  if (strlen(json_string_value(v)) != json_string_length(v)) return badf(r, key, "field '%s': contains a NUL character%s", "");
  *out = json_string_value(v);
  return 1;
}

static char *dup(const char *s) { return s ? strdup(s) : NULL; }

/* ---- samplers ------------------------------------------------------------------------ */

static const struct { const char *name, *label; } k_samplers[] = {
    {"ddim", "DDIM"}, {"pndm", "PLMS"}, {"euler", "Euler"}, {"euler_a", "Euler a"}, {"dpm++2m", "DPM++ 2M"}};

/* A1111 label ("Euler a", "DPM++ 2M Karras") or safesd name ("euler_a", "plms") → safesd
 * sampler name and, for a "... Karras" label, the karras schedule. */
static int sampler_parse(const char *s, const char **name, const char **schedule) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  size_t n = strlen(buf);
  *schedule = NULL;
  if (n > 7 && !strcasecmp(buf + n - 7, " Karras")) {
    buf[n - 7] = 0;
    *schedule = "karras";
  }
  if (!strcasecmp(buf, "plms")) { *name = "pndm"; return 0; }
  for (size_t i = 0; i < sizeof k_samplers / sizeof *k_samplers; i++)
    if (!strcasecmp(buf, k_samplers[i].name) || !strcasecmp(buf, k_samplers[i].label)) {
      *name = k_samplers[i].name;
      return 0;
    }
  return -1;
}

static const char *sampler_label(const char *name) {
  for (size_t i = 0; i < sizeof k_samplers / sizeof *k_samplers; i++)
    if (name && !strcmp(name, k_samplers[i].name)) return k_samplers[i].label;
  return name ? name : "";
}

char *srv_samplers_body(void) {
  json_t *a = json_array();
  for (size_t i = 0; i < sizeof k_samplers / sizeof *k_samplers; i++) {
    json_t *al = json_pack("[s]", k_samplers[i].name);
    if (!strcmp(k_samplers[i].name, "pndm")) json_array_append_new(al, json_string("plms"));
    json_array_append_new(a, json_pack("{s:s, s:o, s:{}}", "name", k_samplers[i].label, "aliases", al, "options"));
  }
  json_array_append_new(a, json_pack("{s:s, s:[s], s:{s:s}}", "name", "DPM++ 2M Karras", "aliases", "dpm++2m_karras",
                                     "options", "scheduler", "karras"));
  return srv_dump(a);
}

char *srv_models_body(const srv_info *si) {
  return srv_dump(json_pack("[{s:s, s:s, s:n, s:n, s:s, s:n}]", "title", si->model_name, "model_name", si->model_name,
                            "hash", "sha256", "filename", si->model_path, "config"));
}

char *srv_options_body(const srv_info *si) {
  const sd_server_config *c = si->cfg;
  return srv_dump(json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "sd_model_checkpoint",
                            si->model_name, "CLIP_stop_at_last_layers", 1, "safesd_safety", c->safety, "safesd_min_safety",
                            c->min_safety, "safesd_safety_strategy", c->strategy ? c->strategy : "substitute+append",
                            "safesd_image_check", c->image_check ? c->image_check : "none", "safesd_image_check_action",
                            c->image_check_action ? c->image_check_action : "flag", "safesd_default_sampler",
                            si->default_sampler, "safesd_max_images", c->max_images, "safesd_max_steps", c->max_steps,
                            "safesd_max_side", c->max_side));
}

/* ---- the per-request safety object --------------------------------------------------- */

static int parse_safety(const srv_info *si, req *r, srv_job *j) {
  const sd_server_config *c = si->cfg;
  const char *level = c->safety, *strategy = c->strategy;
  j->p.safety_weight = NAN;
  j->p.context_steps = NAN;
  json_t *s = get(r, "safety");
  if (s) {
    if (!json_is_object(s)) return badf(r, "safety", "field '%s': expected an object {level, strategy, weight, context_steps}%s", "");
    req sr = {s, r->err, r->cap, r->field};
    const char *key;
    json_t *v;
    json_object_foreach(s, key, v) {
      if (strcmp(key, "level") && strcmp(key, "strategy") && strcmp(key, "weight") && strcmp(key, "context_steps")) {
        snprintf(r->err, r->cap, "field 'safety.%.64s': unknown (level, strategy, weight, context_steps)", key);
        *r->field = "safety";
        return -1;
      }
    }
    double x;
    int rc;
    if ((rc = get_str(&sr, "level", 16, &level)) < 0 || (rc = get_str(&sr, "strategy", 32, &strategy)) < 0) {
      *r->field = !strcmp(*r->field, "level") ? "safety.level" : "safety.strategy";
      return badf(r, *r->field, "field '%s': expected a string%s", "");
    }
    if ((rc = get_num(&sr, "weight", 0, 1, &x)) < 0) return badf(r, "safety.weight", "field '%s': expected a number in 0..1%s", "");
    if (rc) j->p.safety_weight = (float)x;
    if ((rc = get_num(&sr, "context_steps", 0, 1, &x)) < 0)
      return badf(r, "safety.context_steps", "field '%s': expected a number in 0..1%s", "");
    if (rc) j->p.context_steps = (float)x;
  }
  float lw, lt;
  int rank = safesd_safety_level(level, &lw, &lt);
  if (rank < 0) return badf(r, "safety.level", "field '%s': unknown level '%.32s' (off, low, medium, high, max)", level);
  if (strategy && strcmp(strategy, "substitute+append") && strcmp(strategy, "substitute") && strcmp(strategy, "append") &&
      strcmp(strategy, "project"))
    return badf(r, "safety.strategy", "field '%s': unknown strategy '%.32s' (substitute+append, substitute, append, project)",
                strategy);
  /* the floor: no lower level, no smaller weight, no longer context phase than --min-safety's */
  char msg[160];
  if (rank < si->floor_rank) {
    snprintf(msg, sizeof msg, "'%.16s' is below this server's minimum level '%.16s' (--min-safety)", level, c->min_safety);
    return badf(r, "safety.level", "field '%s': %s", msg);
  }
  if (si->floor_rank > 0 && !isnan(j->p.safety_weight) && j->p.safety_weight < si->floor_weight) {
    snprintf(msg, sizeof msg, "%g is below this server's minimum %g (--min-safety %.16s)", (double)j->p.safety_weight,
             (double)si->floor_weight, c->min_safety);
    return badf(r, "safety.weight", "field '%s': %s", msg);
  }
  if (si->floor_rank > 0 && !isnan(j->p.context_steps) && j->p.context_steps > si->floor_context) {
    snprintf(msg, sizeof msg, "%g is above this server's maximum %g (--min-safety %.16s)", (double)j->p.context_steps,
             (double)si->floor_context, c->min_safety);
    return badf(r, "safety.context_steps", "field '%s': %s", msg);
  }
  if (!(j->level = dup(level)) || (strategy && !(j->strategy = dup(strategy)))) return badf(r, "safety", "%s: out of memory%s", "");
  j->p.safety = j->level;
  j->p.safety_strategy = j->strategy;
  j->p.detectors = c->detectors;
  j->p.concepts = c->concepts;
  j->p.image_check = c->image_check;
  j->p.image_check_action = c->image_check_action;
  j->p.lora_dir = c->lora_dir;
  return 0;
}

/* "prompt_syntax": "a1111" (the default) or "plain" (docs/prompts.md). */
static int parse_syntax(req *r, srv_job *j) {
  const char *v = NULL;
  if (get_str(r, "prompt_syntax", 16, &v) < 0) return -1;
  if (!v) return 0;
  if (!strcmp(v, "a1111")) j->p.prompt_syntax = "a1111";
  else if (!strcmp(v, "plain")) j->p.prompt_syntax = "plain";
  else return badf(r, "prompt_syntax", "field '%s': unknown prompt syntax '%.16s' (a1111, plain)", v);
  return 0;
}

static int check_prompt(req *r, const char *key, int required, const char **out) {
  int rc = get_str(r, key, PROMPT_MAX_BYTES, out);
  if (rc < 0) return rc;
  if (!rc && required) return badf(r, key, "field '%s': required%s", "");
  return 0;
}

static int check_size(const srv_info *si, req *r, const char *key, long long v) {
  if (v % 8) return badf(r, key, "field '%s': must be a multiple of 8%s", "");
  if (v > si->cfg->max_side) {
    char m[64];
    snprintf(m, sizeof m, "%d (--max-side)", si->cfg->max_side);
    return badf(r, key, "field '%s': larger than this server's limit %s", m);
  }
  return 0;
}

/* The validated settings of either route, copied into the job. */
typedef struct gen_settings {
  const char *prompt, *neg, *sampler, *schedule;
  long long steps;
  double cfg;
  long long w, h, batch, n_iter, seed;
} gen_settings;

static int fill_job(const srv_info *si, req *r, srv_job *j, const gen_settings *g) {
  if (!(j->prompt = dup(g->prompt)) || (g->neg && !(j->negative = dup(g->neg))) ||
      (g->sampler && !(j->sampler = dup(g->sampler))) || (g->schedule && !(j->schedule = dup(g->schedule))))
    return badf(r, "prompt", "%s: out of memory%s", "");
  j->p.prompt = j->prompt;
  j->p.negative_prompt = j->negative;
  j->p.sampler = j->sampler;
  j->p.schedule = j->schedule;
  j->p.steps = (int)g->steps;
  j->p.cfg_scale = (float)g->cfg;
  j->p.width = (int)g->w;
  j->p.height = (int)g->h;
  /* the engine's pixel budget is this server's --max-side squared (its default, twice the
   * native side, is the engine's default budget too) */
  j->p.max_pixels = (int64_t)si->cfg->max_side * si->cfg->max_side;
  j->p.batch = (int)g->batch;
  j->n_iter = (int)g->n_iter;
  j->seed_requested = g->seed;
  return 0;
}

/* ---- AUTOMATIC1111 /sdapi/v1/txt2img ------------------------------------------------- */

/* A1111 fields accepted without effect, at the values that mean "off" (docs/server.md). */
static int a1111_neutral(req *r, const char *key, json_t *v, int *known) {
  *known = 1;
  if (json_is_null(v)) return 0;
  if (!strcmp(key, "restore_faces") || !strcmp(key, "tiling") || !strcmp(key, "enable_hr") ||
      !strcmp(key, "save_images")) {
    if (!json_is_boolean(v)) return badf(r, key, "field '%s': expected a boolean%s", "");
    if (json_is_true(v)) return badf(r, key, "field '%s': true is not supported by safesd%s", "");
    return 0;
  }
  if (!strcmp(key, "do_not_save_samples") || !strcmp(key, "do_not_save_grid") ||
      !strcmp(key, "override_settings_restore_afterwards") || !strcmp(key, "disable_extra_networks"))
    return json_is_boolean(v) ? 0 : badf(r, key, "field '%s': expected a boolean%s", "");
  if (!strcmp(key, "subseed_strength")) {
    if (!json_is_number(v) || json_number_value(v) != 0) return badf(r, key, "field '%s': only 0 is supported%s", "");
    return 0;
  }
  if (!strcmp(key, "subseed") || !strcmp(key, "seed_resize_from_h") || !strcmp(key, "seed_resize_from_w"))
    return json_is_integer(v) ? 0 : badf(r, key, "field '%s': expected an integer%s", "");
  if (!strcmp(key, "denoising_strength") || !strcmp(key, "refiner_switch_at"))
    return json_is_number(v) ? 0 : badf(r, key, "field '%s': expected a number%s", "");
  if (!strcmp(key, "styles") || !strcmp(key, "script_args")) {
    if (!json_is_array(v) || json_array_size(v)) return badf(r, key, "field '%s': only [] is supported%s", "");
    return 0;
  }
  if (!strcmp(key, "override_settings") || !strcmp(key, "alwayson_scripts") || !strcmp(key, "comments")) {
    if (!json_is_object(v) || json_object_size(v)) return badf(r, key, "field '%s': only {} is supported%s", "");
    return 0;
  }
  if (!strcmp(key, "script_name") || !strcmp(key, "refiner_checkpoint") || !strcmp(key, "eta") ||
      !strcmp(key, "s_min_uncond") || !strcmp(key, "s_churn") || !strcmp(key, "s_tmax") || !strcmp(key, "s_tmin") ||
      !strcmp(key, "s_noise"))
    return badf(r, key, "field '%s': only null is supported%s", "");
  if (!strcmp(key, "force_task_id") || !strcmp(key, "infotext") || !strcmp(key, "sampler_index"))
    return json_is_string(v) ? 0 : badf(r, key, "field '%s': expected a string%s", "");
  if (!strncmp(key, "hr_", 3) || !strncmp(key, "firstphase_", 11)) return 0; /* only read with enable_hr */
  *known = 0;
  return 0;
}

/* ---- AUTOMATIC1111 /sdapi/v1/img2img: the init image, the mask, the strength ----------- */

static const char *const k_img2img_fields[] = {"init_images", "denoising_strength", "mask", "mask_blur", "mask_blur_x",
                                               "mask_blur_y", "inpainting_fill", "inpaint_full_res",
                                               "inpaint_full_res_padding", "inpainting_mask_invert", "resize_mode",
                                               "include_init_images", "image_cfg_scale", "initial_noise_multiplier",
                                               "latent_mask", NULL};

static int b64_value(int ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* base64 (RFC 4648; padding optional) of s[0..n) into a malloc'ed *out; -1 on a bad
 * character or length, -2 out of memory. */
static int b64_decode(const char *s, size_t n, uint8_t **out, size_t *len) {
  while (n && s[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  uint8_t *o = malloc(n / 4 * 3 + 3), *q = o;
  if (!o) return -2;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) { free(o); return -1; }
    acc = acc << 6 | (uint32_t)v;
    if ((bits += 6) >= 8) {
      bits -= 8;
      *q++ = (uint8_t)(acc >> bits);
    }
  }
  *out = o;
  *len = (size_t)(q - o);
  return 0;
}

/* A base64 PNG (or a data: URL holding one) decoded to 8-bit RGB. */
static int decode_image(req *r, const char *key, json_t *v, uint8_t **rgb, int *w, int *h) {
  if (!json_is_string(v)) return badf(r, key, "field '%s': expected a base64 PNG string%s", "");
  const char *s = json_string_value(v), *comma = strchr(s, ',');
  if (!strncmp(s, "data:", 5) && comma) s = comma + 1;
  uint8_t *png = NULL;
  size_t n = 0;
  int rc = b64_decode(s, strlen(s), &png, &n);
  if (rc == -2) return badf(r, key, "%s: out of memory%s", "");
  if (rc) return badf(r, key, "field '%s': not valid base64%s", "");
  rc = safesd_decode_png(png, n, rgb, w, h);
  free(png);
  if (rc) {
    char m[256];
    snprintf(m, sizeof m, "%.250s", safesd_last_error());
    return badf(r, key, "field '%s': %s", m);
  }
  return 0;
}

/* An A1111 option safesd takes at one value only: absent, null or `ok` (a number, or the
 * boolean of 0/1). */
static int only_int(req *r, const char *key, long long ok, const char *why) {
  json_t *v = get(r, key);
  if (!v || (json_is_number(v) && json_number_value(v) == (double)ok) || (json_is_boolean(v) && json_is_true(v) == (ok == 1)))
    return 0;
  return badf(r, key, "field '%s': %s", why);
}

/* key absent, a boolean, or 0 or 1. */
static int int_or_bool(req *r, const char *key) {
  json_t *v = get(r, key);
  if (!v || json_is_boolean(v) || (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)))
    return 0;
  return badf(r, key, "field '%s': expected a boolean%s", "");
}

/* The init image (its size is the request's: width/height absent or equal), the mask and
 * the strength, into j->p. */
static int parse_img2img(const srv_info *si, req *r, srv_job *j) {
  json_t *imgs = get(r, "init_images");
  if (!imgs) return badf(r, "init_images", "field '%s': required (one base64 PNG)%s", "");
  if (!json_is_array(imgs) || json_array_size(imgs) != 1)
    return badf(r, "init_images", "field '%s': expected an array of one base64 PNG%s", "");
  int w, h, mw, mh;
  if (decode_image(r, "init_images", json_array_get(imgs, 0), &j->init_rgb, &w, &h) < 0) return -1;
  char m[160];
  for (int k = 0; k < 2; k++) {
    const char *key = k ? "height" : "width";
    long long given = 0;
    if (get_int(r, key, 8, 65536, &given) < 0) return -1;
    if (given && given != (k ? h : w)) {
      snprintf(m, sizeof m, "the init image is %dx%d: leave width and height out or give its size (no resizing)", w, h);
      return badf(r, key, "field '%s': %s", m);
    }
    if (check_size(si, r, key, k ? h : w) < 0) return -1;
  }
  j->p.width = j->p.init_width = w;
  j->p.height = j->p.init_height = h;
  j->p.init_image = j->init_rgb;
  double strength = 0.75;
  if (get_num(r, "denoising_strength", 0, 1, &strength) < 0) return -1;
  j->p.strength = strength;
  json_t *mask = get(r, "mask");
  if (mask) {
    if (decode_image(r, "mask", mask, &j->mask_rgb, &mw, &mh) < 0) return -1;
    if (mw != w || mh != h) {
      snprintf(m, sizeof m, "the mask is %dx%d but the init image is %dx%d (they must match)", mw, mh, w, h);
      return badf(r, "mask", "field '%s': %s", m);
    }
    long long invert = 0;
    if (get_int(r, "inpainting_mask_invert", 0, 1, &invert) < 0) return -1;
    for (size_t q = 0; invert && q < (size_t)w * h * 3; q++) j->mask_rgb[q] = (uint8_t)(255 - j->mask_rgb[q]);
    j->p.mask_image = j->mask_rgb;
  }
  long long ignored;
  if (mask) { /* the mask's handling: only what safesd does is accepted */
    if (only_int(r, "mask_blur", 0, "only 0 is supported (the mask is used as given, unblurred)") < 0 ||
        only_int(r, "mask_blur_x", 0, "only 0 is supported (the mask is used as given, unblurred)") < 0 ||
        only_int(r, "mask_blur_y", 0, "only 0 is supported (the mask is used as given, unblurred)") < 0 ||
        only_int(r, "inpainting_fill", 1, "only 1 (original) is supported: the masked area starts from the noised "
                                          "init image, as diffusers") < 0 ||
        only_int(r, "inpaint_full_res", 0, "only false is supported (the whole picture is inpainted)") < 0)
      return -1;
  } else if (get_int(r, "mask_blur", 0, 64, &ignored) < 0 || get_int(r, "mask_blur_x", 0, 64, &ignored) < 0 ||
             get_int(r, "mask_blur_y", 0, 64, &ignored) < 0 || get_int(r, "inpainting_fill", 0, 3, &ignored) < 0 ||
             int_or_bool(r, "inpaint_full_res") < 0) /* without a mask A1111 ignores them too: clients send its defaults */
    return -1;
  if (only_int(r, "resize_mode", 0, "only 0 is supported (the image is not resized)") < 0 ||
      only_int(r, "initial_noise_multiplier", 1, "only 1 is supported") < 0 ||
      get_int(r, "inpaint_full_res_padding", 0, 65536, &ignored) < 0)
    return -1;
  /* A1111 reads image_cfg_scale only for instruct-pix2pix models ("edit" conditioning), which
   * safesd does not load: a number is accepted and ignored, as A1111 does for other models */
  double icfg = 0;
  if (get_num(r, "image_cfg_scale", 0, 100, &icfg) < 0) return -1;
  if (get(r, "latent_mask")) return badf(r, "latent_mask", "field '%s': only null is supported%s", "");
  json_t *inc = get(r, "include_init_images");
  if (inc && !json_is_boolean(inc)) return badf(r, "include_init_images", "field '%s': expected a boolean%s", "");
  return 0;
}

static const char *const k_a1111_fields[] = {"prompt", "negative_prompt", "steps", "cfg_scale", "seed", "width", "height",
                                             "sampler_name", "scheduler", "batch_size", "n_iter", "send_images", "safety",
                                             "prompt_syntax", NULL};

static int parse_a1111(const srv_info *si, json_t *body, srv_job *j, int img2img, char *err, size_t cap,
                       const char **field) {
  req r = {body, err, cap, field};
  *field = NULL;
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    int known = 0;
    for (int i = 0; k_a1111_fields[i]; i++) known |= !strcmp(key, k_a1111_fields[i]);
    for (int i = 0; img2img && k_img2img_fields[i]; i++) known |= !strcmp(key, k_img2img_fields[i]);
    if (known) continue;
    if (a1111_neutral(&r, key, v, &known) < 0) return -1;
    if (!known) return badf(&r, key, "field '%s': unknown (docs/server.md lists the fields)%s", "");
  }
  safesd_gen_defaults(&j->p);
  j->api = SRV_A1111;
  const char *prompt = "", *neg = NULL, *sampler = NULL, *sched_field = NULL;
  long long steps = 50, seed = -1, w = si->native_w, h = si->native_h, batch = 1, n_iter = 1;
  double cfg = 7.0;
  if (check_prompt(&r, "prompt", 0, &prompt) < 0 || check_prompt(&r, "negative_prompt", 0, &neg) < 0) return -1;
  if (get_int(&r, "steps", 1, si->cfg->max_steps, &steps) < 0 || get_num(&r, "cfg_scale", 0, 30, &cfg) < 0 ||
      get_int(&r, "seed", -1, 4294967295LL, &seed) < 0 || get_int(&r, "width", 8, 65536, &w) < 0 ||
      get_int(&r, "height", 8, 65536, &h) < 0 || get_int(&r, "batch_size", 1, si->cfg->max_images, &batch) < 0 ||
      get_int(&r, "n_iter", 1, si->cfg->max_images, &n_iter) < 0)
    return -1;
  if (check_size(si, &r, "width", w) < 0 || check_size(si, &r, "height", h) < 0) return -1;
  if (batch * n_iter > si->cfg->max_images) {
    char m[64];
    snprintf(m, sizeof m, "%d (--max-images)", si->cfg->max_images);
    return badf(&r, "n_iter", "field '%s': batch_size x n_iter is over this server's limit %s", m);
  }
  const char *sname = NULL, *ssched = NULL;
  int rc = get_str(&r, "sampler_name", 64, &sampler);
  if (rc < 0) return -1;
  if (!rc && (rc = get_str(&r, "sampler_index", 64, &sampler)) < 0) return -1;
  if (sampler && sampler_parse(sampler, &sname, &ssched))
    return badf(&r, "sampler_name", "field '%s': unknown sampler '%.64s' (GET /sdapi/v1/samplers)", sampler);
  if (get_str(&r, "scheduler", 32, &sched_field) < 0) return -1;
  if (sched_field) {
    if (!strcasecmp(sched_field, "karras")) ssched = "karras";
    else if (!strcasecmp(sched_field, "discrete") || !strcasecmp(sched_field, "uniform")) ssched = "discrete";
    else if (strcasecmp(sched_field, "automatic"))
      return badf(&r, "scheduler", "field '%s': unknown scheduler '%.32s' (automatic, karras, discrete)", sched_field);
  }
  json_t *si_v = get(&r, "send_images");
  if (si_v && !json_is_boolean(si_v)) return badf(&r, "send_images", "field '%s': expected a boolean%s", "");
  j->send_images = !si_v || json_is_true(si_v);
  if (parse_safety(si, &r, j) < 0 || parse_syntax(&r, j) < 0) return -1;
  gen_settings g = {prompt, neg, sname, ssched, steps, cfg, w, h, batch, n_iter, seed};
  if (fill_job(si, &r, j, &g) < 0) return -1;
  if (img2img && parse_img2img(si, &r, j) < 0) return -1;
  w = j->p.width;
  h = j->p.height;
  j->parameters = json_pack("{s:s, s:s, s:i, s:f, s:I, s:i, s:i, s:s, s:i, s:i, s:b}", "prompt", prompt,
                            "negative_prompt", neg ? neg : "", "steps", (int)steps, "cfg_scale", cfg, "seed",
                            (json_int_t)seed, "width", (int)w, "height", (int)h, "sampler_name",
                            sampler_label(sname ? sname : si->default_sampler), "batch_size", (int)batch, "n_iter",
                            (int)n_iter, "send_images", j->send_images);
  json_t *sf = j->parameters ? json_pack("{s:s, s:s}", "level", j->level, "strategy",
                                         j->strategy ? j->strategy : "substitute+append")
                             : NULL;
  if (!sf) return badf(&r, "prompt", "%s: out of memory%s", "");
  if (!isnan(j->p.safety_weight)) json_object_set_new(sf, "weight", json_real(j->p.safety_weight));
  if (!isnan(j->p.context_steps)) json_object_set_new(sf, "context_steps", json_real(j->p.context_steps));
  json_object_set_new(j->parameters, "safety", sf);
  if (img2img) {
    json_object_set_new(j->parameters, "denoising_strength", json_real(j->p.strength));
    json_object_set_new(j->parameters, "mask", json_boolean(j->p.mask_image != NULL));
  }
  return 0;
}

/* ---- OpenAI /v1/images/generations ---------------------------------------------------- */

static const char *const k_openai_fields[] = {"prompt", "n", "size", "response_format", "model", "quality", "style",
                                              "user", "negative_prompt", "seed", "steps", "cfg_scale", "sampler",
                                              "safety", "prompt_syntax", NULL};

static int parse_openai(const srv_info *si, json_t *body, srv_job *j, char *err, size_t cap, const char **field) {
  req r = {body, err, cap, field};
  *field = NULL;
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    int known = 0;
    for (int i = 0; k_openai_fields[i]; i++) known |= !strcmp(key, k_openai_fields[i]);
    if (!known) return badf(&r, key, "Unrecognized request argument supplied: %s%s", "");
  }
  safesd_gen_defaults(&j->p);
  j->api = SRV_OPENAI;
  j->send_images = 1;
  const char *prompt = NULL, *size = NULL, *fmt = NULL, *neg = NULL, *sampler = NULL, *ignored = NULL;
  long long n = 1, seed = -1, steps = 50;
  double cfg = 7.5;
  if (check_prompt(&r, "prompt", 1, &prompt) < 0 || check_prompt(&r, "negative_prompt", 0, &neg) < 0) return -1;
  if (!*prompt) return badf(&r, "prompt", "field '%s': must not be empty%s", "");
  if (get_int(&r, "n", 1, si->cfg->max_images < 10 ? si->cfg->max_images : 10, &n) < 0 ||
      get_int(&r, "seed", -1, 4294967295LL, &seed) < 0 || get_int(&r, "steps", 1, si->cfg->max_steps, &steps) < 0 ||
      get_num(&r, "cfg_scale", 0, 30, &cfg) < 0 || get_str(&r, "size", 32, &size) < 0 ||
      get_str(&r, "response_format", 16, &fmt) < 0 || get_str(&r, "model", 256, &ignored) < 0 ||
      get_str(&r, "quality", 32, &ignored) < 0 || get_str(&r, "style", 32, &ignored) < 0 ||
      get_str(&r, "user", 256, &ignored) < 0 || get_str(&r, "sampler", 64, &sampler) < 0)
    return -1;
  if (fmt && !strcmp(fmt, "url"))
    return badf(&r, "response_format", "field '%s': 'url' is not supported: this server keeps no images; use b64_json%s", "");
  if (fmt && strcmp(fmt, "b64_json")) return badf(&r, "response_format", "field '%s': must be b64_json%s", "");
  long long w = si->native_w, h = si->native_h;
  if (size && strcmp(size, "auto")) {
    char x;
    int used = 0;
    if (sscanf(size, "%lld%c%lld%n", &w, &x, &h, &used) != 3 || x != 'x' || size[used] || w < 8 || h < 8 || w > 65536 ||
        h > 65536)
      return badf(&r, "size", "field '%s': expected WIDTHxHEIGHT (e.g. '%s') or 'auto'", size);
  }
  if (check_size(si, &r, "size", w) < 0 || check_size(si, &r, "size", h) < 0) return -1;
  const char *sname = NULL, *ssched = NULL;
  if (sampler && sampler_parse(sampler, &sname, &ssched))
    return badf(&r, "sampler", "field '%s': unknown sampler '%.64s'", sampler);
  if (parse_safety(si, &r, j) < 0 || parse_syntax(&r, j) < 0) return -1;
  gen_settings g = {prompt, neg, sname, ssched, steps, cfg, w, h, n, 1, seed};
  return fill_job(si, &r, j, &g);
}

/* (The library's sd_msg_clean does this with escapes, but the server uses only the public
 * API: src/server is outside the library.) */
void srv_clean_text(char *s) {
  unsigned char *p = (unsigned char *)s;
  for (size_t i = 0; p[i];) {
    unsigned c = p[i];
    if (c < 0x20 || c == 0x7f) {
      p[i++] = '?';
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0, ok = n > 0;
    for (int k = 1; ok && k < n; k++) ok = (p[i + k] & 0xC0) == 0x80;
    if (!ok) { /* cut by a length limit (or not UTF-8): the text ends before it */
      p[i] = 0;
      break;
    }
    if (c == 0xC2 && p[i + 1] <= 0x9F) p[i] = p[i + 1] = '?'; /* C1 controls */
    i += (size_t)n;
  }
}

/* Both parsers' messages quote request text (unknown field names, sampler, level and
 * strategy names) cut to a length: cleaned, so that they stay one printable line of UTF-8
 * (a character cut in half would make the JSON error body unencodable). */
int srv_parse_a1111(const srv_info *si, json_t *body, srv_job *j, int img2img, char *err, size_t cap,
                    const char **field) {
  int rc = parse_a1111(si, body, j, img2img, err, cap, field);
  if (rc) srv_clean_text(err);
  return rc;
}

int srv_parse_openai(const srv_info *si, json_t *body, srv_job *j, char *err, size_t cap, const char **field) {
  int rc = parse_openai(si, body, j, err, cap, field);
  if (rc) srv_clean_text(err);
  return rc;
}

/* ---- responses ------------------------------------------------------------------------ */

char *srv_error_body(srv_api api, int status, const char *message, const char *field, const char *code) {
  if (api == SRV_OPENAI) {
    const char *type = status == 401 ? "authentication_error"
                       : status == 429 ? "rate_limit_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return srv_dump(json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type, "param", field,
                              "code", code));
  }
  const char *type = status == 400 ? "BadRequest" : status == 401 ? "Unauthorized" : status == 404 ? "NotFound"
                     : status == 405 ? "MethodNotAllowed" : status == 413 ? "PayloadTooLarge"
                     : status == 429 ? "TooManyRequests" : status == 503 ? "ServiceUnavailable"
                     : status == 504 ? "Timeout" : "ServerError";
  return srv_dump(json_pack("{s:s, s:s, s:s?, s:s?}", "error", code ? code : type, "detail", message, "field", field,
                            "code", code));
}

/* The PNGs of the job's images that were not blocked, as base64 strings. */
static json_t *images_b64(const srv_job *j, int openai) {
  json_t *a = json_array();
  const size_t per = (size_t)j->width * j->height * 3;
  for (int i = 0; a && i < j->n_images; i++) {
    if (j->blocked[i]) continue;
    uint8_t *png = NULL;
    size_t len = 0;
    if (safesd_encode_png(j->rgb + per * i, j->width, j->height, j->infotext[i], &png, &len)) {
      json_decref(a);
      return NULL;
    }
    char *b = srv_base64(png, len);
    free(png);
    if (!b) { json_decref(a); return NULL; }
    json_array_append_new(a, openai ? json_pack("{s:s}", "b64_json", b) : json_string(b));
    free(b);
  }
  return a;
}

static json_t *nsfw_array(const srv_job *j) {
  json_t *a = json_array();
  int any = 0;
  for (int i = 0; i < j->n_images; i++) {
    json_array_append_new(a, j->nsfw[i] < 0 ? json_null() : json_boolean(j->nsfw[i] == 1));
    any |= j->nsfw[i] >= 0;
  }
  if (!any) {
    json_decref(a);
    return json_null();
  }
  return a;
}

char *srv_response(const srv_info *si, srv_job *j, int *status) {
  int n_blocked = 0;
  for (int i = 0; i < j->n_images; i++) n_blocked += j->blocked[i];
  if (n_blocked == j->n_images && j->n_images > 0) {
    *status = 400;
    char msg[160];
    snprintf(msg, sizeof msg, "every generated image (%d) was blocked by the server's output-image check", j->n_images);
    char *e = srv_error_body(j->api, 400, msg, NULL, "content_policy_violation");
    json_t *o = e ? json_loads(e, 0, NULL) : NULL;
    free(e);
    if (!o) return NULL;
    json_object_set(o, "safety", j->report);
    json_object_set_new(o, "nsfw_content_detected", nsfw_array(j));
    return srv_dump(o);
  }
  *status = 200;
  json_t *imgs = j->send_images ? images_b64(j, j->api == SRV_OPENAI) : json_array();
  if (!imgs) return NULL;
  json_t *blocked = json_array();
  for (int i = 0; i < j->n_images; i++)
    if (j->blocked[i]) json_array_append_new(blocked, json_integer(i));
  const json_int_t seed = (json_int_t)j->p.seed;
  if (j->api == SRV_OPENAI)
    return srv_dump(json_pack("{s:I, s:o, s:O, s:o, s:o, s:I}", "created", (json_int_t)time(NULL), "data", imgs, "safety",
                              j->report, "nsfw_content_detected", nsfw_array(j), "blocked", blocked, "seed", seed));
  /* A1111's info: a JSON string with the generation's settings, seeds and infotexts */
  json_t *seeds = json_array(), *prompts = json_array(), *negs = json_array(), *texts = json_array();
  for (int i = 0; i < j->n_images; i++) {
    json_array_append_new(seeds, json_integer(seed + (json_int_t)(i / j->p.batch) * j->p.batch));
    json_array_append_new(prompts, json_string(j->prompt));
    json_array_append_new(negs, json_string(j->negative ? j->negative : ""));
    json_array_append_new(texts, json_string(j->infotext[i]));
  }
  json_t *info = json_pack("{s:s, s:o, s:s, s:o, s:I, s:o, s:i, s:o, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:i, s:i, s:s, "
                           "s:s?, s:i, s:o, s:s, s:o, s:O}",
                           "prompt", j->prompt, "all_prompts", prompts, "negative_prompt", j->negative ? j->negative : "",
                           "all_negative_prompts", negs, "seed", seed, "all_seeds", seeds, "subseed", -1, "all_subseeds",
                           json_array(), "subseed_strength", 0, "width", j->width, "height", j->height, "steps",
                           j->p.steps, "sampler_name", sampler_label(j->p.sampler), "cfg_scale", (double)j->p.cfg_scale,
                           "batch_size", j->p.batch, "n_iter", j->n_iter, "clip_skip", 1, "sd_model_name",
                           si->model_name, "sd_model_hash", NULL, "index_of_first_image", 0, "infotexts", texts,
                           "version", safesd_version(), "nsfw_content_detected", nsfw_array(j), "safety", j->report);
  char *info_s = srv_dump(info);
  if (!info_s) { json_decref(imgs); json_decref(blocked); return NULL; }
  json_t *params = json_deep_copy(j->parameters);
  char *out = srv_dump(json_pack("{s:o, s:o, s:s, s:O, s:o, s:o}", "images", imgs, "parameters", params, "info", info_s,
                                 "safety", j->report, "nsfw_content_detected", nsfw_array(j), "blocked", blocked));
  free(info_s);
  return out;
}
