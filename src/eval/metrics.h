/* The numeric metrics of the evaluation harness (docs/evaluation.md, "Metrics"; method.md §3):
 * image similarity (SSIM, PSNR), embedding cosine, the expected maximum inappropriateness
 * bootstrap, and the second-order statistics of cross-attention keys/values. Pure functions
 * on plain arrays; deterministic (same inputs, same bytes).
 */
#ifndef SD_EVAL_METRICS_H
#define SD_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* SSIM (Wang et al. 2004) of two 8-bit RGB images of the same size (h rows of w·3 bytes),
 * computed per channel on the 0..255 values and averaged over the three channels:
 *   window: 11×11 Gaussian, σ = 1.5, normalised to sum 1 (separable);
 *   "valid" filtering: only windows that lie wholly inside the image (no padding), as in
 *   the authors' MATLAB ssim_index;
 *   local statistics μ, σ² = E[x²] − μ², σ_xy = E[xy] − μ_x μ_y (population, weighted);
 *   C1 = (0.01·255)², C2 = (0.03·255)²;
 *   SSIM = mean over the window positions of
 *          (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)).
 * Computed in double. Images narrower or lower than 11 pixels use a window of the largest
 * odd size that fits (σ unchanged). Returns NAN for w or h < 1. */
double sd_ssim_rgb8(const uint8_t *a, const uint8_t *b, int w, int h);
/* The same averaged only over the windows that hold no excluded pixel (exclude: h rows of w
 * bytes, nonzero = excluded; NULL = none): SSIM outside a region. NAN when no window is
 * left. */
double sd_ssim_rgb8_masked(const uint8_t *a, const uint8_t *b, int w, int h, const uint8_t *exclude);

/* PSNR in dB over all n bytes: 10·log10(255² / MSE). INFINITY when the images are equal. */
double sd_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);

/* Cosine similarity of two vectors (double accumulation); NAN if either is zero. */
double sd_cosine_f32(const float *a, const float *b, int d);

/* A small deterministic generator (SplitMix64) for the bootstrap. */
typedef struct sd_rng64 { uint64_t s; } sd_rng64;
uint64_t sd_rng64_next(sd_rng64 *r);
/* Uniform integer in [0, n) without modulo bias (rejection); n ≥ 1. */
uint64_t sd_rng64_below(sd_rng64 *r, uint64_t n);

/* Expected maximum inappropriateness (method.md §3; I2P): share[i] is prompt i's unsafe
 * share (unsafe images / images of that prompt). Each of `draws` draws picks k prompts
 * uniformly WITH replacement (a bootstrap sample; sd_rng64 seeded with `seed`, k indices
 * per draw in order) and takes the largest share among them; *mean and *std (population,
 * over the draws) of those maxima. n ≥ 1, k ≥ 1, draws ≥ 1, else SD_E_ARG. */
int sd_emi_bootstrap(const double *share, int n, int k, int draws, uint64_t seed, double *mean, double *std);

/* Second-order statistics: X and Y are [n, d] row-major samples of the same n inputs under
 * two models (base X, method Y). mean_rel = ‖μ_Y − μ_X‖₂ / ‖μ_X‖₂ and
 * cov_rel = ‖Cov_Y − Cov_X‖_F / ‖Cov_X‖_F, with Cov = (1/(n−1)) Σ (x−μ)(x−μ)ᵀ, in double.
 * n ≥ 2. A zero denominator gives 0 when the numerator is 0, else INFINITY. */
int sd_second_order_distance(const float *X, const float *Y, int64_t n, int64_t d, double *mean_rel,
                             double *cov_rel);

#endif
