/* Winograd F(4×4, 3×3) convolution in float32 on CPUs with AVX2 (oneDNN 2.6's fp32 Winograd
 * kernel is AVX-512 only, and needs its 4× larger transformed weights kept to pay): 3×3,
 * stride 1, any padding, one NCHW image.
 *
 * Each 4×4 block of output pixels ("tile") is computed from the 6×6 input patch around it
 * (Lavin and Gray, arXiv 1509.09308): with the transforms Bᵀ (6×6), G (6×3) and Aᵀ (4×6) of
 * the interpolation points 0, ±1, ±2 and ∞,
 *
 *   U[ξ][k][c] = (G g[k][c] Gᵀ)[ξ]          the filters, 36 values per (k, c)
 *   V[ξ][c][t] = (Bᵀ d[c][t] B)[ξ]           the input patches, 36 values per (c, tile)
 *   M[ξ]       = U[ξ] · V[ξ]                 36 matrix products, K×C by C×T
 *   y[k][tile] = Aᵀ (M[·][k][t]) A (+ bias)  16 output pixels per (k, tile)
 *
 * so the 36 products take 36·K·C·T multiply-adds where the direct convolution takes
 * 144·K·C·T (4× fewer); the transforms are about 1% of that at SD's channel counts. The
 * filters are transformed at every call (no memory kept between calls besides the scratch,
 * which ex keeps and sd_exec_trim frees), so no weight budget is needed.
 *
 * Work is split with sd_parallel_for in chunks that depend only on the sizes and the thread
 * count, and each value is computed by one thread in a fixed order (the products by
 * single-threaded BLAS calls, one per ξ), so results are deterministic for a given thread
 * count. The products run on oneDNN's sgemm where the context's matrix products are
 * oneDNN's (ex->matmul_dnnl: AVX-512 CPUs by default), else on OpenBLAS. Results differ from
 * the direct convolution's by a few float32 roundings (the
 * transforms' constants 1/6, 1/12, 1/24 and the sums' other order): tests/unit/test_ops_image.c.
 */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define WINO_TARGET __attribute__((target("avx2,fma")))
#else
#define WINO_TARGET
#endif

/* floats of transformed filters, inputs or products held at once (32 MiB each), unless
 * ex->wino_block says otherwise */
#define WINO_BLOCK ((int64_t)8 << 20)

typedef struct {
  const sd_conv2d_shape *s;
  int K, Ho, Wo, th, tw;
  int64_t T;        /* tiles: th·tw */
  int64_t ext;      /* a padded row of the tiles' input: 4·tw + 2 values */
  const sd_tensor *W; /* [K][C][3][3], stored as F32, F16 or BF16 */
  const float *x;   /* [C][H][W] */
  const float *b;   /* [K] or NULL */
  float *U, *V, *M; /* [36][kn][C], [36][C][T], [36][kn][T], slabs sU, sV, sM floats apart */
  int64_t sU, sV, sM;
  int64_t k0, kn;   /* the block of output channels U and M hold: [k0, k0 + kn) */
  int ty0, tyn;     /* the block of tile rows V and M hold: [ty0, ty0 + tyn) */
  int64_t Tb;       /* its tiles, tyn·tw: the row length of V[ξ] and M[ξ] */
  int dnnl_gemm;    /* the products by oneDNN's sgemm (its AVX-512 kernels) instead of OpenBLAS */
  int failed;       /* a oneDNN product returned an error (set by the task, read after it) */
  float *scratch;   /* per thread: scr_n floats */
  int64_t scr_n;
  float *y;         /* [K][Ho][Wo] */
} wino_job;

/* U[ξ][k - j->k0][c] = G g Gᵀ for output channels j->k0 + [i0, i1), each widened from the
 * stored dtype into the thread's scratch first (the weight is never widened whole) */
