/* safetensors reader and writer. See safetensors.h for the checks.
 *
 * Decisions beyond the header's list (all match the reference Rust implementation, so a file
 * that loads here also loads in PyTorch/diffusers and vice versa):
 *  - An entry holds exactly dtype, shape and data_offsets; any other key is an error.
 *  - The data section must be covered exactly: sorted by begin, the tensors' byte ranges
 *    start at 0, follow each other without gaps or overlaps and end at the end of the file
 *    (the format forbids holes, which prevents polyglot files). Empty tensors ([b, b]) may
 *    sit anywhere on a boundary.
 *  - The element count guard uses the product of the non-zero dimensions, so a shape such as
 *    [2^62, 2^62, 0] is rejected: sd_numel() multiplies left to right and would overflow.
 *  - Tensor names may be any JSON string except "__metadata__" (the empty string included);
 *    names and other file text are escaped in messages (sd_msg_quote).
 *  - Dtypes outside core/tensor.h's list (F8_E4M3, ...) are reported as unknown.
 * A file that is truncated by someone else while it is mapped makes later accesses raise
 * SIGBUS; that cannot be checked at open time (copying the file would be the only cure).
 */
#define _XOPEN_SOURCE 700

#include "io/safetensors.h"
#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/json_util.h"

/* Bounds checked before the header is parsed, so that a hostile header cannot make the JSON
 * parser build millions of objects: real SD checkpoints are far below them (SD 1.x about
 * 1,100 tensors and a header of about 130 KB, SDXL about 2,500 tensors and 300 KB). */
#define ST_MAX_HEADER ((uint64_t)16 << 20) /* 16 MiB */
#define ST_MAX_ENTRIES 65536                /* tensors (+ __metadata__) */
#define ST_MAX_VALUES (1 << 20)             /* JSON values of the whole header */
#define ST_META_KEY "__metadata__"

/* Quoted forms of untrusted text for messages. */
typedef struct { char s[160]; } qbuf;
static const char *q(const char *s, qbuf *b) { return sd_msg_quote(s, b->s, sizeof b->s); }

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- reading ------------------------------------------------------------------------ */

static int is_entry_key(const char *k) {
  return strcmp(k, "dtype") == 0 || strcmp(k, "shape") == 0 || strcmp(k, "data_offsets") == 0;
}

