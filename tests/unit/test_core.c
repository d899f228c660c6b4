/* Unit tests of the core: dtype conversions, arena, thread pool, ops (against naive
 * reference implementations in double precision). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops_internal.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "testutil.h"

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
  g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static void fill(float *x, int64_t n, float scale) { for (int64_t i = 0; i < n; i++) x[i] = frand() * scale; }

static void test_f16_roundtrip(void **state) {
  (void)state;
  /* every finite half converts to float and back unchanged */
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00) continue;
    float f = sd_f16_to_f32((uint16_t)h);
    assert_int_equal(sd_f32_to_f16(f), h);
  }
  assert_true(sd_f16_to_f32(0x3c00) == 1.0f);
  assert_true(sd_f16_to_f32(0xc000) == -2.0f);
  assert_true(sd_f16_to_f32(0x0001) == 5.9604644775390625e-08f); /* smallest subnormal */
  assert_true(isinf(sd_f16_to_f32(0x7c00)));
  assert_true(isnan(sd_f16_to_f32(0x7e00)));
  /* round to nearest even: 1 + 2^-11 is halfway between 1 and 1+2^-10 -> 1 */
  assert_int_equal(sd_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  assert_int_equal(sd_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  assert_int_equal(sd_f32_to_f16(65520.0f), 0x7c00); /* overflows to inf */
  assert_int_equal(sd_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(sd_f32_to_f16(1e-9f), 0x0000);
}

static void test_bf16(void **state) {
  (void)state;
  assert_true(sd_bf16_to_f32(0x3f80) == 1.0f);
  assert_int_equal(sd_f32_to_bf16(1.0f), 0x3f80);
  assert_int_equal(sd_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);           /* tie -> even */
  assert_int_equal(sd_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f), 0x3f81);
  assert_true(isnan(sd_bf16_to_f32(sd_f32_to_bf16(NAN))));
  float src[5] = {0.5f, -3.25f, 1e10f, -1e-10f, 0}, dst[5];
  uint16_t buf[5];
  sd_from_f32(buf, SD_BF16, src, 5);
  sd_to_f32(dst, buf, SD_BF16, 5);
  for (int i = 0; i < 5; i++) assert_true(fabsf(dst[i] - src[i]) <= fabsf(src[i]) * 0.004f);
}

/* sd_to_bf16 (the bf16 packers' conversion, vectorised with AVX2 where the CPU has it)
 * rounds every value as sd_f32_to_bf16 does: every f16 bit pattern that is finite, float32
 * values with ties and carries into the exponent, at lengths with and without a tail. */
static void test_to_bf16(void **state) {
  (void)state;
  enum { N = 65536 };
  uint16_t *h = malloc(N * 2), *out = malloc(N * 2);
  float *f = malloc(N * 4);
  assert_non_null(h);
  assert_non_null(out);
  assert_non_null(f);
  int n = 0;
  for (uint32_t b = 0; b < 65536; b++)
    if (((b >> 10) & 0x1f) != 0x1f) h[n++] = (uint16_t)b;
  for (int len = n - 3; len <= n; len++) { /* tails of 5, 6, 7 and 0 after blocks of 8 */
    memset(out, 0xAB, (size_t)n * 2);
    sd_to_bf16(out, h, SD_F16, (size_t)len);
    for (int i = 0; i < len; i++)
      if (out[i] != sd_f32_to_bf16(sd_f16_to_f32(h[i])))
        fail_msg("f16 0x%04x -> 0x%04x, want 0x%04x", h[i], out[i], sd_f32_to_bf16(sd_f16_to_f32(h[i])));
    if (len < n) assert_int_equal(out[len], 0xABAB); /* nothing written past n */
  }
  uint32_t x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1664525u + 1013904223u;
    uint32_t u = (x & 0x8fffffffu) | ((uint32_t)(i % 3) << 28); /* spread exponents */
    if (i % 5 == 0) u = (u & 0xffff0000u) | 0x8000u;               /* exact ties */
    if (i % 7 == 0) u |= 0x7fffu;                                  /* carries */
    if (((u >> 23) & 0xff) == 0xff) u &= ~(1u << 30);              /* finite */
    memcpy(&f[i], &u, 4);
  }
  sd_to_bf16(out, f, SD_F32, N - 1);
  for (int i = 0; i < N - 1; i++)
    if (out[i] != sd_f32_to_bf16(f[i])) fail_msg("f32 %a -> 0x%04x, want 0x%04x", (double)f[i], out[i], sd_f32_to_bf16(f[i]));
  sd_to_bf16(out, h, SD_BF16, 100);
  assert_memory_equal(out, h, 200);
  free(h);
  free(out);
  free(f);
}

