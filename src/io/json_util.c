#define _XOPEN_SOURCE 700

#include "io/json_util.h"
#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

/* ---- message quoting ---------------------------------------------------------------- */

/* Decode one strict UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF). Returns its
 * length, or 0 if s does not start a valid sequence. Stops at the first byte that is not a
 * continuation byte, so it never reads past a NUL terminator. */
static int utf8_decode(const unsigned char *s, uint32_t *cp) {
  unsigned c = s[0];
  int len;
  uint32_t v, lo;
  if (c < 0x80) { *cp = c; return 1; }
  if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; lo = 0x80; }
  else if (c >= 0xe0 && c <= 0xef) { len = 3; v = c & 0x0f; lo = 0x800; }
  else if (c >= 0xf0 && c <= 0xf4) { len = 4; v = c & 0x07; lo = 0x10000; }
  else return 0;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < lo || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return len;
}

/* Characters that reorder or break a line of text on a terminal. */
static int is_unsafe_cp(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* The printable form of the character at *s: writes it to unit (>= 16 bytes), returns its
 * length and advances *s. */
static size_t quote_unit(const unsigned char **s, char *unit, int backslash) {
  const unsigned char *p = *s;
  uint32_t cp;
  int n;
  if (*p == '\\' && backslash) { *s = p + 1; memcpy(unit, "\\\\", 2); return 2; }
  if (*p >= 0x20 && *p < 0x7f) { *s = p + 1; unit[0] = (char)*p; return 1; }
  if (*p < 0x80 || (n = utf8_decode(p, &cp)) == 0) {
    *s = p + 1;
    return (size_t)snprintf(unit, 16, "\\x%02x", *p);
  }
  *s = p + n;
  if (is_unsafe_cp(cp)) return (size_t)snprintf(unit, 16, "\\u%04x", (unsigned)cp);
  memcpy(unit, p, (size_t)n);
  return (size_t)n;
}

static char *quote(const char *s, char *buf, size_t cap, int backslash) {
  if (!buf || cap == 0) return buf;
  if (!s) s = "(null)";
  if (cap < 4) { buf[0] = 0; return buf; }
  char unit[16];
  /* Pass 1: does the whole quoted text fit? (stop counting once it does not) */
  size_t total = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p && total < cap) total += quote_unit(&p, unit, backslash);
  int cut = total > cap - 1;
  size_t limit = cut ? cap - 4 : cap - 1, off = 0;
  p = (const unsigned char *)s;
  while (*p) {
    size_t n = quote_unit(&p, unit, backslash);
    if (off + n > limit) break;
    memcpy(buf + off, unit, n);
    off += n;
  }
  if (cut) { memcpy(buf + off, "...", 3); off += 3; }
  buf[off] = 0;
  return buf;
}

char *sd_msg_quote(const char *s, char *buf, size_t cap) { return quote(s, buf, cap, 1); }
char *sd_msg_clean(const char *s, char *buf, size_t cap) { return quote(s, buf, cap, 0); }

/* ---- loading ------------------------------------------------------------------------ */

static const char *lbl(const char *path) { return path ? path : "<json>"; }

/* Keys are usually the caller's constants, but they may come from the file (a caller that
 * walks an object), so they are quoted like any other file text. */
typedef struct { char s[96]; } kbuf;
#define QK(key) sd_msg_quote((key), kb_.s, sizeof kb_.s)

const char *sd_json_type_name(const json_t *v) {
  switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    default: return "null";
  }
}

int sd_json_load_memory(const void *buf, size_t len, const char *label, size_t max_bytes,
                        json_t **out) {
  const char *p = lbl(label);
  if (!out) return sd_fail(SD_E_ARG, "%s: sd_json_load_memory: out is NULL", p);
  *out = NULL;
  if (!buf && len) return sd_fail(SD_E_ARG, "%s: sd_json_load_memory: buffer is NULL", p);
  if (len > max_bytes)
    return sd_fail(SD_E_FORMAT, "%s: file is too large (%zu bytes; the limit is %zu)", p, len,
                   max_bytes);
  if (len == 0) return sd_fail(SD_E_FORMAT, "%s: file is empty, expected a JSON object", p);
  json_error_t err;
  json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!root) {
    char q[256];
    sd_msg_quote(err.text, q, sizeof q);
    if (err.line >= 1) return sd_fail(SD_E_FORMAT, "%s:%d:%d: %s", p, err.line, err.column, q);
    return sd_fail(SD_E_FORMAT, "%s: %s", p, q);
  }
  if (!json_is_object(root)) {
    int rc = sd_fail(SD_E_FORMAT, "%s: top level is %s, expected an object", p,
                     sd_json_type_name(root));
    json_decref(root);
    return rc;
  }
  *out = root;
  return SD_OK;
}

