/* Internal to the op layer (core/ops*.c): the profiler's timing macros and the oneDNN
 * backend's entry points. */
#ifndef SD_CORE_OPS_INTERNAL_H
#define SD_CORE_OPS_INTERNAL_H

#include <time.h>

#include "core/ops.h"

static inline double sd_prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Time an op body: SD_PROF_BEGIN(ex); ... SD_PROF_END(ex, SD_OPC_CONV, flops); Time spent
 * widening or packing weights inside the body (counted as SD_OPC_WEIGHTS by
 * sd_weight_f32 and the packers) is taken out, so the classes add up to the op time. */
#define SD_PROF_BEGIN(ex)                                            \
  const double sd_prof_t0_ = (ex)->prof.on ? sd_prof_now() : 0.0;    \
  const double sd_prof_w0_ = (ex)->prof.t[SD_OPC_WEIGHTS]
#define SD_PROF_END(ex, cls, fl)                                                                  \
  do {                                                                                            \
    if ((ex)->prof.on) {                                                                          \
      double sd_prof_dt_ = sd_prof_now() - sd_prof_t0_;                                           \
      if ((cls) != SD_OPC_WEIGHTS) sd_prof_dt_ -= (ex)->prof.t[SD_OPC_WEIGHTS] - sd_prof_w0_;    \
      (ex)->prof.t[(cls)] += sd_prof_dt_;                                                         \
      (ex)->prof.flop[(cls)] += (double)(fl);                                                     \
      (ex)->prof.calls[(cls)]++;                                                                  \
    }                                                                                             \
  } while (0)

/* C[M,N] = A[M,K]·B (+ beta·C), B [K,N] or, with transB, [N,K]; row-major; single-threaded
 * BLAS calls on row (or column) blocks in our parallel-for. */
void sd_sgemm(sd_exec *ex, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

/* oneDNN convolution of one image (shapes already validated by sd_op_conv2d). Returns
 * SD_OK, SD_E_UNSUPPORTED when oneDNN has no implementation for the shape (the caller
 * falls back to im2col + sgemm), or another error. */
int sd_dnnl_conv2d(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo,
                   const float *x, const sd_tensor *W, const float *b, float *y);
/* safesd's own Winograd F(4×4, 3×3) convolution in fp32 (core/ops_wino.c) of one image: a
 * 3×3 kernel, stride 1, any padding. SD_E_UNSUPPORTED when ex->use_avx2 is off. */
int sd_wino_conv2d(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int Ho, int Wo, const float *x,
                   const sd_tensor *W, const float *b, float *y);
/* The own convolution kernels' scratch (ex->wino_buf) with room for `floats` floats, grown
 * as needed (nothing in it is kept between calls, so it is not copied); NULL with the error
 * set when memory runs out. */
float *sd_conv_scratch(sd_exec *ex, int64_t floats);
/* Convolution of one image as im2row + the own AVX2 matrix product (core/ops_conv_gemm.c),
 * any kernel, stride and padding (shapes already validated by sd_op_conv2d); fp32 only,
 * SD_E_UNSUPPORTED when ex->use_avx2 is off or the precision is not fp32. */
int sd_conv2d_gemm(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo, const float *x,
                   const sd_tensor *W, const float *b, float *y);
/* oneDNN matrix product y[M,N] = x[M,K]·W[N,K]ᵀ (+ b) in the context's precision. */
int sd_dnnl_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const sd_tensor *W,
                   const float *b, float *y);
/* y[M,N] = x[M,K]·W[N,K]ᵀ (+ b) in fp32 with safesd's own AVX2 kernel (core/ops_gemm_avx2.c),
 * W of any float dtype, read as stored; SD_E_UNSUPPORTED when ex->use_avx2 is off. */
int sd_gemm_avx2_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const sd_tensor *W,
                        const float *b, float *y);
/* Attention with AVX2+FMA kernels (core/ops_attn_avx2.c); SD_E_UNSUPPORTED when ex->use_avx2
 * is off or the head size is not a multiple of 8. */
int sd_attention_avx2(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                      float *out);
/* Attention with AVX-512 kernels (core/ops_attn_avx512.c): fp32, or bf16 (vdpbf16ps) when
 * the context's precision is native bf16, ex->use_avx512bf16 and not ex->use_amx; SD_E_UNSUPPORTED when
 * ex->use_avx512 (or use_avx2) is off. */
int sd_attention_avx512(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                        float *out);
/* Attention in bf16 with AMX tiles (core/ops_attn_amx.c): when ex->use_amx and the context's
 * precision is native bf16; SD_E_UNSUPPORTED otherwise, for causal masks and for fewer than
 * 128 keys (those take the fp32 AVX-512 kernel on such a CPU). */
int sd_attention_amx(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out);
/* 1 when this process may use AMX-BF16 (CPU, OS and Linux's XTILEDATA permission). */
int sd_cpu_has_amx(void);
/* AVX2 element-wise loops (core/simd_avx2.c); call only when ex->use_avx2. */
void sd_avx2_moments(const float *p, int64_t n, float c, double *s1, double *s2);
void sd_avx2_affine(const float *x, float *y, int64_t n, float scale, float shift, int silu);
void sd_avx2_silu(float *x, int64_t n);
void sd_avx2_geglu(const float *a, const float *g, float *o, int64_t n);
void sd_dnnl_destroy(struct sd_dnnl *d);
/* Free the oneDNN backend's growing scratch (packed weights, blocked copies). */
void sd_dnnl_trim(struct sd_dnnl *d);
int sd_dnnl_cpu_has_bf16(void);

#endif
