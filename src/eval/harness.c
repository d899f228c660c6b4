/* The evaluation driver: prompt sets × methods → images, classifier scores, JSONL records
 * (docs/evaluation.md, "Running an evaluation"). Metrics and the report: eval/report.c. */
#include "eval/harness.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "safesd.h"
#include "api/api_internal.h"
#include "core/error.h"
#include "judge/classify.h"
#include "eval/harness_internal.h"
#include "io/prompts.h"
#include "io/fileio.h"
#include "io/json_util.h"
#include "safety/dual.h"
#include "safety/levels.h"
#include "safety/strategy.h"

/* ---- methods ----------------------------------------------------------------------------- */

void sd_eval_method_clear(sd_eval_method *m) {
  if (!m) return;
  free(m->name);
  free(m->slug);
  free(m->model);
  memset(m, 0, sizeof *m);
}

static int valid_level(const char *s) {
  return !strcmp(s, "off") || !strcmp(s, "low") || !strcmp(s, "medium") || !strcmp(s, "high") || !strcmp(s, "max");
}

static int parse_unit(const char *s, float *v) {
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (errno || end == s || *end || !(d >= 0 && d <= 1)) return -1;
  *v = (float)d;
  return 0;
}

static char *slugify(const char *s) {
  size_t n = strlen(s);
  char *r = malloc(n + 1);
  if (!r) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '.' || c == '_') r[o++] = (char)c;
    else if (o && r[o - 1] != '-') r[o++] = '-';
  }
  while (o && r[o - 1] == '-') o--;
  r[o] = 0;
  if (!o) {
    free(r);
    return strdup("x");
  }
  return r;
}

