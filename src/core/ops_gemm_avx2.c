/* The matrix product of a linear layer, y[M,N] = x[M,K]·W[N,K]ᵀ (+ b), with AVX2 + FMA
 * microkernels, reading the weight as it is stored (float16, bfloat16 or float32).
 *
 * Without it, an AVX2-only CPU widened every float16 weight into a float32 copy at each call
 * (a pass through memory the size of the weight, twice over) and then OpenBLAS packed that
 * copy again into its own layout; here each weight is converted once per use straight into
 * the packed layout, block by block, while the block is hot in cache.
 *
 * The output is cut into items of up to GM_NB columns × up to GM_MB rows, taken by the
 * threads from sd_parallel_for. An item, for each block of GM_KC (or fewer) inner indices:
 *   1. packs its columns of W into panels of GM_NR = 16 columns, k-major (16 consecutive
 *      floats per k), converting from the stored type with F16C (eight rows × eight k at a
 *      time, transposed in registers) into the running thread's scratch (≤ 256 KiB, L2);
 *   2. runs a 6×16 register-blocked kernel (12 vector accumulators, six rows of x broadcast
 *      straight from x, no copy, two 8-wide loads of the panel per k) over every 6-row strip
 *      of its rows and every panel, adding to y after the first block.
 * Every output value is summed by one thread, in k order within each block and block by
 * block, with blocks that depend only on K: results do not depend on the thread count or on
 * which thread ran which item. The bias is added last, as the OpenBLAS path does.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"
#include "core/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define GM_TARGET __attribute__((target("avx2,fma,f16c")))
#define GM_MR 6
#define GM_NR 16
#define GM_NB 256  /* columns per item at most (16 panels) */
#define GM_MB 768  /* rows per item at most (a multiple of GM_MR) */
#define GM_KC 256  /* inner indices per block at most (a multiple of 8) */

typedef struct {
  const float *x;
  const unsigned char *w;
  sd_dtype wt;
  size_t wsz;
  const float *b;
  float *y;
  int64_t M, K, N, mb, nb, n_mblk;
  float *scratch; /* GM_NB × GM_KC floats per thread */
} gm_job;

static inline float gm_load(const unsigned char *p, sd_dtype t) {
  switch (t) {
    case SD_F16: { uint16_t h; memcpy(&h, p, 2); return sd_f16_to_f32(h); }
    case SD_BF16: { uint16_t h; memcpy(&h, p, 2); return sd_bf16_to_f32(h); }
    case SD_F64: { double d; memcpy(&d, p, 8); return (float)d; }
    default: { float f; memcpy(&f, p, 4); return f; }
  }
}

/* Eight stored values at p as float32. */
GM_TARGET static inline __m256 gm_load8(const unsigned char *p, sd_dtype t) {
  if (t == SD_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
  if (t == SD_BF16)
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16));
  return _mm256_loadu_ps((const float *)(const void *)p);
}

GM_TARGET static inline void gm_transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Pack columns [n0, n0 + nb) × inner indices [k0, k0 + kc) of W into panels: panel p holds,
 * for each k, the 16 values W[n0 + 16p + j][k0 + k] (j < 16; zeros past N). */
GM_TARGET static void gm_pack(const gm_job *j, float *dst, int64_t n0, int64_t nb, int64_t k0, int64_t kc) {
  const int fast = j->wt == SD_F16 || j->wt == SD_BF16 || j->wt == SD_F32;
  const int64_t groups = (nb + 7) / 8;
  for (int64_t g = 0; g < groups; g++) {
    const int64_t r0 = n0 + 8 * g;
    const int64_t valid = j->N - r0 < 8 ? j->N - r0 : 8;
    float *base = dst + (g / 2) * kc * GM_NR + (g % 2) * 8; /* + k * 16 */
    const int64_t k8 = fast && valid == 8 ? kc & ~(int64_t)7 : 0;
    const unsigned char *row[8];
    for (int r = 0; r < 8; r++) row[r] = j->w + ((size_t)(r0 + (r < valid ? r : 0)) * j->K + k0) * j->wsz;
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 v[8];
      for (int r = 0; r < 8; r++) v[r] = gm_load8(row[r] + k * j->wsz, j->wt);
      gm_transpose8(v);
      for (int t = 0; t < 8; t++) _mm256_store_ps(base + (k + t) * GM_NR, v[t]);
    }
    for (int64_t k = k8; k < kc; k++)
      for (int r = 0; r < 8; r++) base[k * GM_NR + r] = r < valid ? gm_load(row[r] + k * j->wsz, j->wt) : 0.0f;
  }
  /* an odd number of 8-row groups leaves the last panel's upper half */
  if (groups % 2)
    for (int64_t k = 0; k < kc; k++) memset(dst + (groups / 2) * kc * GM_NR + k * GM_NR + 8, 0, 8 * sizeof(float));
}

/* mode bits: 1 = the first block (store, not add), 2 = the last (add the bias) */
#define GM_ROW(i)                                                   \
  if (mr > i) {                                                     \
    const __m256 ai = _mm256_broadcast_ss(a + i * lda + k);         \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                     \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                     \
  }

