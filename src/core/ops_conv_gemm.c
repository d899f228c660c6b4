/* Convolution as one matrix product on safesd's own AVX2 kernel (core/ops_gemm_avx2.c), for
 * CPUs with AVX2 but not AVX-512, where it replaces oneDNN's direct convolution on the
 * layers with few output pixels and large filters (SD's 16×16 and 8×8 levels: 1280–2560
 * channels, 29–59 MB of float16 filters, a few hundred output pixels). There oneDNN needed
 * the filter widened to float32 and reordered into its blocked layout at every call, three
 * passes through memory the size of the filter for a product of a few GFLOP; the own kernel
 * reads the stored filter once, converting it block by block in cache.
 *
 * For a tile of output pixels it builds the "im2row" matrix R[p][k] (one row per output
 * pixel, k = (c, i, j) in the filter's own order, zeros outside the image), computes
 * T = R·Wᵀ with W viewed as [Cout, C·kh·kw], and writes T transposed into y[Cout][pixels]
 * with the bias. Tiles are runs of pixels whose R and T fit CONV_GEMM_CAP floats (or
 * ex->wino_block, which tests set small; at least 6 pixels), so
 * the scratch stays bounded at any size; it lives in the own convolutions' scratch
 * (sd_conv_scratch: no call keeps anything in it). Each value is computed by one thread in an order that depends only on the sizes,
 * so results are deterministic.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"
#include "core/threadpool.h"

#define CONV_GEMM_CAP ((int64_t)4 << 20) /* floats of im2row rows and products per tile (16 MiB) */

typedef struct {
  const sd_conv2d_shape *s;
  const float *x;
  float *R, *T, *y;
  const float *b;
  int kh, kw, Wo, Cout;
  int64_t K, p0, np, HWo;
} cg_job;

/* Rows [q0, q1) of R: output pixel p0 + q, each K values. */
static void cg_im2row_task(void *ctx, int64_t q0, int64_t q1, int tid) {
  (void)tid;
  const cg_job *j = ctx;
  const sd_conv2d_shape *s = j->s;
  for (int64_t q = q0; q < q1; q++) {
    const int64_t p = j->p0 + q;
    const int oy = (int)(p / j->Wo), ox = (int)(p % j->Wo);
    const int iy0 = oy * s->stride - s->pad_t, ix0 = ox * s->stride - s->pad_l;
    float *r = j->R + q * j->K;
    const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + j->kh <= s->H && ix0 + j->kw <= s->W;
    for (int c = 0; c < s->C; c++) {
      const float *xc = j->x + (int64_t)c * s->H * s->W;
      if (inside) {
        for (int i = 0; i < j->kh; i++) {
          const float *xr = xc + (int64_t)(iy0 + i) * s->W + ix0;
          for (int t = 0; t < j->kw; t++) *r++ = xr[t];
        }
      } else {
        for (int i = 0; i < j->kh; i++) {
          const int iy = iy0 + i;
          for (int t = 0; t < j->kw; t++) {
            const int ix = ix0 + t;
            *r++ = iy >= 0 && iy < s->H && ix >= 0 && ix < s->W ? xc[(int64_t)iy * s->W + ix] : 0.0f;
          }
        }
      }
    }
  }
}

/* Output channels [c0, c1): y[c][p0 + q] = T[q][c] + b[c]. */
static void cg_store_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  const cg_job *j = ctx;
  for (int64_t c = c0; c < c1; c++) {
    float *yr = j->y + c * j->HWo + j->p0;
    const float bv = j->b ? j->b[c] : 0.0f;
    for (int64_t q = 0; q < j->np; q++) yr[q] = j->T[q * j->Cout + c] + bv;
  }
}

int sd_conv2d_gemm(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int kh, int kw, int Ho, int Wo, const float *x,
                   const sd_tensor *W, const float *b, float *y) {
  if (!ex->use_avx2 || ex->precision != SD_PREC_FP32) return SD_E_UNSUPPORTED;
  const int64_t K = (int64_t)s->C * kh * kw, HWo = (int64_t)Ho * Wo;
  int64_t np = (ex->wino_block > 0 ? ex->wino_block : CONV_GEMM_CAP) / (K + Cout);
  np = np < 6 ? 6 : np / 6 * 6;
  if (np > HWo) np = HWo;
  const int64_t need = np * (K + Cout);
  float *scr = sd_conv_scratch(ex, need);
  if (!scr) return SD_E_NOMEM;
  int64_t shape[2] = {Cout, K};
  const sd_tensor Wv = sd_tensor_make(W->dtype, 2, shape, W->data); /* [Cout][C][kh][kw] as [Cout][K] */
  cg_job j = {s, x, scr, scr + np * K, y, b, kh, kw, Wo, Cout, K, 0, 0, HWo};
  for (j.p0 = 0; j.p0 < HWo; j.p0 += np) {
    j.np = HWo - j.p0 < np ? HWo - j.p0 : np;
    sd_parallel_for(ex->pool, j.np, 1, cg_im2row_task, &j);
    int rc = sd_gemm_avx2_linear(ex, j.R, j.np, K, Cout, &Wv, NULL, j.T);
    if (rc) return rc;
    sd_parallel_for(ex->pool, Cout, 16, cg_store_task, &j);
  }
  return SD_OK;
}