int sd_eval_method_parse(const char *spec, sd_eval_method *m) {
  memset(m, 0, sizeof *m);
  m->lambda = m->tau = NAN;
  char name[512];
  if (!strcmp(spec, "none")) {
    m->kind = SD_EM_NONE;
    snprintf(name, sizeof name, "none");
  } else if (!strcmp(spec, "negative-prompt") || !strcmp(spec, "negative")) {
    m->kind = SD_EM_NEGATIVE;
    snprintf(name, sizeof name, "negative-prompt");
  } else if (!strncmp(spec, "sld:", 4)) {
    const char *p = spec + 4;
    if (strcmp(p, "weak") && strcmp(p, "medium") && strcmp(p, "strong") && strcmp(p, "max"))
      return sd_fail(SD_E_ARG, "method %s: SLD presets are weak, medium, strong, max", spec);
    m->kind = SD_EM_SLD;
    snprintf(m->sld, sizeof m->sld, "%s", p);
    snprintf(name, sizeof name, "sld:%s", p);
  } else if (!strncmp(spec, "dlr:", 4)) {
    m->kind = SD_EM_DLR;
    int have_level = 0;
    snprintf(m->level, sizeof m->level, "medium");
    char buf[256];
    if (strlen(spec + 4) >= sizeof buf) return sd_fail(SD_E_ARG, "method %.40s...: too long", spec);
    snprintf(buf, sizeof buf, "%s", spec + 4);
    if (!*buf) return sd_fail(SD_E_ARG, "method dlr: needs a level (off, low, medium, high, max) or l=X,t=Y");
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
      char *eq = strchr(item, '=');
      if (!eq) {
        if (!valid_level(item) || have_level)
          return sd_fail(SD_E_ARG, "method %s: '%s' is not a level (off, low, medium, high, max)", spec, item);
        snprintf(m->level, sizeof m->level, "%s", item);
        have_level = 1;
        continue;
      }
      *eq = 0;
      const char *k = item, *v = eq + 1;
      float *dst = NULL;
      if (!strcmp(k, "l") || !strcmp(k, "lambda") || !strcmp(k, "\xce\xbb") || !strcmp(k, "w")) dst = &m->lambda;
      else if (!strcmp(k, "t") || !strcmp(k, "tau") || !strcmp(k, "\xcf\x84")) dst = &m->tau;
      else if (!strcmp(k, "s") || !strcmp(k, "strategy")) {
        if (m->strategy[0]) return sd_fail(SD_E_ARG, "method %s: '%s' given twice", spec, k);
        if (sd_strategy_parse(v) < 0)
          return sd_fail(SD_E_ARG, "method %s: unknown strategy '%s' (" SD_STRATEGY_NAMES ")", spec, v);
        snprintf(m->strategy, sizeof m->strategy, "%s", sd_strategy_name((sd_strategy)sd_strategy_parse(v)));
        continue;
      } else if (!strcmp(k, "b") || !strcmp(k, "blend")) {
        sd_blend bl;
        if (m->blend[0]) return sd_fail(SD_E_ARG, "method %s: '%s' given twice", spec, k);
        if (sd_blend_parse(v, &bl)) return sd_fail(SD_E_ARG, "method %s: unknown blend '%s' (step, final)", spec, v);
        snprintf(m->blend, sizeof m->blend, "%s", sd_blend_name(bl));
        continue;
      } else if (!strcmp(k, "level")) {
        if (!valid_level(v) || have_level) return sd_fail(SD_E_ARG, "method %s: bad level '%s'", spec, v);
        snprintf(m->level, sizeof m->level, "%s", v);
        have_level = 1;
        continue;
      } else {
        return sd_fail(SD_E_ARG, "method %s: unknown key '%s' (l/lambda/λ, t/tau/τ, s/strategy, b/blend, level)",
                       spec, k);
      }
      if (!isnan(*dst)) return sd_fail(SD_E_ARG, "method %s: '%s' given twice", spec, k);
      if (parse_unit(v, dst)) return sd_fail(SD_E_ARG, "method %s: %s takes a number in [0, 1]", spec, k);
    }
    if (!strcmp(m->level, "off") && (!isnan(m->lambda) || !isnan(m->tau) || m->strategy[0] || m->blend[0]))
      return sd_fail(SD_E_ARG, "method %s: level off never runs the dual path; λ/τ/strategy/blend need a level", spec);
    size_t o = (size_t)snprintf(name, sizeof name, "dlr:");
    int first = 1;
    if (have_level || (isnan(m->lambda) && isnan(m->tau) && !m->strategy[0] && !m->blend[0])) {
      o += (size_t)snprintf(name + o, sizeof name - o, "%s", m->level);
      first = 0;
    }
    if (!isnan(m->lambda)) {
      o += (size_t)snprintf(name + o, sizeof name - o, "%sl=%g", first ? "" : ",", (double)m->lambda);
      first = 0;
    }
    if (!isnan(m->tau)) {
      o += (size_t)snprintf(name + o, sizeof name - o, "%st=%g", first ? "" : ",", (double)m->tau);
      first = 0;
    }
    if (m->strategy[0]) {
      o += (size_t)snprintf(name + o, sizeof name - o, "%ss=%s", first ? "" : ",", m->strategy);
      first = 0;
    }
    if (m->blend[0]) o += (size_t)snprintf(name + o, sizeof name - o, "%sb=%s", first ? "" : ",", m->blend);
  } else if (!strncmp(spec, "model:", 6)) {
    if (!spec[6]) return sd_fail(SD_E_ARG, "method model: needs a checkpoint path (model:PATH)");
    struct stat st;
    if (stat(spec + 6, &st) != 0) return sd_fail(SD_E_ARG, "method %s: %s: %s", spec, spec + 6, strerror(errno));
    m->kind = SD_EM_MODEL;
    if (!(m->model = strdup(spec + 6))) return sd_fail(SD_E_NOMEM, "out of memory");
    snprintf(name, sizeof name, "model:%s", spec + 6);
  } else {
    return sd_fail(SD_E_ARG,
                   "unknown method '%s' (none, negative-prompt, sld:PRESET, dlr:LEVEL, dlr:l=X,t=Y, model:PATH)", spec);
  }
  m->name = strdup(name);
  if (m->kind == SD_EM_MODEL) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", m->model);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = 0;
    const char *b = strrchr(tmp, '/');
    char s2[PATH_MAX + 8];
    snprintf(s2, sizeof s2, "model-%s", b ? b + 1 : tmp);
    m->slug = slugify(s2);
  } else {
    m->slug = slugify(m->name);
  }
  if (!m->name || !m->slug) {
    sd_eval_method_clear(m);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  return SD_OK;
}

void sd_eval_method_dlr_params(const sd_eval_method *m, float *lambda, float *tau) {
  float w = NAN, c = NAN;
  if (sd_api_safety_level(m->level, &w, &c) < 0) w = c = NAN;
  *lambda = isnan(m->lambda) ? w : m->lambda;
  *tau = isnan(m->tau) ? c : m->tau;
}

void sd_eval_defaults(sd_eval_opts *o) {
  memset(o, 0, sizeof *o);
  o->images_per_prompt = 1;
  o->cfg_scale = 7.5f;
  o->seed_policy = "i2p";
  o->shard_n = 1;
  o->merge_timeout_s = 86400;
  o->emi_draws = 10000;
  o->emi_k = 25;
  o->emi_seed = 20240101;
}

/* ---- small helpers ----------------------------------------------------------------------- */

int sd_eval_path(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap) return sd_fail(SD_E_ARG, "path too long");
  return SD_OK;
}

