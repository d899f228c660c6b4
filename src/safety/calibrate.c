/* Threshold calibration and the calibration file (rules in calibrate.h). */
#include "safety/calibrate.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "core/error.h"
#include "io/fileio.h"

#define CALIB_MAX_LINE 1024
#define CALIB_MAX_FILE (1u << 20)

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

int sd_calibrate(const float *unsafe, int n_unsafe, const float *benign, int n_benign, double target_fpr,
                 sd_calibration *out) {
  if (!out || !benign || (n_unsafe > 0 && !unsafe)) return sd_fail(SD_E_ARG, "sd_calibrate: NULL argument");
  if (n_benign < 1) return sd_fail(SD_E_ARG, "sd_calibrate: no benign scores (need at least one)");
  if (n_unsafe < 0) return sd_fail(SD_E_ARG, "sd_calibrate: negative unsafe count");
  if (!(target_fpr >= 0 && target_fpr <= 1))
    return sd_fail(SD_E_ARG, "sd_calibrate: target false-positive rate %g is not in [0, 1]", target_fpr);
  for (int i = 0; i < n_benign; i++)
    if (!isfinite(benign[i])) return sd_fail(SD_E_ARG, "sd_calibrate: benign score %d is not finite", i);
  for (int i = 0; i < n_unsafe; i++)
    if (!isfinite(unsafe[i])) return sd_fail(SD_E_ARG, "sd_calibrate: unsafe score %d is not finite", i);
  float *b = malloc((size_t)n_benign * sizeof *b);
  if (!b) return sd_fail(SD_E_NOMEM, "sd_calibrate: out of memory");
  memcpy(b, benign, (size_t)n_benign * sizeof *b);
  qsort(b, (size_t)n_benign, sizeof *b, cmp_desc);
  /* k = floor(r * n), robust to r*n landing a hair under an integer (0.05 * 100). */
  double kr = target_fpr * n_benign;
  long k = (long)floor(kr + 1e-9 * (kr > 1 ? kr : 1));
  float t;
  if (k >= n_benign) {
    t = b[n_benign - 1];
    for (int i = 0; i < n_unsafe; i++)
      if (unsafe[i] < t) t = unsafe[i];
  } else {
    t = nextafterf(b[k], INFINITY);
  }
  free(b);
  *out = (sd_calibration){0};
  out->threshold = t;
  out->target_fpr = target_fpr;
  out->n_unsafe = n_unsafe;
  out->n_benign = n_benign;
  for (int i = 0; i < n_benign; i++) out->n_fp += benign[i] >= t;
  for (int i = 0; i < n_unsafe; i++) out->n_tp += unsafe[i] >= t;
  out->fpr = (double)out->n_fp / n_benign;
  out->recall = n_unsafe ? (double)out->n_tp / n_unsafe : 0.0;
  return SD_OK;
}

int sd_detector_scores(sd_detector *d, const void *encoder, const char *const *prompts, int n, float *scores) {
  if (!d || (n > 0 && (!prompts || !scores)) || n < 0) return sd_fail(SD_E_ARG, "sd_detector_scores: bad argument");
  int was = d->enabled;
  d->enabled = 1;
  int rc = SD_OK;
  for (int i = 0; i < n && !rc; i++) {
    sd_detection det;
    rc = sd_detector_run(d, prompts[i], encoder, &det);
    if (rc) {
      sd_fail_prefix(rc, "scoring prompt %d: ", i);
      break;
    }
    scores[i] = det.score;
    sd_detection_free(&det);
  }
  d->enabled = was;
  return rc;
}

/* ------------------------------------------------------------------------------------- */
/* the calibration file                                                                    */

sd_calib_entry sd_calib_entry_make(const char *detector, const sd_calibration *c, uint64_t bank, uint64_t model) {
  sd_calib_entry e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "%s", detector ? detector : "");
  if (c) {
    e.threshold = c->threshold;
    e.has_meta = 1;
    e.target_fpr = c->target_fpr;
    e.fpr = c->fpr;
    e.recall = c->recall;
    e.n_unsafe = c->n_unsafe;
    e.n_benign = c->n_benign;
  }
  e.bank = bank;
  e.model = model;
  return e;
}

void sd_calib_file_free(sd_calib_file *f) {
  if (!f) return;
  free(f->e);
  f->e = NULL;
  f->n = 0;
}

const sd_calib_entry *sd_calib_find(const sd_calib_file *f, const char *detector) {
  if (!f || !detector) return NULL;
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->e[i].name, detector) == 0) return &f->e[i];
  return NULL;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
  return s;
}

