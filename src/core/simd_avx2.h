/* Shared AVX2 + FMA helpers of the op layer's x86-64 kernels (core/simd_avx2.c,
 * core/ops_attn_avx2.c). Include only under defined(__x86_64__) && defined(__GNUC__). */
#ifndef SD_CORE_SIMD_AVX2_H
#define SD_CORE_SIMD_AVX2_H

#include <immintrin.h>

#include "core/simd_exp2.h"

#define AVX __attribute__((target("avx2,fma")))

/* exp(x) for any float x (clamped to [-87, 88]): Cody–Waite + degree-6 polynomial. */
AVX static inline __m256 sd_exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 q = _mm256_set1_ps(1.9875691500e-4f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.3981999507e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.3334519073e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1665795894e-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.6666665459e-1f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(5.0000001201e-1f));
  q = _mm256_fmadd_ps(_mm256_mul_ps(q, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n in two halves so that n = 128 (x near 88) does not overflow the exponent field */
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i h = _mm256_srai_epi32(ni, 1);
  __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
  __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(q, f1), f2);
}

/* 2^x for x <= 0 (softmax arguments in log2 units; below -126 it is 2^-126, nothing beside
 * the row maximum's 1): n = round(x), r = x - n in [-0.5, 0.5], 2^r by the degree-5 minimax
 * polynomial of sd_exp2_512 (relative error 2.4e-7), 2^n built in the exponent field. */
AVX static inline __m256 sd_exp2_256(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-126.0f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(SD_EXP2_C5);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP2_C4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP2_C3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP2_C2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP2_C1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SD_EXP2_C0));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#endif