WINO_TARGET static void wino_filter_task(void *ctx, int64_t i0, int64_t i1, int tid) {
  const wino_job *j = ctx;
  const int64_t C = j->s->C, KC = j->sU;
  const size_t esz = sd_dtype_size(j->W->dtype);
  float *row = j->scratch + (int64_t)tid * j->scr_n; /* [C][9] */
  for (int64_t i = i0; i < i1; i++) {
    const int64_t k = j->k0 + i;
    sd_to_f32(row, (const unsigned char *)j->W->data + (size_t)(k * C * 9) * esz, j->W->dtype, (size_t)(C * 9));
    for (int64_t c = 0; c < C; c++) {
      const float *g = row + c * 9;
      float t[6][3]; /* G g: rows of G applied to the columns of g */
      for (int q = 0; q < 3; q++) {
        const float g0 = g[q], g1 = g[3 + q], g2 = g[6 + q];
        t[0][q] = 0.25f * g0;
        t[1][q] = (-1.0f / 6) * (g0 + g1 + g2);
        t[2][q] = (-1.0f / 6) * (g0 - g1 + g2);
        t[3][q] = (1.0f / 24) * g0 + (1.0f / 12) * g1 + (1.0f / 6) * g2;
        t[4][q] = (1.0f / 24) * g0 - (1.0f / 12) * g1 + (1.0f / 6) * g2;
        t[5][q] = g2;
      }
      float *u = j->U + i * C + c;
      for (int i = 0; i < 6; i++) { /* (G g) Gᵀ */
        const float g0 = t[i][0], g1 = t[i][1], g2 = t[i][2];
        u[(i * 6 + 0) * KC] = 0.25f * g0;
        u[(i * 6 + 1) * KC] = (-1.0f / 6) * (g0 + g1 + g2);
        u[(i * 6 + 2) * KC] = (-1.0f / 6) * (g0 - g1 + g2);
        u[(i * 6 + 3) * KC] = (1.0f / 24) * g0 + (1.0f / 12) * g1 + (1.0f / 6) * g2;
        u[(i * 6 + 4) * KC] = (1.0f / 24) * g0 - (1.0f / 12) * g1 + (1.0f / 6) * g2;
        u[(i * 6 + 5) * KC] = g2;
      }
    }
  }
}

/* The 6 values of Bᵀ·d for 6 inputs d0..d5 (B's rows for the points 0, ±1, ±2, ∞). */
#define WINO_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
  do {                                                          \
    o0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                      \
    o1 = -4.0f * ((d1) + (d2)) + (d3) + (d4);                   \
    o2 = 4.0f * ((d1) - (d2)) - (d3) + (d4);                    \
    o3 = 2.0f * ((d3) - (d1)) - (d2) + (d4);                    \
    o4 = 2.0f * ((d1) - (d3)) - (d2) + (d4);                    \
    o5 = 4.0f * (d1) - 5.0f * (d3) + (d5);                      \
  } while (0)

/* V[ξ][c][t] for input channels [c0, c1): per row of tiles, the six input rows (zero outside
 * the image) are combined down the columns (Bᵀ d, over whole rows at once), then each
 * tile's six columns across (· B). */
WINO_TARGET static void wino_input_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  const wino_job *j = ctx;
  const sd_conv2d_shape *s = j->s;
  const int64_t ext = j->ext, CT = j->sV;
  float *rows = j->scratch + (int64_t)tid * j->scr_n; /* [6][ext] */
  float *cols = rows + 6 * ext;                        /* [6][ext] */
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = j->x + c * s->H * s->W;
    for (int ty = j->ty0; ty < j->ty0 + j->tyn; ty++) {
      for (int i = 0; i < 6; i++) {
        float *r = rows + i * ext;
        const int iy = 4 * ty + i - s->pad_t;
        if (iy < 0 || iy >= s->H) {
          memset(r, 0, (size_t)ext * sizeof(float));
          continue;
        }
        /* r[q] = x[iy][q - pad_l] inside the image, 0 outside */
        const float *xr = xc + (int64_t)iy * s->W;
        int64_t q0 = s->pad_l, q1 = s->pad_l + s->W; /* the image's columns in r */
        if (q0 > ext) q0 = ext;
        if (q1 > ext) q1 = ext;
        memset(r, 0, (size_t)q0 * sizeof(float));
        if (q1 > q0) memcpy(r + q0, xr, (size_t)(q1 - q0) * sizeof(float));
        if (ext > q1) memset(r + q1, 0, (size_t)(ext - q1) * sizeof(float));
      }
      const float *r0 = rows, *r1 = rows + ext, *r2 = rows + 2 * ext, *r3 = rows + 3 * ext, *r4 = rows + 4 * ext,
                  *r5 = rows + 5 * ext;
      float *o0 = cols, *o1 = cols + ext, *o2 = cols + 2 * ext, *o3 = cols + 3 * ext, *o4 = cols + 4 * ext,
            *o5 = cols + 5 * ext;
      for (int64_t q = 0; q < ext; q++)
        WINO_BT(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q], o0[q], o1[q], o2[q], o3[q], o4[q], o5[q]);
      float *v = j->V + c * j->Tb + (int64_t)(ty - j->ty0) * j->tw;
      for (int i = 0; i < 6; i++) {
        const float *d = cols + i * ext;
        float *vi = v + (int64_t)(i * 6) * CT;
        for (int tx = 0; tx < j->tw; tx++) {
          const float *e = d + 4 * tx;
          float a0, a1, a2, a3, a4, a5;
          WINO_BT(e[0], e[1], e[2], e[3], e[4], e[5], a0, a1, a2, a3, a4, a5);
          vi[tx] = a0;
          vi[CT + tx] = a1;
          vi[2 * CT + tx] = a2;
          vi[3 * CT + tx] = a3;
          vi[4 * CT + tx] = a4;
          vi[5 * CT + tx] = a5;
        }
      }
    }
  }
}

