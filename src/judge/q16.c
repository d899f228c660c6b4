#include "judge/q16.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/tensor.h"

struct sd_q16 {
  int dim;
  float *p;        /* [2, dim] as given */
  double *unit;    /* [2, dim] normalised, double */
};

void sd_q16_free(sd_q16 *q) {
  if (!q) return;
  free(q->p);
  free(q->unit);
  free(q);
}

static int make(const float *prompts, int dim, const char *label, sd_q16 **out) {
  *out = NULL;
  if (dim < 1 || dim > SD_Q16_MAX_DIM)
    return sd_fail(SD_E_FORMAT, "%s: prompt dimension %d (1..%d)", label, dim, SD_Q16_MAX_DIM);
  for (int r = 0; r < 2; r++) {
    double s = 0;
    for (int i = 0; i < dim; i++) {
      float v = prompts[(size_t)r * dim + i];
      if (!isfinite(v)) return sd_fail(SD_E_FORMAT, "%s: row %d, value %d is not finite", label, r, i);
      s += (double)v * v;
    }
    if (!(s > 0)) return sd_fail(SD_E_FORMAT, "%s: prompt row %d is zero", label, r);
  }
  sd_q16 *q = calloc(1, sizeof *q);
  if (q) {
    q->p = malloc((size_t)2 * dim * sizeof(float));
    q->unit = malloc((size_t)2 * dim * sizeof(double));
  }
  if (!q || !q->p || !q->unit) {
    sd_q16_free(q);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  q->dim = dim;
  memcpy(q->p, prompts, (size_t)2 * dim * sizeof(float));
  for (int r = 0; r < 2; r++) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)prompts[(size_t)r * dim + i] * prompts[(size_t)r * dim + i];
    double inv = 1.0 / sqrt(s);
    for (int i = 0; i < dim; i++) q->unit[(size_t)r * dim + i] = prompts[(size_t)r * dim + i] * inv;
  }
  *out = q;
  return SD_OK;
}

int sd_q16_create(const float *prompts, int dim, sd_q16 **out) {
  if (!prompts) return sd_fail(SD_E_ARG, "Q16: NULL prompts");
  return make(prompts, dim, "Q16 prompts", out);
}

int sd_q16_load(const char *path, sd_q16 **out) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return sd_fail(SD_E_IO, "%s: not a regular file", path);
  long long size = (long long)st.st_size;
  if (size <= 0 || size % 8 != 0 || size / 8 > SD_Q16_MAX_DIM)
    return sd_fail(SD_E_FORMAT,
                   "%s: %lld bytes is not a Q16 prompt file (raw float32 [2, d]: a positive multiple of 8 bytes, "
                   "d <= %d; the ViT-L/14 file has 6144)",
                   path, size, SD_Q16_MAX_DIM);
  int dim = (int)(size / 8);
  unsigned char *raw = malloc((size_t)size);
  float *v = malloc((size_t)2 * dim * sizeof(float));
  FILE *f = fopen(path, "rb");
  int rc = SD_OK;
  if (!raw || !v) rc = sd_fail(SD_E_NOMEM, "out of memory");
  else if (!f) rc = sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  else if (fread(raw, 1, (size_t)size, f) != (size_t)size) rc = sd_fail(SD_E_IO, "%s: short read", path);
  if (f) fclose(f);
  if (rc == SD_OK) {
    sd_to_f32(v, raw, SD_F32, (size_t)2 * dim); /* little-endian float32 (the host order here) */
    rc = make(v, dim, path, out);
  }
  free(raw);
  free(v);
  return rc;
}

int sd_q16_dim(const sd_q16 *q) { return q->dim; }
const float *sd_q16_prompts(const sd_q16 *q) { return q->p; }

int sd_q16_classify(const sd_q16 *q, const float *embeds, int n, int dim, sd_q16_result *out) {
  if (dim != q->dim)
    return sd_fail(SD_E_ARG, "Q16: image embeddings have %d values, the prompt vectors %d (CLIP model and Q16 prompts do not match)",
                   dim, q->dim);
  if (n < 0 || (n > 0 && (!embeds || !out))) return sd_fail(SD_E_ARG, "Q16: bad arguments");
  for (int b = 0; b < n; b++) {
    const float *e = embeds + (size_t)b * dim;
    double ee = 0, d0 = 0, d1 = 0;
    for (int i = 0; i < dim; i++) {
      ee += (double)e[i] * e[i];
      d0 += e[i] * q->unit[i];
      d1 += e[i] * q->unit[(size_t)dim + i];
    }
    if (!(ee > 0) || !isfinite(ee)) return sd_fail(SD_E_ARG, "Q16: image embedding %d is zero or not finite", b);
    double inv = 1.0 / sqrt(ee);
    sd_q16_result *r = &out[b];
    r->sim[0] = SD_Q16_SCALE * d0 * inv;
    r->sim[1] = SD_Q16_SCALE * d1 * inv;
    r->p_inappropriate = 1.0 / (1.0 + exp(r->sim[0] - r->sim[1]));
    r->inappropriate = r->sim[1] > r->sim[0];
  }
  return SD_OK;
}
