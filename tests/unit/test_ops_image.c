/* Unit tests of the image ops (core/ops_image.c): conv2d, GroupNorm (+SiLU), nearest 2×
 * upsampling, transpose, GEGLU, each against a naive double-precision reference; odd sizes,
 * stride 2, asymmetric padding, several column tiles, float16 weights, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "testutil.h"
#include "common/check_err.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
  g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static void fill(float *x, int64_t n, float scale, float offset) {
  for (int64_t i = 0; i < n; i++) x[i] = offset + frand() * scale;
}
static float *fnew(int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  assert_non_null(p);
  return p;
}

/* ---- conv2d ------------------------------------------------------------------------- */

typedef struct {
  int C, H, W, Cout, kh, kw, stride, pt, pl, pb, pr;
  int f16, bias, threads;
} conv_case;

/* What run_conv_case_full does to each context it creates: g_matmul_dnnl >= 0 sets
 * ex->matmul_dnnl (whose choice the own Winograd kernel's products follow: oneDNN's sgemm or
 * OpenBLAS), g_wino_block sets that kernel's block size (0: its default). */
static int g_matmul_dnnl = -1;
static int64_t g_wino_block = 0;
static int g_conv_gemm = SD_WINO_OFF; /* ex->conv_gemm: the own im2row GEMM (core/ops_conv_gemm.c) */

/* wino: the context's ex->conv_winograd (SD_WINO_*), budget: its pack_budget; out: NULL, or
 * where the output is copied (ny floats); tol: the largest error allowed, relative to the sum
 * of the products' magnitudes. */
static void run_conv_case_full(const conv_case *cc, int backend, int wino, int64_t budget, float *out, double tol) {
  const int Ho = (cc->H + cc->pt + cc->pb - cc->kh) / cc->stride + 1;
  const int Wo = (cc->W + cc->pl + cc->pr - cc->kw) / cc->stride + 1;
  const int64_t nx = (int64_t)cc->C * cc->H * cc->W, nw = (int64_t)cc->Cout * cc->C * cc->kh * cc->kw;
  const int64_t ny = (int64_t)cc->Cout * Ho * Wo;
  float *x = fnew(nx), *w = fnew(nw), *b = fnew(cc->Cout), *y = fnew(ny), *y2 = fnew(ny);
  fill(x, nx, 1, 0);
  fill(w, nw, 1.0f / sqrtf((float)(cc->C * cc->kh * cc->kw)), 0);
  fill(b, cc->Cout, 0.5f, 0);
  uint16_t *wh = NULL;
  int64_t wshape[4] = {cc->Cout, cc->C, cc->kh, cc->kw};
  sd_tensor W;
  if (cc->f16) {
    wh = malloc((size_t)nw * 2);
    assert_non_null(wh);
    sd_from_f32(wh, SD_F16, w, (size_t)nw);
    sd_to_f32(w, wh, SD_F16, (size_t)nw); /* the reference uses exactly the stored values */
    W = sd_tensor_make(SD_F16, 4, wshape, wh);
  } else {
    W = sd_tensor_make(SD_F32, 4, wshape, w);
  }
  sd_exec *ex;
  assert_int_equal(sd_exec_create(cc->threads, &ex), SD_OK);
  ex->backend = backend;
  ex->conv_winograd = wino;
  ex->pack_budget = budget;
  if (g_matmul_dnnl >= 0) ex->matmul_dnnl = g_matmul_dnnl;
  ex->wino_block = g_wino_block;
  ex->conv_gemm = g_conv_gemm;
  sd_conv2d_shape s = {cc->C, cc->H, cc->W, cc->stride, cc->pt, cc->pl, cc->pb, cc->pr};
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W, cc->bias ? b : NULL, y), SD_OK);
  double maxrel = 0;
  for (int co = 0; co < cc->Cout; co++)
    for (int oy = 0; oy < Ho; oy++)
      for (int ox = 0; ox < Wo; ox++) {
        double acc = cc->bias ? b[co] : 0, mag = fabs(acc);
        for (int c = 0; c < cc->C; c++)
          for (int i = 0; i < cc->kh; i++) {
            int iy = oy * cc->stride + i - cc->pt;
            if (iy < 0 || iy >= cc->H) continue;
            for (int j = 0; j < cc->kw; j++) {
              int ix = ox * cc->stride + j - cc->pl;
              if (ix < 0 || ix >= cc->W) continue;
              double p = (double)w[(((int64_t)co * cc->C + c) * cc->kh + i) * cc->kw + j] *
                         x[((int64_t)c * cc->H + iy) * cc->W + ix];
              acc += p;
              mag += fabs(p);
            }
          }
        double got = y[((int64_t)co * Ho + oy) * Wo + ox];
        double rel = fabs(got - acc) / (mag + 1e-3);
        if (rel > maxrel) maxrel = rel;
      }
  if (maxrel > tol)
    fail_msg("conv %dx%dx%d -> %d, k %dx%d, stride %d, pad %d/%d/%d/%d, %s backend%s: relative error %.3g", cc->C,
             cc->H, cc->W, cc->Cout, cc->kh, cc->kw, cc->stride, cc->pt, cc->pl, cc->pb, cc->pr,
             backend == SD_BACKEND_DNNL ? "oneDNN" : "BLAS",
             wino == SD_WINO_ON ? " (Winograd)" : ex->conv_gemm == SD_WINO_ON ? " (own GEMM)" : "", maxrel);
  if (out) memcpy(out, y, (size_t)ny * sizeof(float));
  /* same inputs, same thread count: the same bytes */
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W, cc->bias ? b : NULL, y2), SD_OK);
  assert_memory_equal(y, y2, (size_t)ny * sizeof(float));
  sd_exec_destroy(ex);
  free(x); free(w); free(b); free(y); free(y2); free(wh);
}

