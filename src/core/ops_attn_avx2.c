/* Attention with AVX2 + FMA microkernels (x86-64, chosen at run time; other CPUs and head
 * sizes that are not a multiple of 8 use the portable tiled path in ops.c).
 *
 * Flash-attention style: one task is one (batch, head, block of ATT_QB queries). For each
 * tile of ATT_KB keys it
 *   1. (once per call, before the tasks) all keys are transposed into panels of 16 keys,
 *      Kt[B·H][Sk' / 16][Dh][16] with Sk' = Sk rounded up to 16 and zeros past Sk,
 *   2. computes the scores S = scale·Q·Kᵀ with a 6×16 register-blocked kernel (12 vector
 *      accumulators, queries broadcast, keys loaded 16 at a time),
 *   3. updates each row's running max and sum (online softmax in base 2: the queries carry log2 e, so the vector 2^x of
 *      simd_avx2.h serves),
 *   4. accumulates O += P·V with a 6×16 (or 6×8) kernel reading V rows in place.
 * The Sq×Sk score matrix never exists; per task scratch is about 300 KiB (fits L2). Every
 * output value is computed by one thread in a fixed order, so results do not depend on the
 * thread count.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/simd_avx2.h"
#define ATT_QB 96  /* queries per task (a multiple of 6) */
#define ATT_KB 256 /* keys per tile (a multiple of 16) */
#define MR 6

AVX static inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

