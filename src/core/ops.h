/* The op layer: every numeric kernel the models call goes through here.
 *
 * Activations are float32, row-major. Weights are sd_tensor views in their stored dtype
 * (F32/F16/BF16); an op converts what it needs when it runs, so weights stay in stored
 * precision in memory. Callers never see how an op is computed: a faster kernel (oneDNN,
 * own AVX-512 microkernels, bf16) replaces the body here without touching the models.
 * All ops are deterministic for a given thread count.
 */
#ifndef SD_CORE_OPS_H
#define SD_CORE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "core/threadpool.h"

/* Op classes of the profiler (SAFESD_PROFILE=1 or sd_exec.prof.on): time, FLOPs and calls
 * per class, for the benchmark programs' per-op breakdown. */
enum { SD_OPC_CONV, SD_OPC_MATMUL, SD_OPC_ATTN, SD_OPC_NORM, SD_OPC_OTHER, SD_OPC_WEIGHTS, SD_OPC_N };
typedef struct sd_prof {
  int on;
  double t[SD_OPC_N], flop[SD_OPC_N];
  int64_t calls[SD_OPC_N];
} sd_prof;
const char *sd_opc_name(int cls);

/* Compute precision of the convolutions and matrix products (everything else is float32). */
typedef enum { SD_PREC_FP32 = 0, SD_PREC_BF16 = 1 } sd_precision;

struct sd_dnnl; /* the oneDNN backend's state (core/ops_dnnl.c) */

/* Execution context: thread pool + scratch used to widen stored weights to float32. */
typedef struct sd_exec {
  sd_pool *pool;
  int n_threads;
  float *wbuf;          /* weight-conversion scratch; grows to the largest weight converted */
  size_t wbuf_cap;      /* in floats */
  float *wino_buf;      /* scratch of safesd's own Winograd convolution (core/ops_wino.c) */
  size_t wino_cap;      /* in floats */
  int64_t wino_block;   /* its blocks' size in floats (0: the default, 32 MiB; tests set less),
                           and the im2row tiles' of core/ops_conv_gemm.c (0: 16 MiB) */
  uint64_t wbuf_gen;    /* bumped each time wbuf is rewritten (keys the packed-weight cache) */
  sd_precision precision;
  int bf16_emulated;    /* precision bf16 without native bf16 ($SAFESD_BF16_EMULATE=1): fp32
                           kernels on inputs and weights rounded to bf16, to measure bf16's
                           effect on images on any CPU (slower than fp32, not faster) */
  int backend;          /* SD_BACKEND_* in use for convolutions */
  int matmul_dnnl;      /* fp32 matrix products by oneDNN (with the oneDNN backend) instead of
                           OpenBLAS sgemm in row blocks: the default on AVX-512 CPUs;
                           $SAFESD_MATMUL=blas|dnnl|own forces one */
  int matmul_own;       /* fp32 products of linear layers by safesd's own AVX2 kernel
                           (core/ops_gemm_avx2.c, weights read as stored): the default on
                           CPUs with AVX2 but not AVX-512; needs use_avx2 */
  int conv_gemm;        /* convolutions as im2row + that kernel (core/ops_conv_gemm.c):
                           SD_WINO_AUTO (default): with matmul_own, on the shapes of
                           sd_conv_gemm_auto; SD_WINO_ON: every fp32 convolution the own
                           Winograd kernel does not take; SD_WINO_OFF: never;
                           $SAFESD_CONV_GEMM=auto|0|1 */
  float *gemm_buf;      /* its packing scratch, per thread */
  size_t gemm_cap;      /* in floats */
  int conv_winograd;    /* fp32 3×3 stride-1 convolutions by Winograd F(4×4, 3×3): safesd's own
                           (core/ops_wino.c) on CPUs with AVX2, else oneDNN's (AVX-512 only).
                           SD_WINO_AUTO (default): the own one at >= SD_WINO_OWN_MIN_PIXELS
                           output pixels and >= SD_WINO_OWN_MIN_CHANNELS channels in and out,
                           budget or not; of the others, oneDNN's where the packed weight may
                           be kept (pack_budget > 0) and the output has >= SD_WINO_MIN_PIXELS
                           pixels; SD_WINO_OFF: never; SD_WINO_ON: every such convolution
                           (oneDNN's where the own one cannot run and oneDNN accepts the
                           shape); $SAFESD_CONV_WINOGRAD=auto|0|1 */
  int use_avx2;         /* AVX2+FMA kernels (attention); 0 on other CPUs or $SAFESD_CPU_AVX2=0 */
  int use_avx512;       /* AVX-512 kernels (attention), only where use_avx2 is also on; 0 on CPUs
                           without AVX-512F/BW/DQ/VL or with $SAFESD_CPU_AVX512=0 */
  int use_avx512bf16;   /* AVX512-BF16 kernels (attention in bf16 precision), only with
                           use_avx512; 0 without AVX512-BF16 or with $SAFESD_CPU_BF16=0 */
  int use_amx;          /* AMX-BF16 kernels (attention in bf16 precision), only with
                           use_avx512bf16; 0 without AMX (or the OS's permission for it) or
                           with $SAFESD_CPU_AMX=0 */
  struct sd_dnnl *dnnl; /* NULL until the first oneDNN op */
  int64_t pack_budget;  /* fp32: bytes of weights packed into the kernels' layouts that may be
                           kept between calls (0, the default: each is packed when used);
                           native bf16 keeps every packed weight regardless (the same bytes as
                           float16 weights, whose pages are dropped via release) */
  /* Called with a weight's data after a packed copy of it was kept, so its owner can drop the
   * pages of a memory-mapped file (never anything else); NULL: nothing is dropped. */
  void (*release)(void *ctx, const void *data, size_t bytes);
  void *release_ctx;
  sd_prof prof;
  sd_arena_keep act;    /* the models' activation block, kept between passes (core/arena.h) */
} sd_exec;