int sd_json_load_file(const char *path, size_t max_bytes, json_t **out) {
  if (!out) return sd_fail(SD_E_ARG, "%s: sd_json_load_file: out is NULL", lbl(path));
  *out = NULL;
  if (!path) return sd_fail(SD_E_ARG, "sd_json_load_file: path is NULL");
  int fd;
  int64_t fsize;
  int rc = sd_open_regular(path, "a JSON file", &fd, &fsize);
  if (rc) return rc;
  if (fsize < 0 || (uintmax_t)fsize > max_bytes) {
    close(fd);
    return sd_fail(SD_E_FORMAT, "%s: file is too large (%jd bytes; the limit is %zu)", path,
                   (intmax_t)fsize, max_bytes);
  }
  size_t cap = (size_t)fsize, len = 0;
  char *buf = malloc(cap ? cap : 1);
  if (!buf) { close(fd); return sd_fail(SD_E_NOMEM, "%s: out of memory reading %zu bytes", path, cap); }
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return sd_fail(SD_E_IO, "%s: read failed: %s", path, strerror(e));
    }
    if (r == 0) break; /* the file shrank while we read it: parse what is there */
    len += (size_t)r;
  }
  close(fd);
  rc = sd_json_load_memory(buf, len, path, max_bytes, out);
  free(buf);
  return rc;
}

/* ---- getters ------------------------------------------------------------------------ */

int sd_json_has(const json_t *obj, const char *key) {
  if (!key || !json_is_object(obj)) return 0;
  const json_t *v = json_object_get(obj, key);
  return v && !json_is_null(v);
}

/* Find key; *v = NULL when absent or null (an error only if required). */
static int lookup(const json_t *obj, const char *key, const char *path, const void *out,
                  int required, const json_t **v) {
  kbuf kb_;
  *v = NULL;
  if (!key || !out) return sd_fail(SD_E_ARG, "%s: JSON getter called with a NULL key or output", lbl(path));
  if (!json_is_object(obj))
    return sd_fail(SD_E_FORMAT, "%s: expected an object holding key '%s', got %s", lbl(path), QK(key),
                   sd_json_type_name(obj));
  const json_t *x = json_object_get(obj, key);
  if (!x || json_is_null(x)) {
    if (required) return sd_fail(SD_E_FORMAT, "%s: missing required key '%s'", lbl(path), QK(key));
    return SD_OK;
  }
  *v = x;
  return SD_OK;
}

/* The shortest %g form that reads back as the same double (0.1, not 0.10000000000000001). */
static const char *fmt_num(double x, char *buf, size_t cap) {
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  return buf;
}

/* A short description of a value for messages: 3, 2.5, "text", true, an array, ... */
static const char *describe(const json_t *v, char *buf, size_t cap) {
  char q[80];
  switch (json_typeof(v)) {
    case JSON_INTEGER: snprintf(buf, cap, "%lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: fmt_num(json_real_value(v), buf, cap); break;
    case JSON_STRING: snprintf(buf, cap, "\"%s\"", sd_msg_quote(json_string_value(v), q, sizeof q)); break;
    default: snprintf(buf, cap, "%s", sd_json_type_name(v)); break;
  }
  return buf;
}

/* An integral JSON number as int64; 0 if v is not one. */
static int as_int64(const json_t *v, int64_t *x) {
  if (json_is_integer(v)) { *x = (int64_t)json_integer_value(v); return 1; }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    /* [-2^63, 2^63): the range where the conversion is defined (NaN fails both tests). */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
    int64_t i = (int64_t)d;
    if ((double)i != d) return 0;
    *x = i;
    return 1;
  }
  return 0;
}

int sd_json_get_int(const json_t *obj, const char *key, const char *path, int64_t min,
                    int64_t max, int64_t *out, int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  if (min > max) return sd_fail(SD_E_ARG, "%s: key '%s': empty range given", lbl(path), QK(key));
  int64_t x;
  char d[128];
  if (!as_int64(v, &x))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected an integer in [%" PRId64 ", %" PRId64 "], got %s",
                   lbl(path), QK(key), min, max, describe(v, d, sizeof d));
  if (x < min || x > max)
    return sd_fail(SD_E_FORMAT, "%s: key '%s': %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                   lbl(path), QK(key), x, min, max);
  *out = x;
  return SD_OK;
}

int sd_json_get_i32(const json_t *obj, const char *key, const char *path, int min, int max,
                    int *out, int required) {
  const json_t *v;
  int64_t x = 0;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  rc = sd_json_get_int(obj, key, path, min, max, &x, 1);
  if (rc == SD_OK) *out = (int)x;
  return rc;
}

int sd_json_get_num(const json_t *obj, const char *key, const char *path, double min,
                    double max, double *out, int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  if (!(min <= max)) return sd_fail(SD_E_ARG, "%s: key '%s': empty range given", lbl(path), QK(key));
  char d[128];
  if (!json_is_number(v))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected a number in [%g, %g], got %s", lbl(path),
                   QK(key), min, max, describe(v, d, sizeof d));
  double x = json_number_value(v);
  if (!(x >= min && x <= max))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': %s is out of range [%g, %g]", lbl(path), QK(key),
                   json_is_real(v) ? fmt_num(x, d, sizeof d) : describe(v, d, sizeof d), min, max);
  *out = x;
  return SD_OK;
}

