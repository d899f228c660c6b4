/* Conformance helper: the C TAESD decoder (models/taesd.c) against the PyTorch reference
 * (tools/ref/taesd_ref.py).
 *
 *   taesd_check WEIGHTS LATENTS.npy EXPECTED.npy [--tol T] [--threads N]
 *       WEIGHTS: taesd_decoder.safetensors or a diffusers AutoencoderTiny folder; LATENTS
 *       [1,4,h,w]; EXPECTED [1,3,fh,fw] = 2·decoder(latents) − 1.
 *   taesd_check errors WEIGHTS
 *       bad latent sizes are refused with SD_E_ARG.
 *   taesd_check png WEIGHTS LATENTS.npy IMAGE.png
 *       IMAGE's pixels are exactly sd_vae_to_rgb8 of the C decode of LATENTS [N,4,h,w] (the
 *       first): what `safesd generate --taesd` must write.
 * Exit 0 when the max abs error is <= T (default 1e-4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"
#include "io/png.h"
#include "models/taesd.h"
#include "models/vae.h"
#include "common/check_err.h"

static int check_png(const char *weights, const char *lat, const char *png) {
  sd_taesd *t = NULL;
  sd_exec *ex = NULL;
  sd_tensor z = {0};
  uint8_t *img = NULL, *mine = NULL;
  float *y = NULL;
  int W, H, rc = 1;
  if (sd_taesd_open(weights, &t) || sd_exec_create(0, &ex) || sd_npy_read_f32(lat, &z) ||
      sd_png_read_rgb8(png, &img, &W, &H)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    goto done;
  }
  const int f = sd_taesd_factor(t);
  if (z.ndim != 4 || z.shape[2] * f != H || z.shape[3] * f != W) { fprintf(stderr, "sizes do not fit\n"); goto done; }
  if (!(y = malloc(sizeof(float) * 3 * (size_t)W * H)) || !(mine = malloc(3 * (size_t)W * H))) goto done;
  if (sd_taesd_decode(t, ex, z.data, (int)z.shape[2], (int)z.shape[3], y)) { fprintf(stderr, "error: %s\n", sd_errmsg()); goto done; }
  sd_vae_to_rgb8(y, H, W, mine);
  size_t diff = 0;
  for (size_t i = 0; i < 3 * (size_t)W * H; i++) diff += mine[i] != img[i];
  rc = diff != 0;
  printf("taesd png %s: %zu of %zu values differ from the decode of %s %s\n", png, diff, 3 * (size_t)W * H, lat, rc ? "FAIL" : "ok");
done:
  free(y);
  free(mine);
  free(img);
  free(z.data);
  sd_exec_destroy(ex);
  sd_taesd_free(t);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 5 && !strcmp(argv[1], "png")) return check_png(argv[2], argv[3], argv[4]);
  if (argc >= 3 && !strcmp(argv[1], "errors")) {
    sd_taesd *t;
    sd_exec *ex;
    if (sd_taesd_open(argv[2], &t) || sd_exec_create(1, &ex)) { fprintf(stderr, "error: %s\n", sd_errmsg()); return 1; }
    float z[4] = {0}, y[3 * 64] = {0};
    int bad = 0, sizes[][2] = {{0, 1}, {1, -3}, {4096, 4096}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      int rc = sd_taesd_decode(t, ex, z, sizes[i][0], sizes[i][1], y);
      int ok = rc == SD_E_ARG && strlen(sd_errmsg()) > 0;
      printf("errors: %dx%d -> %s (\"%s\") %s\n", sizes[i][0], sizes[i][1], sd_status_name(rc), sd_errmsg(), ok ? "ok" : "FAIL");
      bad |= !ok;
    }
    sd_exec_destroy(ex);
    sd_taesd_free(t);
    return bad;
  }
  if (argc < 4) {
    fprintf(stderr, "usage: %s WEIGHTS LATENTS.npy EXPECTED.npy [--tol T] [--threads N] | errors WEIGHTS\n", argv[0]);
    return 2;
  }
  double tol = 1e-4;
  int threads = 0;
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_taesd *t = NULL;
  sd_exec *ex = NULL;
  sd_tensor z = {0}, ref = {0};
  int rc = 1;
  float *y = NULL;
  if (sd_taesd_open(argv[1], &t) || sd_exec_create(threads, &ex) || sd_npy_read_f32(argv[2], &z) ||
      sd_npy_read_f32(argv[3], &ref)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    goto done;
  }
  if (z.ndim != 4 || ref.ndim != 4 || z.shape[1] != sd_taesd_latent_channels(t) || ref.shape[1] != 3 ||
      ref.shape[2] != z.shape[2] * sd_taesd_factor(t) || ref.shape[3] != z.shape[3] * sd_taesd_factor(t)) {
    fprintf(stderr, "shapes do not fit the decoder\n");
    goto done;
  }
  const int h = (int)z.shape[2], w = (int)z.shape[3];
  const size_t n = (size_t)sd_numel(&ref);
  if (!(y = malloc(sizeof(float) * n))) goto done;
  const double t0 = now();
  if (sd_taesd_decode(t, ex, z.data, h, w, y)) { fprintf(stderr, "error: %s\n", sd_errmsg()); goto done; }
  const double dt = now() - t0;
  double err = 0, scale = 0;
  const float *r = ref.data;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)y[i] - r[i]);
    err = sd_check_max(err, e);
    scale = fabs(r[i]) > scale ? fabs(r[i]) : scale;
  }
  rc = err <= tol ? 0 : 1;
  printf("taesd %s: [3, %d, %d] max abs error %.3g (<= %g) %s, output scale %.3g, decode %.3f s\n", argv[3],
         h * sd_taesd_factor(t), w * sd_taesd_factor(t), err, tol, rc ? "FAIL" : "ok", scale, dt);
done:
  free(y);
  free(z.data);
  free(ref.data);
  sd_exec_destroy(ex);
  sd_taesd_free(t);
  return rc;
}