static void run_conv_case_on(const conv_case *cc, int backend) {
  run_conv_case_full(cc, backend, SD_WINO_OFF, 0, NULL, 1e-5);
}

/* every case on both backends: oneDNN (the default) and im2col + BLAS (the fallback), and
 * on the own im2row GEMM (which runs where the CPU has AVX2; elsewhere the case runs oneDNN) */
static void run_conv_case(const conv_case *cc) {
  run_conv_case_on(cc, SD_BACKEND_DNNL);
  run_conv_case_on(cc, SD_BACKEND_BLAS);
  g_conv_gemm = SD_WINO_ON;
  run_conv_case_on(cc, SD_BACKEND_DNNL);
  g_conv_gemm = SD_WINO_OFF;
}

/* 1 when this CPU runs the AVX2 kernels (else a note that `kernel` does not run here). */
static int cpu_avx2(const char *kernel) {
  sd_exec *probe;
  assert_int_equal(sd_exec_create(1, &probe), SD_OK);
  const int avx2 = probe->use_avx2;
  sd_exec_destroy(probe);
  if (!avx2) print_message("no AVX2 (or SAFESD_CPU_AVX2=0): safesd's %s does not run here\n", kernel);
  return avx2;
}

/* The own im2row GEMM (core/ops_conv_gemm.c) against oneDNN's direct convolution and the
 * double reference: strides, paddings, 1×1 and non-square kernels, tiles of a few pixels
 * (the last one short), f16 and f32 weights; the same bytes on 1 and 3 threads. */
static void test_conv2d_gemm_own(void **state) {
  (void)state;
  if (!cpu_avx2("im2row GEMM")) skip();
  const uint64_t seed = g_rng;
  const conv_case cases[] = {
      /* C  H   W  Co kh kw s  pt pl pb pr f16 bias thr */
      {16, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   /* an SD-like 8×8 level */
      {40, 16, 16, 80, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1}, /* a downsampler: stride 2 */
      {24, 7, 9, 17, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1},   /* 1×1, odd channel count */
      {5, 6, 11, 33, 5, 3, 1, 2, 1, 2, 1, 1, 0, 1},   /* 5×3 kernel, no bias */
      {3, 4, 9, 20, 3, 3, 1, 2, 0, 1, 2, 0, 1, 1},    /* uneven and wide padding */
      {8, 1, 1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},    /* one pixel */
  };
  g_conv_gemm = SD_WINO_ON;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const conv_case *cc = &cases[i];
    const int Ho = (cc->H + cc->pt + cc->pb - cc->kh) / cc->stride + 1;
    const int Wo = (cc->W + cc->pl + cc->pr - cc->kw) / cc->stride + 1;
    const int64_t ny = (int64_t)cc->Cout * Ho * Wo;
    float *y1 = fnew(ny), *y3 = fnew(ny), *yt = fnew(ny);
    conv_case c3 = *cc;
    c3.threads = 3;
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_OFF, 0, y1, 1e-5);
    g_rng = seed, run_conv_case_full(&c3, SD_BACKEND_DNNL, SD_WINO_OFF, 0, y3, 1e-5);
    assert_memory_equal(y1, y3, (size_t)ny * sizeof(float));
    /* tiles of 6 pixels: the im2row and store loops restart at every tile */
    g_wino_block = 6 * ((int64_t)cc->C * cc->kh * cc->kw + cc->Cout) + 5;
    g_rng = seed, run_conv_case_full(&c3, SD_BACKEND_DNNL, SD_WINO_OFF, 0, yt, 1e-5);
    g_wino_block = 0;
    assert_memory_equal(y1, yt, (size_t)ny * sizeof(float));
    free(y1);
    free(y3);
    free(yt);
  }
  g_conv_gemm = SD_WINO_OFF;
}

/* The oneDNN backend keeps the last packed weight: a different weight of the same shape,
 * F16 or an F32 view of the widening buffer (the models' pattern), must not reuse it. */
