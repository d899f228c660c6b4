/* Attention with AVX-512 microkernels, in fp32 (AVX-512F) and in bf16 (AVX512-BF16
 * `vdpbf16ps` for both products, fp32 accumulation and fp32 online softmax). x86-64 only,
 * chosen at run time (sd_exec.use_avx512 / use_avx512bf16); the AVX2 kernels
 * (ops_attn_avx2.c) and the portable tiled path (ops.c) remain for other CPUs.
 *
 * Flash attention with the queries along the vector lanes. One task is one (batch, head,
 * block of up to QB = 64 queries = 4 vectors of 16). For each tile of up to KB keys:
 *   1. the transposed scores Sᵀ[j][i] = K[j]·Q[i] with a 4 keys × 4 query-vectors
 *      register-blocked kernel: key values are broadcast, 16 queries are one vector, the
 *      reduction runs over the head dimension, so any head size (40, 64, 80, 160, 512) costs
 *      exactly Dh steps: no padding of the head dimension anywhere. Q carries the scale and
 *      log2(e), so scores are in log2 units and the softmax uses 2^x;
 *   2. the softmax is online and vertical: max, 2^x and sum over the key rows of a tile are
 *      plain vector operations on 16 queries at once (no horizontal reductions). After the
 *      first tile it is fused into the score kernel: P = 2^(S - m) with the running
 *      reference m, computed in registers and stored (as bf16 pairs in bf16), while the
 *      kernel tracks the tile's maximum. The reference only moves when a tile's maximum
 *      exceeds it by more than LAZY (2^LAZY bounds P, far from float overflow); such a tile
 *      (rare: the first tiles set m near the row maximum) is recomputed unfused, with the
 *      output and sum rescaled. Tiles cut by a causal mask are always unfused;
 *   3. Oᵀ[d][i] = Oᵀ[d][i]·corr[i] + Σ_j V[j][d]·P[j][i], a 6 head-dims × 4 query-vectors
 *      kernel in fp32 (4×4 in bf16; V values broadcast; corr = 1, no multiply, after a
 *      fused tile).
 * In fp32, where a row holds several heads, K and V are first copied per head ([B·H][Sk][Dh],
 * a parallel memcpy): the kernels then read contiguous rows (measured: SD 1.5's 64×64
 * self-attention 20% faster, copy included); without the memory they read in place.
 * In bf16, K and V are converted once per call to bf16 (K as [Sk][Dh], V as key pairs
 * [Sk/2][Dh][2]), Q per block to [Dh/2][QB][2] and P per tile to [KB/2][QB][2]: the pair
 * layouts `vdpbf16ps` multiplies (two products per fp32 lane). The head size must be even.
 * Query blocks shorter than 64 use kernels of 1–3 vectors, so short sequences (77 tokens)
 * waste at most 15 lanes. The Sq×Sk score matrix never exists; per-task scratch is
 * (2·Dh + 1.5·KB)·QB floats. Every output value is computed by one thread in a fixed order,
 * and whether a tile is fused depends on the data only, so results do not depend on the
 * thread count.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/simd_avx512.h"

#define QB 64  /* queries per task: 4 vectors */
#define KB 128 /* keys per tile (even) */
#define LAZY 24.0f /* log2 units: P <= 2^24 between reference moves */
#define INLINE __attribute__((always_inline)) inline

/* The kernels name their accumulators one by one (c<row><vector>): GCC 12 keeps arrays of
 * vectors in memory. MR and NV are compile-time constants at every call, so unused
 * accumulators and branches vanish. */
#define R4(X) X(0) X(1) X(2) X(3)
#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* ---- fp32 kernels ------------------------------------------------------------------------ */

/* The score kernels' epilogue for row r, vector v (value c##r##v). RAW: store S, track the
 * tile maximum. FUSED: P = 2^(S - m[v]) stored in fp32, summed into sum[v], tile maximum
 * tracked. FUSED_BF16 is the bf16 kernel's own (pairs of rows). */
enum { RAW = 0, FUSED = 1 };
#define EPI_RAW(r, v, c) _mm512_store_ps(st + (size_t)(r) * QB + 16 * (v), c), mx[v] = _mm512_max_ps(mx[v], c)
#define EPI_FUSED(r, v, c)                                                              \
  do {                                                                                  \
    mx[v] = _mm512_max_ps(mx[v], c);                                                    \
    const __m512 p_ = sd_exp2_512(_mm512_sub_ps(c, m[v]));                              \
    _mm512_store_ps(st + (size_t)(r) * QB + 16 * (v), p_);                              \
    sum[v] = _mm512_add_ps(sum[v], p_);                                                 \
  } while (0)