static void test_dtype_names(void **state) {
  (void)state;
  sd_dtype d;
  assert_int_equal(sd_dtype_parse("BF16", &d), 0);
  assert_int_equal(d, SD_BF16);
  assert_int_equal(sd_dtype_parse("F8_E4M3", &d), -1);
  assert_int_equal(sd_dtype_size(SD_F16), 2);
  assert_string_equal(sd_dtype_name(SD_I64), "I64");
}

static void test_arena(void **state) {
  (void)state;
  sd_arena a;
  assert_int_equal(sd_arena_init(&a, 3 * sd_arena_f32_bytes(10)), SD_OK);
  float *p = sd_arena_f32(&a, 10);
  size_t mark = sd_arena_mark(&a);
  float *q = sd_arena_f32(&a, 10);
  assert_non_null(p);
  assert_non_null(q);
  assert_int_equal((uintptr_t)q % SD_ARENA_ALIGN, 0);
  assert_non_null(sd_arena_f32(&a, 10));
  assert_null(sd_arena_f32(&a, 1)); /* full: an error, not a reallocation */
  assert_non_null(strstr(sd_errmsg(), "arena exhausted"));
  sd_arena_reset(&a, mark);
  assert_ptr_equal(sd_arena_f32(&a, 10), q);
  assert_int_equal(a.peak, 3 * sd_arena_f32_bytes(10));
  sd_arena_free(&a);
}

/* $SAFESD_ARENA_POISON=1: every buffer handed out is NaN until written, in owned and kept
 * blocks; without it the arena leaves memory as it is. */
static void test_arena_poison(void **state) {
  (void)state;
  sd_arena_keep keep = {0};
  sd_arena a;
  assert_int_equal(setenv("SAFESD_ARENA_POISON", "1", 1), 0);
  for (int kept = 0; kept < 2; kept++) {
    assert_int_equal(kept ? sd_arena_init_kept(&a, &keep, sd_arena_f32_bytes(100)) : sd_arena_init(&a, sd_arena_f32_bytes(100)),
                     SD_OK);
    float *p = sd_arena_f32(&a, 37);
    for (int i = 0; i < 37; i++) p[i] = 1.0f;
    sd_arena_reset(&a, 0);
    float *q = sd_arena_f32(&a, 37); /* the same memory, poisoned again */
    assert_ptr_equal(q, p);
    for (int i = 0; i < 37; i++) assert_true(isnan(q[i]));
    sd_arena_free(&a);
  }
  assert_int_equal(setenv("SAFESD_ARENA_POISON", "0", 1), 0);
  assert_int_equal(sd_arena_init_kept(&a, &keep, sd_arena_f32_bytes(100)), SD_OK);
  float *p = sd_arena_f32(&a, 37);
  for (int i = 0; i < 37; i++) p[i] = 1.0f;
  sd_arena_reset(&a, 0);
  float *q = sd_arena_f32(&a, 37);
  for (int i = 0; i < 37; i++) assert_true(q[i] == 1.0f);
  sd_arena_free(&a);
  sd_arena_keep_release(&keep);
  assert_int_equal(unsetenv("SAFESD_ARENA_POISON"), 0);
}