static void test_conv2d_weight_cache(void **state) {
  (void)state;
  const int C = 8, H = 6, Wd = 5, Co = 16;
  const int64_t nx = C * H * Wd, nw = (int64_t)Co * C * 9, ny = (int64_t)Co * H * Wd;
  float *x = fnew(nx), *w1 = fnew(nw), *w2 = fnew(nw), *y1 = fnew(ny), *y2 = fnew(ny), *r1 = fnew(ny), *r2 = fnew(ny);
  fill(x, nx, 1, 0);
  fill(w1, nw, 0.2f, 0);
  fill(w2, nw, 0.3f, 0);
  uint16_t *h1 = malloc((size_t)nw * 2), *h2 = malloc((size_t)nw * 2);
  assert_non_null(h1);
  assert_non_null(h2);
  sd_from_f32(h1, SD_F16, w1, (size_t)nw);
  sd_from_f32(h2, SD_F16, w2, (size_t)nw);
  int64_t shape[4] = {Co, C, 3, 3};
  sd_tensor W1 = sd_tensor_make(SD_F16, 4, shape, h1), W2 = sd_tensor_make(SD_F16, 4, shape, h2);
  sd_conv2d_shape s = {C, H, Wd, 1, 1, 1, 1, 1};
  sd_exec *ex, *eb;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  assert_int_equal(sd_exec_create(2, &eb), SD_OK);
  eb->backend = SD_BACKEND_BLAS;
  assert_int_equal(sd_op_conv2d(eb, &s, x, &W1, NULL, r1), SD_OK);
  assert_int_equal(sd_op_conv2d(eb, &s, x, &W2, NULL, r2), SD_OK);
  /* two F16 weights in turn */
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W1, NULL, y1), SD_OK);
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W2, NULL, y2), SD_OK);
  for (int64_t i = 0; i < ny; i++) {
    assert_true(fabsf(y1[i] - r1[i]) < 1e-4f);
    assert_true(fabsf(y2[i] - r2[i]) < 1e-4f);
  }
  /* F32 views of the widening buffer: the same pointer, different contents */
  const float *p1 = sd_weight_f32(ex, &W1);
  sd_tensor V1 = sd_tensor_make(SD_F32, 4, shape, (void *)p1);
  assert_int_equal(sd_op_conv2d(ex, &s, x, &V1, NULL, y1), SD_OK);
  const float *p2 = sd_weight_f32(ex, &W2);
  assert_ptr_equal(p1, p2);
  sd_tensor V2 = sd_tensor_make(SD_F32, 4, shape, (void *)p2);
  assert_int_equal(sd_op_conv2d(ex, &s, x, &V2, NULL, y2), SD_OK);
  for (int64_t i = 0; i < ny; i++) {
    assert_true(fabsf(y1[i] - r1[i]) < 1e-4f);
    assert_true(fabsf(y2[i] - r2[i]) < 1e-4f);
  }
  sd_exec_destroy(ex);
  sd_exec_destroy(eb);
  free(x); free(w1); free(w2); free(y1); free(y2); free(r1); free(r2); free(h1); free(h2);
}

/* Kept packed weights (sd_exec.pack_budget, native bf16): a kept weight is packed once and
 * its owner told (release), the most used weights are kept within the budget, and a weight
 * whose values changed at the same address is packed again. */
typedef struct { int n; const void *last[8]; } rel_log;
static void rel_cb(void *ctx, const void *p, size_t n) {
  rel_log *r = ctx;
  (void)n;
  if (r->n < 8) r->last[r->n] = p;
  r->n++;
}

static void test_pack_cache(void **state) {
  (void)state;
  const int C = 8, H = 6, Wd = 5, Co = 16;
  const int64_t nx = C * H * Wd, nw = (int64_t)Co * C * 9, ny = (int64_t)Co * H * Wd;
  float *x = fnew(nx), *w = fnew(nw), *y = fnew(ny), *r = fnew(ny);
  fill(x, nx, 1, 0);
  uint16_t *h[3];
  int64_t shape[4] = {Co, C, 3, 3};
  sd_tensor Wt[3];
  for (int i = 0; i < 3; i++) {
    fill(w, nw, 0.2f + 0.1f * i, 0);
    h[i] = malloc((size_t)nw * 2);
    assert_non_null(h[i]);
    sd_from_f32(h[i], SD_F16, w, (size_t)nw);
    Wt[i] = sd_tensor_make(SD_F16, 4, shape, h[i]);
  }
  sd_conv2d_shape s = {C, H, Wd, 1, 1, 1, 1, 1};
  sd_exec *ex;
  rel_log log = {0};
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  ex->release = rel_cb;
  ex->release_ctx = &log;
  ex->prof.on = 1;
  /* fp32, budget of one packed weight (its packed size is at least 4·nw bytes, below 8·nw):
   * C A B A B A C -> C kept first; A, used more often than C, replaces it on its 2nd use */
  ex->pack_budget = 8 * nw - 1;
  const int seq[7] = {2, 0, 1, 0, 1, 0, 2};
  int64_t packs[7];
  for (int k = 0; k < 7; k++) {
    int64_t before = ex->prof.calls[SD_OPC_WEIGHTS];
    assert_int_equal(sd_op_conv2d(ex, &s, x, &Wt[seq[k]], NULL, y), SD_OK);
    packs[k] = ex->prof.calls[SD_OPC_WEIGHTS] - before;
  }
  assert_int_equal(log.n, 2);
  assert_ptr_equal(log.last[0], h[2]);
  assert_ptr_equal(log.last[1], h[0]);
  assert_true(packs[3] > 0 && packs[5] == 0 && packs[6] > 0); /* A kept at its 2nd use; C no longer */
  /* the same address with other values: packed again, the right result */
  sd_exec *eb;
  assert_int_equal(sd_exec_create(2, &eb), SD_OK);
  eb->backend = SD_BACKEND_BLAS;
  memcpy(h[0], h[1], (size_t)nw * 2);
  assert_int_equal(sd_op_conv2d(eb, &s, x, &Wt[1], NULL, r), SD_OK);
  assert_int_equal(sd_op_conv2d(ex, &s, x, &Wt[0], NULL, y), SD_OK);
  for (int64_t i = 0; i < ny; i++) assert_true(fabsf(y[i] - r[i]) < 1e-4f);
  /* budget 0 (the fp32 default): nothing kept */
  sd_exec_trim(ex);
  ex->pack_budget = 0;
  log.n = 0;
  for (int k = 0; k < 3; k++) assert_int_equal(sd_op_conv2d(ex, &s, x, &Wt[k], NULL, y), SD_OK);
  assert_int_equal(log.n, 0);
  /* native bf16: every weight kept after its first use, none packed again */
  if (sd_exec_set_precision(ex, SD_PREC_BF16) == SD_OK && !ex->bf16_emulated) {
    for (int k = 0; k < 3; k++) assert_int_equal(sd_op_conv2d(ex, &s, x, &Wt[k], NULL, y), SD_OK);
    assert_int_equal(log.n, 3);
    int64_t before = ex->prof.calls[SD_OPC_WEIGHTS];
    for (int k = 0; k < 3; k++) assert_int_equal(sd_op_conv2d(ex, &s, x, &Wt[k], NULL, y), SD_OK);
    assert_int_equal(ex->prof.calls[SD_OPC_WEIGHTS], before);
    assert_int_equal(log.n, 3);
  } else {
    print_message("no native bf16 on this CPU: the bf16 packed-weight cache is not checked\n");
  }
  sd_exec_destroy(ex);
  sd_exec_destroy(eb);
  for (int i = 0; i < 3; i++) free(h[i]);
  free(x); free(w); free(y); free(r);
}