/* Validate one entry (everything that does not depend on the other entries). */
static int parse_entry(const char *path, const char *name, const json_t *v, uint64_t data_size,
                       sd_st_entry *e) {
  qbuf qn, qk;
  const char *nm = q(name, &qn);
  if (!json_is_object(v))
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': entry is %s, expected an object with dtype, shape and data_offsets",
                   path, nm, sd_json_type_name(v));
  const char *k;
  const json_t *x;
  json_object_foreach((json_t *)v, k, x) {
    if (!is_entry_key(k))
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': unknown key '%s' (an entry has only dtype, shape and data_offsets)",
                     path, nm, q(k, &qk));
  }
  const json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
               *jo = json_object_get(v, "data_offsets");
  if (!jd) return sd_fail(SD_E_FORMAT, "%s: tensor '%s': missing 'dtype'", path, nm);
  if (!js) return sd_fail(SD_E_FORMAT, "%s: tensor '%s': missing 'shape'", path, nm);
  if (!jo) return sd_fail(SD_E_FORMAT, "%s: tensor '%s': missing 'data_offsets'", path, nm);

  /* dtype */
  if (!json_is_string(jd))
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': dtype is %s, expected a string such as \"F16\"",
                   path, nm, sd_json_type_name(jd));
  if (sd_dtype_parse(json_string_value(jd), &e->dtype) != 0)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, nm,
                   q(json_string_value(jd), &qk));

  /* shape */
  if (!json_is_array(js))
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape is %s, expected an array of integers",
                   path, nm, sd_json_type_name(js));
  size_t rank = json_array_size(js);
  if (rank > SD_MAX_DIMS)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape has rank %zu; at most %d dimensions are supported",
                   path, nm, rank, SD_MAX_DIMS);
  e->ndim = (int)rank;
  uint64_t numel_nz = 1; /* product of the non-zero dimensions */
  int has_zero = 0;
  for (size_t i = 0; i < rank; i++) {
    const json_t *d = json_array_get(js, i);
    if (!json_is_integer(d))
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape[%zu] is %s, expected a non-negative integer",
                     path, nm, i, sd_json_type_name(d));
    long long dim = json_integer_value(d);
    if (dim < 0)
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape[%zu] = %lld is negative", path, nm, i, dim);
    e->shape[i] = (int64_t)dim;
    if (dim == 0) has_zero = 1;
    else if (__builtin_mul_overflow(numel_nz, (uint64_t)dim, &numel_nz) || numel_nz > (uint64_t)INT64_MAX)
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape is too large (element count overflows)", path, nm);
  }
  uint64_t esize = sd_dtype_size(e->dtype), nbytes_nz;
  if (__builtin_mul_overflow(numel_nz, esize, &nbytes_nz) || nbytes_nz > (uint64_t)INT64_MAX)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': shape is too large (byte size overflows)", path, nm);
  uint64_t nbytes = has_zero ? 0 : nbytes_nz;

  /* data_offsets */
  if (!json_is_array(jo))
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets is %s, expected [begin, end]", path,
                   nm, sd_json_type_name(jo));
  if (json_array_size(jo) != 2)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets has %zu elements, expected exactly 2 ([begin, end])",
                   path, nm, json_array_size(jo));
  uint64_t off[2];
  for (size_t i = 0; i < 2; i++) {
    const json_t *d = json_array_get(jo, i);
    if (!json_is_integer(d))
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets[%zu] is %s, expected a non-negative integer",
                     path, nm, i, sd_json_type_name(d));
    if (json_integer_value(d) < 0)
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets[%zu] = %lld is negative", path, nm,
                     i, (long long)json_integer_value(d));
    off[i] = (uint64_t)json_integer_value(d);
  }
  if (off[0] > off[1])
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "]: begin > end",
                   path, nm, off[0], off[1]);
  if (off[1] > data_size)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data section (%" PRIu64 " bytes)",
                   path, nm, off[0], off[1], data_size);
  if (off[1] - off[0] != nbytes) {
    sd_tensor t = sd_tensor_make(e->dtype, e->ndim, e->shape, NULL);
    char sh[SD_MAX_DIMS * 22 + 4];
    sd_shape_str(&t, sh, sizeof sh);
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes but %s %s needs %" PRIu64 " (byte size mismatch)",
                   path, nm, off[0], off[1], off[1] - off[0], sd_dtype_name(e->dtype), sh, nbytes);
  }
  e->begin = off[0];
  e->end = off[1];
  return SD_OK;
}

static int parse_metadata(sd_safetensors *st, const json_t *m) {
  qbuf qk;
  if (!json_is_object(m))
    return sd_fail(SD_E_FORMAT, "%s: __metadata__ is %s, expected an object of strings", st->path,
                   sd_json_type_name(m));
  size_t n = json_object_size(m), bytes = 0;
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    if (!json_is_string(v))
      return sd_fail(SD_E_FORMAT, "%s: __metadata__ key '%s': value is %s, expected a string",
                     st->path, q(k, &qk), sd_json_type_name(v));
    bytes += strlen(k) + 1 + json_string_length(v) + 1;
  }
  if (n == 0) return SD_OK;
  /* One block: keys[n], values[n], then the strings. */
  char **blk = malloc(2 * n * sizeof(char *) + bytes);
  if (!blk) return sd_fail(SD_E_NOMEM, "%s: out of memory for metadata", st->path);
  st->meta_keys = blk;
  st->meta_values = blk + n;
  char *s = (char *)(blk + 2 * n);
  size_t i = 0;
  json_object_foreach((json_t *)m, k, v) {
    size_t kl = strlen(k) + 1, vl = json_string_length(v) + 1;
    memcpy(s, k, kl);
    st->meta_keys[i] = s;
    s += kl;
    memcpy(s, json_string_value(v), vl);
    st->meta_values[i] = s;
    s += vl;
    i++;
  }
  st->n_meta = n;
  return SD_OK;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const sd_st_entry *)a)->name, ((const sd_st_entry *)b)->name);
}

