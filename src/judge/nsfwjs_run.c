/* nsfwjs: the activation memory plan, preprocessing and the forward pass over the ops
 * nsfwjs.c built (nsfwjs.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/nsfwjs_internal.h"

/* ---- memory plan ---------------------------------------------------------------------- */

int sd_nsfwjs_plan(sd_nsfwjs *m) {
  const int n = m->n_ops;
  int *last = malloc((size_t)n * sizeof(int)), *slot = malloc((size_t)n * sizeof(int));
  int64_t *cap = calloc((size_t)n, sizeof(int64_t));
  int *busy = calloc((size_t)n, sizeof(int)), ns = 0;
  if (!last || !slot || !cap || !busy) {
    free(last), free(slot), free(cap), free(busy);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++) last[i] = -1, slot[i] = -1;
  for (int i = 0; i < n; i++)
    if (m->ops[i].live)
      for (int k = 0; k < m->ops[i].n_in; k++) last[m->ops[i].in[k]] = i;
  last[m->out_op] = n;
  int64_t col = 0;
  for (int i = 1; i < n; i++) { /* op 0 is the input: the caller's buffer */
    op *o = &m->ops[i];
    if (!o->live) continue;
    int64_t need = (vnumel(o->out) + 15) / 16 * 16;
    int s = -1;
    if (o->kind == OP_AFFINE || o->kind == OP_ACT || o->kind == OP_ADD) /* element-wise: in place */
      for (int k = 0; k < o->n_in && s < 0; k++)
        if (o->in[k] != 0 && last[o->in[k]] == i) s = slot[o->in[k]];
    if (s < 0) { /* best fit among free slots, else grow the largest free one, else a new one */
      int big = -1;
      for (int j = 0; j < ns; j++) {
        if (busy[j]) continue;
        if (cap[j] >= need && (s < 0 || cap[j] < cap[s])) s = j;
        if (big < 0 || cap[j] > cap[big]) big = j;
      }
      if (s < 0) s = big >= 0 ? big : ns++;
      if (cap[s] < need) cap[s] = need;
    }
    slot[i] = s;
    busy[s] = 1;
    for (int k = 0; k < o->n_in; k++) {
      int v = o->in[k];
      if (v != 0 && last[v] == i && slot[v] != s) busy[slot[v]] = 0;
    }
    if (o->kind == OP_CONV && !o->direct) {
      int64_t c = (int64_t)o->tile_rows * o->out.w * o->kh * o->kw * o->ins.c;
      if (c > col) col = c;
    }
  }
  int64_t *base = malloc((size_t)(ns ? ns : 1) * sizeof(int64_t)), off = 0;
  if (!base) {
    free(last), free(slot), free(cap), free(busy);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  for (int j = 0; j < ns; j++) base[j] = off, off += cap[j];
  for (int i = 1; i < n; i++)
    if (m->ops[i].live) m->ops[i].off = base[slot[i]];
  m->col_off = off;
  m->ws_floats = off + (col + 15) / 16 * 16;
  free(base), free(last), free(slot), free(cap), free(busy);
  if (m->ws_floats > WORKSPACE_MAX)
    return sd_fail(SD_E_UNSUPPORTED, "a forward pass would need %.1f GiB of activations (limit %.1f GiB)",
                   (double)m->ws_floats * 4 / 1073741824.0, (double)WORKSPACE_MAX * 4 / 1073741824.0);
  return SD_OK;
}

/* ---- preprocessing -------------------------------------------------------------------- */

int sd_nsfwjs_preprocess(const sd_nsfwjs *m, const uint8_t *rgb, int w, int h, float *x) {
  if (!m || !rgb || !x) return sd_fail(SD_E_ARG, "nsfwjs: NULL argument");
  if (w < 1 || h < 1 || w > MAX_IMAGE || h > MAX_IMAGE)
    return sd_fail(SD_E_ARG, "nsfwjs: image size %dx%d outside [1, %d]", w, h, MAX_IMAGE);
  const int H = m->in_h, W = m->in_w;
  if (h == H && w == W) {
    for (int64_t i = 0; i < (int64_t)H * W * 3; i++) x[i] = (float)rgb[i] / 255.0f;
    return SD_OK;
  }
  /* tf.image.resizeBilinear(img / 255, [H, W], alignCorners = true), TF.js CPU kernel */
  const double ry = H > 1 ? (double)(h - 1) / (H - 1) : (double)h / H;
  const double rx = W > 1 ? (double)(w - 1) / (W - 1) : (double)w / W;
  for (int r = 0; r < H; r++) {
    double fy = ry * r;
    int y0 = (int)floor(fy);
    if (y0 < 0) y0 = 0;
    int y1 = (int)ceil(fy);
    if (y1 > h - 1) y1 = h - 1;
    double dy = fy - y0;
    const uint8_t *top = rgb + (size_t)y0 * w * 3, *bot = rgb + (size_t)y1 * w * 3;
    for (int c = 0; c < W; c++) {
      double fx = rx * c;
      int x0 = (int)floor(fx);
      if (x0 < 0) x0 = 0;
      int x1 = (int)ceil(fx);
      if (x1 > w - 1) x1 = w - 1;
      double dx = fx - x0;
      float *o = x + ((size_t)r * W + c) * 3;
      for (int d = 0; d < 3; d++) {
        double tl = (float)top[x0 * 3 + d] / 255.0f, tr = (float)top[x1 * 3 + d] / 255.0f;
        double bl = (float)bot[x0 * 3 + d] / 255.0f, br = (float)bot[x1 * 3 + d] / 255.0f;
        double t = tl + (tr - tl) * dx, b = bl + (br - bl) * dx;
        o[d] = (float)(t + (b - t) * dy);
      }
    }
  }
  return SD_OK;
}

/* ---- forward -------------------------------------------------------------------------- */

static inline float act1(float v, act_kind a, float mx) {
  if (a == ACT_RELU) {
    v = v > 0 ? v : 0; /* NaN -> 0, as max(x, 0) */
    v = v < mx ? v : mx;
  }
  return v;
}

typedef struct { const op *o; const float *x; float *y; float *col; int r0; const float *in[MAX_IN]; } job;

/* bias + ReLU over rows [r0, r1) of y[rows, C] */
static void epi_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int C = o->out.c;
  const int relu = o->act == ACT_RELU;
  for (int64_t r = r0; r < r1; r++) {
    float *y = j->y + r * C;
    if (o->b)
      for (int c = 0; c < C; c++) y[c] += o->b[c];
    if (relu)
      for (int c = 0; c < C; c++) y[c] = act1(y[c], ACT_RELU, o->relu_max);
  }
}

