/* Image ops for the UNet and the VAE: 2-D convolution, GroupNorm (+SiLU), nearest 2×
 * upsampling, transpose, GEGLU. Declared at the end of core/ops.h.
 *
 * Convolution is im2col + one SGEMM per tile of output positions: the column buffer holds
 * K = C·kh·kw rows of (tile rows × Wo) values, capped at CONV_COL_CAP floats (16 MiB; when
 * not even one output row fits, a tile is part of one row), so scratch stays bounded at any
 * image size (the VAE's 512×512×128 convolutions included). A 1×1, stride-1, unpadded convolution is a single GEMM on the
 * input itself. The stored weight is widened with sd_weight_f32; an F32 weight is used in
 * place, so a caller that convolves several images with one F16 weight can widen it once
 * and pass an F32 view.
 *
 * Every op splits its work with sd_parallel_for into chunks whose bounds depend only on
 * the sizes and the thread count, and each output value is computed by one thread in a
 * fixed order, so results are deterministic for a given thread count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/ops_internal.h"

/* ---- conv2d --------------------------------------------------------------------------- */

#define CONV_COL_CAP ((int64_t)4 << 20) /* floats in the im2col tile (16 MiB) */

/* A tile of output positions: rows [r0, r0+nr) × columns [c0, c0+nc); either whole rows
 * (nc == Wo) or part of one row (nr == 1), so that each output channel's part of the tile
 * is one contiguous run of y. */
typedef struct {
  const sd_conv2d_shape *s;
  const float *x;
  float *col;
  int kh, kw, Wo;
  int r0, nr, c0, nc;
  int64_t ncol; /* nr * nc: the length of one column-buffer row */
} im2col_job;

/* Fill rows [k0, k1) of the column buffer: row k = (c, i, j) holds x[c][oy·s + i - pad_t]
 * [ox·s + j - pad_l] for the tile's output positions (oy, ox), zero outside the image. */
static void im2col_task(void *ctx, int64_t k0, int64_t k1, int tid) {
  (void)tid;
  const im2col_job *jb = ctx;
  const sd_conv2d_shape *s = jb->s;
  const int st = s->stride, c0 = jb->c0, ce = jb->c0 + jb->nc;
  for (int64_t k = k0; k < k1; k++) {
    int j = (int)(k % jb->kw), i = (int)(k / jb->kw % jb->kh), c = (int)(k / ((int64_t)jb->kw * jb->kh));
    const float *xc = jb->x + (int64_t)c * s->H * s->W;
    float *dst = jb->col + k * jb->ncol;
    /* output columns whose input column ox·st + off lies inside [0, W), clipped to the tile */
    int off = j - s->pad_l;
    int ox0 = off >= 0 ? 0 : (-off + st - 1) / st;
    int ox1 = s->W - 1 - off < 0 ? 0 : (s->W - 1 - off) / st + 1; /* exclusive */
    ox0 = ox0 < c0 ? c0 : ox0 > ce ? ce : ox0;
    ox1 = ox1 < c0 ? c0 : ox1 > ce ? ce : ox1;
    if (ox0 > ox1) ox0 = ox1; /* no valid column in the tile */
    for (int r = 0; r < jb->nr; r++) {
      int iy = (jb->r0 + r) * st + i - s->pad_t;
      float *d = dst + (int64_t)r * jb->nc; /* d[ox - c0] for ox in [c0, ce) */
      if (iy < 0 || iy >= s->H) {
        memset(d, 0, (size_t)jb->nc * sizeof(float));
        continue;
      }
      const float *xr = xc + (int64_t)iy * s->W; /* input column of ox: ox·st + off */
      for (int ox = c0; ox < ox0; ox++) d[ox - c0] = 0;
      if (st == 1) {
        if (ox1 > ox0) memcpy(d + (ox0 - c0), xr + ox0 + off, (size_t)(ox1 - ox0) * sizeof(float));
      } else {
        for (int ox = ox0; ox < ox1; ox++) d[ox - c0] = xr[(int64_t)ox * st + off];
      }
      for (int ox = ox1; ox < ce; ox++) d[ox - c0] = 0;
    }
  }
}