enum { SD_WINO_AUTO = 0, SD_WINO_OFF = 1, SD_WINO_ON = 2 };
/* Winograd's transformed weights are 4× the direct ones (6×6 tiles for 3×3 kernels): worth
 * it only where they are kept between calls and the activations are large against the
 * weights: at SD 1.5's 64×64 latent layers, not at the 32×32 and smaller ones, whose
 * weights would not stay within a 4 GiB budget (docs/performance.md). */
#define SD_WINO_MIN_PIXELS 4096
/* The own kernel transforms the filters at each call (no memory kept). Against oneDNN's
 * direct kernels (one convolution, fp32 weights, 2 threads, docs/performance.md): on AVX2
 * 1.25× at 32×32 with 128 channels, 1.8× with 320, 1.5–2× at 64×64 and above with 128 or
 * more; on AVX-512 even at 32×32 with 256–320 channels, 1.3–1.6× at 128×128 and above; slower
 * with 64 channels or fewer, and at 16×16 (too few tiles for the 36 matrix products). The
 * SD 1.5 UNet pass with f16 weights is faster with these limits on both ISAs. */
#define SD_WINO_OWN_MIN_PIXELS 1024
#define SD_WINO_OWN_MIN_CHANNELS 128

/* Convolution backends: oneDNN's direct convolution (default), or im2col + OpenBLAS sgemm
 * (the fallback; forced with SAFESD_BACKEND=blas, used when oneDNN refuses a shape). */
enum { SD_BACKEND_DNNL = 0, SD_BACKEND_BLAS = 1 };

/* n_threads <= 0: all CPUs. Also sets the BLAS library's thread count. Precision fp32;
 * backend from $SAFESD_BACKEND (dnnl|blas, default dnnl); AVX2 kernels unless the CPU lacks
 * them or $SAFESD_CPU_AVX2=0 (which turns off every SIMD kernel: the portable loops run);
 * AVX-512 kernels unless the CPU lacks them or $SAFESD_CPU_AVX512=0 (the AVX2 ones run);
 * profiling from $SAFESD_PROFILE (1: per class, 2: also each
 * convolution on stderr). The dispatch fields may be changed after creation (tests do). */
int sd_exec_create(int n_threads, sd_exec **out);
void sd_exec_destroy(sd_exec *ex);
/* Free the scratch that grows to the largest layer seen (the widening buffer, oneDNN's
 * blocked copies, the models' kept activation block) and every kept packed weight;
 * primitives stay cached. Between pipeline
 * stages. Kept packed weights are keyed by their data pointer: a weight's values must not
 * change while it is kept (between trims), as for weights mapped from a model file. */
void sd_exec_trim(sd_exec *ex);

/* 1 when this CPU computes bf16 products natively (AVX512-BF16 or AMX, as oneDNN sees it;
 * $SAFESD_CPU_BF16=0 forces 0, to test the fallback). */
int sd_cpu_has_bf16(void);
/* Ask for a precision. bf16 on a CPU without native bf16 falls back to fp32 and returns
 * SD_E_UNSUPPORTED with a message (the caller decides whether to warn or fail), unless
 * $SAFESD_BF16_EMULATE=1 asks for the emulation (bf16_emulated above). */
int sd_exec_set_precision(sd_exec *ex, sd_precision p);
const char *sd_precision_name(sd_precision p);