int sd_json_get_f32(const json_t *obj, const char *key, const char *path, float min,
                    float max, float *out, int required) {
  const json_t *v;
  double x = 0;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  rc = sd_json_get_num(obj, key, path, (double)min, (double)max, &x, 1);
  if (rc == SD_OK) *out = (float)x;
  return rc;
}

int sd_json_get_str(const json_t *obj, const char *key, const char *path, const char **out,
                    int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  char d[128];
  if (!json_is_string(v))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected a string, got %s", lbl(path), QK(key),
                   describe(v, d, sizeof d));
  *out = json_string_value(v);
  return SD_OK;
}

int sd_json_get_bool(const json_t *obj, const char *key, const char *path, int *out,
                     int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  char d[128];
  if (!json_is_boolean(v))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected true or false, got %s", lbl(path), QK(key),
                   describe(v, d, sizeof d));
  *out = json_is_true(v) ? 1 : 0;
  return SD_OK;
}

/* Shared checks of the array getters: v is an array of at most max_n elements. */
static int check_array(const json_t *v, const char *key, const char *path, const char *what,
                       const void *out, int max_n, const int *n) {
  kbuf kb_;
  char d[128];
  if (max_n < 0 || !n || (max_n > 0 && !out))
    return sd_fail(SD_E_ARG, "%s: key '%s': bad output buffer for an array", lbl(path), QK(key));
  if (!json_is_array(v))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected an array of %s, got %s", lbl(path), QK(key),
                   what, describe(v, d, sizeof d));
  if (json_array_size(v) > (size_t)max_n)
    return sd_fail(SD_E_FORMAT, "%s: key '%s': the array has %zu elements; at most %d are supported",
                   lbl(path), QK(key), json_array_size(v), max_n);
  return SD_OK;
}

int sd_json_get_int_array_ex(const json_t *obj, const char *key, const char *path,
                             int64_t min, int64_t max, int *out, int max_n, int *n,
                             int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, n, required, &v);
  if (rc || !v) return rc;
  if ((rc = check_array(v, key, path, "integers", out, max_n, n))) return rc;
  if (min < INT_MIN) min = INT_MIN;
  if (max > INT_MAX) max = INT_MAX;
  if (min > max) return sd_fail(SD_E_ARG, "%s: key '%s': empty range given", lbl(path), QK(key));
  size_t len = json_array_size(v);
  char d[128];
  /* Validate everything first so that out is untouched on error. */
  for (size_t i = 0; i < len; i++) {
    const json_t *e = json_array_get(v, i);
    int64_t x;
    if (!as_int64(e, &x))
      return sd_fail(SD_E_FORMAT, "%s: key '%s'[%zu]: expected an integer in [%" PRId64 ", %" PRId64 "], got %s",
                     lbl(path), QK(key), i, min, max, describe(e, d, sizeof d));
    if (x < min || x > max)
      return sd_fail(SD_E_FORMAT, "%s: key '%s'[%zu]: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                     lbl(path), QK(key), i, x, min, max);
  }
  for (size_t i = 0; i < len; i++) {
    int64_t x = 0;
    as_int64(json_array_get(v, i), &x);
    out[i] = (int)x;
  }
  *n = (int)len;
  return SD_OK;
}

int sd_json_get_int_array(const json_t *obj, const char *key, const char *path, int *out,
                          int max_n, int *n) {
  return sd_json_get_int_array_ex(obj, key, path, INT_MIN, INT_MAX, out, max_n, n, 1);
}

int sd_json_get_str_array(const json_t *obj, const char *key, const char *path,
                          const char **out, int max_n, int *n, int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, n, required, &v);
  if (rc || !v) return rc;
  if ((rc = check_array(v, key, path, "strings", out, max_n, n))) return rc;
  size_t len = json_array_size(v);
  char d[128];
  for (size_t i = 0; i < len; i++) {
    const json_t *e = json_array_get(v, i);
    if (!json_is_string(e))
      return sd_fail(SD_E_FORMAT, "%s: key '%s'[%zu]: expected a string, got %s", lbl(path), QK(key),
                     i, describe(e, d, sizeof d));
  }
  for (size_t i = 0; i < len; i++) out[i] = json_string_value(json_array_get(v, i));
  *n = (int)len;
  return SD_OK;
}

int sd_json_get_obj(const json_t *obj, const char *key, const char *path, const json_t **out,
                    int required) {
  kbuf kb_;
  const json_t *v;
  int rc = lookup(obj, key, path, out, required, &v);
  if (rc || !v) return rc;
  char d[128];
  if (!json_is_object(v))
    return sd_fail(SD_E_FORMAT, "%s: key '%s': expected an object, got %s", lbl(path), QK(key),
                   describe(v, d, sizeof d));
  *out = v;
  return SD_OK;
}