/* M[ξ] = U[ξ] · V[ξ] for ξ in [x0, x1): one single-threaded product each (oneDNN's sgemm runs
 * on the calling thread inside this parallel region) */
static void wino_gemm_task(void *ctx, int64_t x0, int64_t x1, int tid) {
  (void)tid;
  wino_job *j = ctx;
  const int64_t C = j->s->C, T = j->Tb;
  for (int64_t xi = x0; xi < x1; xi++) {
    if (j->dnnl_gemm) {
      if (dnnl_sgemm('N', 'N', j->kn, T, C, 1.0f, j->U + xi * j->sU, C, j->V + xi * j->sV, T, 0.0f,
                     j->M + xi * j->sM, T) != dnnl_success)
        j->failed = 1;
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->kn, (int)T, (int)C, 1.0f, j->U + xi * j->sU,
                  (int)C, j->V + xi * j->sV, (int)T, 0.0f, j->M + xi * j->sM, (int)T);
    }
  }
}

/* The 4 values of Aᵀ·m for 6 inputs m0..m5. */
#define WINO_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) \
  do {                                                  \
    const float p12 = (m1) + (m2), n12 = (m1) - (m2);   \
    const float p34 = (m3) + (m4), n34 = (m3) - (m4);   \
    o0 = (m0) + p12 + p34;                              \
    o1 = n12 + 2.0f * n34;                              \
    o2 = p12 + 4.0f * p34;                              \
    o3 = n12 + 8.0f * n34 + (m5);                       \
  } while (0)

/* y[k] for output channels k = j->k0 + [i0, i1): per row of tiles, Aᵀ over ξ's rows for all
 * the row's tiles at once, then over its columns, then the 4×4 blocks into y (clipped at the
 * edges). */
WINO_TARGET static void wino_output_task(void *ctx, int64_t i0, int64_t i1, int tid) {
  const wino_job *j = ctx;
  const int64_t KT = j->sM;
  const int tw = j->tw;
  float *t = j->scratch + (int64_t)tid * j->scr_n; /* [6][4][tw]: Aᵀ over each row i of ξ = 6i + q */
  float *o = t + 24 * (int64_t)tw;                  /* [4][4][tw] */
  for (int64_t i = i0; i < i1; i++) {
    const int64_t k = j->k0 + i;
    const float bias = j->b ? j->b[k] : 0.0f;
    float *yk = j->y + k * j->Ho * j->Wo;
    for (int ty = j->ty0; ty < j->ty0 + j->tyn; ty++) {
      const float *m = j->M + i * j->Tb + (int64_t)(ty - j->ty0) * tw;
      for (int i = 0; i < 6; i++) {
        const float *m0 = m + (i * 6) * KT, *m1 = m0 + KT, *m2 = m1 + KT, *m3 = m2 + KT, *m4 = m3 + KT,
                    *m5 = m4 + KT;
        float *t0 = t + (i * 4) * tw, *t1 = t0 + tw, *t2 = t1 + tw, *t3 = t2 + tw;
        for (int tx = 0; tx < tw; tx++)
          WINO_AT(m0[tx], m1[tx], m2[tx], m3[tx], m4[tx], m5[tx], t0[tx], t1[tx], t2[tx], t3[tx]);
      }
      for (int q = 0; q < 4; q++) { /* column q of each tile: Aᵀ over the rows i */
        const float *s0 = t + q * tw, *s1 = s0 + 4 * tw, *s2 = s1 + 4 * tw, *s3 = s2 + 4 * tw, *s4 = s3 + 4 * tw,
                    *s5 = s4 + 4 * tw;
        float *p0 = o + q * tw, *p1 = p0 + 4 * tw, *p2 = p1 + 4 * tw, *p3 = p2 + 4 * tw; /* o[a][q] */
        for (int tx = 0; tx < tw; tx++)
          WINO_AT(s0[tx], s1[tx], s2[tx], s3[tx], s4[tx], s5[tx], p0[tx], p1[tx], p2[tx], p3[tx]);
      }
      for (int a = 0; a < 4; a++) {
        const int oy = 4 * ty + a;
        if (oy >= j->Ho) break;
        float *yr = yk + (int64_t)oy * j->Wo;
        const float *oa = o + (int64_t)a * 4 * tw;
        const int full = j->Wo / 4;
        for (int tx = 0; tx < full; tx++) {
          yr[4 * tx] = oa[tx] + bias;
          yr[4 * tx + 1] = oa[tw + tx] + bias;
          yr[4 * tx + 2] = oa[2 * tw + tx] + bias;
          yr[4 * tx + 3] = oa[3 * tw + tx] + bias;
        }
        for (int ox = 4 * full; ox < j->Wo; ox++) yr[ox] = oa[(ox & 3) * tw + ox / 4] + bias;
      }
    }
  }
}