static int cmp_range(const void *a, const void *b) {
  const sd_st_entry *x = *(const sd_st_entry *const *)a, *y = *(const sd_st_entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The data section is covered exactly once by the tensors' byte ranges. */
static int check_coverage(const sd_safetensors *st, uint64_t data_size) {
  if (st->n == 0) {
    if (data_size != 0)
      return sd_fail(SD_E_FORMAT, "%s: the file has no tensors but a data section of %" PRIu64 " bytes",
                     st->path, data_size);
    return SD_OK;
  }
  const sd_st_entry **by = malloc(st->n * sizeof *by);
  if (!by) return sd_fail(SD_E_NOMEM, "%s: out of memory", st->path);
  for (size_t i = 0; i < st->n; i++) by[i] = &st->entries[i];
  qsort(by, st->n, sizeof *by, cmp_range);
  uint64_t cursor = 0;
  const sd_st_entry *last = NULL; /* the tensor that ends at cursor */
  int rc = SD_OK;
  qbuf qa, qb;
  for (size_t i = 0; i < st->n && rc == SD_OK; i++) {
    const sd_st_entry *e = by[i];
    if (e->begin > cursor) {
      if (last)
        rc = sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a gap of %" PRIu64 " unindexed bytes after tensor '%s'",
                     st->path, q(e->name, &qa), e->begin, e->end, e->begin - cursor, q(last->name, &qb));
      else
        rc = sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a gap of %" PRIu64 " unindexed bytes at the start of the data section",
                     st->path, q(e->name, &qa), e->begin, e->end, e->begin - cursor);
    } else if (e->begin < cursor) {
      rc = sd_fail(SD_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' [%" PRIu64 ", %" PRIu64 "]",
                   st->path, q(e->name, &qa), e->begin, e->end, q(last->name, &qb), last->begin, last->end);
    } else if (e->end > cursor) {
      cursor = e->end;
      last = e;
    }
  }
  if (rc == SD_OK && cursor != data_size) {
    if (last)
      rc = sd_fail(SD_E_FORMAT, "%s: %" PRIu64 " trailing bytes of the data section are not covered by any tensor (the last, '%s', ends at %" PRIu64 " of %" PRIu64 ")",
                   st->path, data_size - cursor, q(last->name, &qa), cursor, data_size);
    else
      rc = sd_fail(SD_E_FORMAT, "%s: %" PRIu64 " trailing bytes of the data section are not covered by any tensor (all tensors are empty)",
                   st->path, data_size);
  }
  free(by);
  return rc;
}

/* Upper bounds of the objects and of all values in a JSON text, from its structural
 * characters outside strings (every value but the first follows a ',' or an opening
 * bracket). One pass, no allocation. */
static void json_counts(const unsigned char *h, size_t n, uint64_t *objects, uint64_t *values) {
  uint64_t obj = 0, val = 1;
  int in_str = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = h[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{') {
      obj++, val++;
    } else if (c == '[' || c == ',') {
      val++;
    }
  }
  *objects = obj;
  *values = val;
}