/* A kept block: reused while large enough, replaced when not, never lent twice at once. */
static void test_arena_kept(void **state) {
  (void)state;
  sd_arena_keep keep = {0};
  sd_arena a, b;
  assert_int_equal(sd_arena_init_kept(&a, &keep, sd_arena_f32_bytes(1000)), SD_OK);
  unsigned char *first = keep.base;
  assert_ptr_equal(a.base, first);
  assert_int_equal((uintptr_t)first % SD_ARENA_ALIGN, 0);
  assert_true(keep.cap >= sd_arena_f32_bytes(1000));
  assert_int_equal(a.cap, sd_arena_f32_bytes(1000)); /* the pass's own capacity, not the block's */
  assert_non_null(sd_arena_f32(&a, 1000));
  assert_null(sd_arena_f32(&a, 1)); /* still exhausted at the planned size */
  /* lent: a nested pass gets a block of its own, which is freed, not kept */
  assert_int_equal(sd_arena_init_kept(&b, &keep, sd_arena_f32_bytes(10)), SD_OK);
  assert_ptr_not_equal(b.base, first);
  assert_null(b.kept);
  sd_arena_free(&b);
  assert_ptr_equal(keep.base, first);
  sd_arena_free(&a);
  assert_int_equal(keep.lent, 0);
  /* smaller: the same block */
  assert_int_equal(sd_arena_init_kept(&a, &keep, sd_arena_f32_bytes(10)), SD_OK);
  assert_ptr_equal(a.base, first);
  assert_int_equal(a.used, 0);
  sd_arena_free(&a);
  /* larger than the block: replaced */
  const size_t big = keep.cap + 1;
  assert_int_equal(sd_arena_init_kept(&a, &keep, big), SD_OK);
  assert_true(keep.cap >= big);
  assert_non_null(sd_arena_f32(&a, (int64_t)(big / 4)));
  sd_arena_free(&a);
  /* no keeper: an owned block */
  assert_int_equal(sd_arena_init_kept(&a, NULL, 64), SD_OK);
  assert_null(a.kept);
  sd_arena_free(&a);
  sd_arena_keep_release(&keep);
  assert_null(keep.base);
  assert_int_equal(keep.cap, 0);
}

typedef struct { int64_t *hits; int nt; int64_t grain, n; atomic_int bad; } pool_ctx;
static void mark_task(void *ctx, int64_t b, int64_t e, int tid) {
  pool_ctx *c = ctx;
  /* tid is a thread of the pool; a chunk holds at least `grain` items (or all of them) */
  if (tid < 0 || tid >= c->nt || (e - b < c->grain && e - b != c->n)) atomic_store(&c->bad, 1);
  for (int64_t i = b; i < e; i++) c->hits[i]++;
}

static void test_pool(void **state) {
  (void)state;
  for (int nt = 1; nt <= 4; nt++) {
    sd_pool *p;
    assert_int_equal(sd_pool_create(nt, &p), SD_OK);
    assert_int_equal(sd_pool_threads(p), nt);
    for (int64_t n = 0; n < 50; n += 7)
      for (int64_t grain = 1; grain <= 9; grain += 4) {
        int64_t hits[64] = {0};
        pool_ctx c = {hits, nt, grain, n, 0};
        for (int rep = 0; rep < 20; rep++) sd_parallel_for(p, n, grain, mark_task, &c);
        for (int64_t i = 0; i < 64; i++) assert_int_equal(hits[i], i < n ? 20 : 0);
        assert_int_equal(atomic_load(&c.bad), 0);
      }
    sd_pool_destroy(p);
  }
  sd_pool *p;
  assert_int_not_equal(sd_pool_create(100000, &p), SD_OK);
}

/* y = x·Wᵀ + b on the three matrix-product paths (OpenBLAS, oneDNN, the own AVX2 kernel
 * where the CPU has AVX2), for F32, F16 and 1×1-conv weights, against double; and the same
 * bytes when repeated. */
static void test_linear(void **state) {
  (void)state;
  sd_exec *ex;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  const int M = 37, K = 53, N = 29;
  float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), b[29], *y = malloc(sizeof(float) * M * N);
  float *y2 = malloc(sizeof(float) * M * N);
  uint16_t *wh = malloc(2 * N * K);
  fill(x, M * K, 1);
  fill(w, N * K, 0.5f);
  fill(b, N, 0.1f);
  sd_from_f32(wh, SD_F16, w, (size_t)N * K);
  static const char *const names[] = {"OpenBLAS", "oneDNN", "own AVX2"};
  for (int path = 0; path < 3; path++) {
    if (path == 2 && !ex->use_avx2) { fprintf(stderr, "test_linear: no AVX2 here, the own kernel not run\n"); continue; }
    ex->matmul_dnnl = path == 1;
    ex->matmul_own = path == 2;
    for (int pass = 0; pass < 3; pass++) {
      int64_t shape[2] = {N, K};
      sd_tensor W;
      if (pass == 0) W = sd_tensor_make(SD_F32, 2, shape, w);
      else W = sd_tensor_make(SD_F16, 2, shape, wh);
      if (pass == 2) { /* a 1×1 convolution weight */
        int64_t s4[4] = {N, K, 1, 1};
        W = sd_tensor_make(SD_F16, 4, s4, wh);
      }
      assert_int_equal(sd_op_linear(ex, x, M, K, &W, b, y), SD_OK);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double acc = b[j];
          for (int k = 0; k < K; k++)
            acc += (double)x[i * K + k] * (pass ? sd_f16_to_f32(wh[j * K + k]) : w[j * K + k]);
          if (!(fabs(acc - y[i * N + j]) < 1e-4))
            fail_msg("linear, %s, pass %d: y[%d][%d] = %g, expected %g", names[path], pass, i, j,
                     y[i * N + j], acc);
        }
      assert_int_equal(sd_op_linear(ex, x, M, K, &W, b, y2), SD_OK);
      assert_memory_equal(y, y2, sizeof(float) * M * N);
    }
  }
  int64_t bad[2] = {N, K + 1};
  sd_tensor W = sd_tensor_make(SD_F32, 2, bad, w);
  assert_int_equal(sd_op_linear(ex, x, M, K, &W, NULL, y), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "does not take"));
  free(x); free(w); free(y); free(y2); free(wh);
  sd_exec_destroy(ex);
}