typedef struct { float *y; const float *b; int64_t ld, off, n; } conv_bias_job;

static void conv_bias_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  const conv_bias_job *j = ctx;
  for (int64_t c = c0; c < c1; c++) {
    float *row = j->y + c * j->ld + j->off;
    float v = j->b[c];
    for (int64_t i = 0; i < j->n; i++) row[i] = v;
  }
}

static int conv2d_blas(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo,
                       const float *x, const sd_tensor *W, const float *b, float *y);

/* Whether a convolution runs safesd's own Winograd kernel (core/ops_wino.c): fp32 3×3
 * stride-1 convolutions on CPUs with AVX2, with the oneDNN backend (SAFESD_BACKEND=blas keeps
 * im2col + sgemm); SD_WINO_ON: every such convolution, SD_WINO_AUTO: those with at least
 * SD_WINO_OWN_MIN_PIXELS output pixels and SD_WINO_OWN_MIN_CHANNELS channels in and out,
 * where it beats oneDNN's direct kernels (docs/performance.md). The others go to oneDNN, whose
 * own Winograd kernel (AVX-512 only) may still take them (core/ops_dnnl.c). */
static int own_winograd(const sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo) {
  if (kh != 3 || kw != 3 || s->stride != 1 || ex->precision != SD_PREC_FP32 || !ex->use_avx2 ||
      ex->backend != SD_BACKEND_DNNL || ex->conv_winograd == SD_WINO_OFF)
    return 0;
  return ex->conv_winograd == SD_WINO_ON || ((int64_t)Ho * Wo >= SD_WINO_OWN_MIN_PIXELS &&
                                              s->C >= SD_WINO_OWN_MIN_CHANNELS && Cout >= SD_WINO_OWN_MIN_CHANNELS);
}

/* Whether a convolution runs as im2row + the own AVX2 matrix product (core/ops_conv_gemm.c). */
static int own_gemm_conv(const sd_exec *ex, int Cout, int Ho, int Wo) {
  if (ex->precision != SD_PREC_FP32 || !ex->use_avx2 || ex->backend != SD_BACKEND_DNNL || ex->conv_gemm == SD_WINO_OFF)
    return 0;
  return ex->conv_gemm == SD_WINO_ON || (ex->matmul_own && (int64_t)Ho * Wo <= 256 && Cout >= 64);
}

