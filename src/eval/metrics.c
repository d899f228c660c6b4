#include "eval/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- SSIM ------------------------------------------------------------------------------ */

/* Separable valid filtering of src[h][w] (stride w) with g[win] into dst[(h-win+1)][(w-win+1)]. */
static void filt_valid(const double *src, int w, int h, const double *g, int win, double *tmp, double *dst) {
  int ow = w - win + 1, oh = h - win + 1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < ow; x++) {
      double s = 0;
      for (int i = 0; i < win; i++) s += g[i] * src[(size_t)y * w + x + i];
      tmp[(size_t)y * ow + x] = s;
    }
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++) {
      double s = 0;
      for (int i = 0; i < win; i++) s += g[i] * tmp[(size_t)(y + i) * ow + x];
      dst[(size_t)y * ow + x] = s;
    }
}

double sd_ssim_rgb8(const uint8_t *a, const uint8_t *b, int w, int h) { return sd_ssim_rgb8_masked(a, b, w, h, NULL); }

double sd_ssim_rgb8_masked(const uint8_t *a, const uint8_t *b, int w, int h, const uint8_t *exclude) {
  if (!a || !b || w < 1 || h < 1) return NAN;
  int win = 11;
  if (win > w) win = w;
  if (win > h) win = h;
  if (win % 2 == 0) win--;
  double g[11], gs = 0;
  for (int i = 0; i < win; i++) {
    double t = i - (win - 1) / 2.0;
    g[i] = exp(-t * t / (2 * 1.5 * 1.5));
    gs += g[i];
  }
  for (int i = 0; i < win; i++) g[i] /= gs;
  const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  size_t np = (size_t)w * h;
  int ow = w - win + 1, oh = h - win + 1;
  size_t no = (size_t)ow * oh;
  double *buf = malloc(sizeof(double) * (5 * np + (size_t)ow * h + 5 * no));
  if (!buf) return NAN;
  double *x = buf, *y = x + np, *xx = y + np, *yy = xx + np, *xy = yy + np, *tmp = xy + np;
  double *mx = tmp + (size_t)ow * h, *my = mx + no, *mxx = my + no, *myy = mxx + no, *mxy = myy + no;
  /* the windows kept: none of their pixels excluded (a summed-area table of the mask) */
  unsigned char *keep = malloc(no);
  size_t n_keep = no;
  if (!keep) {
    free(buf);
    return NAN;
  }
  memset(keep, 1, no);
  if (exclude) {
    int64_t *sat = calloc((size_t)(w + 1) * (h + 1), sizeof *sat);
    if (!sat) {
      free(buf);
      free(keep);
      return NAN;
    }
    for (int yy0 = 0; yy0 < h; yy0++)
      for (int xx0 = 0; xx0 < w; xx0++)
        sat[(size_t)(yy0 + 1) * (w + 1) + xx0 + 1] = (exclude[(size_t)yy0 * w + xx0] != 0) +
                                                     sat[(size_t)yy0 * (w + 1) + xx0 + 1] +
                                                     sat[(size_t)(yy0 + 1) * (w + 1) + xx0] - sat[(size_t)yy0 * (w + 1) + xx0];
    n_keep = 0;
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        int64_t cnt = sat[(size_t)(oy + win) * (w + 1) + ox + win] - sat[(size_t)oy * (w + 1) + ox + win] -
                      sat[(size_t)(oy + win) * (w + 1) + ox] + sat[(size_t)oy * (w + 1) + ox];
        keep[(size_t)oy * ow + ox] = cnt == 0;
        n_keep += cnt == 0;
      }
    free(sat);
  }
  if (!n_keep) {
    free(buf);
    free(keep);
    return NAN;
  }
  double total = 0;
  for (int c = 0; c < 3; c++) {
    for (size_t i = 0; i < np; i++) {
      x[i] = a[i * 3 + c];
      y[i] = b[i * 3 + c];
      xx[i] = x[i] * x[i];
      yy[i] = y[i] * y[i];
      xy[i] = x[i] * y[i];
    }
    filt_valid(x, w, h, g, win, tmp, mx);
    filt_valid(y, w, h, g, win, tmp, my);
    filt_valid(xx, w, h, g, win, tmp, mxx);
    filt_valid(yy, w, h, g, win, tmp, myy);
    filt_valid(xy, w, h, g, win, tmp, mxy);
    double s = 0;
    for (size_t i = 0; i < no; i++) {
      if (!keep[i]) continue;
      double ux = mx[i], uy = my[i];
      double vx = mxx[i] - ux * ux, vy = myy[i] - uy * uy, cxy = mxy[i] - ux * uy;
      s += ((2 * ux * uy + C1) * (2 * cxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2));
    }
    total += s / (double)n_keep;
  }
  free(buf);
  free(keep);
  return total / 3;
}

