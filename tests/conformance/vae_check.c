/* Conformance helper: run the C VAE on inputs from .npy files and compare with reference
 * outputs (.npy) from PyTorch / diffusers.
 *
 *   vae_check decode MODEL LATENTS.npy EXPECTED.npy [options]
 *       LATENTS [1,Z,h,w] in sampler space (not divided by scaling_factor); EXPECTED the raw
 *       decoder output [1,3,H,W].
 *   vae_check encode MODEL IMAGE.npy EXPECTED.npy [--noise NOISE.npy] [options]
 *       IMAGE [1,3,H,W] in [-1,1]; EXPECTED the latents [1,Z,h,w] in sampler space (the mean
 *       * scaling_factor, or with --noise the posterior sample * scaling_factor).
 * options:
 *   --tol T            max abs error allowed (default 1e-4)
 *   --rel R            instead: max abs error <= R * max|expected|
 *   --block NAME FILE  also compare the output of module NAME ("decoder.up_blocks.0",
 *                      "quant_conv", ...; see models/vae.h) with FILE, same criterion
 *   --image01 FILE     decode: compare clamp(x/2+0.5, 0, 1) as NHWC with FILE [1,H,W,3]
 *   --tol01 T          its tolerance (default 1e-3)
 *   --rgb-out FILE     decode: write sd_vae_to_rgb8's pixels as int32 .npy [H,W,3]
 *   --band-rows N      cap the rows per band of the upsample + conv (sd_vae_set_band_rows)
 *   --tile PX          decode: sd_vae_decode_tiled with tiles of PX pixels (0: the VAE's
 *                      sample_size), against the reference's tiled_decode
 *   --threads N
 *   vae_check rgb8 DECODED.npy OUT.npy
 *       sd_vae_to_rgb8 of a decoder output [1,3,H,W], written as int32 .npy [H,W,3].
 *   vae_check errors MODEL
 *       the API refuses bad sizes with SD_E_ARG (and sizes 0 from the planners).
 *   vae_check selftest
 *       sd_vae_to_rgb8 on hand-made values (clamping, ties to even, NaN).
 * Prints errors, output scale, arena bytes and time; exit 0 if every comparison passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"
#include "models/model_source.h"
#include "models/vae.h"
#include "common/check_err.h"

#define MAX_BLOCKS 32

typedef struct {
  const char *name, *file;
  sd_tensor ref;
  int seen;
  double err, scale;
} block_ref;

typedef struct {
  block_ref b[MAX_BLOCKS];
  int n;
} hook_ctx;

static void on_block(void *ctx, const char *name, const float *data, int C, int H, int W) {
  hook_ctx *h = ctx;
  for (int i = 0; i < h->n; i++) {
    block_ref *b = &h->b[i];
    if (strcmp(b->name, name) != 0) continue;
    b->seen = 1;
    int64_t n = (int64_t)C * H * W;
    if (sd_numel(&b->ref) != n) {
      fprintf(stderr, "%s: %s has %lld values, expected file has %lld\n", b->file, name, (long long)n,
              (long long)sd_numel(&b->ref));
      b->err = INFINITY;
      return;
    }
    const float *r = b->ref.data;
    for (int64_t k = 0; k < n; k++) {
      double d = fabs((double)data[k] - r[k]);
      b->err = sd_check_max(b->err, d);
      b->scale = fmax(b->scale, fabs((double)r[k]));
    }
  }
}

static int noise_from_buffer(void *ctx, float *out, int64_t n) {
  const sd_tensor *t = ctx;
  if (sd_numel(t) != n) return sd_fail(SD_E_ARG, "noise file has %lld values, %lld needed", (long long)sd_numel(t), (long long)n);
  memcpy(out, t->data, (size_t)n * sizeof(float));
  return SD_OK;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* dims of a [1,C,H,W] or [C,H,W] tensor */