int sd_op_conv2d(sd_exec *ex, const sd_conv2d_shape *s, const float *x, const sd_tensor *W,
                 const float *b, float *y) {
  char buf[96];
  if (W->ndim != 4 || W->shape[0] <= 0 || W->shape[1] != s->C || W->shape[2] <= 0 || W->shape[3] <= 0 ||
      W->shape[0] > INT32_MAX || W->shape[2] > 64 || W->shape[3] > 64)
    return sd_fail(SD_E_FORMAT, "conv2d: weight of shape %s does not take %d input channels",
                   sd_shape_str(W, buf, sizeof buf), s->C);
  if (s->C <= 0 || s->H <= 0 || s->W <= 0 || s->stride <= 0 || s->pad_t < 0 || s->pad_l < 0 ||
      s->pad_b < 0 || s->pad_r < 0)
    return sd_fail(SD_E_ARG, "conv2d: bad shape (C %d, H %d, W %d, stride %d, pad %d/%d/%d/%d)", s->C, s->H,
                   s->W, s->stride, s->pad_t, s->pad_l, s->pad_b, s->pad_r);
  const int Cout = (int)W->shape[0], kh = (int)W->shape[2], kw = (int)W->shape[3];
  const int64_t Hp = (int64_t)s->H + s->pad_t + s->pad_b, Wp = (int64_t)s->W + s->pad_l + s->pad_r;
  if (Hp < kh || Wp < kw)
    return sd_fail(SD_E_ARG, "conv2d: a %dx%d kernel does not fit a padded %lldx%lld image", kh, kw,
                   (long long)Hp, (long long)Wp);
  const int Ho = (int)((Hp - kh) / s->stride + 1), Wo = (int)((Wp - kw) / s->stride + 1);
  const int64_t K = (int64_t)s->C * kh * kw, HWo = (int64_t)Ho * Wo;
  if (K > INT32_MAX || HWo > INT32_MAX) return sd_fail(SD_E_ARG, "conv2d: image or kernel too large");
  if (!sd_dtype_is_float(W->dtype))
    return sd_fail(SD_E_FORMAT, "conv2d: weight has dtype %s; a floating-point type is needed", sd_dtype_name(W->dtype));
  const double flops = 2.0 * Cout * K * (double)HWo;
  SD_PROF_BEGIN(ex);
  int rc = SD_E_UNSUPPORTED, wino = 0;
  if (own_winograd(ex, s, Cout, kh, kw, Ho, Wo)) wino = (rc = sd_wino_conv2d(ex, s, Cout, Ho, Wo, x, W, b, y)) != SD_E_UNSUPPORTED;
  if (rc == SD_E_UNSUPPORTED && own_gemm_conv(ex, Cout, Ho, Wo)) {
    rc = sd_conv2d_gemm(ex, s, Cout, kh, kw, Ho, Wo, x, W, b, y);
    wino = rc != SD_E_UNSUPPORTED ? 2 : 0;
  }
  if (rc == SD_E_UNSUPPORTED && ex->backend == SD_BACKEND_DNNL) rc = sd_dnnl_conv2d(ex, s, Cout, kh, kw, Ho, Wo, x, W, b, y);
  if (rc != SD_E_UNSUPPORTED) {
    SD_PROF_END(ex, SD_OPC_CONV, flops);
    if (ex->prof.on > 1)
      fprintf(stderr, "conv %d->%d %dx%d k%d s%d%s: %.2f ms\n", s->C, Cout, s->H, s->W, kh, s->stride,
              wino == 1 ? " (Winograd)" : wino == 2 ? " (own gemm)" : "", (sd_prof_now() - sd_prof_t0_) * 1e3);
    return rc;
  }
  rc = conv2d_blas(ex, s, Cout, kh, kw, Ho, Wo, x, W, b, y);
  SD_PROF_END(ex, SD_OPC_CONV, flops);
  return rc;
}

/* im2col + OpenBLAS sgemm: the fallback path (SAFESD_BACKEND=blas, or a shape oneDNN refuses). */
static int conv2d_blas(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo,
                       const float *x, const sd_tensor *W, const float *b, float *y) {
  const int64_t K = (int64_t)s->C * kh * kw, HWo = (int64_t)Ho * Wo;
  const float *w = sd_weight_f32(ex, W);
  if (!w) return sd_fail_prefix(SD_E_FORMAT, "conv2d: ");

  const int direct = kh == 1 && kw == 1 && s->stride == 1 && s->pad_t == 0 && s->pad_l == 0 &&
                     s->pad_b == 0 && s->pad_r == 0;
  if (direct) { /* 1×1: y[Cout, HW] = W[Cout, C] · x[C, HW] */
    if (b) {
      conv_bias_job bj = {y, b, HWo, 0, HWo};
      sd_parallel_for(ex->pool, Cout, 1, conv_bias_task, &bj);
    }
    sd_sgemm(ex, 0, Cout, (int)HWo, (int)K, w, (int)K, x, (int)HWo, b ? 1.0f : 0.0f, y, (int)HWo);
    return SD_OK;
  }

  /* tiles: as many whole output rows as fit CONV_COL_CAP; if not even one row fits, parts of
   * one row (at least one column) */
  int64_t rows = CONV_COL_CAP / (K * Wo), cols = Wo;
  if (rows < 1) {
    rows = 1;
    cols = CONV_COL_CAP / K;
    if (cols < 1) cols = 1;
  }
  if (rows > Ho) rows = Ho;
  float *col = malloc((size_t)(K * rows * cols) * sizeof(float));
  if (!col) return sd_fail(SD_E_NOMEM, "conv2d: out of memory for a %lld-value column tile", (long long)(K * rows * cols));
  for (int r0 = 0; r0 < Ho; r0 += (int)rows) {
    int nr = Ho - r0 < rows ? Ho - r0 : (int)rows;
    for (int c0 = 0; c0 < Wo; c0 += (int)cols) {
      int nc = Wo - c0 < cols ? Wo - c0 : (int)cols;
      int64_t n = (int64_t)nr * nc, off = (int64_t)r0 * Wo + c0;
      im2col_job jb = {s, x, col, kh, kw, Wo, r0, nr, c0, nc, n};
      sd_parallel_for(ex->pool, K, 1, im2col_task, &jb);
      if (b) {
        conv_bias_job bj = {y, b, HWo, off, n};
        sd_parallel_for(ex->pool, Cout, 1, conv_bias_task, &bj);
      }
      sd_sgemm(ex, 0, Cout, (int)n, (int)K, w, (int)K, col, (int)n, b ? 1.0f : 0.0f, y + off, (int)HWo);
    }
  }
  free(col);
  return SD_OK;
}