/* im2col of output rows [j->r0 + a, j->r0 + b): column row p = (oy - r0)·Wo + ox holds
 * x[oy·sh + ky - pt][ox·sw + kx - pl][ci] at (ky·kw + kx)·Cin + ci, zero outside. */
static void im2col_task(void *ctx, int64_t a, int64_t b, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int Cin = o->ins.c, Wo = o->out.w;
  const int64_t K = (int64_t)o->kh * o->kw * Cin;
  for (int64_t rr = a; rr < b; rr++) {
    int oy = j->r0 + (int)rr;
    for (int ox = 0; ox < Wo; ox++) {
      float *d = j->col + (rr * Wo + ox) * K;
      for (int ky = 0; ky < o->kh; ky++) {
        int iy = oy * o->sh + ky - o->pt;
        for (int kx = 0; kx < o->kw; kx++, d += Cin) {
          int ix = ox * o->sw + kx - o->pl;
          if (iy < 0 || iy >= o->ins.h || ix < 0 || ix >= o->ins.w) memset(d, 0, (size_t)Cin * sizeof(float));
          else memcpy(d, j->x + ((int64_t)iy * o->ins.w + ix) * Cin, (size_t)Cin * sizeof(float));
        }
      }
    }
  }
}

static void dw_task(void *ctx, int64_t a, int64_t b, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int Hi = o->ins.h, Wi = o->ins.w, C = o->ins.c, dm = o->dm, Co = o->out.c, Wo = o->out.w;
  for (int64_t oy = a; oy < b; oy++)
    for (int ox = 0; ox < Wo; ox++) {
      float *y = j->y + ((int64_t)oy * Wo + ox) * Co;
      if (o->b) memcpy(y, o->b, (size_t)Co * sizeof(float));
      else memset(y, 0, (size_t)Co * sizeof(float));
      for (int ky = 0; ky < o->kh; ky++) {
        int iy = (int)oy * o->sh + ky - o->pt;
        if (iy < 0 || iy >= Hi) continue;
        for (int kx = 0; kx < o->kw; kx++) {
          int ix = ox * o->sw + kx - o->pl;
          if (ix < 0 || ix >= Wi) continue;
          const float *xp = j->x + ((int64_t)iy * Wi + ix) * C;
          const float *wp = o->w + ((int64_t)ky * o->kw + kx) * Co;
          if (dm == 1)
            for (int c = 0; c < C; c++) y[c] += xp[c] * wp[c];
          else
            for (int c = 0; c < C; c++)
              for (int mm = 0; mm < dm; mm++) y[c * dm + mm] += xp[c] * wp[c * dm + mm];
        }
      }
      if (o->act == ACT_RELU)
        for (int c = 0; c < Co; c++) y[c] = act1(y[c], ACT_RELU, o->relu_max);
    }
}

