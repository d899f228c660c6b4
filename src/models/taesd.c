/* TAESD decoder (models/taesd.h). */
#include "models/taesd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/safetensors.h"

#define MAX_MODULES 64

typedef struct {
  const sd_tensor *w;
  float *b; /* float32 bias or NULL */
  sd_tensor wt;
} tconv;

typedef enum { M_CONV, M_RELU, M_BLOCK, M_UP } mkind;

typedef struct {
  mkind kind;
  tconv c[3];     /* M_CONV: c[0]; M_BLOCK: the three convolutions */
  tconv skip;     /* M_BLOCK with a channel change: 1x1, no bias (w NULL: identity) */
  int cin, cout;
} module;

struct sd_taesd {
  sd_safetensors *st;
  module m[MAX_MODULES];
  int n, zc, factor, width;
};

static void conv_free(tconv *c) { free(c->b); }

void sd_taesd_free(sd_taesd *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) {
    for (int k = 0; k < 3; k++) conv_free(&t->m[i].c[k]);
    conv_free(&t->m[i].skip);
  }
  sd_st_close(t->st);
  free(t);
}

int sd_taesd_latent_channels(const sd_taesd *t) { return t->zc; }
int sd_taesd_factor(const sd_taesd *t) { return t->factor; }

/* "<prefix><index>.<rest>" of module i */
static const sd_st_entry *find(const sd_taesd *t, const char *prefix, int i, const char *rest) {
  char name[160];
  snprintf(name, sizeof name, "%s%d.%s", prefix, i, rest);
  return sd_st_find(t->st, name);
}

/* A 3x3 (k = 3) or 1x1 convolution from entries w (and b); cin/cout from the shape. */
static int load_conv(sd_taesd *t, const sd_st_entry *w, const sd_st_entry *b, int k, tconv *c, int *cin, int *cout) {
  if (!w || w->ndim != 4 || w->shape[2] != k || w->shape[3] != k || w->shape[0] < 1 || w->shape[0] > 4096 ||
      w->shape[1] < 1 || w->shape[1] > 4096 || !sd_dtype_is_float(w->dtype))
    return sd_fail(SD_E_FORMAT, "TAESD %s: %s is not a %dx%d convolution weight", t->st->path, w ? w->name : "a weight", k, k);
  c->wt = sd_st_tensor(w);
  c->w = &c->wt;
  *cout = (int)w->shape[0], *cin = (int)w->shape[1];
  if (b) {
    if (b->ndim != 1 || b->shape[0] != w->shape[0] || !sd_dtype_is_float(b->dtype))
      return sd_fail(SD_E_FORMAT, "TAESD %s: %s does not fit its weight", t->st->path, b->name);
    if (!(c->b = malloc(sizeof(float) * (size_t)*cout))) return sd_fail(SD_E_NOMEM, "out of memory");
    sd_to_f32(c->b, b->data, b->dtype, (size_t)*cout);
  }
  return SD_OK;
}

int sd_taesd_open(const char *path, sd_taesd **out) {
  *out = NULL;
  char file[4096];
  struct stat sb;
  if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) {
    if (snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", path) >= (int)sizeof file)
      return sd_fail(SD_E_ARG, "TAESD: path too long");
    if (stat(file, &sb) && snprintf(file, sizeof file, "%s/vae/diffusion_pytorch_model.safetensors", path) >= (int)sizeof file)
      return sd_fail(SD_E_ARG, "TAESD: path too long");
  } else {
    snprintf(file, sizeof file, "%s", path);
  }
  sd_taesd *t = calloc(1, sizeof *t);
  if (!t) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_st_open(file, &t->st);
  if (rc) { free(t); return sd_fail_prefix(rc, "TAESD: "); }
  /* taesd's Sequential starts with the clamp (module 0, no weights); diffusers' layers with
   * the first convolution */
  const char *prefix = sd_st_find(t->st, "1.weight") ? "" : sd_st_find(t->st, "decoder.layers.0.weight") ? "decoder.layers." : NULL;
  if (!prefix) {
    sd_taesd_free(t);
    return sd_fail(SD_E_FORMAT, "TAESD %s: neither a taesd decoder (1.weight) nor a diffusers AutoencoderTiny "
                   "(decoder.layers.0.weight)", file);
  }
  int first = *prefix ? 0 : 1, ch = 0, ups = 0, last_conv = -1;
  for (int i = first; i < first + MAX_MODULES && rc == SD_OK; i++) {
    module *m = &t->m[t->n];
    const sd_st_entry *w = find(t, prefix, i, "weight"), *cw = find(t, prefix, i, "conv.0.weight");
    if (w) { /* a convolution (after an upsample: no bias) */
      rc = load_conv(t, w, find(t, prefix, i, "bias"), 3, &m->c[0], &m->cin, &m->cout);
      if (rc == SD_OK && ch && m->cin != ch)
        rc = sd_fail(SD_E_FORMAT, "TAESD %s: module %d takes %d channels after %d", file, i, m->cin, ch);
      m->kind = M_CONV;
      if (rc == SD_OK && ch == 0) t->zc = m->cin;
      ch = m->cout;
      last_conv = t->n;
      t->n++;
      /* the module after the first convolution is a ReLU (no weights) */
      if (i == first) { t->m[t->n].kind = M_RELU; t->n++; i++; }
    } else if (cw) {
      int a, b;
      m->kind = M_BLOCK;
      for (int k = 0; k < 3 && rc == SD_OK; k++) {
        char rest[32], rb[32];
        snprintf(rest, sizeof rest, "conv.%d.weight", 2 * k);
        snprintf(rb, sizeof rb, "conv.%d.bias", 2 * k);
        rc = load_conv(t, find(t, prefix, i, rest), find(t, prefix, i, rb), 3, &m->c[k], &a, &b);
        if (rc == SD_OK && k == 0) m->cin = a, m->cout = b;
        if (rc == SD_OK && k > 0 && (a != m->cout || b != m->cout))
          rc = sd_fail(SD_E_FORMAT, "TAESD %s: block %d's convolutions do not chain", file, i);
      }
      const sd_st_entry *sk = find(t, prefix, i, "skip.weight");
      if (rc == SD_OK && sk) rc = load_conv(t, sk, NULL, 1, &m->skip, &a, &b);
      if (rc == SD_OK && !sk && m->cin != m->cout)
        rc = sd_fail(SD_E_FORMAT, "TAESD %s: block %d changes channels without a skip convolution", file, i);
      if (rc == SD_OK && m->cin != ch) rc = sd_fail(SD_E_FORMAT, "TAESD %s: block %d takes %d channels after %d", file, i, m->cin, ch);
      ch = m->cout;
      t->n++;
    } else if (find(t, prefix, i + 1, "weight")) { /* no weights, a convolution next: the upsample */
      m->kind = M_UP;
      ups++;
      t->n++;
    } else {
      break; /* the end */
    }
  }
  t->factor = 1 << ups;
  if (rc == SD_OK && (last_conv < 0 || t->m[last_conv].cout != 3 || t->zc < 1 || t->zc > 16 || ups < 1 || ups > 4 ||
                      t->n < 4 || last_conv != t->n - 1))
    rc = sd_fail(SD_E_FORMAT, "TAESD %s: not a decoder from latents to 3 channels (%d modules, %d upsamplings)", file, t->n, ups);
  if (rc) { sd_taesd_free(t); return rc; }
  *out = t;
  return SD_OK;
}