static int chw(const sd_tensor *t, int *C, int *H, int *W) {
  int o = t->ndim == 4 ? 1 : 0;
  if ((t->ndim != 3 && t->ndim != 4) || (t->ndim == 4 && t->shape[0] != 1)) return -1;
  *C = (int)t->shape[o], *H = (int)t->shape[o + 1], *W = (int)t->shape[o + 2];
  return 0;
}

/* An output buffer of n floats, every value NaN until written: a value the decoder or
 * encoder leaves unwritten fails the comparison whatever the heap held before. */
static float *nan_filled(size_t n) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; p && i < n; i++) p[i] = NAN;
  return p;
}

static int passes(double err, double scale, double tol, double rel) {
  double lim = rel > 0 ? rel * scale : tol;
  return err <= lim && !isnan(err);
}

static int write_rgb(const char *path, const float *img, int H, int W) {
  uint8_t *rgb = malloc((size_t)H * W * 3);
  int32_t *rgb32 = malloc(sizeof(int32_t) * (size_t)H * W * 3);
  if (!rgb || !rgb32) {
    free(rgb);
    free(rgb32);
    return sd_fail(SD_E_NOMEM, "out of memory");
  }
  sd_vae_to_rgb8(img, H, W, rgb);
  for (int64_t i = 0; i < (int64_t)H * W * 3; i++) rgb32[i] = rgb[i];
  int64_t shape[3] = {H, W, 3};
  sd_tensor t = sd_tensor_make(SD_I32, 3, shape, rgb32);
  int rc = sd_npy_write(path, &t);
  free(rgb);
  free(rgb32);
  return rc;
}

/* sd_vae_to_rgb8 on values whose answers are known: v = clamp(x/2 + 0.5, 0, 1) and
 * round(v * 255) with ties to even, each step in float32 as torch + numpy do it; the
 * expected value is recomputed here with an explicit tie rule, plus fixed points. */
static int selftest(void) {
  const float xs[] = {-2.0f, -1.0f, 1.0f, 3.0f, 0.0f, -1.0f + 1.0f / 255.0f, 0.5f, -0.5f, NAN, INFINITY, -INFINITY};
  const int H = 1, W = (int)(sizeof xs / sizeof xs[0]);
  float img[3 * sizeof xs / sizeof xs[0]];
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < W; i++) img[c * W + i] = xs[i];
  uint8_t rgb[3 * sizeof xs / sizeof xs[0]];
  sd_vae_to_rgb8(img, H, W, rgb);
  int bad = 0;
  for (int i = 0; i < W; i++) {
    float t = xs[i] / 2.0f + 0.5f;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    float s = t * 255.0f;
    /* ties to even by hand */
    float fl = floorf(s), fr = s - fl;
    int want = fr > 0.5f ? (int)fl + 1 : fr < 0.5f ? (int)fl : ((int)fl % 2 ? (int)fl + 1 : (int)fl);
    if (isnan(xs[i])) want = 0;
    for (int c = 0; c < 3; c++)
      if (rgb[i * 3 + c] != want) {
        printf("selftest: x = %g channel %d gives %d, want %d FAIL\n", (double)xs[i], c, rgb[i * 3 + c], want);
        bad = 1;
      }
  }
  /* fixed points: -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128 (tie, even), 0.5 -> 191.25 -> 191, -0.5 -> 63.75 -> 64 */
  const int fixed[][2] = {{1, 0}, {2, 255}, {4, 128}, {6, 191}, {7, 64}, {8, 0}, {9, 255}, {10, 0}};
  for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
    if (rgb[fixed[k][0] * 3] != fixed[k][1]) {
      printf("selftest: x = %g gives %d, want %d FAIL\n", (double)xs[fixed[k][0]], rgb[fixed[k][0] * 3], fixed[k][1]);
      bad = 1;
    }
  printf("selftest: sd_vae_to_rgb8 on %d hand-made values %s\n", W, bad ? "FAIL" : "ok");
  return bad;
}

