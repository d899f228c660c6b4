#include "core/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"

/* ---- execution context ------------------------------------------------------------- */

/* The value of the tuning variable name: -1 when unset or empty, else its index in the
 * NULL-terminated choices; an unknown value is an error naming the variable. */
static int env_choice(const char *name, const char *const *choices, int *out) {
  const char *v = getenv(name);
  *out = -1;
  if (!v || !*v) return SD_OK;
  char list[96] = "";
  for (int i = 0; choices[i]; i++) {
    if (!strcmp(v, choices[i])) { *out = i; return SD_OK; }
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", choices[i]);
  }
  return sd_fail(SD_E_ARG, "environment variable %s=%.40s: expected one of %s", name, v, list);
}

int sd_exec_create(int n_threads, sd_exec **out) {
  *out = NULL;
  static const char *const k_backends[] = {"dnnl", "blas", NULL}, *const k_wino[] = {"0", "1", "auto", NULL},
                    *const k_matmul[] = {"dnnl", "blas", "own", NULL};
  int be_i, mm_i, wg_i, cg_i, erc;
  if ((erc = env_choice("SAFESD_BACKEND", k_backends, &be_i)) || (erc = env_choice("SAFESD_MATMUL", k_matmul, &mm_i)) ||
      (erc = env_choice("SAFESD_CONV_WINOGRAD", k_wino, &wg_i)) || (erc = env_choice("SAFESD_CONV_GEMM", k_wino, &cg_i)))
    return erc;
  sd_exec *ex = calloc(1, sizeof *ex);
  if (!ex) return sd_fail(SD_E_NOMEM, "out of memory");
  int rc = sd_pool_create(n_threads, &ex->pool);
  if (rc) { free(ex); return rc; }
  ex->n_threads = sd_pool_threads(ex->pool);
  /* BLAS runs single-threaded inside our parallel-for (sd_sgemm): one set of threads */
  openblas_set_num_threads(1);
  ex->precision = SD_PREC_FP32;
  ex->backend = be_i == 1 ? SD_BACKEND_BLAS : SD_BACKEND_DNNL;
  const char *av = getenv("SAFESD_CPU_AVX2");
#if defined(__x86_64__) && defined(__GNUC__)
  ex->use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !(av && *av == '0');
  const char *a5 = getenv("SAFESD_CPU_AVX512"), *bf = getenv("SAFESD_CPU_BF16");
  ex->use_avx512 = ex->use_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && !(a5 && *a5 == '0');
  ex->use_avx512bf16 = ex->use_avx512 && __builtin_cpu_supports("avx512bf16") && !(bf && *bf == '0');
  const char *amx = getenv("SAFESD_CPU_AMX");
  ex->use_amx = ex->use_avx512bf16 && !(amx && *amx == '0') && sd_cpu_has_amx();
#else
  (void)av;
  ex->use_avx2 = ex->use_avx512 = ex->use_avx512bf16 = ex->use_amx = 0;
#endif
  /* fp32 matrix products: oneDNN's AVX-512 kernels run about twice OpenBLAS 0.3.21's (which
   * uses its Haswell kernels on AVX-512 CPUs); on AVX2 they were no faster (docs/performance.md) */
  ex->matmul_dnnl = mm_i >= 0 ? mm_i == 0 : ex->use_avx512;
  /* on AVX2-only CPUs the own kernel: no widened copy of each weight, and faster than
   * OpenBLAS 0.3.21's Haswell kernels on a Zen 3 (docs/performance.md) */
  ex->matmul_own = mm_i >= 0 ? mm_i == 2 : !ex->use_avx512;
  ex->conv_gemm = cg_i == 0 ? SD_WINO_OFF : cg_i == 1 ? SD_WINO_ON : SD_WINO_AUTO;
  ex->conv_winograd = wg_i == 0 ? SD_WINO_OFF : wg_i == 1 ? SD_WINO_ON : SD_WINO_AUTO;
  /* $SAFESD_PRECISION=bf16: every context asks for bf16 (falls back to fp32 where the CPU has
   * none, unless $SAFESD_BF16_EMULATE=1); how the test suite runs its bf16 conformance */
  const char *pe = getenv("SAFESD_PRECISION");
  if (pe && !strcmp(pe, "bf16")) (void)sd_exec_set_precision(ex, SD_PREC_BF16);
  const char *pr = getenv("SAFESD_PROFILE");
  ex->prof.on = pr && *pr && *pr != '0' ? (*pr == '2' ? 2 : 1) : 0;
  *out = ex;
  return SD_OK;
}