/* ---- group norm ----------------------------------------------------------------------- */

typedef struct {
  const float *x;
  float *y;
  int C, groups, silu, avx2;
  int64_t HW;
  const float *gamma, *beta;
  float eps;
  double *mean, *rstd; /* per group */
} gn_job;

/* Two-pass statistics in double: exact enough to match PyTorch within 1e-5 on groups of
 * millions of values (the VAE's 512×512 × 4-channel groups). */
static void gn_stats_task(void *ctx, int64_t g0, int64_t g1, int tid) {
  (void)tid;
  gn_job *j = ctx;
  int64_t n = (int64_t)(j->C / j->groups) * j->HW;
  for (int64_t g = g0; g < g1; g++) {
    const float *p = j->x + g * n;
    double mean, v;
    if (j->avx2) { /* corrected two-pass: Σ(x - m)² - (Σ(x - m))²/n */
      double s1, s2, d1, d2;
      sd_avx2_moments(p, n, 0.0f, &s1, &s2);
      mean = s1 / (double)n;
      sd_avx2_moments(p, n, (float)mean, &d1, &d2);
      v = (d2 - d1 * d1 / (double)n) / (double)n;
      if (v < 0) v = 0;
    } else {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += p[i];
      mean = s / (double)n;
      v = 0;
      for (int64_t i = 0; i < n; i++) { double d = p[i] - mean; v += d * d; }
      v /= (double)n;
    }
    j->mean[g] = mean;
    j->rstd[g] = 1.0 / sqrt(v + (double)j->eps);
  }
}

static void gn_apply_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  gn_job *j = ctx;
  int cg = j->C / j->groups;
  for (int64_t c = c0; c < c1; c++) {
    int64_t g = c / cg;
    double sc = j->rstd[g] * (double)j->gamma[c];
    float scale = (float)sc, shift = (float)((double)j->beta[c] - j->mean[g] * sc);
    const float *p = j->x + c * j->HW;
    float *q = j->y + c * j->HW;
    if (j->avx2) {
      sd_avx2_affine(p, q, j->HW, scale, shift, j->silu);
    } else if (j->silu) {
      for (int64_t i = 0; i < j->HW; i++) {
        float v = p[i] * scale + shift;
        q[i] = v / (1.0f + expf(-v));
      }
    } else {
      for (int64_t i = 0; i < j->HW; i++) q[i] = p[i] * scale + shift;
    }
  }
}