/* The own AVX2 kernel (core/ops_gemm_avx2.c) at the edges of its blocks: rows past a
 * multiple of 6, columns past a multiple of 16 and of 8, inner sizes past a multiple of 8
 * and over several blocks; every stored dtype, weights at an odd address, with and without a
 * bias, against double; the same bytes on 1, 2 and 3 threads. */
static void test_linear_own(void **state) {
  (void)state;
  sd_exec *ex[3];
  for (int t = 0; t < 3; t++) {
    assert_int_equal(sd_exec_create(t + 1, &ex[t]), SD_OK);
    ex[t]->matmul_dnnl = 0;
    ex[t]->matmul_own = 1;
  }
  if (!ex[0]->use_avx2) {
    fprintf(stderr, "test_linear_own: this CPU has no AVX2; the kernel cannot run here\n");
    assert_int_equal(sd_gemm_avx2_linear(ex[0], NULL, 1, 1, 1, NULL, NULL, NULL), SD_E_UNSUPPORTED);
    for (int t = 0; t < 3; t++) sd_exec_destroy(ex[t]);
    return;
  }
  static const int Ms[] = {1, 5, 6, 7, 13, 100}, Ns[] = {1, 8, 15, 16, 17, 40, 300}, Ks[] = {1, 7, 8, 9, 300, 700};
  static const sd_dtype types[] = {SD_F32, SD_F16, SD_BF16, SD_F64};
  const int maxM = 100, maxN = 300, maxK = 700;
  float *x = malloc(sizeof(float) * maxM * maxK), *wf = malloc(sizeof(float) * maxN * maxK), b[300];
  float *y[3];
  for (int t = 0; t < 3; t++) y[t] = malloc(sizeof(float) * maxM * maxN);
  unsigned char *wraw = malloc(8 * (size_t)maxN * maxK + 8);
  fill(b, maxN, 0.3f);
  int cases = 0;
  for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
      for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        const int M = Ms[mi], N = Ns[ni], K = Ks[ki];
        const sd_dtype dt = types[cases % 4];
        const int with_bias = cases % 3 != 0;
        cases++;
        fill(x, (int64_t)M * K, 1.0f);
        fill(wf, (int64_t)N * K, 0.5f);
        unsigned char *w = wraw + (dt == SD_F64 ? 4 : 2); /* never aligned to its own size */
        sd_from_f32(w, dt, wf, (size_t)N * K);
        sd_to_f32(wf, w, dt, (size_t)N * K); /* the values as stored */
        int64_t shape[2] = {N, K};
        sd_tensor W = sd_tensor_make(dt, 2, shape, w);
        for (int t = 0; t < 3; t++)
          assert_int_equal(sd_op_linear(ex[t], x, M, K, &W, with_bias ? b : NULL, y[t]), SD_OK);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double acc = with_bias ? b[j] : 0.0, mag = with_bias ? fabs(b[j]) : 0.0;
            for (int k = 0; k < K; k++) {
              acc += (double)x[i * K + k] * wf[j * K + k];
              mag += fabs((double)x[i * K + k] * wf[j * K + k]);
            }
            if (!(fabs(acc - y[0][i * N + j]) <= 1e-6 * mag + 1e-30))
              fail_msg("own linear %s M=%d N=%d K=%d: y[%d][%d] = %.9g, expected %.9g", sd_dtype_name(dt), M, N, K, i,
                       j, y[0][i * N + j], acc);
          }
        assert_memory_equal(y[0], y[1], sizeof(float) * M * N);
        assert_memory_equal(y[0], y[2], sizeof(float) * M * N);
      }
  free(x); free(wf); free(wraw);
  for (int t = 0; t < 3; t++) { free(y[t]); sd_exec_destroy(ex[t]); }
}