int sd_cpu_has_bf16(void) { return sd_dnnl_cpu_has_bf16(); }

const char *sd_precision_name(sd_precision p) { return p == SD_PREC_BF16 ? "bf16" : "fp32"; }

int sd_exec_set_precision(sd_exec *ex, sd_precision p) {
  ex->bf16_emulated = 0;
  const char *emu = getenv("SAFESD_BF16_EMULATE");
  if (p == SD_PREC_BF16 && !sd_cpu_has_bf16() && emu && *emu == '1' && ex->backend == SD_BACKEND_DNNL) {
    ex->precision = SD_PREC_BF16;
    ex->bf16_emulated = 1;
    return SD_OK;
  }
  if (p == SD_PREC_BF16 && !sd_cpu_has_bf16()) {
    ex->precision = SD_PREC_FP32;
    return sd_fail(SD_E_UNSUPPORTED,
                   "this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX); computing in fp32 instead");
  }
  if (p == SD_PREC_BF16 && ex->backend == SD_BACKEND_BLAS) {
    ex->precision = SD_PREC_FP32;
    return sd_fail(SD_E_UNSUPPORTED, "bf16 needs the oneDNN backend (SAFESD_BACKEND=blas is set); computing in fp32");
  }
  ex->precision = p;
  return SD_OK;
}

const char *sd_opc_name(int cls) {
  static const char *const names[SD_OPC_N] = {"convolution", "matmul", "attention", "normalisation", "other",
                                              "weight packing"};
  return cls >= 0 && cls < SD_OPC_N ? names[cls] : "?";
}

void sd_exec_trim(sd_exec *ex) {
  if (!ex) return;
  free(ex->wbuf);
  ex->wbuf = NULL;
  ex->wbuf_cap = 0;
  ex->wbuf_gen++;
  free(ex->wino_buf);
  ex->wino_buf = NULL;
  ex->wino_cap = 0;
  free(ex->gemm_buf);
  ex->gemm_buf = NULL;
  ex->gemm_cap = 0;
  sd_dnnl_trim(ex->dnnl);
  if (!ex->act.lent) sd_arena_keep_release(&ex->act);
}

void sd_exec_destroy(sd_exec *ex) {
  if (!ex) return;
  sd_dnnl_destroy(ex->dnnl);
  sd_pool_destroy(ex->pool);
  free(ex->wbuf);
  free(ex->wino_buf);
  free(ex->gemm_buf);
  sd_arena_keep_release(&ex->act);
  free(ex);
}

float *sd_conv_scratch(sd_exec *ex, int64_t floats) {
  if ((size_t)floats > ex->wino_cap) {
    free(ex->wino_buf);
    ex->wino_buf = malloc((size_t)floats * sizeof(float));
    ex->wino_cap = ex->wino_buf ? (size_t)floats : 0;
    if (!ex->wino_buf) {
      sd_fail(SD_E_NOMEM, "conv2d: out of memory for %lld values of scratch", (long long)floats);
      return NULL;
    }
  }
  return ex->wino_buf;
}

typedef struct { float *dst; const unsigned char *src; sd_dtype t; } conv_job;

static void conv_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  conv_job *j = ctx;
  sd_to_f32(j->dst + b, j->src + (size_t)b * sd_dtype_size(j->t), j->t, (size_t)(e - b));
}

/* The exec's weight scratch with room for `floats` floats, for converting w; NULL (error set)
 * when w is not of a float type or memory runs out. */
static float *weight_scratch(sd_exec *ex, const sd_tensor *w, size_t floats) {
  if (!sd_dtype_is_float(w->dtype)) {
    sd_fail(SD_E_FORMAT, "weight has dtype %s; a floating-point type is needed", sd_dtype_name(w->dtype));
    return NULL;
  }
  if (floats > ex->wbuf_cap) {
    float *nb = realloc(ex->wbuf, floats * sizeof(float));
    if (!nb) {
      sd_fail(SD_E_NOMEM, "out of memory converting a weight of %lld values", (long long)sd_numel(w));
      return NULL;
    }
    ex->wbuf = nb;
    ex->wbuf_cap = floats;
  }
  return ex->wbuf;
}