/* Validate st->base/st->size and fill in the entries. */
static int st_parse(sd_safetensors *st) {
  const char *p = st->path;
  if (st->size == 0) return sd_fail(SD_E_FORMAT, "%s: file is empty (0 bytes), not a safetensors file", p);
  if (st->size < 8)
    return sd_fail(SD_E_FORMAT, "%s: file is too short (%zu bytes): a safetensors file starts with an 8-byte header length",
                   p, st->size);
  uint64_t hlen = le64(st->base);
  if (hlen > ST_MAX_HEADER)
    return sd_fail(SD_E_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes (16 MiB)",
                   p, hlen, ST_MAX_HEADER);
  if (hlen > st->size - 8)
    return sd_fail(SD_E_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                   p, hlen, st->size);
  uint64_t data_size = st->size - 8 - hlen;
  const unsigned char *data = st->base + 8 + hlen;
  uint64_t n_obj, n_val;
  json_counts(st->base + 8, (size_t)hlen, &n_obj, &n_val);
  if (n_obj > ST_MAX_ENTRIES + 1)
    return sd_fail(SD_E_FORMAT, "%s: header has %" PRIu64 " entries (objects); the limit is %d (checked before parsing)",
                   p, n_obj - 1, ST_MAX_ENTRIES);
  if (n_val > ST_MAX_VALUES)
    return sd_fail(SD_E_FORMAT, "%s: header has %" PRIu64 " JSON values; the limit is %d (checked before parsing)",
                   p, n_val, ST_MAX_VALUES);

  json_error_t jerr;
  json_t *root = json_loadb((const char *)st->base + 8, (size_t)hlen,
                            JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root) {
    char qt[256];
    sd_msg_quote(jerr.text, qt, sizeof qt);
    if (json_error_code(&jerr) == json_error_duplicate_key)
      return sd_fail(SD_E_FORMAT, "%s: header: %s (file byte %d): tensor names, and the keys of an entry, must be unique",
                     p, qt, jerr.position + 8);
    return sd_fail(SD_E_FORMAT, "%s: header is not valid JSON: %s (header line %d, column %d)", p, qt,
                   jerr.line, jerr.column);
  }
  int rc = SD_OK;
  if (!json_is_object(root)) {
    rc = sd_fail(SD_E_FORMAT, "%s: header is %s, expected a JSON object", p, sd_json_type_name(root));
    goto out;
  }
  const json_t *meta = json_object_get(root, ST_META_KEY);
  size_t n = json_object_size(root) - (meta ? 1 : 0), name_bytes = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) name_bytes += strlen(k) + 1;
  if (n > 0) {
    /* One block: entries[n] then the names. */
    st->entries = calloc(1, n * sizeof(sd_st_entry) + name_bytes);
    if (!st->entries) { rc = sd_fail(SD_E_NOMEM, "%s: out of memory for %zu tensor entries", p, n); goto out; }
  }
  char *names = n > 0 ? (char *)(st->entries + n) : NULL;
  size_t i = 0;
  json_object_foreach(root, k, v) {
    if (strcmp(k, ST_META_KEY) == 0) continue;
    sd_st_entry *e = &st->entries[i];
    size_t kl = strlen(k) + 1;
    memcpy(names, k, kl);
    e->name = names;
    names += kl;
    if ((rc = parse_entry(p, k, v, data_size, e))) goto out;
    e->data = data + e->begin;
    i++;
  }
  st->n = n;
  if (meta && (rc = parse_metadata(st, meta))) goto out;
  if ((rc = check_coverage(st, data_size))) goto out;
  if (n > 1) qsort(st->entries, n, sizeof *st->entries, cmp_name);
  for (size_t j = 1; j < n; j++) {
    if (strcmp(st->entries[j - 1].name, st->entries[j].name) == 0) { /* the parser rejects these */
      qbuf qn;
      rc = sd_fail(SD_E_FORMAT, "%s: tensor '%s': duplicate name", p, q(st->entries[j].name, &qn));
      goto out;
    }
  }
out:
  json_decref(root);
  return rc;
}

static int st_new(const char *label, sd_safetensors **out) {
  sd_safetensors *st = calloc(1, sizeof *st);
  if (st) st->path = xstrdup(label);
  if (!st || !st->path) {
    free(st);
    return sd_fail(SD_E_NOMEM, "%s: out of memory", label);
  }
  *out = st;
  return SD_OK;
}

int sd_st_open_memory(const void *buf, size_t len, const char *label, sd_safetensors **out) {
  if (!label) label = "<memory>";
  if (!out) return sd_fail(SD_E_ARG, "%s: sd_st_open_memory: out is NULL", label);
  *out = NULL;
  if (!buf && len) return sd_fail(SD_E_ARG, "%s: sd_st_open_memory: buffer is NULL", label);
  sd_safetensors *st = NULL;
  int rc = st_new(label, &st);
  if (rc) return rc;
  st->base = buf;
  st->size = len;
  if ((rc = st_parse(st))) { sd_st_close(st); return rc; }
  *out = st;
  return SD_OK;
}

int sd_st_open(const char *path, sd_safetensors **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_st_open: out is NULL");
  *out = NULL;
  if (!path) return sd_fail(SD_E_ARG, "sd_st_open: path is NULL");
  int fd;
  int64_t fsize;
  int rc = sd_open_regular(path, "a .safetensors file", &fd, &fsize);
  if (rc) return rc;
  if (fsize < 0 || (uintmax_t)fsize > SIZE_MAX) {
    close(fd);
    return sd_fail(SD_E_FORMAT, "%s: file size %jd cannot be mapped", path, (intmax_t)fsize);
  }
  size_t size = (size_t)fsize;
  void *base = NULL;
  if (size > 0) {
    base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
      int e = errno;
      close(fd);
      return sd_fail(SD_E_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));
    }
  }
  close(fd);
  sd_safetensors *st = NULL;
  rc = st_new(path, &st);
  if (rc) { if (base) munmap(base, size); return rc; }
  st->base = base;
  st->size = size;
  st->mapped = base != NULL;
  if ((rc = st_parse(st))) { sd_st_close(st); return rc; }
  *out = st;
  return SD_OK;
}