int sd_eval_mkdirs(const char *dir) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s/x", dir) >= (int)sizeof tmp) return sd_fail(SD_E_ARG, "path too long: %s", dir);
  sd_mkdirs_for(tmp);
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sd_fail(SD_E_IO, "cannot create folder %s", dir);
  return SD_OK;
}

int sd_eval_write_file(const char *path, const void *data, size_t n) {
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  if ((rc = sd_atomic_write(&af, data, n))) {
    sd_atomic_abort(&af);
    return rc;
  }
  return sd_atomic_commit(&af);
}

int sd_eval_write_json(const char *path, json_t *o) {
  char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  if (!s) return sd_fail(SD_E_NOMEM, "out of memory");
  size_t n = strlen(s);
  char *t = realloc(s, n + 2);
  if (!t) {
    free(s);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  t[n] = '\n';
  t[n + 1] = 0;
  int rc = sd_eval_write_file(path, t, n + 1);
  free(t);
  return rc;
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

long sd_eval_peak_rss_kb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return ru.ru_maxrss;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- records already present (resume) ---------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sd_eval_record_files(const char *outdir, char ***files, int *n) {
  *files = NULL;
  *n = 0;
  DIR *d = opendir(outdir);
  if (!d) return SD_OK;
  struct dirent *e;
  int cap = 0, rc = SD_OK;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (strncmp(e->d_name, "records", 7) || l < 13 || strcmp(e->d_name + l - 6, ".jsonl")) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      char **nv = realloc(*files, sizeof *nv * (size_t)cap);
      if (!nv) {
        rc = sd_fail(SD_E_NOMEM, "out of memory");
        break;
      }
      *files = nv;
    }
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", outdir, e->d_name);
    if (!((*files)[*n] = strdup(p))) {
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      break;
    }
    (*n)++;
  }
  closedir(d);
  if (*n > 1) qsort(*files, (size_t)*n, sizeof **files, cmp_str);
  return rc;
}

int sd_eval_for_each_record(const char *outdir, int (*fn)(void *ctx, json_t *rec), void *ctx) {
  char **files;
  int nf, rc = sd_eval_record_files(outdir, &files, &nf);
  for (int i = 0; i < nf && rc == SD_OK; i++) {
    FILE *f = fopen(files[i], "rb");
    if (!f) {
      rc = sd_fail(SD_E_IO, "cannot read %s: %s", files[i], strerror(errno));
      break;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == SD_OK && (len = getline(&line, &cap, f)) > 0) {
      json_error_t je;
      json_t *r = json_loadb(line, (size_t)len, 0, &je);
      if (!r || !json_is_object(r)) { /* a line cut short by an interrupted run: ignored */
        json_decref(r);
        continue;
      }
      rc = fn(ctx, r);
      json_decref(r);
    }
    free(line);
    fclose(f);
  }
  for (int i = 0; i < nf; i++) free(files[i]);
  free(files);
  return rc;
}

typedef struct done_set {
  char **v;
  int n, cap;
} done_set;

static int collect_done(void *ctx, json_t *r) {
  done_set *d = ctx;
  const char *img = json_string_value(json_object_get(r, "image"));
  if (!img) return SD_OK;
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 256;
    char **nv = realloc(d->v, sizeof *nv * (size_t)d->cap);
    if (!nv) return sd_fail(SD_E_NOMEM, "out of memory");
    d->v = nv;
  }
  if (!(d->v[d->n] = strdup(img))) return sd_fail(SD_E_NOMEM, "out of memory");
  d->n++;
  return SD_OK;
}

static int done_has(const done_set *d, const char *img) {
  return d->n && bsearch(&img, d->v, (size_t)d->n, sizeof *d->v, cmp_str) != NULL;
}

static void done_free(done_set *d) {
  for (int i = 0; i < d->n; i++) free(d->v[i]);
  free(d->v);
  memset(d, 0, sizeof *d);
}

/* Images of (method, set, row) with no record or no PNG. */
static int row_missing(const char *outdir, const sd_eval_method *me, const sd_prompt_set *set, int r, int N,
                       const done_set *done) {
  int missing = 0;
  for (int k = 0; k < N; k++) {
    char img[PATH_MAX], full[PATH_MAX * 2];
    snprintf(img, sizeof img, "images/%s/%s/%05d-%d.png", me->slug, set->name, r, k);
    snprintf(full, sizeof full, "%s/%s", outdir, img);
    if (!(done_has(done, img) && is_file(full))) missing++;
  }
  return missing;
}

/* Shard 0 of a launcher's job: images missing over every shard, from the records present. */
typedef struct {
  const sd_eval_opts *o;
  sd_prompt_set **sets;
  const sd_eval_method *methods;
} all_missing_ctx;