const float *sd_weight_f32(sd_exec *ex, const sd_tensor *w) {
  int64_t n = sd_numel(w);
  if (w->dtype == SD_F32 && ((uintptr_t)w->data & 3) == 0) return (const float *)w->data;
  if (!weight_scratch(ex, w, (size_t)n)) return NULL;
  SD_PROF_BEGIN(ex);
  conv_job j = {ex->wbuf, w->data, w->dtype};
  sd_parallel_for(ex->pool, n, 1 << 16, conv_task, &j);
  ex->wbuf_gen++;
  SD_PROF_END(ex, SD_OPC_WEIGHTS, 0);
  return ex->wbuf;
}

typedef struct { uint16_t *dst; const unsigned char *src; sd_dtype t; } bf16_job;

static void bf16_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  bf16_job *j = ctx;
  sd_to_bf16(j->dst + b, j->src + (size_t)b * sd_dtype_size(j->t), j->t, (size_t)(e - b));
}

const uint16_t *sd_weight_bf16(sd_exec *ex, const sd_tensor *w) {
  int64_t n = sd_numel(w);
  const uintptr_t src = (uintptr_t)w->data, wb = (uintptr_t)ex->wbuf;
  if (ex->wbuf && src >= wb && src < wb + ex->wbuf_cap * sizeof(float)) {
    sd_fail(SD_E_ARG, "internal: a weight in the conversion scratch converted into it");
    return NULL;
  }
  if (!weight_scratch(ex, w, ((size_t)n + 1) / 2)) return NULL;
  SD_PROF_BEGIN(ex);
  bf16_job j = {(uint16_t *)(void *)ex->wbuf, w->data, w->dtype};
  sd_parallel_for(ex->pool, n, 1 << 16, bf16_task, &j);
  ex->wbuf_gen++;
  SD_PROF_END(ex, SD_OPC_WEIGHTS, 0);
  return j.dst;
}

float *sd_weight_dup_f32(const sd_tensor *w) {
  int64_t n = sd_numel(w);
  float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
  if (!p) { sd_fail(SD_E_NOMEM, "out of memory"); return NULL; }
  sd_to_f32(p, w->data, w->dtype, (size_t)n);
  return p;
}

/* ---- matrix product ------------------------------------------------------------------- */

typedef struct {
  int transB, M, N, K, lda, ldb, ldc, by_rows;
  const float *A, *B;
  float beta;
  float *C;
} gemm_job;

static void gemm_task(void *ctx, int64_t i0, int64_t i1, int tid) {
  (void)tid;
  const gemm_job *g = ctx;
  const CBLAS_TRANSPOSE tb = g->transB ? CblasTrans : CblasNoTrans;
  if (g->by_rows)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)(i1 - i0), g->N, g->K, 1.0f, g->A + i0 * g->lda, g->lda, g->B,
                g->ldb, g->beta, g->C + i0 * g->ldc, g->ldc);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, g->M, (int)(i1 - i0), g->K, 1.0f, g->A, g->lda,
                g->B + (g->transB ? i0 * g->ldb : i0), g->ldb, g->beta, g->C + i0, g->ldc);
}

void sd_sgemm(sd_exec *ex, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc) {
  /* rows of A and C when there are enough of them, else columns of B and C */
  gemm_job g = {transB, M, N, K, lda, ldb, ldc, M >= 64 || N < 128, A, B, beta, C};
  sd_parallel_for(ex->pool, g.by_rows ? M : N, g.by_rows ? 16 : 64, gemm_task, &g);
}

/* ---- linear ------------------------------------------------------------------------- */

typedef struct { float *y; const float *b; int64_t N; } bias_job;

static void bias_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bias_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    float *row = j->y + r * j->N;
    for (int64_t c = 0; c < j->N; c++) row[c] += j->b[c];
  }
}

