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
 * 144·K·C·T (4× fewer); the transforms are about 1% of that at SD's channel counts in
 * arithmetic, but they stream U, V and M through memory: about a third of the kernel's time
 * in an SD 1.5 UNet pass on AVX-512 (docs/performance.md), vectorised eight columns at a time. The
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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define WINO_TARGET __attribute__((target("avx2,fma")))
#else
#define WINO_TARGET
#endif

/* Eight floats as one GCC vector (any alignment): the transforms' loops below run eight
 * columns at a time with it (AVX in WINO_TARGET functions), a scalar tail after. GCC does not
 * vectorise these loops by itself (six input and six output streams of one buffer). */
typedef float wv8 __attribute__((vector_size(32), aligned(4), may_alias));
#define WV(p) (*(const wv8 *)(p))
#define WVS(p) (*(wv8 *)(p))

/* floats of transformed filters, inputs or products held at once (32 MiB each), unless
 * ex->wino_block says otherwise */
#define WINO_BLOCK ((int64_t)8 << 20)

typedef struct {
  const sd_conv2d_shape *s;
  int Ho, Wo, th, tw;
  int64_t ext;      /* a padded row of the tiles' input: 4·tw + 2 values */
  const sd_tensor *W; /* [K][C][3][3], stored as F32, F16 or BF16 */
  const float *x;   /* [C][H][W] */
  const float *b;   /* [K] or NULL */
  float *U, *V, *M; /* [36][kn][C], [36][C][Tb], [36][kn][Tb], slabs sU, sV, sM floats apart */
  int64_t sU, sV, sM;
  int64_t k0, kn;   /* the block of output channels U and M hold: [k0, k0 + kn) */
  int ty0, tyn;     /* the block of tile rows V and M hold: [ty0, ty0 + tyn) */
  int64_t Tb;       /* its tiles, tyn·tw: the row length of V[ξ] and M[ξ] */
  int dnnl_gemm;    /* the products by oneDNN's sgemm (its AVX-512 kernels) instead of OpenBLAS */
  atomic_int failed; /* a oneDNN product returned an error (set by the tasks, read after them) */
  float *scratch;   /* per thread: scr_n floats */
  int64_t scr_n;
  float *y;         /* [K][Ho][Wo] */
} wino_job;

/* The 6 values of G·(a, b, c_) (G's rows for the points 0, ±1, ±2, ∞). */
#define WINO_G(a, b, c_, o0, o1, o2, o3, o4, o5)                   \
  do {                                                             \
    o0 = 0.25f * (a);                                              \
    o1 = (-1.0f / 6) * ((a) + (b) + (c_));                         \
    o2 = (-1.0f / 6) * ((a) - (b) + (c_));                         \
    o3 = (1.0f / 24) * (a) + (1.0f / 12) * (b) + (1.0f / 6) * (c_); \
    o4 = (1.0f / 24) * (a) - (1.0f / 12) * (b) + (1.0f / 6) * (c_); \
    o5 = (c_);                                                     \
  } while (0)
/* The filter transform of one channel pair, or of eight (T = wv8): G g, G's rows applied to
 * each column q of g (g[r][q] = row r of the 3×3 filter, loaded by LD from the nine rows
 * g0r..g8r), then (G g) Gᵀ, whose row r is ξ = 6r .. 6r + 5, stored by ST(ξ). */
#define WINO_FILTER(T, LD, ST)                                                                                  \
  do {                                                                                                          \
    T t[6][3];                                                                                                  \
    WINO_G(LD(g0r), LD(g3r), LD(g6r), t[0][0], t[1][0], t[2][0], t[3][0], t[4][0], t[5][0]);                     \
    WINO_G(LD(g1r), LD(g4r), LD(g7r), t[0][1], t[1][1], t[2][1], t[3][1], t[4][1], t[5][1]);                     \
    WINO_G(LD(g2r), LD(g5r), LD(g8r), t[0][2], t[1][2], t[2][2], t[3][2], t[4][2], t[5][2]);                     \
    for (int r = 0; r < 6; r++)                                                                                 \
      WINO_G(t[r][0], t[r][1], t[r][2], ST(r * 6 + 0), ST(r * 6 + 1), ST(r * 6 + 2), ST(r * 6 + 3), ST(r * 6 + 4), \
             ST(r * 6 + 5));                                                                                    \
  } while (0)

/* U[ξ][k - j->k0][c] = G g Gᵀ for output channels j->k0 + [i0, i1): each output channel's
 * filters widened from the stored dtype into the thread's scratch (the weight is never
 * widened whole), turned into nine rows over the input channels, and transformed for all the
 * input channels at once (one vector lane per channel, 36 contiguous rows out). */