static int valid_name(const char *s) {
  if (!*s || strlen(s) >= SD_CALIB_NAME_MAX) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
          *s == '-' || *s == '.'))
      return 0;
  return 1;
}

enum { K_THRESHOLD, K_TARGET, K_FPR, K_RECALL, K_NU, K_NB, K_BANK, K_MODEL, K_COUNT };
static const char *const key_names[K_COUNT] = {"threshold", "target_fpr", "fpr",  "recall",
                                               "n_unsafe",  "n_benign",   "bank", "model"};

static int parse_value(sd_calib_entry *e, int key, const char *v, const char *name, int line) {
  char *end;
  errno = 0;
  if (key == K_BANK || key == K_MODEL) {
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 16;
    for (size_t i = 0; i < n && ok; i++) ok = strchr("0123456789abcdefABCDEF", v[i]) != NULL;
    if (!ok) return sd_fail(SD_E_FORMAT, "%s:%d: %s must be 1 to 16 hex digits, got '%s'", name, line, key_names[key], v);
    uint64_t x = strtoull(v, &end, 16);
    if (key == K_BANK) e->bank = x;
    else e->model = x;
    return SD_OK;
  }
  if (key == K_NU || key == K_NB) {
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < 0 || x > INT32_MAX)
      return sd_fail(SD_E_FORMAT, "%s:%d: %s must be a non-negative integer, got '%s'", name, line, key_names[key], v);
    if (key == K_NU) e->n_unsafe = (int)x;
    else e->n_benign = (int)x;
    return SD_OK;
  }
  double x = strtod(v, &end);
  if (!*v || *end || !isfinite(x) || (key == K_THRESHOLD && fabs(x) > FLT_MAX))
    return sd_fail(SD_E_FORMAT, "%s:%d: %s must be a finite number, got '%s'", name, line, key_names[key], v);
  if (key != K_THRESHOLD && (x < 0 || x > 1))
    return sd_fail(SD_E_FORMAT, "%s:%d: %s must be in [0, 1], got '%s'", name, line, key_names[key], v);
  switch (key) {
  case K_THRESHOLD: e->threshold = (float)x; break;
  case K_TARGET: e->target_fpr = x; break;
  case K_FPR: e->fpr = x; break;
  default: e->recall = x; break;
  }
  return SD_OK;
}

static int finish_section(const sd_calib_entry *e, unsigned seen, const char *name) {
  if (!(seen & (1u << K_THRESHOLD)))
    return sd_fail(SD_E_FORMAT, "%s:%d: section [%s] has no threshold", name, e->line, e->name);
  return SD_OK;
}

int sd_calib_parse(const char *text, size_t len, const char *name, sd_calib_file *out) {
  if (!out || (!text && len)) return sd_fail(SD_E_ARG, "sd_calib_parse: NULL argument");
  if (!name) name = "<calibration>";
  *out = (sd_calib_file){0};
  int cap = 0, line = 0, rc = SD_OK;
  unsigned seen = 0;
  size_t pos = 0;
  char buf[CALIB_MAX_LINE + 2];
  while (pos < len && !rc) {
    line++;
    size_t e0 = pos;
    while (e0 < len && text[e0] != '\n') e0++;
    size_t n = e0 - pos;
    if (n > CALIB_MAX_LINE) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: line longer than %d bytes", name, line, CALIB_MAX_LINE);
      break;
    }
    memcpy(buf, text + pos, n);
    buf[n] = 0;
    pos = e0 + 1;
    if (memchr(buf, 0, n)) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: NUL byte", name, line);
      break;
    }
    char *s = trim(buf);
    if (!*s || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      char *close = strchr(s, ']');
      if (!close || *trim(close + 1)) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: malformed section header '%s'", name, line, s);
        break;
      }
      *close = 0;
      char *sec = trim(s + 1);
      if (!valid_name(sec)) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: bad detector name '%s' (letters, digits, _ - . only)", name, line, sec);
        break;
      }
      if (sd_calib_find(out, sec)) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: duplicate section [%s]", name, line, sec);
        break;
      }
      if (out->n && (rc = finish_section(&out->e[out->n - 1], seen, name))) break;
      if (out->n == cap) {
        int nc = cap ? cap * 2 : 4;
        sd_calib_entry *ne = realloc(out->e, (size_t)nc * sizeof *ne);
        if (!ne) {
          rc = sd_fail(SD_E_NOMEM, "%s: out of memory", name);
          break;
        }
        out->e = ne;
        cap = nc;
      }
      sd_calib_entry *e = &out->e[out->n++];
      memset(e, 0, sizeof *e);
      snprintf(e->name, sizeof e->name, "%s", sec);
      e->line = line;
      seen = 0;
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: expected 'key = value' or '[detector]', got '%s'", name, line, s);
      break;
    }
    *eq = 0;
    char *k = trim(s), *v = trim(eq + 1);
    int key = -1;
    for (int i = 0; i < K_COUNT; i++)
      if (strcmp(k, key_names[i]) == 0) key = i;
    if (key < 0) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: unknown key '%s'", name, line, k);
      break;
    }
    if (!out->n) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: key '%s' outside a [detector] section", name, line, k);
      break;
    }
    if (seen & (1u << key)) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: duplicate key '%s'", name, line, k);
      break;
    }
    seen |= 1u << key;
    sd_calib_entry *e = &out->e[out->n - 1];
    e->keys |= 1u << key;
    if ((rc = parse_value(e, key, v, name, line))) break;
    if (key >= K_TARGET && key <= K_NB) e->has_meta = 1;
  }
  if (!rc && out->n) rc = finish_section(&out->e[out->n - 1], seen, name);
  if (rc) sd_calib_file_free(out);
  return rc;
}