/* element-wise ops over positions [a, b): affine (x·s + t), act, add */
static void ew_task(void *ctx, int64_t a, int64_t b, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int C = o->out.c;
  for (int64_t p = a; p < b; p++) {
    float *y = j->y + p * C;
    const int64_t base = p * C;
    if (o->kind == OP_AFFINE) {
      const float *x = j->in[0] + base;
      for (int c = 0; c < C; c++) y[c] = act1(x[c] * o->w[c] + o->b[c], o->act, o->relu_max);
    } else if (o->kind == OP_ACT) {
      const float *x = j->in[0] + base;
      for (int c = 0; c < C; c++) y[c] = act1(x[c], o->act, o->relu_max);
    } else { /* OP_ADD: each element read before it is written, so y may alias an input */
      for (int c = 0; c < C; c++) {
        float s = j->in[0][base + c];
        for (int k = 1; k < o->n_in; k++) s += j->in[k][base + c];
        y[c] = act1(s, o->act, o->relu_max);
      }
    }
  }
}

static void pad_task(void *ctx, int64_t a, int64_t b, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int C = o->out.c, Wo = o->out.w, Wi = o->ins.w;
  for (int64_t oy = a; oy < b; oy++) {
    float *y = j->y + oy * Wo * C;
    int64_t iy = oy - o->pt;
    if (iy < 0 || iy >= o->ins.h) { memset(y, 0, (size_t)Wo * C * sizeof(float)); continue; }
    memset(y, 0, (size_t)o->pl * C * sizeof(float));
    memcpy(y + (int64_t)o->pl * C, j->x + iy * Wi * C, (size_t)Wi * C * sizeof(float));
    memset(y + (int64_t)(o->pl + Wi) * C, 0, (size_t)o->pr * C * sizeof(float));
  }
}