int sd_op_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, const sd_tensor *W,
                 const float *b, float *y) {
  int64_t N = W->ndim >= 1 ? W->shape[0] : 0;
  int ok_shape = (W->ndim == 2 && W->shape[1] == K) ||
                 (W->ndim == 4 && W->shape[1] == K && W->shape[2] == 1 && W->shape[3] == 1);
  if (!ok_shape || N <= 0) {
    char buf[96];
    return sd_fail(SD_E_FORMAT, "linear: weight of shape %s does not take %lld inputs",
                   sd_shape_str(W, buf, sizeof buf), (long long)K);
  }
  if (ex->precision == SD_PREC_BF16 || (ex->matmul_dnnl && ex->backend == SD_BACKEND_DNNL)) {
    SD_PROF_BEGIN(ex);
    int rc = sd_dnnl_linear(ex, x, M, K, N, W, b, y);
    SD_PROF_END(ex, SD_OPC_MATMUL, 2.0 * M * N * K);
    if (rc != SD_E_UNSUPPORTED) return rc;
  }
  if (ex->matmul_own && ex->use_avx2 && ex->precision == SD_PREC_FP32) {
    SD_PROF_BEGIN(ex);
    int rc = sd_gemm_avx2_linear(ex, x, M, K, N, W, b, y);
    SD_PROF_END(ex, SD_OPC_MATMUL, 2.0 * M * N * K);
    if (rc != SD_E_UNSUPPORTED) return rc;
  }
  const float *w = sd_weight_f32(ex, W);
  if (!w) return SD_E_FORMAT;
  SD_PROF_BEGIN(ex);
  sd_sgemm(ex, 1, (int)M, (int)N, (int)K, x, (int)K, w, (int)K, 0.0f, y, (int)N);
  if (b) {
    bias_job j = {y, b, N};
    sd_parallel_for(ex->pool, M, 16, bias_task, &j);
  }
  SD_PROF_END(ex, SD_OPC_MATMUL, 2.0 * M * N * K);
  if (ex->prof.on > 1)
    fprintf(stderr, "matmul %lldx%lldx%lld: %.2f ms\n", (long long)M, (long long)K, (long long)N,
            (sd_prof_now() - sd_prof_t0_) * 1e3);
  return SD_OK;
}

/* ---- normalisation ------------------------------------------------------------------ */

typedef struct { const float *x; float *y; int64_t D; const float *g, *b; float eps; } ln_job;

static void ln_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  ln_job *j = ctx;
  int64_t D = j->D;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = j->x + r * D;
    float *y = j->y + r * D;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; i++) mean += x[i];
    mean /= (double)D;
    for (int64_t i = 0; i < D; i++) { double d = x[i] - mean; var += d * d; }
    var /= (double)D;
    float m = (float)mean, inv = (float)(1.0 / sqrt(var + j->eps));
    for (int64_t i = 0; i < D; i++) y[i] = (x[i] - m) * inv * j->g[i] + j->b[i];
  }
}

void sd_op_layernorm(sd_exec *ex, const float *x, int64_t M, int64_t D, const float *gamma,
                     const float *beta, float eps, float *y) {
  SD_PROF_BEGIN(ex);
  ln_job j = {x, y, D, gamma, beta, eps};
  sd_parallel_for(ex->pool, M, 8, ln_task, &j);
  SD_PROF_END(ex, SD_OPC_NORM, 0);
}

/* ---- element-wise ------------------------------------------------------------------- */

typedef struct { float *y; const float *x; } ew_job;

static void quick_gelu_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  float *x = ((ew_job *)ctx)->y;
  for (int64_t i = b; i < e; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}
static void gelu_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  float *x = ((ew_job *)ctx)->y;
  for (int64_t i = b; i < e; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
static void silu_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  float *x = ((ew_job *)ctx)->y;
  for (int64_t i = b; i < e; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}
static void silu_avx2_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  sd_avx2_silu(((ew_job *)ctx)->y + b, e - b);
}
static void add_task(void *ctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  ew_job *j = ctx;
  for (int64_t i = b; i < e; i++) j->y[i] += j->x[i];
}