void sd_st_release(const sd_safetensors *st, const void *p, size_t n) {
  if (!st || !st->mapped || !st->base || !p || n == 0) return;
  uintptr_t b = (uintptr_t)st->base, e = b + st->size, lo = (uintptr_t)p, hi = lo + n;
  if (lo < b || hi > e || hi < lo) return; /* not inside this file's mapping: never touch it */
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0) return;
  uintptr_t a0 = (lo + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), a1 = hi & ~((uintptr_t)pg - 1);
  /* read-only private file pages: dropping them is free, a later read maps them again */
  if (a1 > a0) (void)madvise((void *)a0, a1 - a0, MADV_DONTNEED);
}

void sd_st_close(sd_safetensors *st) {
  if (!st) return;
  if (st->mapped && st->base) munmap((void *)st->base, st->size);
  free(st->entries);
  free(st->meta_keys);
  free(st->path);
  free(st);
}

const sd_st_entry *sd_st_find(const sd_safetensors *st, const char *name) {
  if (!st || !name || st->n == 0) return NULL;
  sd_st_entry key;
  memset(&key, 0, sizeof key);
  key.name = (char *)name;
  return bsearch(&key, st->entries, st->n, sizeof *st->entries, cmp_name);
}

sd_tensor sd_st_tensor(const sd_st_entry *e) {
  /* The data is read-only (a PROT_READ mapping): writing through the view faults. */
  return sd_tensor_make(e->dtype, e->ndim, e->shape, (void *)e->data);
}

const char *sd_st_meta(const sd_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  for (size_t i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

/* ---- writing ------------------------------------------------------------------------ */

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Byte size of a tensor argument, or an SD_E_ARG failure. */
static int tensor_bytes(const char *path, const char *name, const sd_tensor *t, uint64_t *out) {
  qbuf qn;
  if ((unsigned)t->dtype >= SD_DTYPE_COUNT)
    return sd_fail(SD_E_ARG, "%s: tensor '%s': invalid dtype %d", path, q(name, &qn), (int)t->dtype);
  if (t->ndim < 0 || t->ndim > SD_MAX_DIMS)
    return sd_fail(SD_E_ARG, "%s: tensor '%s': invalid rank %d", path, q(name, &qn), t->ndim);
  uint64_t nz = 1;
  int zero = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0)
      return sd_fail(SD_E_ARG, "%s: tensor '%s': negative dimension %" PRId64, path, q(name, &qn), t->shape[i]);
    if (t->shape[i] == 0) zero = 1;
    else if (__builtin_mul_overflow(nz, (uint64_t)t->shape[i], &nz) || nz > (uint64_t)INT64_MAX)
      return sd_fail(SD_E_ARG, "%s: tensor '%s': shape too large", path, q(name, &qn));
  }
  if (__builtin_mul_overflow(nz, (uint64_t)sd_dtype_size(t->dtype), &nz) || nz > (uint64_t)INT64_MAX)
    return sd_fail(SD_E_ARG, "%s: tensor '%s': shape too large", path, q(name, &qn));
  *out = zero ? 0 : nz;
  if (*out > 0 && !t->data)
    return sd_fail(SD_E_ARG, "%s: tensor '%s': data is NULL", path, q(name, &qn));
  return SD_OK;
}