static void relu(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

static int conv3(sd_exec *ex, const tconv *c, int cin, const float *x, int H, int W, float *y) {
  sd_conv2d_shape s = {cin, H, W, 1, 1, 1, 1, 1};
  return sd_op_conv2d(ex, &s, x, c->w, c->b, y);
}

int sd_taesd_decode(sd_taesd *t, sd_exec *ex, const float *latents, int h, int w, float *image) {
  if (h < 1 || w < 1 || (int64_t)h * t->factor * w * t->factor > (int64_t)2048 * 2048)
    return sd_fail(SD_E_ARG, "TAESD: cannot decode a %dx%d latent (images up to 2048x2048 pixels)", h, w);
  int maxc = t->zc;
  for (int i = 0; i < t->n; i++) maxc = t->m[i].cout > maxc ? t->m[i].cout : maxc;
  const size_t cap = (size_t)maxc * (size_t)(h * t->factor) * (size_t)(w * t->factor);
  float *a = malloc(sizeof(float) * cap), *b = malloc(sizeof(float) * cap), *c = malloc(sizeof(float) * cap);
  int rc = SD_OK;
  if (!a || !b || !c) { rc = sd_fail(SD_E_NOMEM, "TAESD: out of memory for a %dx%d latent", h, w); goto done; }
  int C = t->zc, H = h, W = w;
  for (size_t i = 0; i < (size_t)C * H * W; i++) a[i] = tanhf(latents[i] / 3.0f) * 3.0f;
  for (int i = 0; i < t->n && rc == SD_OK; i++) {
    const module *m = &t->m[i];
    const size_t HW = (size_t)H * W;
    switch (m->kind) {
      case M_CONV:
        if ((rc = conv3(ex, &m->c[0], C, a, H, W, b))) break;
        C = m->cout;
        { float *s = a; a = b; b = s; }
        break;
      case M_RELU: relu(a, (size_t)C * HW); break;
      case M_UP:
        sd_op_upsample2x(ex, a, C, H, W, b);
        H *= 2, W *= 2;
        { float *s = a; a = b; b = s; }
        break;
      case M_BLOCK: /* b = conv(relu(conv(relu(conv(a))))); c = skip(a); a = relu(b + c) */
        if ((rc = conv3(ex, &m->c[0], C, a, H, W, b))) break;
        relu(b, (size_t)m->cout * HW);
        if ((rc = conv3(ex, &m->c[1], m->cout, b, H, W, c))) break;
        relu(c, (size_t)m->cout * HW);
        if ((rc = conv3(ex, &m->c[2], m->cout, c, H, W, b))) break;
        if (m->skip.w) {
          sd_conv2d_shape s = {C, H, W, 1, 0, 0, 0, 0};
          if ((rc = sd_op_conv2d(ex, &s, a, m->skip.w, NULL, c))) break;
          for (size_t k = 0; k < (size_t)m->cout * HW; k++) b[k] += c[k];
        } else {
          for (size_t k = 0; k < (size_t)m->cout * HW; k++) b[k] += a[k];
        }
        relu(b, (size_t)m->cout * HW);
        C = m->cout;
        { float *s = a; a = b; b = s; }
        break;
    }
  }
  if (rc == SD_OK)
    for (size_t i = 0; i < (size_t)3 * H * W; i++) image[i] = a[i] * 2.0f - 1.0f; /* [0,1] -> the VAE's range */
done:
  free(a);
  free(b);
  free(c);
  return rc ? sd_fail_prefix(rc, "TAESD decode: ") : SD_OK;
}