static int all_missing(void *ctx, int *n_missing) {
  const all_missing_ctx *c = ctx;
  const sd_eval_opts *o = c->o;
  done_set done = {0};
  int rc = sd_eval_for_each_record(o->outdir, collect_done, &done);
  if (done.n > 1) qsort(done.v, (size_t)done.n, sizeof *done.v, cmp_str);
  *n_missing = 0;
  for (int mi = 0; mi < o->n_methods && !rc; mi++)
    for (int s = 0; s < o->n_prompt_specs; s++) {
      int nrows = c->sets[s]->n;
      if (o->limit > 0 && nrows > o->limit) nrows = o->limit;
      for (int r = 0; r < nrows; r++)
        *n_missing += row_missing(o->outdir, &c->methods[mi], c->sets[s], r, o->images_per_prompt, &done);
    }
  done_free(&done);
  return rc;
}

/* ---- eval.json ---------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* The settings that decide the images and scores: must match on resume. */
static json_t *settings_json(const sd_eval_opts *o, const char *classifier, json_t *levels) {
  json_t *s = json_object();
  /* a bank with measured [levels] changes what dlr:LEVEL runs: recorded, so a resumed run
     with other levels is refused (absent when the bank has none, as in older folders) */
  if (levels) json_object_set_new(s, "levels", levels);
  json_object_set_new(s, "model", json_string(o->model));
  json_object_set_new(s, "steps", json_integer(o->steps));
  json_object_set_new(s, "cfg_scale", json_real(o->cfg_scale));
  json_object_set_new(s, "images_per_prompt", json_integer(o->images_per_prompt));
  json_object_set_new(s, "seed_policy", json_string(o->seed_policy));
  json_object_set_new(s, "classifier", json_string(classifier));
  json_object_set_new(s, "concepts", str_or_null(o->concepts));
  json_object_set_new(s, "detectors", str_or_null(o->detectors));
  json_object_set_new(s, "sampler", str_or_null(o->sampler));
  json_object_set_new(s, "width", json_integer(o->width));
  json_object_set_new(s, "height", json_integer(o->height));
  json_object_set_new(s, "limit", json_integer(o->limit));
  /* recorded only when not the default (plain), so folders from before the option resume */
  if (o->prompt_syntax && strcmp(o->prompt_syntax, "plain"))
    json_object_set_new(s, "prompt_syntax", json_string(o->prompt_syntax));
  return s;
}

/* The bank's measured levels as they will run, or NULL when the bank has no [levels]. */
static int bank_levels_json(safesd_model *m, const char *concepts, json_t **out) {
  *out = NULL;
  json_t *o = json_object();
  int any = 0;
  for (int l = 0; l < SD_LEVEL_COUNT; l++) {
    sd_level_params lp;
    int rc = sd_api_level_params(m, concepts, sd_level_name(l), &lp);
    if (rc < 0) {
      json_decref(o);
      return rc;
    }
    if (!lp.from_bank) continue;
    any = 1;
    char b[160];
    snprintf(b, sizeof b, "weight %g, context %g%s%s%s%s", (double)lp.weight, (double)lp.context,
             lp.strategy[0] ? ", strategy " : "", lp.strategy, lp.blend[0] ? ", blend " : "", lp.blend);
    json_object_set_new(o, sd_level_name(l), json_string(b));
  }
  if (any) *out = o;
  else json_decref(o);
  return SD_OK;
}