#define EW_GRAIN 16384
void sd_op_quick_gelu(sd_exec *ex, float *x, int64_t n) {
  SD_PROF_BEGIN(ex);
  ew_job j = {x, NULL};
  sd_parallel_for(ex->pool, n, EW_GRAIN, quick_gelu_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}
void sd_op_gelu(sd_exec *ex, float *x, int64_t n) {
  SD_PROF_BEGIN(ex);
  ew_job j = {x, NULL};
  sd_parallel_for(ex->pool, n, EW_GRAIN, gelu_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}
void sd_op_silu(sd_exec *ex, float *x, int64_t n) {
  SD_PROF_BEGIN(ex);
  ew_job j = {x, NULL};
  sd_parallel_for(ex->pool, n, EW_GRAIN, ex->use_avx2 ? silu_avx2_task : silu_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}
void sd_op_add(sd_exec *ex, float *y, const float *x, int64_t n) {
  SD_PROF_BEGIN(ex);
  ew_job j = {y, x};
  sd_parallel_for(ex->pool, n, EW_GRAIN, add_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}

typedef struct { float *x; int64_t N; } sm_job;

static void softmax_task(void *ctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  sm_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    float *x = j->x + r * j->N;
    float m = -INFINITY;
    for (int64_t i = 0; i < j->N; i++) if (x[i] > m) m = x[i];
    double s = 0;
    for (int64_t i = 0; i < j->N; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < j->N; i++) x[i] *= inv;
  }
}

void sd_op_softmax(sd_exec *ex, float *x, int64_t M, int64_t N) {
  SD_PROF_BEGIN(ex);
  sm_job j = {x, N};
  sd_parallel_for(ex->pool, M, 4, softmax_task, &j);
  SD_PROF_END(ex, SD_OPC_OTHER, 0);
}

/* ---- attention ---------------------------------------------------------------------- */

/* exp(x) for the softmax: Cody–Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a
 * degree-6 polynomial for e^r (relative error ≈ 2e-7, like expf). Written with no branches
 * (integer clamping of the exponent) so that the loops calling it vectorise. Valid for
 * |x| < 2^21 (softmax arguments are ≤ 0); results below 2^-126 flush to 0. */
static inline float fast_expf(float x) {
  /* n = round(x / ln2) with the 1.5·2^23 trick (plain adds, so it vectorises on SSE2) */
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;      /* ln2 split in two for accuracy */
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = (int32_t)n + 127;
  e = e < 0 ? 0 : (e > 254 ? 254 : e);
  e <<= 23;
  float scale;
  memcpy(&scale, &e, 4);
  return p * scale;
}

/* Max and sum of a row with 8 independent lanes (a fixed order, so deterministic), which the
 * compiler turns into vector code where a single running value would not vectorise. */
static float row_max(const float *x, int n, float init) {
  float m[8] = {init, init, init, init, init, init, init, init};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
  for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
  for (int k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
  return m[0];
}

/* x[i] = exp(x[i] - mx) over n values; returns their sum. */
static float row_exp_sum(float *x, int n, float mx) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) {
      x[i + k] = fast_expf(x[i + k] - mx);
      s[k] += x[i + k];
    }
  for (; i < n; i++) {
    x[i] = fast_expf(x[i] - mx);
    s[0] += x[i];
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#define ATT_QT 64  /* queries per tile */
#define ATT_KT 256 /* keys per tile */

typedef struct {
  const sd_attn_shape *s;
  const float *q, *k, *v;
  float *out;
  int q_tiles;
  atomic_int failed;
} att_job;

/* One task = one (batch, head, query tile). Scores and value products of a tile go through
 * single-threaded sgemm (row strides let it read the head's columns in place); the softmax is
 * online, so only a QT×KT score tile ever exists. Each output row is computed by one thread
 * in a fixed order: the result does not depend on the thread count. */
static void att_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  att_job *j = ctx;
  const sd_attn_shape *s = j->s;
  const int Dh = s->Dh;
  size_t need = (size_t)ATT_QT * ATT_KT + (size_t)ATT_QT * Dh + 2 * ATT_QT;
  float *scratch = malloc(need * sizeof(float));
  if (!scratch) { atomic_store(&j->failed, 1); return; }
  float *sc = scratch, *acc = sc + (size_t)ATT_QT * ATT_KT;
  float *mrow = acc + (size_t)ATT_QT * Dh, *lrow = mrow + ATT_QT;

  for (int64_t t = t0; t < t1; t++) {
    int64_t bh = t / j->q_tiles;
    int qt = (int)(t % j->q_tiles);
    int b = (int)(bh / s->H), h = (int)(bh % s->H);
    int i0 = qt * ATT_QT, ni = s->Sq - i0 < ATT_QT ? s->Sq - i0 : ATT_QT;
    const float *qb = j->q + ((int64_t)b * s->Sq + i0) * s->q_stride + (int64_t)h * Dh;
    const float *kb = j->k + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    const float *vb = j->v + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    for (int i = 0; i < ni; i++) { mrow[i] = -INFINITY; lrow[i] = 0; }
    memset(acc, 0, (size_t)ni * Dh * sizeof(float));
    int k_end = s->Sk;
    if (s->causal && i0 + ni < k_end) k_end = i0 + ni; /* keys past the last query are masked */
    for (int j0 = 0; j0 < k_end; j0 += ATT_KT) {
      int nj = k_end - j0 < ATT_KT ? k_end - j0 : ATT_KT;
      /* sc[ni, nj] = scale · Q_tile · K_tileᵀ */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, Dh, s->scale, qb, (int)s->q_stride,
                  kb + (int64_t)j0 * s->kv_stride, (int)s->kv_stride, 0.0f, sc, ATT_KT);
      for (int i = 0; i < ni; i++) {
        float *srow = sc + (size_t)i * ATT_KT;
        int valid = nj;
        if (s->causal) {
          int lim = i0 + i - j0 + 1; /* keys j0..i0+i are visible */
          valid = lim < 0 ? 0 : (lim < nj ? lim : nj);
        }
        float mx = row_max(srow, valid, mrow[i]);
        if (valid == 0 || mx == -INFINITY) {
          memset(srow, 0, (size_t)nj * sizeof(float));
          continue;
        }
        float corr = mrow[i] == -INFINITY ? 0.0f : fast_expf(mrow[i] - mx);
        float sum = row_exp_sum(srow, valid, mx);
        for (int jj = valid; jj < nj; jj++) srow[jj] = 0;
        lrow[i] = lrow[i] * corr + sum;
        mrow[i] = mx;
        if (corr != 1.0f) {
          float *ar = acc + (size_t)i * Dh;
          for (int d = 0; d < Dh; d++) ar[d] *= corr;
        }
      }
      /* acc[ni, Dh] += P[ni, nj] · V_tile */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, Dh, nj, 1.0f, sc, ATT_KT,
                  vb + (int64_t)j0 * s->kv_stride, (int)s->kv_stride, 1.0f, acc, Dh);
    }
    for (int i = 0; i < ni; i++) {
      float *o = j->out + ((int64_t)b * s->Sq + i0 + i) * s->out_stride + (int64_t)h * Dh;
      float inv = lrow[i] > 0 ? 1.0f / lrow[i] : 0.0f;
      const float *ar = acc + (size_t)i * Dh;
      for (int d = 0; d < Dh; d++) o[d] = ar[d] * inv;
    }
  }
  free(scratch);
}

int sd_op_attention(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k,
                    const float *v, float *out) {
  if (s->B <= 0 || s->H <= 0 || s->Sq <= 0 || s->Sk <= 0 || s->Dh <= 0)
    return sd_fail(SD_E_ARG, "attention: empty shape");
  att_job j = {s, q, k, v, out, (s->Sq + ATT_QT - 1) / ATT_QT, 0};
  atomic_init(&j.failed, 0);
  int64_t tasks = (int64_t)s->B * s->H * j.q_tiles;
  /* the tasks call sgemm themselves: BLAS runs single-threaded inside them */
  SD_PROF_BEGIN(ex);
  const double flops = 4.0 * s->B * s->H * (double)s->Sq * s->Sk * s->Dh;
  int rc = sd_attention_amx(ex, s, q, k, v, out);
  if (rc == SD_E_UNSUPPORTED) rc = sd_attention_avx512(ex, s, q, k, v, out);
  if (rc == SD_E_UNSUPPORTED) rc = sd_attention_avx2(ex, s, q, k, v, out);
  if (rc != SD_E_UNSUPPORTED) {
    SD_PROF_END(ex, SD_OPC_ATTN, flops);
    return rc;
  }
  sd_parallel_for(ex->pool, tasks, 1, att_task, &j);
  SD_PROF_END(ex, SD_OPC_ATTN, flops);
  if (atomic_load(&j.failed)) return sd_fail(SD_E_NOMEM, "attention: out of memory for tile scratch");
  return SD_OK;
}
