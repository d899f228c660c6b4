/* AVX2 + FMA versions of the element-wise loops that dominate outside the matrix products:
 * GroupNorm statistics and its affine + SiLU pass. Chosen at run time (sd_exec.use_avx2);
 * the portable loops in ops_image.c are the fallback. Sums run over fixed chunks in a fixed
 * order, so results do not depend on the thread count.
 */
#include <math.h>

#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/simd_avx2.h"
#define CHUNK 1024 /* float partial sums over at most this many values, then double */

AVX static inline double hsum_pd(__m256 v) {
  __m256d a = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d b = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  return _mm_cvtsd_f64(_mm_add_sd(b, _mm_unpackhi_pd(b, b)));
}

/* Σ (p[i] - c) and Σ (p[i] - c)² (c = 0 for a plain sum). */
AVX void sd_avx2_moments(const float *p, int64_t n, float c, double *s1, double *s2) {
  double t1 = 0, t2 = 0;
  const __m256 vc = _mm256_set1_ps(c);
  for (int64_t b = 0; b < n; b += CHUNK) {
    int64_t e = n - b < CHUNK ? n : b + CHUNK, i = b;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    for (; i + 16 <= e; i += 16) {
      __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), vc), x1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), vc);
      a0 = _mm256_add_ps(a0, x0);
      a1 = _mm256_add_ps(a1, x1);
      q0 = _mm256_fmadd_ps(x0, x0, q0);
      q1 = _mm256_fmadd_ps(x1, x1, q1);
    }
    double r1 = hsum_pd(_mm256_add_ps(a0, a1)), r2 = hsum_pd(_mm256_add_ps(q0, q1));
    for (; i < e; i++) {
      double d = (double)p[i] - c;
      r1 += d;
      r2 += d * d;
    }
    t1 += r1;
    t2 += r2;
  }
  *s1 = t1;
  *s2 = t2;
}

/* y = x·scale + shift, then x·σ(x) when silu. */
AVX void sd_avx2_affine(const float *x, float *y, int64_t n, float scale, float shift, int silu) {
  const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(shift), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vs, vb);
    if (silu) v = _mm256_div_ps(v, _mm256_add_ps(one, sd_exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; i++) {
    float v = x[i] * scale + shift;
    y[i] = silu ? v / (1.0f + expf(-v)) : v;
  }
}

/* o = a · gelu(g) with the exact (erf) GELU; erf by Abramowitz & Stegun 7.1.26
 * (|error| ≤ 1.5e-7): erf(|z|) = 1 - t·P(t)·exp(-z²), t = 1/(1 + 0.3275911|z|). */
AVX void sd_avx2_geglu(const float *a, const float *g, float *o, int64_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), rs2 = _mm256_set1_ps(0.70710678118654752f);
  const __m256 sign = _mm256_set1_ps(-0.0f), pp = _mm256_set1_ps(0.3275911f);
  const __m256 a1 = _mm256_set1_ps(0.254829592f), a2 = _mm256_set1_ps(-0.284496736f), a3 = _mm256_set1_ps(1.421413741f),
               a4 = _mm256_set1_ps(-1.453152027f), a5 = _mm256_set1_ps(1.061405429f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 gv = _mm256_loadu_ps(g + i), z = _mm256_mul_ps(gv, rs2);
    __m256 az = _mm256_andnot_ps(sign, z);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(pp, az, one));
    __m256 poly = _mm256_fmadd_ps(a5, t, a4);
    poly = _mm256_fmadd_ps(poly, t, a3);
    poly = _mm256_fmadd_ps(poly, t, a2);
    poly = _mm256_fmadd_ps(poly, t, a1);
    poly = _mm256_mul_ps(poly, t);
    __m256 e = sd_exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(az, az)));
    __m256 erf_abs = _mm256_fnmadd_ps(poly, e, one);
    __m256 erfz = _mm256_or_ps(erf_abs, _mm256_and_ps(sign, z)); /* sign of z */
    __m256 gel = _mm256_mul_ps(_mm256_mul_ps(half, gv), _mm256_add_ps(one, erfz));
    _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), gel));
  }
  for (; i < n; i++) o[i] = a[i] * (0.5f * g[i] * (1.0f + erff(g[i] * 0.70710678118654752f)));
}

/* x·σ(x) in place. */
AVX void sd_avx2_silu(float *x, int64_t n) { sd_avx2_affine(x, x, n, 1.0f, 0.0f, 1); }

#else
void sd_avx2_moments(const float *p, int64_t n, float c, double *s1, double *s2) {
  (void)p, (void)n, (void)c, (void)s1, (void)s2;
}
void sd_avx2_affine(const float *x, float *y, int64_t n, float scale, float shift, int silu) {
  (void)x, (void)y, (void)n, (void)scale, (void)shift, (void)silu;
}
void sd_avx2_silu(float *x, int64_t n) { (void)x, (void)n; }
void sd_avx2_geglu(const float *a, const float *g, float *o, int64_t n) { (void)a, (void)g, (void)o, (void)n; }
#endif