static void test_norm_act(void **state) {
  (void)state;
  sd_exec *ex;
  assert_int_equal(sd_exec_create(2, &ex), SD_OK);
  const int M = 5, D = 300;
  float x[5 * 300], y[5 * 300], g[300], bb[300];
  fill(x, M * D, 3);
  for (int i = 0; i < D; i++) { g[i] = 1 + frand() * 0.1f; bb[i] = frand() * 0.1f; }
  sd_op_layernorm(ex, x, M, D, g, bb, 1e-5f, y);
  for (int r = 0; r < M; r++) {
    double mean = 0, var = 0;
    for (int i = 0; i < D; i++) mean += x[r * D + i];
    mean /= D;
    for (int i = 0; i < D; i++) var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
    var /= D;
    for (int i = 0; i < D; i++) {
      double ref = (x[r * D + i] - mean) / sqrt(var + 1e-5) * g[i] + bb[i];
      assert_true(fabs(ref - y[r * D + i]) < 1e-5);
    }
  }
  float a[4] = {-2, -0.5f, 0, 3}, q[4], gl[4], sl[4];
  memcpy(q, a, sizeof a); memcpy(gl, a, sizeof a); memcpy(sl, a, sizeof a);
  sd_op_quick_gelu(ex, q, 4);
  sd_op_gelu(ex, gl, 4);
  sd_op_silu(ex, sl, 4);
  for (int i = 0; i < 4; i++) {
    assert_true(fabs(q[i] - a[i] / (1 + exp(-1.702 * a[i]))) < 1e-6);
    assert_true(fabs(gl[i] - 0.5 * a[i] * (1 + erf(a[i] / sqrt(2.0)))) < 1e-6);
    assert_true(fabs(sl[i] - a[i] / (1 + exp(-a[i]))) < 1e-6);
  }
  float s[6] = {1, 2, 3, 1000, 1000, -1000};
  sd_op_softmax(ex, s, 2, 3);
  double z = exp(1) + exp(2) + exp(3);
  assert_true(fabs(s[0] - exp(1) / z) < 1e-6 && fabs(s[2] - exp(3) / z) < 1e-6);
  assert_true(fabs(s[3] - 0.5) < 1e-6 && s[5] == 0.0f);
  sd_exec_destroy(ex);
}

/* naive attention in double, for comparison */
static void attn_ref(const sd_attn_shape *s, const float *q, const float *k, const float *v, double *out) {
  double *w = malloc(sizeof(double) * s->Sk);
  for (int b = 0; b < s->B; b++)
    for (int h = 0; h < s->H; h++)
      for (int i = 0; i < s->Sq; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < s->Sk; j++) {
          double d = 0;
          for (int t = 0; t < s->Dh; t++)
            d += (double)q[(b * s->Sq + i) * s->q_stride + h * s->Dh + t] * k[(b * s->Sk + j) * s->kv_stride + h * s->Dh + t];
          w[j] = (s->causal && j > i) ? -INFINITY : d * s->scale;
          if (w[j] > mx) mx = w[j];
        }
        for (int j = 0; j < s->Sk; j++) { w[j] = exp(w[j] - mx); sum += w[j]; }
        for (int t = 0; t < s->Dh; t++) {
          double acc = 0;
          for (int j = 0; j < s->Sk; j++) acc += w[j] * v[(b * s->Sk + j) * s->kv_stride + h * s->Dh + t];
          out[(b * s->Sq + i) * s->out_stride + h * s->Dh + t] = acc / sum;
        }
      }
  free(w);
}

/* The attention paths, each forced on a context: the portable tiles, the AVX2 kernels,
 * the AVX-512 fp32 kernels, the AVX-512 bf16 (vdpbf16ps) kernels and the AMX-BF16 kernel. 0
 * when this CPU cannot run the path (the caller says so). */