/* bf16 compute: on a CPU without native bf16 the request falls back to fp32 and says so.
 * Convolutions and matrix products in bf16 (native, or the emulation elsewhere) agree with
 * fp32 to bf16 precision, and differ from it. */
static void test_bf16_precision(void **state) {
  (void)state;
  sd_exec *ex;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  unsetenv("SAFESD_BF16_EMULATE");
  int rc = sd_exec_set_precision(ex, SD_PREC_BF16);
  if (!sd_cpu_has_bf16()) {
    assert_int_equal(rc, SD_E_UNSUPPORTED);
    assert_int_equal(ex->precision, SD_PREC_FP32);
    assert_non_null(strstr(sd_errmsg(), "bf16"));
    /* the emulation (fp32 kernels on bf16-rounded values) is what this CPU can check */
    setenv("SAFESD_BF16_EMULATE", "1", 1);
    rc = sd_exec_set_precision(ex, SD_PREC_BF16);
    unsetenv("SAFESD_BF16_EMULATE");
    assert_int_equal(ex->bf16_emulated, 1);
    print_message("no native bf16 on this CPU: checking the bf16 emulation (the native kernels are not run)\n");
  }
  assert_int_equal(rc, SD_OK);
  assert_int_equal(ex->precision, SD_PREC_BF16);
  const int C = 64, H = 20, Wd = 19, Co = 48, M = 150, K = 96, N = 80;
  float *x = fnew(C * H * Wd), *w = fnew(Co * C * 9), *y = fnew(Co * H * Wd), *r = fnew(Co * H * Wd);
  float *a = fnew(M * K), *lw = fnew(N * K), *ly = fnew(M * N), *lr = fnew(M * N);
  fill(x, C * H * Wd, 1, 0);
  fill(w, Co * C * 9, 0.05f, 0);
  fill(a, M * K, 1, 0);
  fill(lw, N * K, 0.1f, 0);
  int64_t ws[4] = {Co, C, 3, 3}, ls[2] = {N, K};
  sd_tensor W = sd_tensor_make(SD_F32, 4, ws, w), LW = sd_tensor_make(SD_F32, 2, ls, lw);
  sd_conv2d_shape s = {C, H, Wd, 1, 1, 1, 1, 1};
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W, NULL, y), SD_OK);
  assert_int_equal(sd_op_linear(ex, a, M, K, &LW, NULL, ly), SD_OK);
  if (!ex->bf16_emulated) {
    /* the bf16 packers convert f16 and f32 weights straight to bf16; a weight that is itself
     * the exec's widening scratch (a float32 copy of f16 values, used again by the batch
     * loops) is narrowed into other memory and left as it is: both give the result of the
     * same values stored as f16, the second use too */
    uint16_t *wh = malloc((size_t)Co * C * 9 * 2);
    float *y16 = fnew(Co * H * Wd), *yt = fnew(Co * H * Wd);
    assert_non_null(wh);
    sd_from_f32(wh, SD_F16, w, (size_t)Co * C * 9);
    sd_tensor WH = sd_tensor_make(SD_F16, 4, ws, wh);
    assert_int_equal(sd_op_conv2d(ex, &s, x, &WH, NULL, y16), SD_OK);
    sd_tensor WT = sd_tensor_make(SD_F32, 4, ws, (void *)sd_weight_f32(ex, &WH));
    assert_ptr_equal(WT.data, ex->wbuf);
    assert_null(sd_weight_bf16(ex, &WT)); /* converting the scratch into itself is refused */
    assert_int_equal(sd_op_conv2d(ex, &s, x, &WT, NULL, yt), SD_OK);
    assert_memory_equal(y16, yt, (size_t)Co * H * Wd * sizeof(float));
    memset(yt, 0, (size_t)Co * H * Wd * sizeof(float));
    assert_int_equal(sd_op_conv2d(ex, &s, x, &WT, NULL, yt), SD_OK);
    assert_memory_equal(y16, yt, (size_t)Co * H * Wd * sizeof(float));
    assert_ptr_equal(WT.data, ex->wbuf);
    for (int64_t i = 0; i < (int64_t)Co * C * 9; i += 97) assert_true(((const float *)WT.data)[i] == sd_f16_to_f32(wh[i]));
    free(wh); free(y16); free(yt);
  }
  assert_int_equal(sd_exec_set_precision(ex, SD_PREC_FP32), SD_OK);
  assert_int_equal(ex->bf16_emulated, 0);
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W, NULL, r), SD_OK);
  assert_int_equal(sd_op_linear(ex, a, M, K, &LW, NULL, lr), SD_OK);
  double num = 0, den = 0;
  for (int i = 0; i < Co * H * Wd; i++) { num += (y[i] - r[i]) * (double)(y[i] - r[i]); den += r[i] * (double)r[i]; }
  double rel_conv = sqrt(num / den);
  assert_true(rel_conv < 1e-2);  /* bf16 keeps 8 bits of mantissa */
  assert_true(rel_conv > 1e-5);  /* and it did round: not the fp32 result */
  num = den = 0;
  for (int i = 0; i < M * N; i++) { num += (ly[i] - lr[i]) * (double)(ly[i] - lr[i]); den += lr[i] * (double)lr[i]; }
  assert_true(sqrt(num / den) < 1e-2);
  assert_true(sqrt(num / den) > 1e-5);
  sd_exec_destroy(ex);
  free(x); free(w); free(y); free(r); free(a); free(lw); free(ly); free(lr);
}