WINO_TARGET static void wino_filter_task(void *ctx, int64_t i0, int64_t i1, int tid) {
  const wino_job *j = ctx;
  const int64_t C = j->s->C, KC = j->sU;
  const size_t esz = sd_dtype_size(j->W->dtype);
  float *restrict row = j->scratch + (int64_t)tid * j->scr_n; /* [C][9] */
  float *restrict gt = row + 9 * C;                            /* [9][C] */
  for (int64_t i = i0; i < i1; i++) {
    const int64_t k = j->k0 + i;
    sd_to_f32(row, (const unsigned char *)j->W->data + (size_t)(k * C * 9) * esz, j->W->dtype, (size_t)(C * 9));
    for (int64_t c = 0; c < C; c++)
      for (int q = 0; q < 9; q++) gt[q * C + c] = row[c * 9 + q];
    const float *restrict g0r = gt, *restrict g1r = gt + C, *restrict g2r = gt + 2 * C, *restrict g3r = gt + 3 * C,
                          *restrict g4r = gt + 4 * C, *restrict g5r = gt + 5 * C, *restrict g6r = gt + 6 * C,
                          *restrict g7r = gt + 7 * C, *restrict g8r = gt + 8 * C;
    float *restrict u = j->U + i * C;
    int64_t c = 0;
#define LDV(p) WV((p) + c)
#define STV(x) WVS(u + (x) * KC + c)
    for (; c + 8 <= C; c += 8) WINO_FILTER(wv8, LDV, STV);
#define LDS(p) (p)[c]
#define STS(x) u[(x) * KC + c]
    for (; c < C; c++) WINO_FILTER(float, LDS, STS);
#undef LDV
#undef STV
#undef LDS
#undef STS
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

/* o[r][x] = row r of Bᵀ·(d[0][x] .. d[5][x]) for x in [0, n) */
WINO_TARGET static void wino_bt_rows(const float *const d[6], float *const o[6], int64_t n) {
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    wv8 b0, b1, b2, b3, b4, b5;
    WINO_BT(WV(d[0] + x), WV(d[1] + x), WV(d[2] + x), WV(d[3] + x), WV(d[4] + x), WV(d[5] + x), b0, b1, b2, b3, b4, b5);
    WVS(o[0] + x) = b0, WVS(o[1] + x) = b1, WVS(o[2] + x) = b2, WVS(o[3] + x) = b3, WVS(o[4] + x) = b4,
    WVS(o[5] + x) = b5;
  }
  for (; x < n; x++)
    WINO_BT(d[0][x], d[1][x], d[2][x], d[3][x], d[4][x], d[5][x], o[0][x], o[1][x], o[2][x], o[3][x], o[4][x], o[5][x]);
}

/* V[ξ][c][t] for input channels [c0, c1). Per row of tiles, the six input rows (zero outside
 * the image) are written split by column phase (column q to phase q mod 4, place q / 4: a
 * tile's six columns 4tx .. 4tx + 5 are then place tx of phases 0-3 and place tx + 1 of
 * phases 0-1), combined down the columns (Bᵀ d, whole rows at once), then across each tile's
 * six columns (· B) for all the row's tiles at once, every step over contiguous values. */
WINO_TARGET static void wino_input_task(void *ctx, int64_t c0, int64_t c1, int tid) {
  const wino_job *j = ctx;
  const sd_conv2d_shape *s = j->s;
  const int64_t ext = j->ext, CT = j->sV, pw = j->tw + 1, rl = 4 * pw; /* rl: a split row */
  float *restrict rows = j->scratch + (int64_t)tid * j->scr_n; /* [6][4][pw] */
  float *restrict cols = rows + 6 * rl;                         /* [6][4][pw] */
  const int tw = j->tw;
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = j->x + c * s->H * s->W;
    for (int ty = j->ty0; ty < j->ty0 + j->tyn; ty++) {
      for (int i = 0; i < 6; i++) {
        float *restrict r = rows + i * rl;
        const int iy = 4 * ty + i - s->pad_t;
        memset(r, 0, (size_t)rl * sizeof(float));
        if (iy < 0 || iy >= s->H) continue;
        /* column q holds x[iy][q - pad_l] inside the image */
        const float *xr = xc + (int64_t)iy * s->W;
        int64_t q0 = s->pad_l, q1 = s->pad_l + s->W; /* the image's columns */
        if (q0 > ext) q0 = ext;
        if (q1 > ext) q1 = ext;
        for (int64_t q = q0; q < q1; q++) r[(q & 3) * pw + (q >> 2)] = xr[q - s->pad_l];
      }
      const float *const rin[6] = {rows, rows + rl, rows + 2 * rl, rows + 3 * rl, rows + 4 * rl, rows + 5 * rl};
      float *const rout[6] = {cols, cols + rl, cols + 2 * rl, cols + 3 * rl, cols + 4 * rl, cols + 5 * rl};
      wino_bt_rows(rin, rout, rl); /* down the columns */
      float *v = j->V + c * j->Tb + (int64_t)(ty - j->ty0) * tw;
      for (int i = 0; i < 6; i++) { /* across: row i of Bᵀ d gives ξ = 6i .. 6i + 5 */
        const float *p = cols + i * rl; /* its phases 0-3, pw apart */
        float *vi = v + (int64_t)(i * 6) * CT;
        const float *const in[6] = {p, p + pw, p + 2 * pw, p + 3 * pw, p + 1, p + pw + 1};
        float *const out[6] = {vi, vi + CT, vi + 2 * CT, vi + 3 * CT, vi + 4 * CT, vi + 5 * CT};
        wino_bt_rows(in, out, tw);
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
        atomic_store(&j->failed, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->kn, (int)T, (int)C, 1.0f, j->U + xi * j->sU,
                  (int)C, j->V + xi * j->sV, (int)T, 0.0f, j->M + xi * j->sM, (int)T);
    }
  }
}

/* The 4 values of Aᵀ·m for 6 inputs m0..m5. */
#define WINO_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) \
  do {                                                  \
    __typeof__(o0) p12 = (m1) + (m2), n12 = (m1) - (m2); \
    __typeof__(o0) p34 = (m3) + (m4), n34 = (m3) - (m4); \
    o0 = (m0) + p12 + p34;                              \
    o1 = n12 + 2.0f * n34;                              \
    o2 = p12 + 4.0f * p34;                              \
    o3 = n12 + 8.0f * n34 + (m5);                       \
  } while (0)

/* o[r][x] = row r of Aᵀ·(d[0][x] .. d[5][x]) for x in [0, n) */
WINO_TARGET static void wino_at_rows(const float *const d[6], float *const o[4], int64_t n) {
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    wv8 b0, b1, b2, b3;
    WINO_AT(WV(d[0] + x), WV(d[1] + x), WV(d[2] + x), WV(d[3] + x), WV(d[4] + x), WV(d[5] + x), b0, b1, b2, b3);
    WVS(o[0] + x) = b0, WVS(o[1] + x) = b1, WVS(o[2] + x) = b2, WVS(o[3] + x) = b3;
  }
  for (; x < n; x++) WINO_AT(d[0][x], d[1][x], d[2][x], d[3][x], d[4][x], d[5][x], o[0][x], o[1][x], o[2][x], o[3][x]);
}

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
        const float *const in[6] = {m0, m1, m2, m3, m4, m5};
        float *const out[4] = {t0, t1, t2, t3};
        wino_at_rows(in, out, tw);
      }
      for (int q = 0; q < 4; q++) { /* column q of each tile: Aᵀ over the rows i */
        const float *s0 = t + q * tw, *s1 = s0 + 4 * tw, *s2 = s1 + 4 * tw, *s3 = s2 + 4 * tw, *s4 = s3 + 4 * tw,
                    *s5 = s4 + 4 * tw;
        float *p0 = o + q * tw, *p1 = p0 + 4 * tw, *p2 = p1 + 4 * tw, *p3 = p2 + 4 * tw; /* o[a][q] */
        const float *const in[6] = {s0, s1, s2, s3, s4, s5};
        float *const out[4] = {p0, p1, p2, p3};
        wino_at_rows(in, out, tw);
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
  wino_job j = {.s = s, .Ho = Ho, .Wo = Wo, .th = (Ho + 3) / 4, .tw = (Wo + 3) / 4, .x = x, .b = b, .y = y};
  j.ext = 4 * (int64_t)j.tw + 2;
  const int64_t C = s->C, K = Cout, cap = ex->wino_block > 0 ? ex->wino_block : WINO_BLOCK;
  /* Blocks keep the scratch near the activations' size at any image and channel count
   * (SD's 1280-channel filters would take 236 MB transformed, the VAE's 512×512 inputs
   * 600 MB): output channels in blocks whose transformed filters (36·kb·C) take at most
   * cap floats (a multiple of 16 channels where the cap allows it, or all of them), tile rows in blocks whose
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
  /* per-thread scratch: the filter task's widened filters and their nine rows (18·C values),
   * the input task's 48 rows of tw + 1, or the output task's 40 rows of tw */
  j.scr_n = 48 * ((int64_t)j.tw + 1);
  if (j.scr_n < 18 * C) j.scr_n = 18 * C;
  j.scr_n = (j.scr_n + 15) & ~(int64_t)15;
  j.sU = slab(kb * C);
  j.sV = slab(C * Tmax);
  j.sM = slab(kb * Tmax);
  const int64_t nU = 36 * j.sU, nV = 36 * j.sV, nM = 36 * j.sM, nS = j.scr_n * ex->n_threads;
  const int64_t need = nU + nV + nM + nS;
  if (!(j.U = sd_conv_scratch(ex, need))) return SD_E_NOMEM;
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
      if (atomic_load(&j.failed)) return sd_fail(SD_E_INTERNAL, "conv2d: oneDNN's sgemm failed");
      sd_parallel_for(ex->pool, j.kn, 1, wino_output_task, &j);
    }
  }
  return SD_OK;
}