/* Sᵀ[r][16v..] = Σ_d K[r][d]·Qt[d][16v..] for r < MR, v < NV, then the epilogue of MODE.
 * k: K row 0 (rows ks apart); qt: [Dh][QB]; st: [.][QB]; m, sum, mx: per query vector. */
AVX512 static INLINE void score_f32(const float *k, int64_t ks, const float *qt, int Dh, float *st, const __m512 *m,
                                    __m512 *sum, __m512 *mx, const int MR, const int NV, const int MODE) {
#define DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;
  R4(DECL)
#undef DECL
  const __m512 z = _mm512_setzero_ps();
  for (int d = 0; d < Dh; d++) {
    const float *q = qt + (size_t)d * QB;
    const __m512 b0 = _mm512_load_ps(q), b1 = NV > 1 ? _mm512_load_ps(q + 16) : z;
    const __m512 b2 = NV > 2 ? _mm512_load_ps(q + 32) : z, b3 = NV > 3 ? _mm512_load_ps(q + 48) : z;
#define STEP(r)                                                \
  if (MR > r) {                                                \
    const __m512 a = _mm512_set1_ps(k[(r) * ks + d]);          \
    c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                 \
    if (NV > 1) c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);     \
    if (NV > 2) c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);     \
    if (NV > 3) c##r##3 = _mm512_fmadd_ps(a, b3, c##r##3);     \
  }
    R4(STEP)
#undef STEP
  }