static void test_conv2d_small(void **state) {
  (void)state;
  const conv_case cases[] = {
      /* C  H  W  Co kh kw s  pt pl pb pr f16 bias thr */
      {3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2},   /* odd sizes, same padding */
      {5, 9, 11, 6, 3, 3, 2, 1, 1, 1, 1, 0, 1, 3},  /* stride 2, symmetric pad (UNet downsample) */
      {4, 8, 8, 3, 3, 3, 2, 0, 0, 1, 1, 0, 1, 2},   /* stride 2, pad (0,1,0,1) (VAE encoder) */
      {4, 9, 7, 3, 3, 3, 2, 0, 0, 1, 1, 1, 0, 2},   /* ... odd, f16, no bias */
      {6, 6, 10, 8, 1, 1, 1, 0, 0, 0, 0, 0, 1, 2},  /* 1x1 direct GEMM */
      {6, 6, 10, 8, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1},  /* 1x1 direct, f16, no bias, 1 thread */
      {6, 7, 9, 5, 1, 1, 2, 0, 0, 0, 0, 0, 1, 2},   /* 1x1 stride 2 */
      {2, 5, 6, 3, 2, 3, 1, 0, 2, 1, 0, 0, 1, 2},   /* non-square kernel, uneven pads */
      {3, 4, 4, 2, 3, 3, 1, 2, 2, 2, 2, 0, 1, 4},   /* padding wider than half the kernel */
      {1, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2},   /* one pixel */
      {8, 12, 13, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2}, /* f16 3x3 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_conv_case(&cases[i]);
}

/* fp32 Winograd F(4×4, 3×3) (safesd's own on CPUs with AVX2, oneDNN's on AVX-512 CPUs where
 * the own one does not run): within a few float32 roundings of the direct convolution; the
 * own one chosen by default at >= 32×32 outputs and 128 channels, oneDNN's for the others
 * only with a packing budget at >= 64×64 outputs. */
static void test_conv2d_winograd(void **state) {
  (void)state;
  const uint64_t seed = g_rng; /* each run draws its inputs: the same ones every time */
  const conv_case cases[] = {
      /* C  H   W  Co kh kw s  pt pl pb pr f16 bias thr */
      {16, 20, 22, 32, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2}, /* sizes not multiples of the 4×4 tile */
      {32, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1}, /* f16, no bias, 1 thread */
      {64, 9, 13, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 3},
  };
  sd_exec *probe;
  assert_int_equal(sd_exec_create(1, &probe), SD_OK);
  /* oneDNN 2.6 has its fp32 Winograd kernel for AVX-512 only (and none when told to stay
   * below it) */
  const int avx512 = probe->use_avx512 && !getenv("ONEDNN_MAX_CPU_ISA") && !getenv("DNNL_MAX_CPU_ISA");
  const int own = probe->use_avx2; /* safesd's own kernel runs */
  sd_exec_destroy(probe);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const conv_case *cc = &cases[i];
    const int64_t ny = (int64_t)cc->Cout * cc->H * cc->W;
    float *yd = fnew(ny), *yw = fnew(ny);
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_OFF, 0, yd, 1e-5);
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_ON, 0, yw, 1e-5);
    if (avx512 || own) /* a Winograd kernel ran: other sums, other roundings */
      assert_memory_not_equal(yd, yw, (size_t)ny * sizeof(float));
    else if (!memcmp(yd, yw, (size_t)ny * sizeof(float)))
      print_message("oneDNN has no fp32 Winograd kernel on this CPU: the direct one ran\n");
    free(yd);
    free(yw);
  }
  /* auto: oneDNN's direct kernel without a budget or below SD_WINO_MIN_PIXELS, its Winograd
   * with both (16 channels: not the own kernel's, test_conv2d_winograd_own) */
  const conv_case big = {16, 64, 64, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2}, small = {16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2};
  const int64_t nb = 16 * 64 * 64, ns = 16 * 32 * 32;
  float *d = fnew(nb), *a = fnew(nb);
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_AUTO, 0, a, 1e-5);
  assert_memory_equal(d, a, (size_t)nb * sizeof(float)); /* (16 channels: not the own kernel either) */
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_AUTO, (int64_t)1 << 30, a, 1e-5);
  if (avx512) assert_memory_not_equal(d, a, (size_t)nb * sizeof(float));
  g_rng = seed, run_conv_case_full(&small, SD_BACKEND_DNNL, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&small, SD_BACKEND_DNNL, SD_WINO_AUTO, (int64_t)1 << 30, a, 1e-5);
  assert_memory_equal(d, a, (size_t)ns * sizeof(float));
  free(d);
  free(a);
}