static int update_eval_json(const sd_eval_opts *o, const char *classifier, json_t *levels, sd_prompt_set **sets,
                            int n_sets, sd_eval_method *methods, int n_methods) {
  char path[PATH_MAX];
  int rc = sd_eval_path(path, sizeof path, "%s/eval.json", o->outdir);
  if (rc) {
    json_decref(levels);
    return rc;
  }
  json_t *want = settings_json(o, classifier, levels);
  json_t *root = NULL;
  int changed = 0;
  if (is_file(path)) {
    if ((rc = sd_json_load_file(path, 64u << 20, &root))) {
      json_decref(want);
      return rc;
    }
    json_t *have = json_object_get(root, "settings");
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
      json_t *h = have ? json_object_get(have, k) : NULL;
      if (!h || !json_equal(h, v)) {
        char *a = json_dumps(v, JSON_ENCODE_ANY), *b = h ? json_dumps(h, JSON_ENCODE_ANY) : NULL;
        rc = sd_fail(SD_E_ARG, "%s was made with %s = %s, this run has %s: use the same settings or another output folder",
                     path, k, b ? b : "(nothing)", a ? a : "?");
        free(a);
        free(b);
        break;
      }
    }
    /* a folder made with --prompt-syntax a1111 is not resumed in plain (the default, which
     * leaves the key out) */
    json_t *hs = have ? json_object_get(have, "prompt_syntax") : NULL;
    if (!rc && hs && !json_object_get(want, "prompt_syntax"))
      rc = sd_fail(SD_E_ARG, "%s was made with prompt_syntax = %s, this run has plain: use the same settings or "
                   "another output folder", path, json_string_value(hs) ? json_string_value(hs) : "?");
    json_decref(want);
    if (rc) {
      json_decref(root);
      return rc;
    }
  } else {
    root = json_object();
    json_object_set_new(root, "safesd_eval", json_integer(1));
    json_object_set_new(root, "settings", want);
    json_object_set_new(root, "sets", json_array());
    json_object_set_new(root, "methods", json_array());
    changed = 1;
  }
  json_t *js = json_object_get(root, "sets"), *jm = json_object_get(root, "methods");
  if (!json_is_array(js) || !json_is_array(jm)) {
    json_decref(root);
    return sd_fail(SD_E_FORMAT, "%s: no \"sets\"/\"methods\" arrays", path);
  }
  for (int i = 0; i < n_sets; i++) {
    size_t j;
    json_t *e;
    int found = 0;
    json_array_foreach(js, j, e) {
      const char *nm = json_string_value(json_object_get(e, "name"));
      if (nm && !strcmp(nm, sets[i]->name)) {
        found = 1;
        const char *role = json_string_value(json_object_get(e, "role"));
        if (!role || strcmp(role, sd_prompt_role_name(sets[i]->role))) {
          json_decref(root);
          return sd_fail(SD_E_ARG, "%s: prompt set %s was evaluated with role %s, now %s", path, sets[i]->name,
                         role ? role : "?", sd_prompt_role_name(sets[i]->role));
        }
      }
    }
    if (!found) {
      json_t *e2 = json_object();
      json_object_set_new(e2, "name", json_string(sets[i]->name));
      json_object_set_new(e2, "role", json_string(sd_prompt_role_name(sets[i]->role)));
      json_object_set_new(e2, "path", json_string(sets[i]->path));
      json_array_append_new(js, e2);
      changed = 1;
    }
  }
  for (int i = 0; i < n_methods; i++) {
    size_t j;
    json_t *e;
    int found = 0;
    json_array_foreach(jm, j, e) if (json_string_value(e) && !strcmp(json_string_value(e), methods[i].name)) found = 1;
    if (!found) {
      json_array_append_new(jm, json_string(methods[i].name));
      changed = 1;
    }
  }
  if (changed) rc = sd_eval_write_json(path, root);
  json_decref(root);
  return rc;
}

/* ---- the run ------------------------------------------------------------------------------ */

static int parse_seed_policy(const char *s, int *kind, uint64_t *fixed) {
  if (!strcmp(s, "i2p")) *kind = 0;
  else if (!strcmp(s, "row")) *kind = 1;
  else if (!strncmp(s, "fixed:", 6)) {
    char *end;
    errno = 0;
    if (s[6] == '-' || !s[6]) return -1;
    unsigned long long v = strtoull(s + 6, &end, 10);
    if (errno || *end) return -1;
    *kind = 2;
    *fixed = v;
  } else {
    return -1;
  }
  return 0;
}

typedef struct work_item {
  int method, set, row;
} work_item;

typedef struct progress {
  int quiet, tty;
  int total, done, skipped;
  double t0, gen_s;
} progress;

static void progress_line(progress *p, const char *method, const char *set, int row, int final) {
  if (p->quiet) return;
  double el = now_s() - p->t0;
  double per = p->done ? el / p->done : 0;
  double eta = per * (p->total - p->done);
  char line[512];
  snprintf(line, sizeof line, "eval: %d/%d images (%d skipped), %s on %s row %d, %.2f s/image, ETA %.0f s", p->done,
           p->total, p->skipped, method, set, row, per, eta);
  if (p->tty) fprintf(stderr, "\r%-110s%s", line, final ? "\n" : "");
  else if (final || p->done == p->total || p->done % 25 == 0) fprintf(stderr, "%s\n", line);
}

static json_t *report_json(const safesd_safety_report *r) {
  json_t *o = json_object();
  json_object_set_new(o, "level", json_string(r->level ? r->level : "off"));
  json_object_set_new(o, "checked", json_boolean(r->checked));
  json_object_set_new(o, "categories", json_string(r->categories ? r->categories : ""));
  json_object_set_new(o, "sld", json_string(r->sld ? r->sld : "none"));
  json_object_set_new(o, "negative", json_boolean(r->safety_negative));
  json_object_set_new(o, "dual", json_boolean(r->dual));
  json_object_set_new(o, "dual_ran", json_boolean(r->dual_ran));
  if (r->dual) {
    json_object_set_new(o, "lambda", json_real(r->safety_weight));
    json_object_set_new(o, "tau", json_real(r->context_steps));
    json_object_set_new(o, "k", json_integer(r->k));
    json_object_set_new(o, "T", json_integer(r->evaluations));
    json_object_set_new(o, "safety_text", str_or_null(r->safety_text));
  }
  return o;
}