AVX static inline float hsum256(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

/* The kernels name their accumulators one by one: GCC 12 keeps an array of vectors in
 * memory and stores it on every iteration, which halves the speed. */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* S[MR rows][16 keys] = Qs[MR][Dh] · Kt[Dh][j..j+16) (Kt rows ldk apart) */
AVX static inline void score_6x16(const float *qs, int Dh, const float *kt, int64_t ldk, float *S) {
#define DECL(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();
  ROWS(DECL)
#undef DECL
  for (int d = 0; d < Dh; d++) {
    __m256 b0 = _mm256_load_ps(kt + d * ldk), b1 = _mm256_load_ps(kt + d * ldk + 8);
#define STEP(r)                                                  \
  {                                                              \
    __m256 a = _mm256_broadcast_ss(qs + (size_t)(r) * Dh + d);   \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                   \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                   \
  }
    ROWS(STEP)
#undef STEP
  }
#define STORE(r)                                          \
  _mm256_store_ps(S + (size_t)(r) * ATT_KB, c##r##0);     \
  _mm256_store_ps(S + (size_t)(r) * ATT_KB + 8, c##r##1);
  ROWS(STORE)
#undef STORE
}

/* O[MR][d0..d0+16) += P[MR][0..nj) · V[0..nj)[d0..d0+16) */
AVX static inline void pv_6x16(const float *P, int nj, const float *v, int64_t vs, float *O, int Dh) {
#define DECL(r) __m256 c##r##0 = _mm256_load_ps(O + (size_t)(r) * Dh), c##r##1 = _mm256_load_ps(O + (size_t)(r) * Dh + 8);
  ROWS(DECL)
#undef DECL
  for (int j = 0; j < nj; j++) {
    __m256 b0 = _mm256_loadu_ps(v + j * vs), b1 = _mm256_loadu_ps(v + j * vs + 8);
#define STEP(r)                                                       \
  {                                                                   \
    __m256 a = _mm256_broadcast_ss(P + (size_t)(r) * ATT_KB + j);     \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                        \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                        \
  }
    ROWS(STEP)
#undef STEP
  }
#define STORE(r)                                       \
  _mm256_store_ps(O + (size_t)(r) * Dh, c##r##0);      \
  _mm256_store_ps(O + (size_t)(r) * Dh + 8, c##r##1);
  ROWS(STORE)
#undef STORE
}

AVX static inline void pv_6x8(const float *P, int nj, const float *v, int64_t vs, float *O, int Dh) {
#define DECL(r) __m256 c##r = _mm256_load_ps(O + (size_t)(r) * Dh);
  ROWS(DECL)
#undef DECL
  for (int j = 0; j < nj; j++) {
    __m256 b0 = _mm256_loadu_ps(v + j * vs);
#define STEP(r) c##r = _mm256_fmadd_ps(_mm256_broadcast_ss(P + (size_t)(r) * ATT_KB + j), b0, c##r);
    ROWS(STEP)
#undef STEP
  }
#define STORE(r) _mm256_store_ps(O + (size_t)(r) * Dh, c##r);
  ROWS(STORE)
#undef STORE
}

typedef struct {
  const sd_attn_shape *s;
  const float *q, *k, *v;
  float *out;
  int q_blocks;
  int64_t skp;     /* Sk rounded up to 16 */
  float *kt;       /* all keys transposed in panels of 16: [B·H][skp / 16][Dh][16], zero past Sk */
  atomic_int failed;
} avx_job;

/* Phase 1: Kt[b·H + h][j / 16][d][j % 16] = K[b][j][h·Dh + d], one task per (b, h): each
 * panel of 16 keys is one contiguous Dh × 16 block, so the score kernel reads it in order
 * (rows of a [Dh][Sk] layout, 16 KiB apart at 4096 keys, all fell in one L1 set). */
static void kt_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  avx_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh;
  for (int64_t t = t0; t < t1; t++) {
    int b = (int)(t / s->H), h = (int)(t % s->H);
    float *dst = jb->kt + t * Dh * jb->skp;
    const float *kb = jb->k + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    for (int64_t j0 = 0; j0 < jb->skp; j0 += 16) {
      float *panel = dst + j0 * Dh;
      for (int jj = 0; jj < 16; jj++) {
        const int64_t j = j0 + jj;
        const float *kr = kb + j * s->kv_stride;
        for (int d = 0; d < Dh; d++) panel[d * 16 + jj] = j < s->Sk ? kr[d] : 0.0f;
      }
    }
  }
}

AVX static void att_avx_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  avx_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh;
  /* Qs [QB][Dh] | O [QB][Dh] | S [QB][KB] | m, l [QB]; 32-byte aligned pieces */
  size_t nq = (size_t)ATT_QB * Dh, ns = (size_t)ATT_QB * ATT_KB;
  float *buf = NULL;
  if (posix_memalign((void **)&buf, 64, (2 * nq + ns + 2 * ATT_QB) * sizeof(float))) {
    atomic_store(&jb->failed, 1);
    return;
  }
  float *Qs = buf, *O = Qs + nq, *S = O + nq, *mrow = S + ns, *lrow = mrow + ATT_QB;
  const __m256 vscale = _mm256_set1_ps(s->scale * 1.44269504088896341f); /* scores in log2 units */
  for (int64_t t = t0; t < t1; t++) {
    int64_t bh = t / jb->q_blocks;
    int qb = (int)(t % jb->q_blocks);
    int b = (int)(bh / s->H), h = (int)(bh % s->H);
    int i0 = qb * ATT_QB, ni = s->Sq - i0 < ATT_QB ? s->Sq - i0 : ATT_QB;
    int nip = (ni + MR - 1) / MR * MR;
    const float *ktb = jb->kt + bh * Dh * jb->skp;
    const float *vb = jb->v + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    /* scaled queries, padded rows zero */
    for (int i = 0; i < nip; i++) {
      float *dst = Qs + (size_t)i * Dh;
      if (i < ni) {
        const float *src = jb->q + ((int64_t)b * s->Sq + i0 + i) * s->q_stride + (int64_t)h * Dh;
        for (int d = 0; d < Dh; d += 8) _mm256_store_ps(dst + d, _mm256_mul_ps(_mm256_loadu_ps(src + d), vscale));
      } else {
        memset(dst, 0, (size_t)Dh * sizeof(float));
      }
      mrow[i] = -INFINITY;
      lrow[i] = 0;
    }
    memset(O, 0, (size_t)nip * Dh * sizeof(float));
    int k_end = s->Sk;
    if (s->causal && i0 + ni < k_end) k_end = i0 + ni; /* keys past the last query are masked */
    for (int j0 = 0; j0 < k_end; j0 += ATT_KB) {
      int nj = k_end - j0 < ATT_KB ? k_end - j0 : ATT_KB;
      int njp = (nj + 15) / 16 * 16;
      for (int i = 0; i < nip; i += MR)
        for (int j = 0; j < njp; j += 16)
          score_6x16(Qs + (size_t)i * Dh, Dh, ktb + (int64_t)(j0 + j) * Dh, 16, S + (size_t)i * ATT_KB + j);
      /* online softmax per row; P replaces S, zero where masked */
      for (int i = 0; i < nip; i++) {
        float *srow = S + (size_t)i * ATT_KB;
        int valid = nj;
        if (s->causal) {
          int lim = i0 + i - j0 + 1; /* keys j0..i0+i are visible */
          valid = lim < 0 ? 0 : (lim < nj ? lim : nj);
        }
        if (i >= ni) valid = 0;
        float mx = mrow[i];
        {
          __m256 m8 = _mm256_set1_ps(mx);
          int j = 0;
          for (; j + 8 <= valid; j += 8) m8 = _mm256_max_ps(m8, _mm256_load_ps(srow + j));
          mx = hmax256(m8);
          for (; j < valid; j++) mx = srow[j] > mx ? srow[j] : mx;
        }
        if (valid == 0 || mx == -INFINITY) {
          memset(srow, 0, (size_t)njp * sizeof(float));
          continue;
        }
        float corr = mrow[i] == -INFINITY ? 0.0f : exp2f(mrow[i] - mx);
        __m256 vmx = _mm256_set1_ps(mx), sum8 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= valid; j += 8) {
          __m256 p = sd_exp2_256(_mm256_sub_ps(_mm256_load_ps(srow + j), vmx));
          _mm256_store_ps(srow + j, p);
          sum8 = _mm256_add_ps(sum8, p);
        }
        float sum = hsum256(sum8);
        for (; j < valid; j++) {
          float p = exp2f(srow[j] - mx);
          srow[j] = p;
          sum += p;
        }
        for (; j < njp; j++) srow[j] = 0.0f;
        lrow[i] = lrow[i] * corr + sum;
        mrow[i] = mx;
        if (corr != 1.0f) {
          float *orow = O + (size_t)i * Dh;
          __m256 c8 = _mm256_set1_ps(corr);
          for (int d = 0; d < Dh; d += 8) _mm256_store_ps(orow + d, _mm256_mul_ps(_mm256_load_ps(orow + d), c8));
        }
      }
      /* O += P · V_tile */
      const float *vt = vb + (int64_t)j0 * s->kv_stride;
      for (int i = 0; i < nip; i += MR) {
        int d = 0;
        for (; d + 16 <= Dh; d += 16) pv_6x16(S + (size_t)i * ATT_KB, nj, vt + d, s->kv_stride, O + (size_t)i * Dh + d, Dh);
        if (d < Dh) pv_6x8(S + (size_t)i * ATT_KB, nj, vt + d, s->kv_stride, O + (size_t)i * Dh + d, Dh);
      }
    }
    for (int i = 0; i < ni; i++) {
      float *o = jb->out + ((int64_t)b * s->Sq + i0 + i) * s->out_stride + (int64_t)h * Dh;
      const float *orow = O + (size_t)i * Dh;
      __m256 inv = _mm256_set1_ps(lrow[i] > 0 ? 1.0f / lrow[i] : 0.0f);
      for (int d = 0; d < Dh; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_load_ps(orow + d), inv));
    }
  }
  free(buf);
}

int sd_attention_avx2(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                      float *out) {
  if (!ex->use_avx2 || s->Dh % 8 != 0 || s->Dh > 512) return SD_E_UNSUPPORTED;
  int64_t skp = ((int64_t)s->Sk + 15) / 16 * 16;
  float *kt = NULL;
  if (posix_memalign((void **)&kt, 64, (size_t)s->B * s->H * s->Dh * skp * sizeof(float)))
    return sd_fail(SD_E_NOMEM, "attention: out of memory for the transposed keys");
  avx_job j = {s, q, k, v, out, (s->Sq + ATT_QB - 1) / ATT_QB, skp, kt, 0};
  atomic_init(&j.failed, 0);
  sd_parallel_for(ex->pool, (int64_t)s->B * s->H, 1, kt_task, &j);
  sd_parallel_for(ex->pool, (int64_t)s->B * s->H * j.q_blocks, 1, att_avx_task, &j);
  free(kt);
  if (atomic_load(&j.failed)) return sd_fail(SD_E_NOMEM, "attention: out of memory for tile scratch");
  return SD_OK;
}

#else
int sd_attention_avx2(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                      float *out) {
  (void)ex, (void)s, (void)q, (void)k, (void)v, (void)out;
  return SD_E_UNSUPPORTED;
}
#endif