/* The header JSON (not padded) for the tensors in the given order. */
static int build_header(const char *path, size_t n, const char *const *names,
                        const sd_tensor *tensors, size_t n_meta, const char *const *meta_keys,
                        const char *const *meta_values, char **out) {
  json_t *root = json_object();
  if (!root) return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
  uint64_t off = 0;
  int rc = SD_OK;
  if (n_meta) {
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, ST_META_KEY, meta) != 0) {
      json_decref(root);
      return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n_meta && rc == SD_OK; i++) {
      qbuf qk;
      if (!meta_keys || !meta_values || !meta_keys[i] || !meta_values[i])
        rc = sd_fail(SD_E_ARG, "%s: metadata entry %zu is NULL", path, i);
      else if (json_object_get(meta, meta_keys[i]))
        rc = sd_fail(SD_E_ARG, "%s: metadata key '%s': duplicate", path, q(meta_keys[i], &qk));
      else if (json_object_set_new(meta, meta_keys[i], json_string(meta_values[i])) != 0)
        rc = sd_fail(SD_E_ARG, "%s: metadata key '%s': key or value is not valid UTF-8", path, q(meta_keys[i], &qk));
    }
  }
  for (size_t i = 0; i < n && rc == SD_OK; i++) {
    const sd_tensor *t = &tensors[i];
    uint64_t nb = 0;
    if ((rc = tensor_bytes(path, names[i], t, &nb))) break;
    if (off + nb > (uint64_t)INT64_MAX) { rc = sd_fail(SD_E_ARG, "%s: total size too large", path); break; }
    json_t *shape = json_array(), *offs = json_array(), *e = json_object();
    int bad = !shape || !offs || !e;
    for (int d = 0; d < t->ndim && !bad; d++) bad |= json_array_append_new(shape, json_integer(t->shape[d])) != 0;
    bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) != 0 ||
          json_array_append_new(offs, json_integer((json_int_t)(off + nb))) != 0 ||
          json_object_set_new(e, "dtype", json_string(sd_dtype_name(t->dtype))) != 0;
    if (bad) {
      json_decref(shape); json_decref(offs); json_decref(e);
      rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path);
      break;
    }
    json_object_set_new(e, "shape", shape);
    json_object_set_new(e, "data_offsets", offs);
    if (json_object_set_new(root, names[i], e) != 0) {
      qbuf qn;
      rc = sd_fail(SD_E_ARG, "%s: tensor '%s': name is not valid UTF-8", path, q(names[i], &qn));
    }
    off += nb;
  }
  if (rc == SD_OK) {
    *out = json_dumps(root, JSON_COMPACT);
    if (!*out) rc = sd_fail(SD_E_NOMEM, "%s: out of memory for the header", path);
  }
  json_decref(root);
  return rc;
}

int sd_st_write(const char *path, size_t n, const char *const *names, const sd_tensor *tensors) {
  return sd_st_write_meta(path, n, names, tensors, 0, NULL, NULL);
}

int sd_st_write_meta(const char *path, size_t n, const char *const *names, const sd_tensor *tensors,
                     size_t n_meta, const char *const *meta_keys, const char *const *meta_values) {
  if (!path) return sd_fail(SD_E_ARG, "sd_st_write: path is NULL");
  if (n && (!names || !tensors)) return sd_fail(SD_E_ARG, "%s: sd_st_write: names or tensors is NULL", path);
  qbuf qn;
  for (size_t i = 0; i < n; i++) {
    if (!names[i]) return sd_fail(SD_E_ARG, "%s: tensor %zu has no name", path, i);
    if (strcmp(names[i], ST_META_KEY) == 0)
      return sd_fail(SD_E_ARG, "%s: '%s' cannot be a tensor name", path, ST_META_KEY);
  }
  if (n > 1) {
    const char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    for (size_t i = 1; i < n; i++) {
      if (strcmp(sorted[i - 1], sorted[i]) == 0) {
        int rc = sd_fail(SD_E_ARG, "%s: tensor '%s': duplicate name", path, q(sorted[i], &qn));
        free(sorted);
        return rc;
      }
    }
    free(sorted);
  }

  char *json = NULL;
  int rc = build_header(path, n, names, tensors, n_meta, meta_keys, meta_values, &json);
  if (rc) return rc;
  /* 8-byte length + header padded with spaces so that the data section starts at a
   * multiple of 8, as the reference writer does. */
  size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
  unsigned char *head = malloc(8 + hlen);
  if (!head) {
    free(json);
    return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
  }
  for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(head + 8, json, jlen);
  memset(head + 8 + jlen, ' ', hlen - jlen);
  free(json);
  /* temporary file + fsync + rename (io/fileio.h): a failure leaves no partial file */
  sd_atomic_file af;
  if ((rc = sd_atomic_open(&af, path)) == SD_OK) {
    rc = sd_atomic_write(&af, head, 8 + hlen);
    for (size_t i = 0; i < n && rc == SD_OK; i++) {
      uint64_t nb = 0;
      tensor_bytes(path, names[i], &tensors[i], &nb); /* validated in build_header */
      rc = sd_atomic_write(&af, tensors[i].data, (size_t)nb);
    }
    if (rc == SD_OK) rc = sd_atomic_commit(&af);
    else sd_atomic_abort(&af);
  }
  free(head);
  return rc;
}