static void pool_task(void *ctx, int64_t a, int64_t b, int tid) {
  (void)tid;
  const job *j = ctx;
  const op *o = j->o;
  const int C = o->out.c, Wo = o->out.w, Wi = o->ins.w;
  const float inv = 1.0f / (float)(o->kh * o->kw);
  for (int64_t oy = a; oy < b; oy++)
    for (int ox = 0; ox < Wo; ox++) {
      float *y = j->y + (oy * Wo + ox) * C;
      memset(y, 0, (size_t)C * sizeof(float));
      for (int ky = 0; ky < o->kh; ky++)
        for (int kx = 0; kx < o->kw; kx++) {
          const float *xp = j->x + ((oy * o->sh + ky) * Wi + (int64_t)ox * o->sw + kx) * C;
          for (int c = 0; c < C; c++) y[c] += xp[c];
        }
      for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

static void run_hook(const op *o, const float *y, sd_nsfwjs_hook hook, void *ctx, const char *suffix) {
  if (!hook) return;
  char name[600];
  snprintf(name, sizeof name, "%s%s", o->name, suffix);
  hook(ctx, name, y, o->out.h, o->out.w, o->out.c);
}

static int run_op(const sd_nsfwjs *m, sd_exec *ex, const op *o, float *ws, const float *input, sd_nsfwjs_hook hook,
                  void *hctx) {
  job j;
  memset(&j, 0, sizeof j);
  j.o = o;
  for (int k = 0; k < o->n_in; k++) j.in[k] = o->in[k] == 0 ? input : ws + m->ops[o->in[k]].off;
  j.x = j.in[0];
  j.y = ws + o->off;
  const int64_t P = (int64_t)o->out.h * o->out.w;
  int rc = SD_OK;
  switch (o->kind) {
    case OP_INPUT: break;
    case OP_CONV:
    case OP_DENSE: {
      int64_t K = o->kind == OP_DENSE ? o->ins.c : (int64_t)o->kh * o->kw * o->ins.c;
      int64_t shp[2] = {o->out.c, K};
      sd_tensor Wt = sd_tensor_make(SD_F32, 2, shp, o->w);
      if (o->kind == OP_DENSE || o->direct) {
        rc = sd_op_linear(ex, j.x, P, K, &Wt, NULL, j.y);
      } else {
        j.col = ws + m->col_off;
        for (int r0 = 0; r0 < o->out.h && !rc; r0 += o->tile_rows) {
          int nr = o->out.h - r0 < o->tile_rows ? o->out.h - r0 : o->tile_rows;
          j.r0 = r0;
          sd_parallel_for(ex->pool, nr, 1, im2col_task, &j);
          rc = sd_op_linear(ex, j.col, (int64_t)nr * o->out.w, K, &Wt, NULL, j.y + (int64_t)r0 * o->out.w * o->out.c);
        }
      }
      if (rc) return rc;
      if (o->b || o->act == ACT_RELU) sd_parallel_for(ex->pool, P, 64, epi_task, &j);
      if (o->act == ACT_SOFTMAX) {
        run_hook(o, j.y, hook, hctx, "/logits");
        sd_op_softmax(ex, j.y, P, o->out.c);
      }
      break;
    }
    case OP_DW: sd_parallel_for(ex->pool, o->out.h, 1, dw_task, &j); break;
    case OP_AFFINE:
    case OP_ACT:
    case OP_ADD: sd_parallel_for(ex->pool, P, 256, ew_task, &j); break;
    case OP_PAD: sd_parallel_for(ex->pool, o->out.h, 4, pad_task, &j); break;
    case OP_AVGPOOL: sd_parallel_for(ex->pool, o->out.h, 1, pool_task, &j); break;
  }
  run_hook(o, o->kind == OP_INPUT ? input : j.y, hook, hctx, "");
  return SD_OK;
}

int sd_nsfwjs_forward(const sd_nsfwjs *m, sd_exec *ex, const float *x, float probs[SD_NSFWJS_CLASSES],
                      sd_nsfwjs_hook hook, void *ctx) {
  if (!m || !ex || !x || !probs) return sd_fail(SD_E_ARG, "nsfwjs: NULL argument");
  float *ws = NULL;
  size_t bytes = sd_nsfwjs_workspace_bytes(m);
  if (posix_memalign((void **)&ws, 64, bytes ? bytes : 64)) return sd_fail(SD_E_NOMEM, "nsfwjs: out of memory (%zu bytes)", bytes);
  int rc = SD_OK;
  for (int i = 0; i < m->n_ops && !rc; i++)
    if (m->ops[i].live) rc = run_op(m, ex, &m->ops[i], ws, x, hook, ctx);
  if (!rc) memcpy(probs, ws + m->ops[m->out_op].off, SD_NSFWJS_CLASSES * sizeof(float));
  free(ws);
  return rc ? sd_fail_prefix(rc, "nsfwjs: ") : SD_OK;
}

int sd_nsfwjs_classify(const sd_nsfwjs *m, sd_exec *ex, const uint8_t *rgb, int w, int h,
                       float probs[SD_NSFWJS_CLASSES]) {
  if (!m) return sd_fail(SD_E_ARG, "nsfwjs: NULL model");
  float *x = malloc((size_t)m->in_h * m->in_w * 3 * sizeof(float));
  if (!x) return sd_fail(SD_E_NOMEM, "nsfwjs: out of memory");
  int rc = sd_nsfwjs_preprocess(m, rgb, w, h, x);
  if (!rc) rc = sd_nsfwjs_forward(m, ex, x, probs, NULL, NULL);
  free(x);
  return rc;
}
