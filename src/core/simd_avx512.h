/* Shared AVX-512 helpers of the op layer's x86-64 kernels (core/ops_attn_avx512.c).
 * Include only under defined(__x86_64__) && defined(__GNUC__); call only where the CPU has
 * AVX-512F/BW/DQ/VL (sd_exec.use_avx512), and the BF16 ones only with AVX512-BF16
 * (sd_exec.use_avx512bf16). */
#ifndef SD_CORE_SIMD_AVX512_H
#define SD_CORE_SIMD_AVX512_H

#include <immintrin.h>

#include "core/simd_exp2.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512bf16")))

/* 2^x for x <= 0 (softmax arguments in log2 units): n = round(x), r = x - n in [-0.5, 0.5],
 * 2^r by a minimax polynomial, then vscalefps (n below -150 gives 0). x must not be -inf or
 * NaN. sd_exp2_512: degree 5, relative error 2.4e-7 (about 2 float32 ulps); sd_exp2_512_bf16:
 * degree 3, relative error 7.6e-5, for values that are rounded to bf16 (8 bits) next. */
AVX512 static inline __m512 sd_exp2_512(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(SD_EXP2_C5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP2_C4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP2_C3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP2_C2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP2_C1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SD_EXP2_C0));
  return _mm512_scalef_ps(p, n);
}
AVX512 static inline __m512 sd_exp2_512_bf16(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(0.055186375975608826f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.24261236190795898f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.6932582855224609f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.9999279379844666f));
  return _mm512_scalef_ps(p, n);
}

#endif