#define EPI(r)                                                         \
  if (MR > r) {                                                        \
    if (MODE == RAW) {                                                 \
      EPI_RAW(r, 0, c##r##0);                                          \
      if (NV > 1) EPI_RAW(r, 1, c##r##1);                              \
      if (NV > 2) EPI_RAW(r, 2, c##r##2);                              \
      if (NV > 3) EPI_RAW(r, 3, c##r##3);                              \
    } else {                                                           \
      EPI_FUSED(r, 0, c##r##0);                                        \
      if (NV > 1) EPI_FUSED(r, 1, c##r##1);                            \
      if (NV > 2) EPI_FUSED(r, 2, c##r##2);                            \
      if (NV > 3) EPI_FUSED(r, 3, c##r##3);                            \
    }                                                                  \
  }
  R4(EPI)
#undef EPI
}

/* The PV kernels' accumulators: Oᵀ rows, scaled by corr unless it is NULL (z: a zero vector). */
#define PV_LOAD(o, v) (corr ? _mm512_mul_ps(_mm512_load_ps((o) + 16 * (v)), corr[v]) : _mm512_load_ps((o) + 16 * (v)))
#define PV_DECL(r)                                                     \
  __m512 c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z;           \
  if (MR > r) {                                                        \
    const float *o = ot + (size_t)(r) * QB;                            \
    c##r##0 = PV_LOAD(o, 0);                                           \
    if (NV > 1) c##r##1 = PV_LOAD(o, 1);                               \
    if (NV > 2) c##r##2 = PV_LOAD(o, 2);                               \
    if (NV > 3) c##r##3 = PV_LOAD(o, 3);                               \
  }
#define PV_STORE(r)                                   \
  if (MR > r) {                                       \
    float *o = ot + (size_t)(r) * QB;                 \
    _mm512_store_ps(o, c##r##0);                      \
    if (NV > 1) _mm512_store_ps(o + 16, c##r##1);     \
    if (NV > 2) _mm512_store_ps(o + 32, c##r##2);     \
    if (NV > 3) _mm512_store_ps(o + 48, c##r##3);     \
  }

/* Ot[r][16v..] = Ot[r][16v..]·corr[v] + Σ_j V[j][r]·P[j][16v..] for r < MR (head dims),
 * v < NV (corr NULL: 1). v: V[0][d0] (rows vs apart); pt: [nj][QB]; ot: Oᵀ row d0. */
AVX512 static INLINE void pv_f32(const float *v, int64_t vs, int nj, const float *pt, float *ot,
                                 const __m512 *corr, const int MR, const int NV) {
  const __m512 z = _mm512_setzero_ps();
  R6(PV_DECL)
  for (int j = 0; j < nj; j++) {
    const float *p = pt + (size_t)j * QB;
    const __m512 b0 = _mm512_load_ps(p), b1 = NV > 1 ? _mm512_load_ps(p + 16) : z;
    const __m512 b2 = NV > 2 ? _mm512_load_ps(p + 32) : z, b3 = NV > 3 ? _mm512_load_ps(p + 48) : z;
#define STEP(r)                                                \
  if (MR > r) {                                                \
    const __m512 a = _mm512_set1_ps(v[j * vs + (r)]);          \
    c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                 \
    if (NV > 1) c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);     \
    if (NV > 2) c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);     \
    if (NV > 3) c##r##3 = _mm512_fmadd_ps(a, b3, c##r##3);     \
  }
    R6(STEP)
#undef STEP
  }
  R6(PV_STORE)
}

/* A whole tile: nj key rows of scores (FUSED only with nj a multiple of 4), Dh head dims of
 * Oᵀ (NV a constant). */
#define TILE_FNS(NV)                                                                                           \
  AVX512 static void score_tile_f32_##NV(const float *k, int64_t ks, int nj, const float *qt, int Dh,          \
                                         float *st, const __m512 *m, __m512 *sum, __m512 *mx, int fused) {     \
    int j = 0;                                                                                                 \
    if (fused)                                                                                                 \
      for (; j + 4 <= nj; j += 4) score_f32(k + j * ks, ks, qt, Dh, st + (size_t)j * QB, m, sum, mx, 4, NV, FUSED); \
    for (; j + 4 <= nj; j += 4) score_f32(k + j * ks, ks, qt, Dh, st + (size_t)j * QB, m, sum, mx, 4, NV, RAW); \
    for (; j < nj; j++) score_f32(k + j * ks, ks, qt, Dh, st + (size_t)j * QB, m, sum, mx, 1, NV, RAW);        \
  }                                                                                                            \
  AVX512 static void pv_tile_f32_##NV(const float *v, int64_t vs, int nj, const float *pt, float *ot, int Dh,   \
                                      const __m512 *corr) {                                                    \
    int d = 0;                                                                                                 \
    for (; d + 6 <= Dh; d += 6) pv_f32(v + d, vs, nj, pt, ot + (size_t)d * QB, corr, 6, NV);                   \
    for (; d + 4 <= Dh; d += 4) pv_f32(v + d, vs, nj, pt, ot + (size_t)d * QB, corr, 4, NV);                   \
    for (; d < Dh; d++) pv_f32(v + d, vs, nj, pt, ot + (size_t)d * QB, corr, 1, NV);                           \
  }
TILE_FNS(1)
TILE_FNS(2)
TILE_FNS(3)
TILE_FNS(4)
#undef TILE_FNS

/* ---- bf16 kernels -------------------------------------------------------------------------- */

static INLINE int32_t pair_at(const uint16_t *p) {
  int32_t x;
  memcpy(&x, p, 4);
  return x;
}

#define DPBF(acc, a, b) acc = _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))

/* 32 bf16 values interleaved from two rows of 16 floats: [a0, b0, a1, b1, ...] (round to
 * nearest even). */
AVX512BF16 static INLINE __m512i interleave_bf16(__m512 a, __m512 b) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* FUSED epilogue of the bf16 kernel for the row pair (r0, r1), vector v: P = 2^(S - m[v]) of
 * both rows into the pair row pp[r0/2] (bf16), summed into sum[v]; tile maximum tracked. */
#define EPI_PAIR(r0, r1, v)                                                                     \
  do {                                                                                          \
    mx[v] = _mm512_max_ps(mx[v], _mm512_max_ps(c##r0##v, c##r1##v));                            \
    const __m512 p0_ = sd_exp2_512_bf16(_mm512_sub_ps(c##r0##v, m[v]));                         \
    const __m512 p1_ = sd_exp2_512_bf16(_mm512_sub_ps(c##r1##v, m[v]));                         \
    sum[v] = _mm512_add_ps(sum[v], _mm512_add_ps(p0_, p1_));                                    \
    _mm512_store_si512(pp + (size_t)((r0) / 2) * QB * 2 + 32 * (v), interleave_bf16(p0_, p1_));  \
  } while (0)

/* Sᵀ[r][16v..] = Σ_d K[r][d]·Q[16v..][d], then the epilogue of MODE (FUSED: MR = 4, P as
 * bf16 pairs into pp). kb: bf16 K row 0 ([.][Dh]); qp: [Dh/2][QB][2]. */
AVX512BF16 static INLINE void score_bf16(const uint16_t *kb, int Dh, const uint16_t *qp, float *st, uint16_t *pp,
                                         const __m512 *m, __m512 *sum, __m512 *mx, const int MR, const int NV,
                                         const int MODE) {
#define DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;
  R4(DECL)
#undef DECL
  const __m512i z = _mm512_setzero_si512();
  for (int dp = 0; dp < Dh / 2; dp++) {
    const uint16_t *q = qp + (size_t)dp * QB * 2;
    const __m512i b0 = _mm512_load_si512(q), b1 = NV > 1 ? _mm512_load_si512(q + 32) : z;
    const __m512i b2 = NV > 2 ? _mm512_load_si512(q + 64) : z, b3 = NV > 3 ? _mm512_load_si512(q + 96) : z;
#define STEP(r)                                                          \
  if (MR > r) {                                                          \
    const __m512i a = _mm512_set1_epi32(pair_at(kb + (r) * Dh + 2 * dp)); \
    DPBF(c##r##0, a, b0);                                                \
    if (NV > 1) DPBF(c##r##1, a, b1);                                    \
    if (NV > 2) DPBF(c##r##2, a, b2);                                    \
    if (NV > 3) DPBF(c##r##3, a, b3);                                    \
  }
    R4(STEP)
#undef STEP
  }
  if (MODE == FUSED) {
    EPI_PAIR(0, 1, 0);
    EPI_PAIR(2, 3, 0);
    if (NV > 1) { EPI_PAIR(0, 1, 1); EPI_PAIR(2, 3, 1); }
    if (NV > 2) { EPI_PAIR(0, 1, 2); EPI_PAIR(2, 3, 2); }
    if (NV > 3) { EPI_PAIR(0, 1, 3); EPI_PAIR(2, 3, 3); }
    return;
  }
#define EPI(r)                                  \
  if (MR > r) {                                 \
    EPI_RAW(r, 0, c##r##0);                     \
    if (NV > 1) EPI_RAW(r, 1, c##r##1);         \
    if (NV > 2) EPI_RAW(r, 2, c##r##2);         \
    if (NV > 3) EPI_RAW(r, 3, c##r##3);         \
  }
  R4(EPI)
#undef EPI
}

/* Ot[r][16v..] = Ot·corr + Σ_j V[j][r]·P[j][16v..] (corr NULL: 1); vp: key pairs
 * [njp][Dh][2] at head dim d0; pp: [njp][QB][2]. */
AVX512BF16 static INLINE void pv_bf16(const uint16_t *vp, int Dh, int njp, const uint16_t *pp, float *ot,
                                      const __m512 *corr, const int MR, const int NV) {
  const __m512 z = _mm512_setzero_ps();
  const __m512i zi = _mm512_setzero_si512();
  R4(PV_DECL)
  for (int jp = 0; jp < njp; jp++) {
    const uint16_t *p = pp + (size_t)jp * QB * 2;
    const __m512i b0 = _mm512_load_si512(p), b1 = NV > 1 ? _mm512_load_si512(p + 32) : zi;
    const __m512i b2 = NV > 2 ? _mm512_load_si512(p + 64) : zi, b3 = NV > 3 ? _mm512_load_si512(p + 96) : zi;
#define STEP(r)                                                                       \
  if (MR > r) {                                                                       \
    const __m512i a = _mm512_set1_epi32(pair_at(vp + (size_t)jp * Dh * 2 + 2 * (r))); \
    DPBF(c##r##0, a, b0);                                                             \
    if (NV > 1) DPBF(c##r##1, a, b1);                                                 \
    if (NV > 2) DPBF(c##r##2, a, b2);                                                 \
    if (NV > 3) DPBF(c##r##3, a, b3);                                                 \
  }
    R4(STEP)
#undef STEP
  }
  R4(PV_STORE)
}

#define TILE_FNS(NV)                                                                                             \
  AVX512BF16 static void score_tile_bf16_##NV(const uint16_t *kb, int nj, const uint16_t *qp, int Dh, float *st,  \
                                              uint16_t *pp, const __m512 *m, __m512 *sum, __m512 *mx, int fused) { \
    int j = 0;                                                                                                   \
    if (fused)                                                                                                   \
      for (; j + 4 <= nj; j += 4)                                                                                \
        score_bf16(kb + (size_t)j * Dh, Dh, qp, st, pp + (size_t)j * QB, m, sum, mx, 4, NV, FUSED);              \
    for (; j + 4 <= nj; j += 4) score_bf16(kb + (size_t)j * Dh, Dh, qp, st + (size_t)j * QB, pp, m, sum, mx, 4, NV, RAW); \
    for (; j < nj; j++) score_bf16(kb + (size_t)j * Dh, Dh, qp, st + (size_t)j * QB, pp, m, sum, mx, 1, NV, RAW); \
  }                                                                                                              \
  AVX512BF16 static void pv_tile_bf16_##NV(const uint16_t *vp, int njp, const uint16_t *pp, float *ot, int Dh,    \
                                           const __m512 *corr) {                                                 \
    int d = 0;                                                                                                   \
    for (; d + 4 <= Dh; d += 4) pv_bf16(vp + 2 * d, Dh, njp, pp, ot + (size_t)d * QB, corr, 4, NV);              \
    for (; d < Dh; d++) pv_bf16(vp + 2 * d, Dh, njp, pp, ot + (size_t)d * QB, corr, 1, NV);                      \
  }
TILE_FNS(1)
TILE_FNS(2)
TILE_FNS(3)
TILE_FNS(4)
#undef TILE_FNS

/* dst[0..n) = bf16(src[0..n)) */
AVX512BF16 static void row_to_bf16(const float *src, uint16_t *dst, int n) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)h);
  }
}

/* dst[d][0..1] = bf16(r0[d]), bf16(r1[d]) for d < n; r1 NULL: zeros. */
AVX512BF16 static void rows_to_bf16_pairs(const float *r0, const float *r1, uint16_t *dst, int n) {
  for (int i = 0; i < n; i += 16) {
    const int rem = n - i >= 16 ? 16 : n - i;
    const __mmask16 m = (__mmask16)((1u << rem) - 1);
    const __mmask32 m2 = rem == 16 ? 0xffffffffu : (__mmask32)((1u << (2 * rem)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(m, r0 + i), b = r1 ? _mm512_maskz_loadu_ps(m, r1 + i) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi16(dst + 2 * i, m2, interleave_bf16(a, b));
  }
}

/* ---- the driver ------------------------------------------------------------------------------- */

typedef struct {
  const sd_attn_shape *s;
  const float *q, *k, *v;
  float *out;
  int q_blocks;
  int bf16;
  int64_t skp;  /* bf16: Sk rounded up to even */
  uint16_t *kb; /* bf16: keys [B·H][Sk][Dh] */
  uint16_t *vp; /* bf16: values as key pairs [B·H][skp/2][Dh][2], zero past Sk */
  float *kc, *vc; /* fp32 with heads interleaved in the rows: K and V per head, [B·H][Sk][Dh] */
  atomic_int failed;
} a5_job;

/* bf16 copies of K and V, one task per (b, h). */
AVX512BF16 static void kv_bf16_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  a5_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh;
  for (int64_t t = t0; t < t1; t++) {
    int b = (int)(t / s->H), h = (int)(t % s->H);
    const float *kr = jb->k + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    const float *vr = jb->v + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    uint16_t *kd = jb->kb + t * s->Sk * Dh, *vd = jb->vp + t * jb->skp * Dh;
    for (int j = 0; j < s->Sk; j++) row_to_bf16(kr + (int64_t)j * s->kv_stride, kd + (int64_t)j * Dh, Dh);
    for (int j = 0; j < s->Sk; j += 2)
      rows_to_bf16_pairs(vr + (int64_t)j * s->kv_stride, j + 1 < s->Sk ? vr + (int64_t)(j + 1) * s->kv_stride : NULL,
                         vd + (int64_t)j * Dh, Dh);
  }
}

/* Contiguous fp32 copies of K and V, one task per (b, h). */
static void kv_f32_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  a5_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const size_t row = (size_t)s->Dh * sizeof(float);
  for (int64_t t = t0; t < t1; t++) {
    const int b = (int)(t / s->H), h = (int)(t % s->H);
    const int64_t src = (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * s->Dh, dst = t * s->Sk * s->Dh;
    for (int j = 0; j < s->Sk; j++) {
      memcpy(jb->kc + dst + (int64_t)j * s->Dh, jb->k + src + (int64_t)j * s->kv_stride, row);
      memcpy(jb->vc + dst + (int64_t)j * s->Dh, jb->v + src + (int64_t)j * s->kv_stride, row);
    }
  }
}

/* Scaled queries of a block: fp32 qt[d][i], zero for i in [ni, 16·nv). */
AVX512 static void load_q_f32(const float *q, int64_t qs, int ni, int nv, int Dh, float scale, float *qt) {
  for (int i = 0; i < 16 * nv; i++)
    for (int d = 0; d < Dh; d++) qt[(size_t)d * QB + i] = i < ni ? q[i * qs + d] * scale : 0.0f;
}

/* The same as bf16 pairs qp[d/2][i][2]. */
static void load_q_bf16(const float *q, int64_t qs, int ni, int nv, int Dh, float scale, uint16_t *qp) {
  for (int i = 0; i < 16 * nv; i++)
    for (int d = 0; d < Dh; d++)
      qp[(size_t)(d / 2) * QB * 2 + 2 * i + (d & 1)] = i < ni ? sd_f32_to_bf16(q[i * qs + d] * scale) : 0;
}

/* The unfused online softmax of a tile, per vector of 16 queries: m, l the running reference
 * and sum; mx the tile's row maxima from the score kernel (recomputed over the visible keys
 * where a causal mask cuts the tile); P = 2^(S - m) replaces S (zero where masked); corr the
 * factor the previous output is scaled by. bf16: P also written as key pairs pp[nj/2][QB][2]
 * by pack. */
AVX512 static void softmax_tile(float *st, int nj, int nv, int causal, int i0, int j0, __m512 *m, __m512 *l,
                                const __m512 *mx, __m512 *corr, uint16_t *pp,
                                void (*pack)(const float *, int, int, uint16_t *)) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int v = 0; v < nv; v++) {
    const int qlo = i0 + 16 * v; /* the vector's first query */
    const int masked = causal && j0 + nj - 1 > qlo;
    const __m512i qi = _mm512_add_epi32(lane, _mm512_set1_epi32(qlo));
    __m512 mt = mx[v];
    if (masked) { /* max over the visible keys j <= i only */
      mt = _mm512_set1_ps(-INFINITY);
      for (int j = 0; j < nj; j++) {
        __mmask16 vis = _mm512_cmpge_epi32_mask(qi, _mm512_set1_epi32(j0 + j));
        mt = _mm512_mask_max_ps(mt, vis, mt, _mm512_load_ps(st + (size_t)j * QB + 16 * v));
      }
    }
    /* the first tile: m = -inf, corr = 0 (clamped: 2^-inf has no finite reduction) */
    const __m512 mnew = _mm512_max_ps(m[v], mt), lo = _mm512_set1_ps(-200.0f);
    corr[v] = sd_exp2_512(_mm512_max_ps(_mm512_sub_ps(m[v], mnew), lo));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < nj; j++) {
      float *row = st + (size_t)j * QB + 16 * v;
      const __m512 x = _mm512_max_ps(_mm512_sub_ps(_mm512_load_ps(row), mnew), lo);
      __m512 p = pp ? sd_exp2_512_bf16(x) : sd_exp2_512(x);
      if (masked) p = _mm512_maskz_mov_ps(_mm512_cmpge_epi32_mask(qi, _mm512_set1_epi32(j0 + j)), p);
      _mm512_store_ps(row, p);
      sum = _mm512_add_ps(sum, p);
    }
    l[v] = _mm512_fmadd_ps(l[v], corr[v], sum);
    m[v] = mnew;
  }
  if (pp) pack(st, nj, nv, pp);
}

/* pp[jp][i][0..1] = P[2jp][i], P[2jp+1][i] (zero past nj). */
AVX512BF16 static void pack_p_bf16(const float *st, int nj, int nv, uint16_t *pp) {
  for (int j = 0; j < nj; j += 2) {
    const float *r0 = st + (size_t)j * QB, *r1 = r0 + QB;
    uint16_t *d = pp + (size_t)(j / 2) * QB * 2;
    for (int v = 0; v < nv; v++) {
      __m512 a = _mm512_load_ps(r0 + 16 * v), b = j + 1 < nj ? _mm512_load_ps(r1 + 16 * v) : _mm512_setzero_ps();
      _mm512_store_si512(d + 32 * v, interleave_bf16(a, b));
    }
  }
}

AVX512 static void a5_task(void *ctx, int64_t t0, int64_t t1, int tid) {
  (void)tid;
  a5_job *jb = ctx;
  const sd_attn_shape *s = jb->s;
  const int Dh = s->Dh;
  /* qt [Dh][QB] (fp32, or bf16 pairs in its first half) | Ot [Dh][QB] | St [KB][QB] | Pp */
  size_t nq = (size_t)Dh * QB, ns = (size_t)KB * QB;
  float *buf = NULL;
  if (posix_memalign((void **)&buf, 64, (2 * nq + ns + ns / 2) * sizeof(float))) {
    atomic_store(&jb->failed, 1);
    return;
  }
  float *qt = buf, *ot = qt + nq, *st = ot + nq;
  uint16_t *qp = (uint16_t *)qt, *pp = (uint16_t *)(st + ns);
  for (int64_t t = t0; t < t1; t++) {
    const int64_t bh = t / jb->q_blocks;
    const int qb = (int)(t % jb->q_blocks);
    const int b = (int)(bh / s->H), h = (int)(bh % s->H);
    const int i0 = qb * QB, ni = s->Sq - i0 < QB ? s->Sq - i0 : QB, nv = (ni + 15) / 16;
    const float *qrow = jb->q + ((int64_t)b * s->Sq + i0) * s->q_stride + (int64_t)h * Dh;
    const float qscale = s->scale * 1.44269504088896341f; /* scores in log2 units */
    if (jb->bf16) load_q_bf16(qrow, s->q_stride, ni, nv, Dh, qscale, qp);
    else load_q_f32(qrow, s->q_stride, ni, nv, Dh, qscale, qt);
    memset(ot, 0, nq * sizeof(float));
    __m512 m[4], l[4], mx[4], corr[4], sum[4];
    for (int v = 0; v < 4; v++) m[v] = _mm512_set1_ps(-INFINITY), l[v] = _mm512_setzero_ps();
    const float *kbase = jb->k + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    const float *vbase = jb->v + (int64_t)b * s->Sk * s->kv_stride + (int64_t)h * Dh;
    int64_t kvs = s->kv_stride;
    if (jb->kc) kbase = jb->kc + bh * s->Sk * Dh, vbase = jb->vc + bh * s->Sk * Dh, kvs = Dh;
    int k_end = s->Sk;
    if (s->causal && i0 + ni < k_end) k_end = i0 + ni; /* keys past the last query are masked */
    for (int j0 = 0; j0 < k_end; j0 += KB) {
      const int nj = k_end - j0 < KB ? k_end - j0 : KB;
      /* fused unless this is the first tile, a causal mask cuts it, or its rows are not
       * whole 4-row kernels */
      int fused = j0 > 0 && !(s->causal && j0 + nj - 1 > i0) && nj % 4 == 0;
      const __m512 *cr = NULL;
      for (int pass = fused ? 0 : 1; pass < 2; pass++) {
        fused = pass == 0;
        for (int v = 0; v < 4; v++) mx[v] = _mm512_set1_ps(-INFINITY), sum[v] = _mm512_setzero_ps();
        if (jb->bf16) {
          const uint16_t *kb = jb->kb + (bh * s->Sk + j0) * Dh;
          switch (nv) {
            case 1: score_tile_bf16_1(kb, nj, qp, Dh, st, pp, m, sum, mx, fused); break;
            case 2: score_tile_bf16_2(kb, nj, qp, Dh, st, pp, m, sum, mx, fused); break;
            case 3: score_tile_bf16_3(kb, nj, qp, Dh, st, pp, m, sum, mx, fused); break;
            default: score_tile_bf16_4(kb, nj, qp, Dh, st, pp, m, sum, mx, fused); break;
          }
        } else {
          const float *kt = kbase + (int64_t)j0 * kvs;
          switch (nv) {
            case 1: score_tile_f32_1(kt, kvs, nj, qt, Dh, st, m, sum, mx, fused); break;
            case 2: score_tile_f32_2(kt, kvs, nj, qt, Dh, st, m, sum, mx, fused); break;
            case 3: score_tile_f32_3(kt, kvs, nj, qt, Dh, st, m, sum, mx, fused); break;
            default: score_tile_f32_4(kt, kvs, nj, qt, Dh, st, m, sum, mx, fused); break;
          }
        }
        if (fused) { /* keep it unless some query's maximum ran past the reference by LAZY */
          __mmask16 over = 0;
          for (int v = 0; v < nv; v++)
            over |= _mm512_cmp_ps_mask(mx[v], _mm512_add_ps(m[v], _mm512_set1_ps(LAZY)), _CMP_GT_OQ);
          if (over) continue;
          for (int v = 0; v < nv; v++) l[v] = _mm512_add_ps(l[v], sum[v]);
          break;
        }
        softmax_tile(st, nj, nv, s->causal, i0, j0, m, l, mx, corr, jb->bf16 ? pp : NULL, pack_p_bf16);
        cr = corr;
      }
      if (jb->bf16) {
        const uint16_t *vp = jb->vp + (bh * jb->skp + j0) * Dh;
        const int njp = (nj + 1) / 2;
        switch (nv) {
          case 1: pv_tile_bf16_1(vp, njp, pp, ot, Dh, cr); break;
          case 2: pv_tile_bf16_2(vp, njp, pp, ot, Dh, cr); break;
          case 3: pv_tile_bf16_3(vp, njp, pp, ot, Dh, cr); break;
          default: pv_tile_bf16_4(vp, njp, pp, ot, Dh, cr); break;
        }
      } else {
        const float *vt = vbase + (int64_t)j0 * kvs;
        switch (nv) {
          case 1: pv_tile_f32_1(vt, kvs, nj, st, ot, Dh, cr); break;
          case 2: pv_tile_f32_2(vt, kvs, nj, st, ot, Dh, cr); break;
          case 3: pv_tile_f32_3(vt, kvs, nj, st, ot, Dh, cr); break;
          default: pv_tile_f32_4(vt, kvs, nj, st, ot, Dh, cr); break;
        }
      }
    }
    float inv[QB];
    for (int v = 0; v < nv; v++) {
      __m512 lv = l[v];
      __mmask16 pos = _mm512_cmp_ps_mask(lv, _mm512_setzero_ps(), _CMP_GT_OQ);
      _mm512_storeu_ps(inv + 16 * v, _mm512_maskz_div_ps(pos, _mm512_set1_ps(1.0f), lv));
    }
    for (int i = 0; i < ni; i++) {
      float *o = jb->out + ((int64_t)b * s->Sq + i0 + i) * s->out_stride + (int64_t)h * Dh;
      for (int d = 0; d < Dh; d++) o[d] = ot[(size_t)d * QB + i] * inv[i];
    }
  }
  free(buf);
}

/* bf16: use the bf16 kernels (the caller checks the CPU and the precision). */
static int attention_avx512(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                            float *out, int bf16) {
  if (bf16 && s->Dh % 2) return SD_E_UNSUPPORTED;
  if (s->Dh > 1024) return SD_E_UNSUPPORTED;
  a5_job j = {s, q, k, v, out, (s->Sq + QB - 1) / QB, bf16, ((int64_t)s->Sk + 1) / 2 * 2, NULL, NULL, NULL, NULL, 0};
  atomic_init(&j.failed, 0);
  if (bf16) {
    const int64_t bh = (int64_t)s->B * s->H;
    j.kb = malloc((size_t)bh * s->Sk * s->Dh * sizeof(uint16_t));
    j.vp = malloc((size_t)bh * j.skp * s->Dh * sizeof(uint16_t));
    if (!j.kb || !j.vp) {
      free(j.kb);
      free(j.vp);
      return sd_fail(SD_E_NOMEM, "attention: out of memory for the bf16 keys and values");
    }
    sd_parallel_for(ex->pool, bh, 1, kv_bf16_task, &j);
  } else if (s->kv_stride != s->Dh) {
    /* fp32 with several heads per row: a contiguous copy per head is 15–20% faster on SD's
     * self-attention (bench_ops attention, self64) than reading the rows in place, copy
     * included. Without the memory the kernels read in place. */
    const int64_t bh = (int64_t)s->B * s->H;
    j.kc = malloc((size_t)bh * s->Sk * s->Dh * sizeof(float));
    j.vc = malloc((size_t)bh * s->Sk * s->Dh * sizeof(float));
    if (j.kc && j.vc) sd_parallel_for(ex->pool, bh, 1, kv_f32_task, &j);
    else free(j.kc), free(j.vc), j.kc = j.vc = NULL;
  }
  sd_parallel_for(ex->pool, (int64_t)s->B * s->H * j.q_blocks, 1, a5_task, &j);
  free(j.kb);
  free(j.vp);
  free(j.kc);
  free(j.vc);
  if (atomic_load(&j.failed)) return sd_fail(SD_E_NOMEM, "attention: out of memory for tile scratch");
  return SD_OK;
}

int sd_attention_avx512(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                        float *out) {
  if (!ex->use_avx2 || !ex->use_avx512) return SD_E_UNSUPPORTED;
  /* not on AMX CPUs: measured on a Xeon with AMX, its vdpbf16ps runs at the fp32 FMA rate and
   * this file's bf16 kernel is slower than its fp32 one at every SD shape (bench_ops) */
  /* nor with fewer than 128 keys (cross-attention's 77 text tokens): converting the keys and
   * values costs more than the bf16 products save there (bench_ops attention, cross64 on a Zen
   * 5: 3.07 ms in bf16 against 2.03 ms in fp32), as on the AMX kernel */
  const int bf16 = ex->precision == SD_PREC_BF16 && !ex->bf16_emulated && ex->use_avx512bf16 && !ex->use_amx &&
                   s->Sk >= 128;
  int rc = attention_avx512(ex, s, q, k, v, out, bf16);
  if (rc == SD_E_UNSUPPORTED && bf16) rc = attention_avx512(ex, s, q, k, v, out, 0); /* odd head size */
  return rc;
}

#else
int sd_attention_avx512(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                        float *out) {
  (void)ex, (void)s, (void)q, (void)k, (void)v, (void)out;
  return SD_E_UNSUPPORTED;
}
#endif