enum { ATT_PORTABLE, ATT_AVX2, ATT_AVX512, ATT_BF16, ATT_AMX, ATT_NPATHS };
static const char *const att_path_name[ATT_NPATHS] = {"portable", "AVX2", "AVX-512", "AVX-512 bf16", "AMX bf16"};

static int att_path_set(sd_exec *ex, int path) {
  switch (path) {
    case ATT_PORTABLE: ex->use_avx2 = 0; return 1;
    case ATT_AVX2: ex->use_avx512 = 0; return ex->use_avx2;
    case ATT_AVX512: return ex->use_avx512;
    case ATT_AMX:
      if (!ex->use_amx || sd_exec_set_precision(ex, SD_PREC_BF16) || ex->bf16_emulated) return 0;
      return 1;
    default:
      ex->use_amx = 0;
      if (!ex->use_avx512bf16 || sd_exec_set_precision(ex, SD_PREC_BF16) || ex->bf16_emulated) return 0;
      return 1;
  }
}

/* step > 0: every query's first value is 4, keys 0..127 have 0 there and the later keys
 * `step`: past the first tile of 128 keys, scores jump by 4·step·scale (the fused softmax
 * must move its reference and recompute those tiles; without that, 2^(S - m) overflows). */
static void check_attention_path_g(int B, int H, int Sq, int Sk, int Dh, int causal, int threads, int path,
                                   float step) {
  sd_exec *ex;
  assert_int_equal(sd_exec_create(threads, &ex), SD_OK);
  if (!att_path_set(ex, path)) {
    sd_exec_destroy(ex);
    return;
  }
  int64_t qs = (int64_t)H * Dh + 3, ks = (int64_t)H * Dh + 5; /* strides wider than the heads */
  float *q = malloc(sizeof(float) * B * Sq * qs), *k = malloc(sizeof(float) * B * Sk * ks);
  float *v = malloc(sizeof(float) * B * Sk * ks), *o = malloc(sizeof(float) * B * Sq * qs);
  double *r = malloc(sizeof(double) * B * Sq * qs);
  fill(q, B * Sq * qs, 2);
  fill(k, B * Sk * ks, 2);
  fill(v, B * Sk * ks, 1);
  for (int64_t r = 0; r < (int64_t)B * Sk && step > 0; r++)
    for (int h = 0; h < H; h++) k[r * ks + h * Dh] = r % Sk < 128 ? 0.0f : step;
  for (int64_t r = 0; r < (int64_t)B * Sq && step > 0; r++)
    for (int h = 0; h < H; h++) q[r * qs + h * Dh] = 4.0f;
  sd_attn_shape s = {B, H, Sq, Sk, Dh, qs, ks, qs, causal, 1.0f / sqrtf((float)Dh)};
  assert_int_equal(sd_op_attention(ex, &s, q, k, v, o), SD_OK);
  attn_ref(&s, q, k, v, r);
  double maxerr = 0;
  for (int64_t i = 0; i < (int64_t)B * Sq; i++)
    for (int64_t c = 0; c < (int64_t)H * Dh; c++) {
      double e = fabs(r[i * qs + c] - o[i * qs + c]);
      maxerr = fmax(maxerr, isnan(e) ? INFINITY : e); /* fmax drops a NaN: count it as infinite */
    }
  /* bf16 keeps 8 mantissa bits of q, k and p: about 1e-2 on outputs of scale 1; fp32 2e-6.
   * A bf16 error at fp32's level means bf16 did not run (an odd head size falls back). */
  /* (vdpbf16ps: even head sizes from 128 keys; AMX: any head size, from 128 keys and without
   * a causal mask; the rest runs the fp32 AVX-512 kernel on such a CPU) */
  const int bf16 = (path == ATT_BF16 && Dh % 2 == 0 && Sk >= 128) || (path == ATT_AMX && !causal && Sk >= 128);
  /* the error of a score grows with its size (step: scores of about 100) */
  const double tol = (bf16 ? 1.5e-2 : 2e-6) * (step > 0 ? 20 : 1);
  if (getenv("SAFESD_TEST_VERBOSE"))
    print_message("attention B%d H%d Sq%d Sk%d Dh%d causal %d, %s: max error %.3g\n", B, H, Sq, Sk, Dh, causal,
                  att_path_name[path], maxerr);
  if (maxerr >= tol || (bf16 && maxerr < 1e-5))
    fail_msg("attention B%d H%d Sq%d Sk%d Dh%d causal %d, %s path: max error %.3g", B, H, Sq, Sk, Dh, causal,
             att_path_name[path], maxerr);
  free(q); free(k); free(v); free(o); free(r);
  sd_exec_destroy(ex);
}