/* Read a whole regular file of at most max bytes (what = "a calibration file", ...) into a
 * malloc'ed, NUL-terminated buffer. */
static int read_small_file(const char *path, const char *what, int64_t max, char **buf_out, size_t *len) {
  int fd;
  int64_t size;
  int rc = sd_open_regular(path, what, &fd, &size);
  if (rc) return rc;
  if (size > max) {
    close(fd);
    return sd_fail(SD_E_FORMAT, "%s: %s larger than %lld bytes", path, what + 2, (long long)max);
  }
  char *buf = malloc((size_t)size + 1);
  if (!buf) {
    close(fd);
    return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
  }
  size_t got = 0;
  while (got < (size_t)size) {
    ssize_t r = read(fd, buf + got, (size_t)size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != (size_t)size) {
    free(buf);
    return sd_fail(SD_E_IO, "%s: short read", path);
  }
  buf[got] = 0;
  *buf_out = buf;
  *len = got;
  return SD_OK;
}

int sd_calib_load(const char *path, sd_calib_file *out) {
  if (!path || !out) return sd_fail(SD_E_ARG, "sd_calib_load: NULL argument");
  *out = (sd_calib_file){0};
  char *buf;
  size_t got;
  int rc = read_small_file(path, "a calibration file", (int64_t)CALIB_MAX_FILE, &buf, &got);
  if (rc) return rc;
  rc = sd_calib_parse(buf, got, path, out);
  free(buf);
  return rc;
}

int sd_calib_write(const char *path, const sd_calib_entry *e, int n) {
  if (!path || (n > 0 && !e) || n < 0) return sd_fail(SD_E_ARG, "sd_calib_write: bad argument");
  for (int i = 0; i < n; i++) {
    if (!valid_name(e[i].name)) return sd_fail(SD_E_ARG, "sd_calib_write: bad detector name '%s'", e[i].name);
    if (!isfinite(e[i].threshold)) return sd_fail(SD_E_ARG, "sd_calib_write: threshold of %s not finite", e[i].name);
  }
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  char buf[1024];
  int w = snprintf(buf, sizeof buf, "# safesd calibration v1 (format: src/safety/calibrate.h)\n");
  rc = sd_atomic_write(&af, buf, (size_t)w);
  for (int i = 0; i < n && !rc; i++) {
    const sd_calib_entry *x = &e[i];
    w = snprintf(buf, sizeof buf, "\n[%s]\nthreshold = %.9g\n", x->name, (double)x->threshold);
    if (x->has_meta)
      w += snprintf(buf + w, sizeof buf - (size_t)w,
                    "target_fpr = %.17g\nfpr = %.17g\nrecall = %.17g\nn_unsafe = %d\nn_benign = %d\n", x->target_fpr,
                    x->fpr, x->recall, x->n_unsafe, x->n_benign);
    if (x->bank) w += snprintf(buf + w, sizeof buf - (size_t)w, "bank = %016" PRIx64 "\n", x->bank);
    if (x->model) w += snprintf(buf + w, sizeof buf - (size_t)w, "model = %016" PRIx64 "\n", x->model);
    rc = sd_atomic_write(&af, buf, (size_t)w);
  }
  if (rc) {
    sd_atomic_abort(&af);
    return rc;
  }
  return sd_atomic_commit(&af);
}

int sd_calib_update(const char *path, const sd_calib_entry *e) {
  if (!path || !e) return sd_fail(SD_E_ARG, "sd_calib_update: NULL argument");
  sd_calib_file f = {0};
  if (access(path, F_OK) == 0) {
    int rc = sd_calib_load(path, &f);
    if (rc) return sd_fail_prefix(rc, "not updating the calibration file: ");
  }
  int rc = SD_OK;
  sd_calib_entry *x = (sd_calib_entry *)sd_calib_find(&f, e->name);
  if (x) {
    *x = *e;
  } else {
    sd_calib_entry *ne = realloc(f.e, ((size_t)f.n + 1) * sizeof *ne);
    if (!ne) {
      sd_calib_file_free(&f);
      return sd_fail(SD_E_NOMEM, "sd_calib_update: out of memory");
    }
    f.e = ne;
    f.e[f.n++] = *e;
  }
  rc = sd_calib_write(path, f.e, f.n);
  sd_calib_file_free(&f);
  return rc;
}

int sd_calib_apply(const sd_calib_file *f, sd_detector *d, uint64_t bank, uint64_t model) {
  if (!f || !d || !d->vt || !d->vt->name) return sd_fail(SD_E_ARG, "sd_calib_apply: NULL argument");
  const sd_calib_entry *e = sd_calib_find(f, d->vt->name);
  if (!e) return 0;
  if (bank && e->bank && bank != e->bank)
    return sd_fail(SD_E_ARG, "calibration of %s (line %d) was made for another concept bank (%016" PRIx64
                             ", this one is %016" PRIx64 ")", e->name, e->line, e->bank, bank);
  if (model && e->model && model != e->model)
    return sd_fail(SD_E_ARG, "calibration of %s (line %d) was made for another model (%016" PRIx64
                             ", this one is %016" PRIx64 ")", e->name, e->line, e->model, model);
  d->threshold = e->threshold;
  return 1;
}

/* ------------------------------------------------------------------------------------- */
/* a bank's [thresholds] section                                                           */

int sd_calib_set(sd_calib_file *f, const char *key, const char *value, const char *name, int line) {
  if (!f || !key || !value) return sd_fail(SD_E_ARG, "sd_calib_set: NULL argument");
  if (!name) name = "<bank>";
  char det[SD_CALIB_NAME_MAX + 32];
  int w = snprintf(det, sizeof det, "%s", key);
  if (w < 0 || (size_t)w >= sizeof det) return sd_fail(SD_E_FORMAT, "%s:%d: key too long", name, line);
  int k = K_THRESHOLD;
  char *dot = strrchr(det, '.');
  if (dot) {
    for (int i = 0; i < K_COUNT; i++)
      if (i != K_THRESHOLD && strcmp(dot + 1, key_names[i]) == 0) k = i;
    if (k == K_THRESHOLD && strcmp(dot + 1, "threshold") != 0)
      return sd_fail(SD_E_FORMAT,
                     "%s:%d: unknown key '%s' ([thresholds] takes DETECTOR = threshold or DETECTOR.KEY = value, "
                     "KEY one of target_fpr, fpr, recall, n_unsafe, n_benign, bank, model)",
                     name, line, key);
    *dot = 0;
  }
  if (!valid_name(det))
    return sd_fail(SD_E_FORMAT, "%s:%d: bad detector name '%s' (letters, digits, _ - . only)", name, line, det);
  sd_calib_entry *e = (sd_calib_entry *)sd_calib_find(f, det);
  if (!e) {
    sd_calib_entry *ne = realloc(f->e, ((size_t)f->n + 1) * sizeof *ne);
    if (!ne) return sd_fail(SD_E_NOMEM, "%s: out of memory", name);
    f->e = ne;
    e = &f->e[f->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%.*s", (int)sizeof e->name - 1, det); /* fits: valid_name */
    e->line = line;
  }
  if (e->keys & (1u << k)) return sd_fail(SD_E_FORMAT, "%s:%d: duplicate key '%s'", name, line, key);
  e->keys |= 1u << k;
  int rc = parse_value(e, k, value, name, line);
  if (rc) return rc;
  if (k >= K_TARGET && k <= K_NB) e->has_meta = 1;
  return SD_OK;
}

int sd_calib_check(const sd_calib_file *f, const char *name) {
  if (!f) return sd_fail(SD_E_ARG, "sd_calib_check: NULL argument");
  for (int i = 0; i < f->n; i++)
    if (!(f->e[i].keys & (1u << K_THRESHOLD)))
      return sd_fail(SD_E_FORMAT, "%s:%d: [thresholds] gives %s.* keys but no '%s = threshold'", name ? name : "<bank>",
                     f->e[i].line, f->e[i].name, f->e[i].name);
  return SD_OK;
}

char *sd_calib_bank_section(const sd_calib_entry *e, int n) {
  if (n < 0 || (n > 0 && !e)) return NULL;
  size_t cap = 256 + (size_t)n * 1024, o = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  o += (size_t)snprintf(s + o, cap - o,
                        "[thresholds]\n"
                        "# calibrated detector thresholds (safesd calibrate; format: docs/safety-detectors.md)\n");
  for (int i = 0; i < n; i++) {
    const sd_calib_entry *x = &e[i];
    if (!valid_name(x->name) || strchr(x->name, '.') || !isfinite(x->threshold)) {
      free(s);
      return NULL;
    }
    o += (size_t)snprintf(s + o, cap - o, "%s = %.9g\n", x->name, (double)x->threshold);
    if (x->has_meta)
      o += (size_t)snprintf(s + o, cap - o,
                            "%s.target_fpr = %.6g\n%s.fpr = %.6g\n%s.recall = %.6g\n%s.n_unsafe = %d\n"
                            "%s.n_benign = %d\n",
                            x->name, x->target_fpr, x->name, x->fpr, x->name, x->recall, x->name, x->n_unsafe,
                            x->name, x->n_benign);
    if (x->bank) o += (size_t)snprintf(s + o, cap - o, "%s.bank = %016" PRIx64 "\n", x->name, x->bank);
    if (x->model) o += (size_t)snprintf(s + o, cap - o, "%s.model = %016" PRIx64 "\n", x->name, x->model);
  }
  snprintf(s + o, cap - o, "\n");
  return s;
}

/* ------------------------------------------------------------------------------------- */
/* labelled prompt files                                                                   */

#define PROMPT_MAX_FILE ((int64_t)1 << 30)
#define PROMPT_MAX_LINE ((size_t)1 << 20)

void sd_prompt_list_free(char **prompts, int n) {
  if (!prompts) return;
  for (int i = 0; i < n; i++) free(prompts[i]);
  free(prompts);
}

int sd_prompt_file_load(const char *path, char ***prompts, int *n) {
  if (!path || !prompts || !n) return sd_fail(SD_E_ARG, "sd_prompt_file_load: NULL argument");
  *prompts = NULL;
  *n = 0;
  char *buf;
  size_t got;
  int rc = read_small_file(path, "a prompt file", PROMPT_MAX_FILE, &buf, &got);
  if (rc) return rc;
  char **list = NULL;
  int cnt = 0, cap = 0, line = 0;
  size_t pos = 0;
  if (got >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* a BOM is tolerated */
  while (pos < got && !rc) {
    line++;
    char *s = buf + pos, *nl = memchr(s, '\n', got - pos);
    char *e = nl ? nl : buf + got;
    pos = (size_t)(e - buf) + (nl ? 1 : 0);
    if ((size_t)(e - s) > PROMPT_MAX_LINE) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: line longer than %zu bytes", path, line, PROMPT_MAX_LINE);
      break;
    }
    if (memchr(s, 0, (size_t)(e - s))) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: NUL byte", path, line);
      break;
    }
    for (const char *p = s; p < e;) {
      utf8proc_int32_t cp;
      utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p, e - p, &cp);
      if (k <= 0) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: invalid UTF-8 at byte %zu of the line", path, line, (size_t)(p - s) + 1);
        break;
      }
      p += k;
    }
    if (rc) break;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    if (s == e || *s == '#') continue;
    if (cnt == cap) {
      int nc = cap ? 2 * cap : 64;
      char **nl2 = realloc(list, (size_t)nc * sizeof *nl2);
      if (!nl2) {
        rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path);
        break;
      }
      list = nl2;
      cap = nc;
    }
    if (!(list[cnt] = malloc((size_t)(e - s) + 1))) {
      rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path);
      break;
    }
    memcpy(list[cnt], s, (size_t)(e - s));
    list[cnt][e - s] = 0;
    cnt++;
    if (cnt == INT32_MAX) {
      rc = sd_fail(SD_E_FORMAT, "%s: too many prompts", path);
      break;
    }
  }
  free(buf);
  if (!rc && cnt == 0) rc = sd_fail(SD_E_FORMAT, "%s: no prompts (the file is empty or has only blank and '#' lines)", path);
  if (rc) {
    sd_prompt_list_free(list, cnt);
    return rc;
  }
  *prompts = list;
  *n = cnt;
  return SD_OK;
}