/* A float32 pointer to a weight's data: the data itself when it is F32 and aligned, else a
 * converted copy in ex->wbuf (valid until the next call that uses wbuf). NULL on error. */
const float *sd_weight_f32(sd_exec *ex, const sd_tensor *w);
/* The same as bfloat16 (rounded to nearest even) in the same scratch, for the bf16
 * precision's packers: half the bytes of the float32 copy. w must not lie in the scratch
 * itself (SD_E_ARG). */
const uint16_t *sd_weight_bf16(sd_exec *ex, const sd_tensor *w);
/* Convert a (small) weight into a new malloc'ed float32 array (caller frees). */
float *sd_weight_dup_f32(const sd_tensor *w);

/* y[M,N] = x[M,K] · W[N,K]ᵀ (+ b[N]). W may also be [N,K,1,1] (a 1×1 convolution).
 * b is float32 or NULL. Errors if W's shape does not fit K. */
int sd_op_linear(sd_exec *ex, const float *x, int64_t M, int64_t K, const sd_tensor *W,
                 const float *b, float *y);

/* y = LayerNorm(x) over rows of D (biased variance), y may alias x. */
void sd_op_layernorm(sd_exec *ex, const float *x, int64_t M, int64_t D, const float *gamma,
                     const float *beta, float eps, float *y);

/* In-place activations over n values. */
void sd_op_quick_gelu(sd_exec *ex, float *x, int64_t n); /* x·σ(1.702x) */
void sd_op_gelu(sd_exec *ex, float *x, int64_t n);       /* exact (erf) GELU */
void sd_op_silu(sd_exec *ex, float *x, int64_t n);       /* x·σ(x) */

/* y += x over n values. */
void sd_op_add(sd_exec *ex, float *y, const float *x, int64_t n);

/* Row softmax in place over M rows of N values. */
void sd_op_softmax(sd_exec *ex, float *x, int64_t M, int64_t N);

/* Multi-head scaled-dot-product attention, computed in tiles with an online softmax (the
 * Sq×Sk score matrix is never materialised).
 * q: element (b, i, h, d) at q[(b*Sq + i)*q_stride + h*Dh + d]; k, v likewise with Sk and
 * kv_stride; out (b, i, h, d) at out[(b*Sq + i)*out_stride + h*Dh + d].
 * causal: key j is masked for query i when j > i. scale multiplies q·k. */
typedef struct sd_attn_shape {
  int B, H, Sq, Sk, Dh;
  int64_t q_stride, kv_stride, out_stride;
  int causal;
  float scale;
} sd_attn_shape;
int sd_op_attention(sd_exec *ex, const sd_attn_shape *s, const float *q, const float *k,
                    const float *v, float *out);

/* ---- image ops (UNet / VAE). Activations of one image are [C, H, W] (NCHW, batch loop
 * outside or N folded as noted). ---------------------------------------------------------- */

/* 2-D convolution of one image x[C, H, W] with weight W[Cout, C, kh, kw] (stored dtype),
 * bias float32 [Cout] or NULL; zero padding pad_t/pad_l/pad_b/pad_r, stride. Output
 * y[Cout, Ho, Wo] with Ho = (H + pad_t + pad_b - kh) / stride + 1 (likewise Wo). Computed
 * in row tiles so scratch stays bounded at any image size. Errors on shape mismatch. */
typedef struct sd_conv2d_shape {
  int C, H, W;
  int stride;
  int pad_t, pad_l, pad_b, pad_r;
} sd_conv2d_shape;
int sd_op_conv2d(sd_exec *ex, const sd_conv2d_shape *s, const float *x, const sd_tensor *W,
                 const float *b, float *y);

/* GroupNorm over x[C, HW] (one image) with `groups` groups, per-channel gamma/beta (float32),
 * then optionally SiLU (fused). y may alias x. */
void sd_op_groupnorm(sd_exec *ex, const float *x, int C, int64_t HW, int groups,
                     const float *gamma, const float *beta, float eps, int silu, float *y);

/* Nearest-neighbour 2× upsampling of x[C, H, W] into y[C, 2H, 2W]. */
void sd_op_upsample2x(sd_exec *ex, const float *x, int C, int H, int W, float *y);

/* y[cols, rows] = x[rows, cols]ᵀ (e.g. [C, HW] <-> [HW, C] around transformer blocks). */
void sd_op_transpose(sd_exec *ex, const float *x, int64_t rows, int64_t cols, float *y);

/* GEGLU: x[M, 2N] -> y[M, N] = x[:, :N] * gelu(x[:, N:]) (exact erf GELU). */
void sd_op_geglu(sd_exec *ex, const float *x, int64_t M, int64_t N, float *y);

#endif