/* The distance between two of the 36 slabs of U, V or M: whole cache lines, an odd number
 * of them, so that the 36 streams a transform reads or writes (one per slab) do not all map
 * to the same cache set, as they would with slabs a multiple of 4 KiB apart. */
static int64_t slab(int64_t n) {
  int64_t lines = (n + 15) / 16;
  return 16 * (lines | 1);
}

int sd_wino_conv2d(sd_exec *ex, const sd_conv2d_shape *s, int Cout, int Ho, int Wo, const float *x,
                   const sd_tensor *W, const float *b, float *y) {
  if (!ex->use_avx2) return SD_E_UNSUPPORTED;
  wino_job j = {.s = s, .K = Cout, .Ho = Ho, .Wo = Wo, .th = (Ho + 3) / 4, .tw = (Wo + 3) / 4, .x = x, .b = b, .y = y};
  j.T = (int64_t)j.th * j.tw;
  j.ext = 4 * (int64_t)j.tw + 2;
  const int64_t C = s->C, K = Cout, cap = ex->wino_block > 0 ? ex->wino_block : WINO_BLOCK;
  /* Blocks keep the scratch near the activations' size at any image and channel count
   * (SD's 1280-channel filters would take 236 MB transformed, the VAE's 512×512 inputs
   * 600 MB): output channels in blocks whose transformed filters (36·kb·C) take at most
   * cap floats (a multiple of 16 channels, or all of them), tile rows in blocks whose
   * transformed inputs (36·C·Tb) and products (36·kb·Tb) take at most cap floats each
   * (at least one row). The filters are transformed once; the inputs once per channel
   * block when there are several blocks of both. */
  int64_t kb = cap / (36 * C);
  kb = kb >= 16 ? kb / 16 * 16 : kb < 1 ? 1 : kb;
  if (kb > K) kb = K;
  int64_t rb = cap / (36 * (C > kb ? C : kb) * (int64_t)j.tw);
  if (rb < 1) rb = 1;
  if (rb > j.th) rb = j.th;
  const int64_t Tmax = rb * j.tw;
  if (Tmax > INT32_MAX) return SD_E_UNSUPPORTED; /* a BLAS dimension */
  /* per-thread scratch: the filter task's widened row of 9·C values, the input task's 12
   * rows of ext, or the output task's 40 rows of tw */
  j.scr_n = 12 * j.ext > 40 * (int64_t)j.tw ? 12 * j.ext : 40 * (int64_t)j.tw;
  if (j.scr_n < 9 * C) j.scr_n = 9 * C;
  j.scr_n = (j.scr_n + 15) & ~(int64_t)15;
  j.sU = slab(kb * C);
  j.sV = slab(C * Tmax);
  j.sM = slab(kb * Tmax);
  const int64_t nU = 36 * j.sU, nV = 36 * j.sV, nM = 36 * j.sM, nS = j.scr_n * ex->n_threads;
  const int64_t need = nU + nV + nM + nS;
  if ((size_t)need > ex->wino_cap) {
    free(ex->wino_buf); /* nothing in it is kept between calls: no copy */
    ex->wino_buf = malloc((size_t)need * sizeof(float));
    ex->wino_cap = ex->wino_buf ? (size_t)need : 0;
    if (!ex->wino_buf) return sd_fail(SD_E_NOMEM, "conv2d: out of memory for %lld Winograd values", (long long)need);
  }
  j.U = ex->wino_buf;
  j.V = j.U + nU;
  j.M = j.V + nV;
  j.scratch = j.M + nM;
  j.W = W;
  j.dnnl_gemm = ex->matmul_dnnl;
  const int one_row_block = rb == j.th;
  for (j.k0 = 0; j.k0 < K; j.k0 += kb) {
    j.kn = K - j.k0 < kb ? K - j.k0 : kb;
    sd_parallel_for(ex->pool, j.kn, 1, wino_filter_task, &j);
    for (j.ty0 = 0; j.ty0 < j.th; j.ty0 += (int)rb) {
      j.tyn = j.th - j.ty0 < rb ? j.th - j.ty0 : (int)rb;
      j.Tb = (int64_t)j.tyn * j.tw;
      if (!(one_row_block && j.k0 > 0)) sd_parallel_for(ex->pool, C, 1, wino_input_task, &j);
      sd_parallel_for(ex->pool, 36, 1, wino_gemm_task, &j);
      if (j.failed) return sd_fail(SD_E_INTERNAL, "conv2d: oneDNN's sgemm failed");
      sd_parallel_for(ex->pool, j.kn, 1, wino_output_task, &j);
    }
  }
  return SD_OK;
}
