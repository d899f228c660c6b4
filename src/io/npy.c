#include "io/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fileio.h"

#define NPY_MAX_HEADER 65536

static int parse_header(const char *path, const char *h, sd_dtype *dt, int *ndim, int64_t *shape) {
  const char *d = strstr(h, "'descr':");
  const char *f = strstr(h, "'fortran_order':");
  const char *s = strstr(h, "'shape':");
  if (!d || !f || !s) return sd_fail(SD_E_FORMAT, "%s: not a .npy header: %.80s", path, h);
  d += 8;
  while (*d == ' ') d++;
  if (!strncmp(d, "'<f4'", 5)) *dt = SD_F32;
  else if (!strncmp(d, "'<f2'", 5)) *dt = SD_F16;
  else if (!strncmp(d, "'<f8'", 5)) *dt = SD_F64;
  else if (!strncmp(d, "'<i8'", 5)) *dt = SD_I64;
  else if (!strncmp(d, "'<i4'", 5)) *dt = SD_I32;
  else return sd_fail(SD_E_UNSUPPORTED, "%s: unsupported .npy dtype %.8s", path, d);
  f += 16;
  while (*f == ' ') f++;
  if (strncmp(f, "False", 5) != 0) return sd_fail(SD_E_UNSUPPORTED, "%s: Fortran-order .npy is not supported", path);
  s += 8;
  while (*s == ' ') s++;
  if (*s != '(') return sd_fail(SD_E_FORMAT, "%s: bad shape in .npy header", path);
  s++;
  *ndim = 0;
  for (;;) {
    while (*s == ' ' || *s == ',') s++;
    if (*s == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || errno || *ndim >= SD_MAX_DIMS)
      return sd_fail(SD_E_FORMAT, "%s: bad shape in .npy header", path);
    shape[(*ndim)++] = v;
    s = end;
  }
  return SD_OK;
}

int sd_npy_read(const char *path, sd_tensor *out) {
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(path, "rb");
  if (!fp) return sd_fail(SD_E_IO, "cannot open %s: %s", path, strerror(errno));
  unsigned char pre[10];
  int rc = SD_OK;
  char *hdr = NULL;
  if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = sd_fail(SD_E_FORMAT, "%s: not a .npy file", path);
    goto done;
  }
  size_t hlen;
  if (pre[6] == 1) {
    hlen = pre[8] | (size_t)pre[9] << 8;
  } else {
    unsigned char more[2];
    if (fread(more, 1, 2, fp) != 2) { rc = sd_fail(SD_E_FORMAT, "%s: truncated .npy header", path); goto done; }
    hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)more[0] << 16 | (size_t)more[1] << 24;
  }
  if (hlen > NPY_MAX_HEADER) { rc = sd_fail(SD_E_FORMAT, "%s: .npy header too large", path); goto done; }
  hdr = malloc(hlen + 1);
  if (!hdr || fread(hdr, 1, hlen, fp) != hlen) { rc = sd_fail(SD_E_FORMAT, "%s: truncated .npy header", path); goto done; }
  hdr[hlen] = 0;
  int64_t shape[SD_MAX_DIMS];
  int ndim = 0;
  sd_dtype dt = SD_F32;
  if ((rc = parse_header(path, hdr, &dt, &ndim, shape))) goto done;
  *out = sd_tensor_make(dt, ndim, shape, NULL);
  int64_t n = sd_numel(out);
  size_t bytes = (size_t)n * sd_dtype_size(dt);
  out->data = malloc(bytes ? bytes : 1);
  if (!out->data) { rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path); goto done; }
  if (fread(out->data, 1, bytes, fp) != bytes) {
    free(out->data);
    out->data = NULL;
    rc = sd_fail(SD_E_FORMAT, "%s: truncated .npy data (expected %zu bytes)", path, bytes);
  }
done:
  free(hdr);
  fclose(fp);
  return rc;
}

int sd_npy_read_f32(const char *path, sd_tensor *out) {
  int rc = sd_npy_read(path, out);
  if (rc) return rc;
  if (out->dtype == SD_F32) return SD_OK;
  if (!sd_dtype_is_float(out->dtype)) {
    free(out->data);
    out->data = NULL;
    return sd_fail(SD_E_FORMAT, "%s: expected a floating-point array", path);
  }
  int64_t n = sd_numel(out);
  float *f = malloc((size_t)(n ? n : 1) * 4);
  if (!f) { free(out->data); out->data = NULL; return sd_fail(SD_E_NOMEM, "out of memory"); }
  sd_to_f32(f, out->data, out->dtype, (size_t)n);
  free(out->data);
  out->data = f;
  out->dtype = SD_F32;
  return SD_OK;
}

int sd_npy_write(const char *path, const sd_tensor *t) {
  const char *descr = t->dtype == SD_F32 ? "<f4" : t->dtype == SD_I64 ? "<i8" : t->dtype == SD_I32 ? "<i4" : NULL;
  if (!descr) return sd_fail(SD_E_ARG, "cannot write dtype %s to .npy", sd_dtype_name(t->dtype));
  char dict[512];
  int off = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < t->ndim; i++)
    off += snprintf(dict + off, sizeof dict - (size_t)off, "%lld%s", (long long)t->shape[i],
                    (t->ndim == 1 || i < t->ndim - 1) ? ", " : "");
  off += snprintf(dict + off, sizeof dict - (size_t)off, "), }");
  size_t total = 10 + (size_t)off + 1;
  size_t pad = (64 - total % 64) % 64;
  size_t hlen = (size_t)off + pad + 1;
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
  sd_atomic_file af;
  int rc = sd_atomic_open(&af, path);
  if (rc) return rc;
  char spaces[64];
  memset(spaces, ' ', sizeof spaces);
  size_t bytes = (size_t)sd_numel(t) * sd_dtype_size(t->dtype);
  if ((rc = sd_atomic_write(&af, pre, 10)) || (rc = sd_atomic_write(&af, dict, (size_t)off)) ||
      (rc = sd_atomic_write(&af, spaces, pad)) || (rc = sd_atomic_write(&af, "\n", 1)) ||
      (rc = sd_atomic_write(&af, t->data, bytes))) {
    sd_atomic_abort(&af);
    return rc;
  }
  return sd_atomic_commit(&af);
}