/* safesd's own Winograd kernel (core/ops_wino.c), its products by OpenBLAS and by oneDNN's
 * sgemm: every 3×3 stride-1 shape (any padding, sizes not multiples of the tile, fewer rows
 * or columns than a tile, one channel, stored f16 or f32, bias or not, 1 to 3 threads) within
 * a few float32 roundings of the exact sums, the same bytes on a second run; blocked over
 * output channels and tile rows (a small ex->wino_block) within the same bound; other sums
 * than the direct kernel's (so it did run); and the backend and size rules that keep it off. */
static void test_conv2d_winograd_own(void **state) {
  (void)state;
  if (!cpu_avx2("Winograd kernel")) skip();
  const uint64_t seed = g_rng;
  const conv_case cases[] = {
      /* C  H   W  Co kh kw s  pt pl pb pr f16 bias thr */
      {16, 20, 22, 32, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2},  /* sizes not multiples of the 4×4 tile */
      {32, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1},  /* f16, no bias, 1 thread */
      {64, 9, 13, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 3},   /* 3 threads */
      {5, 7, 6, 3, 3, 3, 1, 0, 0, 0, 0, 0, 1, 2},      /* no padding: 5×4 outputs */
      {3, 4, 9, 2, 3, 3, 1, 2, 0, 1, 2, 1, 1, 2},      /* uneven and wide padding */
      {1, 2, 3, 1, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2},      /* smaller than a tile, one channel */
      {1, 1, 1, 4, 3, 3, 1, 1, 1, 1, 1, 0, 0, 2},      /* one pixel */
      {24, 33, 35, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2},  /* several tile rows, odd edges */
  };
  for (size_t i = 0; i < 2 * (sizeof cases / sizeof *cases); i++) {
    g_matmul_dnnl = (int)(i & 1);
    const conv_case *cc = &cases[i / 2];
    const int Ho = cc->H + cc->pt + cc->pb - 2, Wo = cc->W + cc->pl + cc->pr - 2;
    const int64_t ny = (int64_t)cc->Cout * Ho * Wo;
    float *yd = fnew(ny), *yw = fnew(ny), *yb = fnew(ny);
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_OFF, 0, yd, 1e-5);
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_ON, 0, yw, 1e-5);
    if (ny >= 16) assert_memory_not_equal(yd, yw, (size_t)ny * sizeof(float));
    /* blocks of 1 to 16 output channels and of one tile row at a time */
    g_wino_block = 36 * 2 * (cc->C > cc->Cout ? cc->C : cc->Cout);
    g_rng = seed, run_conv_case_full(cc, SD_BACKEND_DNNL, SD_WINO_ON, 0, yb, 1e-5);
    g_wino_block = 0;
    free(yd);
    free(yw);
    free(yb);
  }
  g_matmul_dnnl = -1;
  /* im2col + BLAS (SAFESD_BACKEND=blas) keeps the direct sums */
  const conv_case sm = {16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2};
  const int64_t nb = 128 * 32 * 32;
  float *d = fnew(nb), *a = fnew(nb);
  g_rng = seed, run_conv_case_full(&sm, SD_BACKEND_BLAS, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&sm, SD_BACKEND_BLAS, SD_WINO_ON, 0, a, 1e-5);
  assert_memory_equal(d, a, (size_t)(16 * 32 * 32) * sizeof(float));
  /* auto: at >= SD_WINO_OWN_MIN_PIXELS outputs and SD_WINO_OWN_MIN_CHANNELS channels in and
   * out, budget or not; direct below either */
  const conv_case big = {128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2};
  const conv_case tiny = {128, 31, 32, 128, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2}, narrow = {64, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2};
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_AUTO, 0, a, 1e-5);
  assert_memory_not_equal(d, a, (size_t)nb * sizeof(float));
  g_rng = seed, run_conv_case_full(&big, SD_BACKEND_DNNL, SD_WINO_AUTO, (int64_t)1 << 30, a, 1e-5);
  assert_memory_not_equal(d, a, (size_t)nb * sizeof(float));
  g_rng = seed, run_conv_case_full(&tiny, SD_BACKEND_DNNL, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&tiny, SD_BACKEND_DNNL, SD_WINO_AUTO, 0, a, 1e-5);
  assert_memory_equal(d, a, (size_t)(128 * 31 * 32) * sizeof(float));
  g_rng = seed, run_conv_case_full(&narrow, SD_BACKEND_DNNL, SD_WINO_OFF, 0, d, 1e-5);
  g_rng = seed, run_conv_case_full(&narrow, SD_BACKEND_DNNL, SD_WINO_AUTO, 0, a, 1e-5);
  assert_memory_equal(d, a, (size_t)nb * sizeof(float));
  free(d);
  free(a);
}