static void check_attention_path(int B, int H, int Sq, int Sk, int Dh, int causal, int threads, int path) {
  check_attention_path_g(B, H, Sq, Sk, Dh, causal, threads, path, 0.0f);
}

static void check_attention(int B, int H, int Sq, int Sk, int Dh, int causal, int threads) {
  for (int p = 0; p < ATT_NPATHS; p++) check_attention_path(B, H, Sq, Sk, Dh, causal, threads, p);
}

static void test_attention(void **state) {
  (void)state;
  for (int p = 0; p < ATT_NPATHS; p++) {
    sd_exec *ex;
    assert_int_equal(sd_exec_create(1, &ex), SD_OK);
    if (!att_path_set(ex, p)) print_message("attention: this CPU has no %s kernels: that path is not tested here\n",
                                            att_path_name[p]);
    sd_exec_destroy(ex);
  }
  check_attention(2, 3, 77, 77, 16, 1, 2);   /* the text encoder's causal case */
  check_attention(1, 2, 77, 77, 8, 1, 1);
  check_attention(2, 2, 300, 200, 40, 0, 2); /* several key tiles: online softmax */
  check_attention(1, 1, 65, 7, 5, 0, 2);     /* cross-attention-like, odd sizes */
  /* SD's head sizes (40/80/160, 64) with query blocks and key tiles that do not divide */
  check_attention(1, 2, 197, 77, 40, 0, 2);
  check_attention(2, 1, 100, 530, 80, 0, 2);
  check_attention(1, 1, 37, 300, 160, 0, 1);
  check_attention(1, 2, 260, 260, 64, 1, 2);
  check_attention(1, 1, 5, 3, 24, 0, 2);
  check_attention(1, 2, 90, 129, 64, 0, 2);  /* a 2-vector query block, a 1-key tile */
  check_attention(1, 1, 200, 200, 40, 1, 2); /* causal across key tiles */
  check_attention(1, 1, 130, 257, 7, 0, 2);  /* odd head size: bf16 falls back to fp32 */
  check_attention(1, 1, 70, 90, 512, 0, 2);  /* the VAE's one head of 512 */
  /* scores that jump by about 100 (2^145) after the first key tile */
  for (int p = 0; p < ATT_NPATHS; p++) {
    check_attention_path_g(1, 2, 70, 700, 40, 0, 2, p, 160.0f);
    check_attention_path_g(1, 1, 300, 300, 64, 1, 1, p, 200.0f);
  }
}

