/* Benchmark (not a test): how far bf16 compute moves the outputs of full-size SD models.
 * One UNet forward (batch 1, 64×64 latent, 77×768 context, t = 981) and one VAE decode
 * (64×64×4 -> 512×512) on deterministic pseudo-random inputs, first in fp32, then in bf16
 * (native on CPUs with AVX512-BF16/AMX; elsewhere the emulation, $SAFESD_BF16_EMULATE=1 set
 * by this program: fp32 kernels on bf16-rounded inputs and weights, slower than fp32).
 *
 *   bench_precision UNET_MODEL VAE_MODEL [--threads N] [--winograd]
 *
 * Prints per component the relative L2 difference and the largest absolute difference of
 * bf16 against fp32, the times, and for the decoded image its PSNR in 8-bit levels.
 * --winograd compares fp32 with every 3×3 stride-1 convolution on oneDNN's Winograd kernel
 * (SD_WINO_ON, more than the default ever uses) against fp32 with direct convolutions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "models/vae.h"
#include "bench_common.h"

static const char *name_a = "fp32", *name_b = "bf16";

static void compare(const char *what, const float *a, const float *b, size_t n, double ta, double tb, int image) {
  double num = 0, den = 0, mx = 0, se = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)b[i] - a[i];
    num += d * d;
    den += (double)a[i] * a[i];
    if (fabs(d) > mx) mx = fabs(d);
    if (image) { /* [-1, 1] -> 8-bit levels as the pipeline writes them */
      double pa = floor((fmin(fmax(a[i], -1.0), 1.0) + 1.0) * 127.5 + 0.5);
      double pb = floor((fmin(fmax(b[i], -1.0), 1.0) + 1.0) * 127.5 + 0.5);
      se += (pa - pb) * (pa - pb);
    }
  }
  printf("component=%s rel_l2=%.3g max_abs=%.3g %s_s=%.2f %s_s=%.2f", what, sqrt(num / (den > 0 ? den : 1)), mx, name_a,
         ta, name_b, tb);
  if (image) {
    double mse = se / (double)n;
    printf(" psnr_db=%.1f", mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : INFINITY);
  }
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s UNET_MODEL VAE_MODEL [--threads N] [--winograd]\n", argv[0]);
    return 2;
  }
  int threads = 0, wino = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--winograd")) wino = 1, name_a = "direct", name_b = "winograd";
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  setenv("SAFESD_BF16_EMULATE", "1", 1);
  sd_model_source *mu, *mv;
  sd_unet *u;
  sd_vae *v;
  sd_exec *ex;
  if (sd_model_open(argv[1], &mu) || sd_unet_create(mu, &u) || sd_model_open(argv[2], &mv) || sd_vae_create(mv, &v) ||
      sd_exec_create(threads, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  const sd_unet_config *c = sd_unet_cfg(u);
  const int h = 64, w = 64, S = 77;
  size_t nx = (size_t)c->in_channels * h * w, nc = (size_t)S * c->cross_attention_dim, ny = (size_t)c->out_channels * h * w;
  const int f = sd_vae_factor(v);
  size_t nimg = (size_t)sd_vae_cfg(v)->out_channels * h * f * w * f, nlat = (size_t)sd_vae_cfg(v)->latent_channels * h * w;
  float *x = malloc(nx * 4), *ctx = malloc(nc * 4), *y32 = malloc(ny * 4), *y16 = malloc(ny * 4);
  float *lat = malloc(nlat * 4), *i32 = malloc(nimg * 4), *i16 = malloc(nimg * 4);
  if (!x || !ctx || !y32 || !y16 || !lat || !i32 || !i16) { fprintf(stderr, "out of memory\n"); return 1; }
  bench_fill(x, nx, 1);
  bench_fill(ctx, nc, 2);
  bench_fill(lat, nlat, 3);
  double t[4];
  for (int pass = 0; pass < 2; pass++) {
    ex->conv_winograd = wino ? (pass ? SD_WINO_ON : SD_WINO_OFF) : SD_WINO_AUTO;
    if (pass == 1 && !wino && sd_exec_set_precision(ex, SD_PREC_BF16)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    double t0 = bench_now();
    if (sd_unet_forward(u, ex, x, 1, h, w, 981.0f, ctx, S, pass ? y16 : y32)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    t[pass * 2] = bench_now() - t0;
    t0 = bench_now();
    if (sd_vae_decode(v, ex, lat, h, w, pass ? i16 : i32)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    t[pass * 2 + 1] = bench_now() - t0;
  }
  if (wino) printf("impl=safesd winograd_vs_direct=fp32 threads=%d\n", ex->n_threads);
  else printf("impl=safesd bf16=%s threads=%d\n", ex->bf16_emulated ? "emulated" : "native", ex->n_threads);
  compare("unet", y32, y16, ny, t[0], t[2], 0);
  compare("vae_decode", i32, i16, nimg, t[1], t[3], 1);
  sd_unet_free(u);
  sd_vae_free(v);
  sd_exec_destroy(ex);
  sd_model_close(mu);
  sd_model_close(mv);
  free(x); free(ctx); free(y32); free(y16); free(lat); free(i32); free(i16);
  return 0;
}