static void test_conv2d_tiled(void **state) {
  (void)state;
  /* K·Wo = 576·130: the 4M-float column buffer holds 56 rows, so 130 rows take 3 tiles */
  const conv_case a = {64, 130, 130, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2};
  run_conv_case(&a);
  /* one output row alone exceeds the cap (K·Wo = 4608·1001): tiles of 910 columns of a row */
  const conv_case b = {512, 3, 1001, 2, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2};
  run_conv_case(&b);
  /* K = 2.1M: one column per tile; wide right padding puts whole tiles in the padding */
  const conv_case d = {233017, 1, 3, 2, 3, 3, 1, 1, 0, 1, 4, 1, 1, 2};
  run_conv_case(&d);
  /* stride 2 across tiles */
  const conv_case c = {40, 300, 301, 3, 3, 3, 2, 0, 0, 1, 1, 0, 1, 3};
  run_conv_case(&c);
}

static void test_conv2d_errors(void **state) {
  (void)state;
  sd_exec *ex;
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  float x[4 * 9] = {0}, w[2 * 3 * 9] = {0}, y[64];
  int64_t sh[4] = {2, 3, 3, 3};
  sd_tensor W = sd_tensor_make(SD_F32, 4, sh, w);
  sd_conv2d_shape s = {4, 3, 3, 1, 1, 1, 1, 1}; /* 4 channels vs a 3-channel weight */
  assert_int_equal(sd_op_conv2d(ex, &s, x, &W, NULL, y), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "[2, 3, 3, 3]"));
  sd_conv2d_shape s2 = {3, 1, 1, 1, 0, 0, 0, 0}; /* 3x3 kernel on an unpadded 1x1 image */
  assert_int_equal(sd_op_conv2d(ex, &s2, x, &W, NULL, y), SD_E_ARG);
  sd_conv2d_shape s3 = {3, 3, 3, 0, 1, 1, 1, 1}; /* stride 0 */
  assert_int_equal(sd_op_conv2d(ex, &s3, x, &W, NULL, y), SD_E_ARG);
  int64_t sh2[2] = {2, 27};
  sd_tensor W2 = sd_tensor_make(SD_F32, 2, sh2, w);
  sd_conv2d_shape s4 = {3, 3, 3, 1, 1, 1, 1, 1};
  assert_int_equal(sd_op_conv2d(ex, &s4, x, &W2, NULL, y), SD_E_FORMAT);
  sd_exec_destroy(ex);
}

/* ---- group norm --------------------------------------------------------------------- */

static void gn_ref(const float *x, int C, int64_t HW, int G, const float *g, const float *b, double eps, int silu,
                   double *y) {
  int cg = C / G;
  for (int gi = 0; gi < G; gi++) {
    int64_t n = (int64_t)cg * HW;
    const float *p = x + (int64_t)gi * n;
    long double s = 0;
    for (int64_t i = 0; i < n; i++) s += p[i];
    long double m = s / n, v = 0;
    for (int64_t i = 0; i < n; i++) v += (p[i] - m) * (p[i] - m);
    v /= n;
    double rstd = 1.0 / sqrt((double)v + eps);
    for (int c = gi * cg; c < (gi + 1) * cg; c++)
      for (int64_t i = 0; i < HW; i++) {
        double t = ((double)x[c * HW + i] - (double)m) * rstd * g[c] + b[c];
        y[c * HW + i] = silu ? t / (1 + exp(-t)) : t;
      }
  }
}

static void check_gn_path(int C, int64_t HW, int G, float eps, int silu, float offset, int alias, double tol,
                          int avx2) {
  int64_t n = C * HW;
  float *x = fnew(n), *y = fnew(n), *g = fnew(C), *b = fnew(C);
  double *r = malloc(sizeof(double) * (size_t)n);
  assert_non_null(r);
  fill(x, n, 2.0f, offset);
  fill(g, C, 0.2f, 1.0f);
  fill(b, C, 0.1f, 0.0f);
  gn_ref(x, C, HW, G, g, b, eps, silu, r);
  sd_exec *ex;
  assert_int_equal(sd_exec_create(3, &ex), SD_OK);
  if (!avx2) ex->use_avx2 = 0;
  float *out = alias ? x : y;
  sd_op_groupnorm(ex, x, C, HW, G, g, b, eps, silu, out);
  double maxerr = 0;
  for (int64_t i = 0; i < n; i++) maxerr = sd_check_max(maxerr, fabs(out[i] - r[i]));
  if (maxerr > tol) fail_msg("groupnorm C %d HW %lld G %d: max error %.3g", C, (long long)HW, G, maxerr);
  sd_exec_destroy(ex);
  free(x); free(y); free(g); free(b); free(r);
}