void sd_op_groupnorm(sd_exec *ex, const float *x, int C, int64_t HW, int groups, const float *gamma,
                     const float *beta, float eps, int silu, float *y) {
  if (C <= 0 || HW <= 0 || groups <= 0 || C % groups != 0) return; /* callers check the config */
  double stack[2 * 64], *st = stack;
  if (groups > 64) {
    st = malloc(sizeof(double) * 2 * (size_t)groups);
    if (!st) { /* tiny allocation; fall back to a serial computation one group at a time */
      for (int g = 0; g < groups; g++) {
        int cg = C / groups;
        double m, r;
        gn_job j = {x + (int64_t)g * cg * HW, y + (int64_t)g * cg * HW, cg, 1, silu, ex->use_avx2, HW, gamma + (int64_t)g * cg,
                    beta + (int64_t)g * cg, eps, &m, &r};
        gn_stats_task(&j, 0, 1, 0);
        gn_apply_task(&j, 0, cg, 0);
      }
      return;
    }
  }
  gn_job j = {x, y, C, groups, silu, ex->use_avx2, HW, gamma, beta, eps, st, st + groups};
  SD_PROF_BEGIN(ex);
  sd_parallel_for(ex->pool, groups, 1, gn_stats_task, &j);
  sd_parallel_for(ex->pool, C, 1, gn_apply_task, &j);
  SD_PROF_END(ex, SD_OPC_NORM, 0);
  if (st != stack) free(st);
}

/* ---- upsample, transpose, GEGLU ------------------------------------------------------- */

typedef struct { const float *x; float *y; int H, W; } up_job;

static void up_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  const up_job *j = ctx;
  const int W = j->W;
  for (int64_t r = r0; r < r1; r++) { /* input row r = (c, iy) -> output rows 2r, 2r+1 */
    const float *src = j->x + r * W;
    float *d0 = j->y + 2 * r * 2 * W, *d1 = d0 + 2 * W;
    for (int i = 0; i < W; i++) d0[2 * i] = d0[2 * i + 1] = src[i];
    memcpy(d1, d0, (size_t)(2 * W) * sizeof(float));
  }
}

void sd_op_upsample2x(sd_exec *ex, const float *x, int C, int H, int W, float *y) {
  up_job j = {x, y, H, W};
  SD_PROF_BEGIN(ex);
  sd_parallel_for(ex->pool, (int64_t)C * H, 64, up_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}

#define TR_BLK 32

typedef struct { const float *x; float *y; int64_t rows, cols; } tr_job;

/* Output rows (= input columns) in blocks [b0, b1) of TR_BLK. */
static void tr_task(void *ctx, int64_t b0, int64_t b1, int tid) {
  (void)tid;
  const tr_job *j = ctx;
  for (int64_t cb = b0 * TR_BLK; cb < b1 * TR_BLK && cb < j->cols; cb += TR_BLK) {
    int64_t ce = cb + TR_BLK < j->cols ? cb + TR_BLK : j->cols;
    for (int64_t rb = 0; rb < j->rows; rb += TR_BLK) {
      int64_t re = rb + TR_BLK < j->rows ? rb + TR_BLK : j->rows;
      for (int64_t c = cb; c < ce; c++) {
        float *yr = j->y + c * j->rows;
        for (int64_t r = rb; r < re; r++) yr[r] = j->x[r * j->cols + c];
      }
    }
  }
}

void sd_op_transpose(sd_exec *ex, const float *x, int64_t rows, int64_t cols, float *y) {
  tr_job j = {x, y, rows, cols};
  SD_PROF_BEGIN(ex);
  sd_parallel_for(ex->pool, (cols + TR_BLK - 1) / TR_BLK, 1, tr_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}

typedef struct { const float *x; float *y; int64_t N; int avx2; } geglu_job;

static void geglu_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  const geglu_job *j = ctx;
  const int64_t N = j->N;
  for (int64_t r = r0; r < r1; r++) {
    const float *a = j->x + r * 2 * N, *g = a + N;
    float *o = j->y + r * N;
    if (j->avx2) sd_avx2_geglu(a, g, o, N);
    else
      for (int64_t i = 0; i < N; i++) o[i] = a[i] * (0.5f * g[i] * (1.0f + erff(g[i] * 0.70710678118654752f)));
  }
}

void sd_op_geglu(sd_exec *ex, const float *x, int64_t M, int64_t N, float *y) {
  geglu_job j = {x, y, N, ex->use_avx2};
  int64_t grain = N > 0 ? (16384 + N - 1) / N : 1;
  SD_PROF_BEGIN(ex);
  sd_parallel_for(ex->pool, M, grain, geglu_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}