/* Bad sizes are refused up front, with a reason, and nothing is computed. */
static int errors(const char *model) {
  sd_model_source *m = NULL;
  sd_vae *v = NULL;
  sd_exec *ex = NULL;
  int bad = 0;
  if (sd_model_open(model, &m) || sd_vae_create(m, &v) || sd_exec_create(1, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    bad = 1;
    goto done;
  }
  const sd_vae_config *c = sd_vae_cfg(v);
  const int f = sd_vae_factor(v);
  float buf[4096] = {0}, out[4096];
  struct { int dec, h, w; } cases[] = {
    {1, 0, 4}, {1, 4, -1}, {1, 1, 16384 / f + 1}, {0, f, 0}, {0, f + 1, f}, {0, f, 3 * f + 1}, {0, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int h = cases[i].h, w = cases[i].w, rc;
    size_t arena;
    if (cases[i].dec) {
      rc = sd_vae_decode(v, ex, buf, h, w, out);
      arena = sd_vae_decode_arena_bytes(v, h, w);
    } else {
      rc = sd_vae_encode(v, ex, buf, h, w, NULL, NULL, out);
      arena = sd_vae_encode_arena_bytes(v, h, w);
    }
    int ok = rc == SD_E_ARG && arena == 0 && strlen(sd_errmsg()) > 0;
    printf("errors: %s %dx%d -> %s (\"%s\"), planned arena %zu %s\n", cases[i].dec ? "decode" : "encode", h, w,
           sd_status_name(rc), sd_errmsg(), arena, ok ? "ok" : "FAIL");
    bad |= !ok;
  }
  /* tiled decoding: tile sizes that are not positive multiples of 4f are refused */
  const int bad_tiles[] = {f, 4 * f + 1, -4 * f, 3 * f};
  for (size_t i = 0; i < sizeof bad_tiles / sizeof bad_tiles[0]; i++) {
    int rc = sd_vae_decode_tiled(v, ex, buf, 1, 1, bad_tiles[i], out);
    int ok = rc == SD_E_ARG && sd_vae_decode_tiled_arena_bytes(v, 1, 1, bad_tiles[i]) == 0 && strlen(sd_errmsg()) > 0;
    printf("errors: tiled decode, tile %d -> %s (\"%s\") %s\n", bad_tiles[i], sd_status_name(rc), sd_errmsg(),
           ok ? "ok" : "FAIL");
    bad |= !ok;
  }
  /* and a valid 1x1 decode runs (smallest size) */
  if ((int64_t)c->out_channels * f * f <= 4096 && c->latent_channels <= 4096) {
    int rc = sd_vae_decode(v, ex, buf, 1, 1, out);
    printf("errors: decode 1x1 -> %s %s\n", sd_status_name(rc), rc == SD_OK ? "ok" : "FAIL");
    bad |= rc != SD_OK;
  }
done:
  sd_vae_free(v);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return bad;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "selftest")) return selftest();
  if (argc == 3 && !strcmp(argv[1], "errors")) return errors(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "rgb8")) {
    sd_tensor in = {0};
    int C, H, W;
    int rc = 1;
    if (sd_npy_read_f32(argv[2], &in)) fprintf(stderr, "error: %s\n", sd_errmsg());
    else if (chw(&in, &C, &H, &W) || C != 3) fprintf(stderr, "%s is not [1,3,H,W]\n", argv[2]);
    else if (write_rgb(argv[3], in.data, H, W)) fprintf(stderr, "error: %s\n", sd_errmsg());
    else rc = 0;
    free(in.data);
    return rc;
  }
  if (argc < 5 || (strcmp(argv[1], "decode") && strcmp(argv[1], "encode"))) {
    fprintf(stderr, "usage: %s decode|encode MODEL INPUT.npy EXPECTED.npy [--tol T] [--rel R] [--block NAME FILE]... "
                    "[--image01 FILE] [--tol01 T] [--rgb-out FILE] [--noise FILE] [--band-rows N] [--tile PX] [--threads N]\n", argv[0]);
    return 2;
  }
  const int decode = strcmp(argv[1], "decode") == 0;
  double tol = 1e-4, rel = 0, tol01 = 1e-3;
  int threads = 0, band_rows = 0, tile = -1;
  const char *image01 = NULL, *rgb_out = NULL, *noise_file = NULL;
  static hook_ctx hk;
  for (int i = 5; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--rel") && i + 1 < argc) rel = atof(argv[++i]);
    else if (!strcmp(argv[i], "--tol01") && i + 1 < argc) tol01 = atof(argv[++i]);
    else if (!strcmp(argv[i], "--image01") && i + 1 < argc) image01 = argv[++i];
    else if (!strcmp(argv[i], "--rgb-out") && i + 1 < argc) rgb_out = argv[++i];
    else if (!strcmp(argv[i], "--noise") && i + 1 < argc) noise_file = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--band-rows") && i + 1 < argc) band_rows = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tile") && i + 1 < argc) tile = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--block") && i + 2 < argc && hk.n < MAX_BLOCKS) {
      hk.b[hk.n].name = argv[i + 1];
      hk.b[hk.n].file = argv[i + 2];
      hk.n++;
      i += 2;
    } else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_model_source *m = NULL;
  sd_vae *v = NULL;
  sd_exec *ex = NULL;
  sd_tensor in = {0}, ref = {0}, noise = {0}, im = {0};
  float *out = NULL;
  int ok = 0; /* set to 1 once every comparison has run; failures clear it */
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); ok = 0; goto done; } while (0)
  if (sd_model_open(argv[2], &m) || sd_vae_create(m, &v) || sd_exec_create(threads, &ex) ||
      sd_npy_read_f32(argv[3], &in) || sd_npy_read_f32(argv[4], &ref) ||
      (noise_file && sd_npy_read_f32(noise_file, &noise)))
    FAIL("error: %s\n", sd_errmsg());
  for (int i = 0; i < hk.n; i++)
    if (sd_npy_read_f32(hk.b[i].file, &hk.b[i].ref)) FAIL("error: %s\n", sd_errmsg());
  if (hk.n) sd_vae_set_hook(v, on_block, &hk);
  sd_vae_set_band_rows(v, band_rows);
  const sd_vae_config *cfg = sd_vae_cfg(v);
  const int f = sd_vae_factor(v);
  int C, H, W, Co, Ho, Wo;
  if (chw(&in, &C, &H, &W) || chw(&ref, &Co, &Ho, &Wo)) FAIL("inputs must be [1,C,H,W]\n");
  ok = 1;
  double t0 = now(), dt;
  size_t arena;
  if (decode) {
    if (C != cfg->latent_channels || Co != cfg->out_channels || Ho != H * f || Wo != W * f)
      FAIL("shapes do not fit the VAE (latent %dx%dx%d, expected %dx%dx%d)\n", C, H, W, Co, Ho, Wo);
    arena = tile >= 0 ? sd_vae_decode_tiled_arena_bytes(v, H, W, tile) : sd_vae_decode_arena_bytes(v, H, W);
    out = nan_filled((size_t)Co * Ho * Wo);
    if (!out || (tile >= 0 ? sd_vae_decode_tiled(v, ex, in.data, H, W, tile, out) : sd_vae_decode(v, ex, in.data, H, W, out)))
      FAIL("error: %s\n", sd_errmsg());
  } else {
    if (C != cfg->in_channels || Co != cfg->latent_channels || Ho * f != H || Wo * f != W)
      FAIL("shapes do not fit the VAE (image %dx%dx%d, expected %dx%dx%d)\n", C, H, W, Co, Ho, Wo);
    arena = sd_vae_encode_arena_bytes(v, H, W);
    out = nan_filled((size_t)Co * Ho * Wo);
    if (!out || sd_vae_encode(v, ex, in.data, H, W, noise_file ? noise_from_buffer : NULL, &noise, out))
      FAIL("error: %s\n", sd_errmsg());
  }
  dt = now() - t0;
  const int64_t n = (int64_t)Co * Ho * Wo;
  const float *r = ref.data;
  double err = 0, scale = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)out[i] - r[i]);
    err = sd_check_max(err, d);
    scale = fmax(scale, fabs((double)r[i]));
  }
  int pass = passes(err, scale, tol, rel);
  ok &= pass;
  if (isnan(err)) { /* which side holds the NaN, and where: an unwritten output value stays NaN */
    int64_t nan_out = 0, nan_ref = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
      if (isnan(out[i]) && first < 0) first = i;
      nan_out += isnan(out[i]) != 0, nan_ref += isnan(r[i]) != 0;
    }
    printf("NaN: %lld in safesd's output (first at channel %lld, row %lld, column %lld), %lld in the reference\n",
           (long long)nan_out, first < 0 ? -1LL : (long long)(first / ((int64_t)Ho * Wo)),
           first < 0 ? -1LL : (long long)(first / Wo % Ho), first < 0 ? -1LL : (long long)(first % Wo),
           (long long)nan_ref);
  }
  char crit[64];
  if (rel > 0) snprintf(crit, sizeof crit, "<= %.3g x max|expected| = %.3g", rel, rel * scale);
  else snprintf(crit, sizeof crit, "<= %.3g", tol);
  printf("%s %s: [%d, %d, %d] max abs error %.3g (%s) %s, output scale %.3g, arena %.1f MiB, %.2f s, %d threads\n",
         argv[1], argv[4], Co, Ho, Wo, err, crit, pass ? "ok" : "FAIL", scale, arena / 1048576.0, dt, ex->n_threads);
  for (int i = 0; i < hk.n; i++) {
    block_ref *b = &hk.b[i];
    int bp = b->seen && passes(b->err, b->scale, tol, rel);
    ok &= bp;
    if (!b->seen) printf("  block %s: never produced FAIL\n", b->name);
    else printf("  block %s: max abs error %.3g, scale %.3g %s\n", b->name, b->err, b->scale, bp ? "ok" : "FAIL");
  }
  if (decode && image01) {
    if (sd_npy_read_f32(image01, &im)) FAIL("error: %s\n", sd_errmsg());
    int64_t want[4] = {1, Ho, Wo, 3};
    if (Co != 3 || !sd_shape_eq(&im, 4, want)) FAIL("%s is not [1, %d, %d, 3]\n", image01, Ho, Wo);
    double e01 = 0;
    const float *p = im.data;
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++)
        for (int c = 0; c < 3; c++) {
          float t = out[((int64_t)c * Ho + y) * Wo + x] / 2.0f + 0.5f;
          t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
          double d = fabs((double)t - p[((int64_t)y * Wo + x) * 3 + c]);
          e01 = sd_check_max(e01, d);
        }
    int p01 = e01 <= tol01;
    ok &= p01;
    printf("  image01 %s: max abs error %.3g (<= %.3g) %s\n", image01, e01, tol01, p01 ? "ok" : "FAIL");
  }
  if (decode && rgb_out) {
    if (Co != 3) FAIL("--rgb-out needs 3 output channels\n");
    if (write_rgb(rgb_out, out, Ho, Wo)) FAIL("error: %s\n", sd_errmsg());
  }
done:
  for (int i = 0; i < hk.n; i++) free(hk.b[i].ref.data);
  free(out);
  free(in.data);
  free(ref.data);
  free(noise.data);
  free(im.data);
  sd_vae_free(v);
  sd_exec_destroy(ex);
  sd_model_close(m);
  return ok ? 0 : 1;
}