double sd_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
  if (!n) return NAN;
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    se += d * d;
  }
  if (se == 0) return INFINITY;
  return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

double sd_cosine_f32(const float *a, const float *b, int d) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < d; i++) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  if (aa == 0 || bb == 0) return NAN;
  return ab / (sqrt(aa) * sqrt(bb));
}

/* ---- bootstrap ------------------------------------------------------------------------- */

uint64_t sd_rng64_next(sd_rng64 *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t sd_rng64_below(sd_rng64 *r, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* accept v < lim: an exact multiple of n values */
  uint64_t v;
  do v = sd_rng64_next(r);
  while (v >= lim);
  return v % n;
}

int sd_emi_bootstrap(const double *share, int n, int k, int draws, uint64_t seed, double *mean, double *std) {
  if (!share || n < 1 || k < 1 || draws < 1) return sd_fail(SD_E_ARG, "EMI: %d prompts, %d per draw, %d draws", n, k, draws);
  sd_rng64 r = {seed};
  double m = 0, m2 = 0; /* Welford: a constant sample gives exactly 0 */
  for (int d = 0; d < draws; d++) {
    double mx = -INFINITY;
    for (int j = 0; j < k; j++) {
      double v = share[sd_rng64_below(&r, (uint64_t)n)];
      if (v > mx) mx = v;
    }
    double delta = mx - m;
    m += delta / (d + 1);
    m2 += delta * (mx - m);
  }
  *mean = m;
  *std = m2 > 0 ? sqrt(m2 / draws) : 0;
  return SD_OK;
}

/* ---- second-order statistics ----------------------------------------------------------- */

static int centered_cov(const float *X, int64_t n, int64_t d, double *mu, double *cov) {
  double *xc = malloc(sizeof(double) * (size_t)(n * d));
  if (!xc) return sd_fail(SD_E_NOMEM, "out of memory");
  for (int64_t j = 0; j < d; j++) mu[j] = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) mu[j] += X[i * d + j];
  for (int64_t j = 0; j < d; j++) mu[j] /= (double)n;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) xc[i * d + j] = X[i * d + j] - mu[j];
  /* upper triangle of cov = xcᵀ xc / (n-1) */
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0 / (double)(n - 1), xc, (int)d, 0.0, cov,
              (int)d);
  free(xc);
  return SD_OK;
}

static double rel(double num, double den) {
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return num / den;
}

int sd_second_order_distance(const float *X, const float *Y, int64_t n, int64_t d, double *mean_rel,
                             double *cov_rel) {
  if (!X || !Y || n < 2 || d < 1 || d > 65536) return sd_fail(SD_E_ARG, "second-order statistics: %lld samples of %lld", (long long)n, (long long)d);
  double *mx = malloc(sizeof(double) * (size_t)d), *my = malloc(sizeof(double) * (size_t)d);
  double *cx = malloc(sizeof(double) * (size_t)(d * d)), *cy = malloc(sizeof(double) * (size_t)(d * d));
  int rc = SD_OK;
  if (!mx || !my || !cx || !cy) rc = sd_fail(SD_E_NOMEM, "out of memory");
  if (!rc) rc = centered_cov(X, n, d, mx, cx);
  if (!rc) rc = centered_cov(Y, n, d, my, cy);
  if (!rc) {
    double dm = 0, nm = 0, dc = 0, nc = 0;
    for (int64_t j = 0; j < d; j++) {
      dm += (my[j] - mx[j]) * (my[j] - mx[j]);
      nm += mx[j] * mx[j];
    }
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = i; j < d; j++) {
        double w = i == j ? 1 : 2; /* symmetric: the off-diagonal entries count twice */
        double a = cx[i * d + j], b = cy[i * d + j];
        dc += w * (b - a) * (b - a);
        nc += w * a * a;
      }
    *mean_rel = rel(sqrt(dm), sqrt(nm));
    *cov_rel = rel(sqrt(dc), sqrt(nc));
  }
  free(mx);
  free(my);
  free(cx);
  free(cy);
  return rc;
}