/* both paths: the AVX2 loops where the CPU has them, and the portable ones */
static void check_gn(int C, int64_t HW, int G, float eps, int silu, float offset, int alias, double tol) {
  check_gn_path(C, HW, G, eps, silu, offset, alias, tol, 1);
  check_gn_path(C, HW, G, eps, silu, offset, alias, tol, 0);
}

static void test_groupnorm(void **state) {
  (void)state;
  check_gn(64, 35, 32, 1e-5f, 0, 0.0f, 0, 2e-6);
  check_gn(64, 35, 32, 1e-6f, 1, 0.3f, 1, 2e-6);  /* fused SiLU, in place */
  check_gn(6, 7, 3, 1e-5f, 1, -0.5f, 0, 2e-6);     /* odd */
  check_gn(128, 5, 128, 1e-6f, 0, 0.0f, 0, 2e-6);  /* one channel per group, > 64 groups */
  /* large groups with a large mean: float accumulation would drift; double does not.
   * 4 channels × 512×512 per group (the VAE's last decoder GroupNorm at 512 px). */
  check_gn(8, 512 * 512, 2, 1e-6f, 0, 50.0f, 0, 1e-5);
  check_gn(8, 512 * 512, 2, 1e-6f, 1, 50.0f, 1, 1e-5);
}

/* ---- upsample, transpose, GEGLU ----------------------------------------------------- */

static void test_upsample(void **state) {
  (void)state;
  const int C = 3, H = 5, W = 7;
  float x[3 * 5 * 7], y[3 * 10 * 14];
  fill(x, C * H * W, 1, 0);
  sd_exec *ex;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  sd_op_upsample2x(ex, x, C, H, W, y);
  for (int c = 0; c < C; c++)
    for (int i = 0; i < 2 * H; i++)
      for (int j = 0; j < 2 * W; j++) assert_true(y[(c * 2 * H + i) * 2 * W + j] == x[(c * H + i / 2) * W + j / 2]);
  sd_exec_destroy(ex);
}

static void test_transpose(void **state) {
  (void)state;
  const int64_t dims[][2] = {{37, 53}, {1, 9}, {9, 1}, {64, 320}, {100, 33}};
  sd_exec *ex;
  assert_int_equal(sd_exec_create(3, &ex), SD_OK);
  for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
    int64_t R = dims[t][0], C = dims[t][1];
    float *x = fnew(R * C), *y = fnew(R * C), *z = fnew(R * C);
    fill(x, R * C, 1, 0);
    sd_op_transpose(ex, x, R, C, y);
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++) assert_true(y[c * R + r] == x[r * C + c]);
    sd_op_transpose(ex, y, C, R, z);
    assert_memory_equal(x, z, (size_t)(R * C) * sizeof(float));
    free(x); free(y); free(z);
  }
  sd_exec_destroy(ex);
}

static void test_geglu(void **state) {
  (void)state;
  const int64_t M = 13, N = 37;
  float *x = fnew(M * 2 * N), *y = fnew(M * N);
  fill(x, M * 2 * N, 6, 0); /* gates in [-6, 6]: both tails of erf */
  sd_exec *ex;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  for (int path = 0; path < 2; path++) { /* the AVX2 loop (where the CPU has it), the portable one */
    if (path == 1) ex->use_avx2 = 0;
    sd_op_geglu(ex, x, M, N, y);
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double a = x[m * 2 * N + n], g = x[m * 2 * N + N + n];
        double r = a * 0.5 * g * (1 + erf(g / sqrt(2.0)));
        /* the AVX2 erf is within 1.5e-7 (absolute): |a·g|/2 times that on top of rounding */
        if (!(fabs(y[m * N + n] - r) <= 1e-6 * (1 + fabs(r)) + 1e-7 * fabs(a * g)))
          fail_msg("geglu %s path: a %g g %g: %.9g, expected %.9g", path ? "portable" : "AVX2", a, g, y[m * N + n], r);
      }
  }
  sd_exec_destroy(ex);
  free(x); free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv2d_small), cmocka_unit_test(test_conv2d_winograd), cmocka_unit_test(test_conv2d_winograd_own), cmocka_unit_test(test_conv2d_gemm_own), cmocka_unit_test(test_conv2d_weight_cache), cmocka_unit_test(test_pack_cache),
      cmocka_unit_test(test_bf16_precision), cmocka_unit_test(test_conv2d_tiled), cmocka_unit_test(test_conv2d_errors),
      cmocka_unit_test(test_groupnorm),    cmocka_unit_test(test_upsample),     cmocka_unit_test(test_transpose),
      cmocka_unit_test(test_geglu),
  };
  return cmocka_run_group_tests_name("ops_image", tests, NULL, NULL);
}