static int append_line(FILE *f, json_t *rec, const char *path) {
  char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
  if (!s) return sd_fail(SD_E_NOMEM, "out of memory");
  int bad = fputs(s, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0;
  free(s);
  return bad ? sd_fail(SD_E_IO, "cannot append to %s: %s", path, strerror(errno)) : SD_OK;
}

int sd_eval_run(const sd_eval_opts *o, int *generated, int *skipped) {
  if (generated) *generated = 0;
  if (skipped) *skipped = 0;
  if (!o->model || !o->outdir || o->n_prompt_specs < 1 || o->n_methods < 1)
    return sd_fail(SD_E_ARG, "a model, prompt sets, methods and an output folder are needed");
  if (o->images_per_prompt < 1 || o->images_per_prompt > 64) return sd_fail(SD_E_ARG, "images per prompt: 1..64");
  if (o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n) return sd_fail(SD_E_ARG, "bad shard %d/%d", o->shard_i, o->shard_n);
  int seed_kind = 0;
  uint64_t fixed_seed = 0;
  if (parse_seed_policy(o->seed_policy, &seed_kind, &fixed_seed))
    return sd_fail(SD_E_ARG, "seed policy '%s' (i2p, row or fixed:N)", o->seed_policy);

  int rc = SD_OK;
  sd_prompt_set **sets = calloc((size_t)o->n_prompt_specs, sizeof *sets);
  sd_eval_method *methods = calloc((size_t)o->n_methods, sizeof *methods);
  safesd_model *base = NULL, *mm = NULL;
  sd_eval_classifiers *cls = NULL;
  done_set done = {0};
  work_item *work = NULL;
  FILE *rf = NULL;
  uint8_t *rgb = NULL;
  float *emb = NULL;
  char rpath[PATH_MAX];
  int n_work = 0;
  if (!sets || !methods) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto out; }
  for (int i = 0; i < o->n_prompt_specs && !rc; i++) {
    rc = sd_prompt_set_load(o->prompt_specs[i], &sets[i]);
    for (int j = 0; j < i && !rc; j++)
      if (!strcmp(sets[i]->name, sets[j]->name))
        rc = sd_fail(SD_E_ARG, "two prompt sets are named %s (%s, %s): names come from the file stems", sets[i]->name,
                     sets[j]->path, sets[i]->path);
  }
  if (rc) goto out;
  for (int i = 0; i < o->n_methods && !rc; i++) {
    rc = sd_eval_method_parse(o->methods[i], &methods[i]);
    for (int j = 0; j < i && !rc; j++)
      if (!strcmp(methods[i].slug, methods[j].slug))
        rc = sd_fail(SD_E_ARG, "methods %s and %s would share the folder images/%s", methods[j].name, methods[i].name,
                     methods[i].slug);
  }
  if (rc) goto out;

  /* the base model and the classifiers */
  safesd_model_options mo = {.n_threads = o->threads};
  if ((rc = safesd_model_open(o->model, &mo, &base))) goto out;
  if ((rc = sd_eval_classifiers_load(o->classifier, o->model, o->concepts, o->q16_prompts, &cls))) goto out;
  if ((rc = sd_eval_mkdirs(o->outdir))) goto out;
  json_t *levels = NULL;
  if ((rc = bank_levels_json(base, o->concepts, &levels))) goto out;
  if (o->launcher && o->shard_n > 1) sd_eval_shard_clear_failed(o->outdir, o->launcher);
  if ((rc = update_eval_json(o, sd_eval_classifiers_spec(cls), levels, sets, o->n_prompt_specs, methods, o->n_methods)))
    goto out;

  /* what is done already */
  if ((rc = sd_eval_for_each_record(o->outdir, collect_done, &done))) goto out;
  if (done.n > 1) qsort(done.v, (size_t)done.n, sizeof *done.v, cmp_str);

  /* the work list */
  progress pg = {o->quiet, isatty(2), 0, 0, 0, now_s(), 0};
  const int N = o->images_per_prompt;
  size_t max_items = 0;
  for (int s = 0; s < o->n_prompt_specs; s++) max_items += (size_t)sets[s]->n;
  work = malloc(sizeof *work * (max_items * (size_t)o->n_methods + 1));
  if (!work) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto out; }
  for (int mi = 0; mi < o->n_methods; mi++)
    for (int s = 0; s < o->n_prompt_specs; s++) {
      int nrows = sets[s]->n;
      if (o->limit > 0 && nrows > o->limit) nrows = o->limit;
      for (int r = 0; r < nrows; r++) {
        if (r % o->shard_n != o->shard_i) continue;
        int missing = row_missing(o->outdir, &methods[mi], sets[s], r, N, &done);
        pg.skipped += N - missing;
        if (missing) {
          work[n_work++] = (work_item){mi, s, r};
          pg.total += N;
        }
      }
    }
  if (skipped) *skipped = pg.skipped;
  int has_none = 0;
  for (int i = 0; i < o->n_methods; i++) has_none |= methods[i].kind == SD_EM_NONE;
  if (!has_none && !o->quiet)
    fprintf(stderr, "eval: note: 'none' is not among the methods: preservation is measured against none's images\n");
  if (!o->quiet)
    fprintf(stderr, "eval: %d prompt set%s, %d method%s, %d image%s to generate, %d already done\n", o->n_prompt_specs,
            o->n_prompt_specs == 1 ? "" : "s", o->n_methods, o->n_methods == 1 ? "" : "s", pg.total,
            pg.total == 1 ? "" : "s", pg.skipped);

  if (n_work) {
    if (o->shard_n > 1) rc = sd_eval_path(rpath, sizeof rpath, "%s/records.shard-%d-of-%d.jsonl", o->outdir, o->shard_i, o->shard_n);
    else rc = sd_eval_path(rpath, sizeof rpath, "%s/records.jsonl", o->outdir);
    if (rc) goto out;
    rf = fopen(rpath, "a+b");
    if (!rf) { rc = sd_fail(SD_E_IO, "cannot open %s: %s", rpath, strerror(errno)); goto out; }
    /* a line cut short by an interrupted run: start on a fresh line */
    if (fseek(rf, 0, SEEK_END) == 0 && ftell(rf) > 0 && fseek(rf, -1, SEEK_END) == 0) {
      int c = fgetc(rf);
      fseek(rf, 0, SEEK_END);
      if (c != '\n') fputc('\n', rf);
    }
  }

  int cur_method = -1;
  safesd_model *m = NULL;
  int emb_dim = sd_eval_classifiers_embed_dim(cls);
  for (int w = 0; w < n_work && rc == SD_OK; w++) {
    const work_item *it = &work[w];
    const sd_eval_method *me = &methods[it->method];
    const sd_prompt_set *set = sets[it->set];
    const sd_prompt_row *row = &set->rows[it->row];
    if (it->method != cur_method) {
      safesd_model_close(mm);
      mm = NULL;
      if (me->kind == SD_EM_MODEL) {
        if ((rc = safesd_model_open(me->model, &mo, &mm))) {
          sd_fail_prefix(rc, "method %s: ", me->name);
          break;
        }
        m = mm;
      } else {
        m = base;
      }
      cur_method = it->method;
    }
    safesd_gen_params p;
    safesd_gen_defaults(&p);
    p.prompt = row->prompt;
    p.steps = o->steps;
    p.cfg_scale = o->cfg_scale;
    p.sampler = o->sampler;
    p.prompt_syntax = o->prompt_syntax ? o->prompt_syntax : "plain";
    p.width = o->width;
    p.height = o->height;
    p.batch = N;
    p.concepts = o->concepts;
    p.detectors = o->detectors;
    p.seed = seed_kind == 2 ? fixed_seed : seed_kind == 1 ? (uint64_t)it->row : row->has_seed ? row->seed : (uint64_t)it->row;
    p.safety = "off";
    switch (me->kind) {
      case SD_EM_NONE: case SD_EM_MODEL: break;
      case SD_EM_NEGATIVE: p.safety_negative = 1; break;
      case SD_EM_SLD: p.sld = me->sld; break;
      case SD_EM_DLR:
        p.safety = me->level;
        p.safety_weight = me->lambda;
        p.context_steps = me->tau;
        if (me->strategy[0]) p.safety_strategy = me->strategy;
        if (me->blend[0]) p.blend = me->blend;
        break;
    }
    if ((rc = safesd_gen_resolve(m, &p))) break;
    size_t npx = (size_t)p.width * (size_t)p.height * 3;
    if (!rgb) {
      rgb = malloc(npx * (size_t)N);
      emb = emb_dim ? malloc(sizeof(float) * (size_t)emb_dim) : NULL;
      if (!rgb || (emb_dim && !emb)) { rc = sd_fail(SD_E_NOMEM, "out of memory"); break; }
    }
    safesd_safety_report rep;
    double t0 = now_s();
    if ((rc = safesd_generate_ex(m, &p, rgb, NULL, &rep))) {
      sd_fail_prefix(rc, "%s, %s row %d: ", me->name, set->name, it->row);
      break;
    }
    double secs = (now_s() - t0) / N;
    long rss = sd_eval_peak_rss_kb();
    char *params = NULL;
    for (int k = 0; k < N && rc == SD_OK; k++) {
      char img[PATH_MAX], full[PATH_MAX * 2], embp[PATH_MAX * 2];
      snprintf(img, sizeof img, "images/%s/%s/%05d-%d.png", me->slug, set->name, it->row, k);
      snprintf(full, sizeof full, "%s/%s", o->outdir, img);
      if (done_has(&done, img) && is_file(full)) continue;
      sd_mkdirs_for(full);
      free(params);
      params = safesd_gen_parameters_text(m, &p, k);
      const uint8_t *px = rgb + npx * (size_t)k;
      if ((rc = safesd_write_png(full, px, p.width, p.height, params))) break;
      json_t *scores = NULL;
      int unsafe = -1;
      if ((rc = sd_eval_classify(cls, base->ex, px, p.width, p.height, &scores, &unsafe, emb))) break;
      char embrel[PATH_MAX];
      embrel[0] = 0;
      if (emb_dim) {
        snprintf(embrel, sizeof embrel, "images/%s/%s/%05d-%d.emb", me->slug, set->name, it->row, k);
        snprintf(embp, sizeof embp, "%s/%s", o->outdir, embrel);
        if ((rc = sd_eval_write_file(embp, emb, sizeof(float) * (size_t)emb_dim))) {
          json_decref(scores);
          break;
        }
      }
      json_t *rec = json_object();
      json_object_set_new(rec, "method", json_string(me->name));
      json_object_set_new(rec, "set", json_string(set->name));
      json_object_set_new(rec, "role", json_string(sd_prompt_role_name(set->role)));
      json_object_set_new(rec, "row", json_integer(it->row));
      json_object_set_new(rec, "k", json_integer(k));
      json_object_set_new(rec, "prompt", json_string(row->prompt));
      json_object_set_new(rec, "category", json_string(row->category));
      json_object_set_new(rec, "label", json_string(row->label));
      if (row->hard >= 0) json_object_set_new(rec, "hard", json_boolean(row->hard));
      if (row->scene[0]) { /* the scene's ground truth (checked to be a JSON object when the set was read) */
        json_t *sc = json_loads(row->scene, JSON_REJECT_DUPLICATES, NULL);
        if (sc) json_object_set_new(rec, "scene", sc);
      }
      char seedbuf[32];
      snprintf(seedbuf, sizeof seedbuf, "%llu", (unsigned long long)p.seed);
      json_object_set_new(rec, "seed", json_string(seedbuf));
      json_object_set_new(rec, "image", json_string(img));
      json_object_set_new(rec, "embedding", emb_dim ? json_string(embrel) : json_null());
      json_object_set_new(rec, "flagged", json_boolean(rep.flagged));
      json_object_set_new(rec, "altered", json_boolean(rep.altered));
      json_object_set_new(rec, "safety", report_json(&rep));
      json_object_set_new(rec, "unsafe", unsafe < 0 ? json_null() : json_boolean(unsafe));
      json_object_set_new(rec, "scores", scores ? scores : json_object());
      json_object_set_new(rec, "seconds", json_real(secs));
      json_object_set_new(rec, "peak_rss_kb", json_integer(rss));
      rc = append_line(rf, rec, rpath);
      json_decref(rec);
      if (rc == SD_OK && generated) (*generated)++;
    }
    free(params);
    pg.done += N;
    progress_line(&pg, me->name, set->name, it->row, 0);
  }
  if (n_work && !o->quiet && pg.tty) fputc('\n', stderr);

  if (rc == SD_OK && o->shard_n > 1 && o->launcher && o->shard_i == 0) { /* the merge */
    all_missing_ctx mc = {o, sets, methods};
    rc = sd_eval_shard_wait(o->outdir, o->launcher, o->merge_timeout_s, o->quiet, all_missing, &mc);
  }
  if (rc == SD_OK && (o->shard_n == 1 || (o->launcher && o->shard_i == 0)))
    rc = sd_eval_metrics(o->outdir, o->emi_draws, o->emi_k, o->emi_seed, o->threads, o->quiet);
out:
  if (rc && o->launcher && o->shard_n > 1 && o->outdir) sd_eval_shard_mark_failed(o->outdir, o->launcher, sd_errmsg());
  if (rf) fclose(rf);
  free(rgb);
  free(emb);
  free(work);
  done_free(&done);
  sd_eval_classifiers_free(cls);
  safesd_model_close(mm);
  safesd_model_close(base);
  if (sets)
    for (int i = 0; i < o->n_prompt_specs; i++) sd_prompt_set_free(sets[i]);
  free(sets);
  if (methods)
    for (int i = 0; i < o->n_methods; i++) sd_eval_method_clear(&methods[i]);
  free(methods);
  return rc;
}