/* $SAFESD_CPU_AVX512=0 and $SAFESD_CPU_AVX2=0 turn the kernels off at context creation. */
static void test_cpu_env(void **state) {
  (void)state;
  sd_exec *ex;
  setenv("SAFESD_CPU_AVX512", "0", 1);
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(ex->use_avx512, 0);
  assert_int_equal(ex->use_avx512bf16, 0);
  sd_exec_destroy(ex);
  unsetenv("SAFESD_CPU_AVX512");
  setenv("SAFESD_CPU_AVX2", "0", 1);
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(ex->use_avx2 + ex->use_avx512 + ex->use_avx512bf16, 0);
  sd_exec_destroy(ex);
  unsetenv("SAFESD_CPU_AVX2");
  setenv("SAFESD_CPU_BF16", "0", 1);
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(ex->use_avx512bf16, 0);
  sd_exec_destroy(ex);
  unsetenv("SAFESD_CPU_BF16");
  setenv("SAFESD_CPU_AMX", "0", 1);
  assert_int_equal(sd_exec_create(1, &ex), SD_OK);
  assert_int_equal(ex->use_amx, 0);
  sd_exec_destroy(ex);
  unsetenv("SAFESD_CPU_AMX");
  /* the tuning variables take their listed values; anything else is an error naming it */
  static const struct { const char *wino, *mm, *be; int e_wino, e_mm, e_be, e_own; } good[] = {
      {"0", "blas", "blas", SD_WINO_OFF, 0, SD_BACKEND_BLAS, 0}, {"1", "dnnl", "", SD_WINO_ON, 1, SD_BACKEND_DNNL, 0},
      {"auto", "blas", "dnnl", SD_WINO_AUTO, 0, SD_BACKEND_DNNL, 0}, {"", "own", "", SD_WINO_AUTO, 0, SD_BACKEND_DNNL, 1}};
  for (int i = 0; i < 4; i++) {
    setenv("SAFESD_CONV_WINOGRAD", good[i].wino, 1);
    setenv("SAFESD_MATMUL", good[i].mm, 1);
    setenv("SAFESD_BACKEND", good[i].be, 1);
    assert_int_equal(sd_exec_create(1, &ex), SD_OK);
    assert_int_equal(ex->conv_winograd, good[i].e_wino);
    assert_int_equal(ex->matmul_dnnl, good[i].e_mm);
    assert_int_equal(ex->matmul_own, good[i].e_own);
    assert_int_equal(ex->backend, good[i].e_be);
    sd_exec_destroy(ex);
  }
  const char *bad[][2] = {{"SAFESD_CONV_WINOGRAD", "yes"}, {"SAFESD_MATMUL", "openblas"}, {"SAFESD_BACKEND", "DNNL"},
                          {"SAFESD_CONV_GEMM", "on"}};
  for (int i = 0; i < 4; i++) {
    setenv(bad[i][0], bad[i][1], 1);
    ex = (sd_exec *)1;
    assert_int_equal(sd_exec_create(1, &ex), SD_E_ARG);
    assert_null(ex);
    assert_non_null(strstr(sd_errmsg(), bad[i][0]));
    assert_non_null(strstr(sd_errmsg(), bad[i][1]));
    unsetenv(bad[i][0]);
  }
  unsetenv("SAFESD_CONV_WINOGRAD");
  unsetenv("SAFESD_MATMUL");
  unsetenv("SAFESD_BACKEND");
}

static void test_attention_deterministic(void **state) {
  (void)state;
  /* the same bytes at 1 and 3 threads on every path (tiles are computed by one thread each) */
  int B = 1, H = 4, S = 150, Dh = 24;
  int64_t n = (int64_t)B * S * H * Dh;
  float *q = malloc(sizeof(float) * n), *k = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
  float *o1 = malloc(sizeof(float) * n), *o3 = malloc(sizeof(float) * n);
  fill(q, n, 1); fill(k, n, 1); fill(v, n, 1);
  sd_attn_shape s = {B, H, S, S, Dh, H * Dh, H * Dh, H * Dh, 0, 0.2f};
  for (int p = 0; p < ATT_NPATHS; p++) {
    sd_exec *e1, *e3;
    assert_int_equal(sd_exec_create(1, &e1), SD_OK);
    assert_int_equal(sd_exec_create(3, &e3), SD_OK);
    if (att_path_set(e1, p) && att_path_set(e3, p)) {
      assert_int_equal(sd_op_attention(e1, &s, q, k, v, o1), SD_OK);
      assert_int_equal(sd_op_attention(e3, &s, q, k, v, o3), SD_OK);
      assert_memory_equal(o1, o3, sizeof(float) * n);
    }
    sd_exec_destroy(e1);
    sd_exec_destroy(e3);
  }
  free(q); free(k); free(v); free(o1); free(o3);
}

static void test_errors(void **state) {
  (void)state;
  assert_int_equal(sd_fail(SD_E_IO, "cannot open %s", "x.safetensors"), SD_E_IO);
  assert_int_equal(sd_fail_prefix(SD_E_IO, "loading unet: "), SD_E_IO);
  assert_string_equal(sd_errmsg(), "loading unet: cannot open x.safetensors");
  assert_string_equal(sd_status_name(SD_E_FORMAT), "format error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f16_roundtrip), cmocka_unit_test(test_bf16), cmocka_unit_test(test_to_bf16),   cmocka_unit_test(test_dtype_names),
      cmocka_unit_test(test_arena), cmocka_unit_test(test_arena_poison), cmocka_unit_test(test_arena_kept),         cmocka_unit_test(test_pool),   cmocka_unit_test(test_linear), cmocka_unit_test(test_linear_own),
      cmocka_unit_test(test_norm_act),      cmocka_unit_test(test_attention),
      cmocka_unit_test(test_attention_deterministic), cmocka_unit_test(test_cpu_env), cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