GM_TARGET static inline __attribute__((always_inline)) void gm_kernel(const int mr, const float *a, int64_t lda,
                                                                      const float *bp, int64_t kc, float *c,
                                                                      int64_t ldc, int nr, int mode,
                                                                      const float *bias) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(bp + k * GM_NR), b1 = _mm256_load_ps(bp + k * GM_NR + 8);
    GM_ROW(0) GM_ROW(1) GM_ROW(2) GM_ROW(3) GM_ROW(4) GM_ROW(5)
  }
  const __m256 acc[GM_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < mr; i++) {
    float *cr = c + i * ldc;
    if (nr == GM_NR) {
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (!(mode & 1)) { v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0); v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1); }
      if ((mode & 2) && bias) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + 8)); }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      float t[GM_NR];
      _mm256_storeu_ps(t, acc[i][0]);
      _mm256_storeu_ps(t + 8, acc[i][1]);
      for (int q = 0; q < nr; q++) {
        float v = (mode & 1) ? t[q] : cr[q] + t[q];
        cr[q] = (mode & 2) && bias ? v + bias[q] : v;
      }
    }
  }
}

GM_TARGET static void gm_strip(int mr, const float *a, int64_t lda, const float *bp, int64_t kc, float *c,
                               int64_t ldc, int nr, int mode, const float *bias) {
  switch (mr) {
    case 6: gm_kernel(6, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
    case 5: gm_kernel(5, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
    case 4: gm_kernel(4, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
    case 3: gm_kernel(3, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
    case 2: gm_kernel(2, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
    default: gm_kernel(1, a, lda, bp, kc, c, ldc, nr, mode, bias); break;
  }
}

/* The inner-index blocks: equal blocks of at most GM_KC, multiples of 8 but the last. */
static int64_t gm_kc(int64_t K) {
  int64_t nk = (K + GM_KC - 1) / GM_KC;
  int64_t kc = (K + nk - 1) / nk;
  return (kc + 7) & ~(int64_t)7;
}

GM_TARGET static void gm_task(void *ctx, int64_t i0, int64_t i1, int tid) {
  const gm_job *j = ctx;
  float *pk = j->scratch + (size_t)tid * GM_NB * GM_KC;
  const int64_t kcb = gm_kc(j->K);
  for (int64_t it = i0; it < i1; it++) {
    const int64_t m0 = (it % j->n_mblk) * j->mb, n0 = (it / j->n_mblk) * j->nb;
    const int64_t mn = j->M - m0 < j->mb ? j->M - m0 : j->mb, nn = j->N - n0 < j->nb ? j->N - n0 : j->nb;
    for (int64_t k0 = 0; k0 < j->K; k0 += kcb) {
      const int64_t kc = j->K - k0 < kcb ? j->K - k0 : kcb;
      const int mode = (k0 == 0 ? 1 : 0) | (k0 + kc >= j->K ? 2 : 0);
      gm_pack(j, pk, n0, nn, k0, kc);
      for (int64_t m = 0; m < mn; m += GM_MR) {
        const int mr = mn - m < GM_MR ? (int)(mn - m) : GM_MR;
        const float *a = j->x + (m0 + m) * j->K + k0;
        for (int64_t p = 0; p * GM_NR < nn; p++) {
          const int nr = nn - p * GM_NR < GM_NR ? (int)(nn - p * GM_NR) : GM_NR;
          const int64_t col = n0 + p * GM_NR;
          gm_strip(mr, a, j->K, pk + p * kc * GM_NR, kc, j->y + (m0 + m) * j->N + col, j->N, nr, mode,
                   j->b ? j->b + col : NULL);
        }
      }
    }
  }
}

/* Rows and columns per item: at most GM_MB × GM_NB, equal-sized, and cut smaller (columns
 * first, down to 64; then rows, down to 96) until there are SD_POOL_OVERSPLIT items per
 * thread where the sizes allow. */
static void gm_items(int64_t M, int64_t N, int threads, int64_t *mb, int64_t *nb) {
  int64_t nm = (M + GM_MB - 1) / GM_MB, nn = (N + GM_NB - 1) / GM_NB;
  const int64_t want = (int64_t)SD_POOL_OVERSPLIT * (threads > 0 ? threads : 1);
  for (;;) {
    *nb = ((N + nn - 1) / nn + GM_NR - 1) / GM_NR * GM_NR;
    *mb = ((M + nm - 1) / nm + GM_MR - 1) / GM_MR * GM_MR;
    if (threads <= 1 || nm * nn >= want) break;
    if (*nb > 64) nn++;
    else if (*mb > 96) nm++;
    else break;
  }
}

int sd_gemm_avx2_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const sd_tensor *W,
                        const float *b, float *y) {
  if (!ex->use_avx2 || !sd_dtype_is_float(W->dtype) || M <= 0 || K <= 0 || N <= 0) return SD_E_UNSUPPORTED;
  const size_t per = (size_t)GM_NB * GM_KC;
  const size_t need = per * (size_t)ex->n_threads;
  if (need > ex->gemm_cap) {
    free(ex->gemm_buf);
    ex->gemm_buf = aligned_alloc(64, need * sizeof(float));
    ex->gemm_cap = ex->gemm_buf ? need : 0;
    if (!ex->gemm_buf) return sd_fail(SD_E_NOMEM, "linear: out of memory for the packing scratch");
  }
  gm_job j = {x, W->data, W->dtype, sd_dtype_size(W->dtype), b, y, M, K, N, 0, 0, 0, ex->gemm_buf};
  gm_items(M, N, ex->n_threads, &j.mb, &j.nb);
  j.n_mblk = (M + j.mb - 1) / j.mb;
  const int64_t items = j.n_mblk * ((N + j.nb - 1) / j.nb);
  sd_parallel_for(ex->pool, items, 1, gm_task, &j);
  return SD_OK;
}

#else
int sd_gemm_avx2_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const sd_tensor *W,
                        const float *b, float *y) {
  (void)ex; (void)x; (void)M; (void)K; (void)N; (void)W; (void)b; (void)y;
  return SD_E_UNSUPPORTED;
}
#endif
