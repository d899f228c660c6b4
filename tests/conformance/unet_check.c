/* Conformance helper: run the C UNet on latents + context from .npy files and compare the
 * noise prediction (and optionally every top-level block output) with reference tensors
 * from PyTorch / diffusers.
 *
 *   unet_check MODEL LATENTS.npy CONTEXT.npy TIMESTEP EXPECTED.npy
 *              [--tol T] [--rel R] [--blocks DIR/PREFIX] [--threads N] [--out OUT.npy]
 *
 * TIMESTEP is a number or a .npy file holding one. --tol: max abs error allowed (default
 * 1e-4); --rel R: allowed max abs error is R × max|expected| instead. --blocks P: compare
 * each block output NAME the UNet reports with P<NAME>.npy where that file exists (same
 * criterion). Prints one line per comparison; exit 0 if all pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"
#include "models/model_source.h"
#include "models/unet.h"
#include "common/check_err.h"

static double g_tol = 1e-4, g_rel = 0;
static int g_fail = 0;

static int compare(const char *what, const float *got, const sd_tensor *ref, int64_t n) {
  if (sd_numel(ref) != n) {
    printf("%s: FAIL: %lld values, expected %lld\n", what, (long long)n, (long long)sd_numel(ref));
    return 1;
  }
  const float *r = ref->data;
  double maxerr = 0, scale = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - r[i]);
    maxerr = sd_check_max(maxerr, e);
    scale = fmax(scale, fabs((double)r[i]));
  }
  double tol = g_rel > 0 ? g_rel * scale : g_tol;
  int ok = maxerr <= tol;
  char buf[64];
  printf("%s %s: max abs error %.3g (tolerance %.3g), output scale %.3g%s\n", what, sd_shape_str(ref, buf, sizeof buf),
         maxerr, tol, scale, ok ? "" : "  FAIL");
  return !ok;
}

typedef struct { const char *prefix; int compared; } blocks_ctx;

static void on_block(void *user, const char *name, const float *data, int ndim, const int64_t *shape) {
  blocks_ctx *b = user;
  char path[1024];
  snprintf(path, sizeof path, "%s%s.npy", b->prefix, name);
  FILE *f = fopen(path, "rb");
  if (!f) return;
  fclose(f);
  sd_tensor ref;
  if (sd_npy_read_f32(path, &ref)) {
    printf("%s: FAIL: %s\n", name, sd_errmsg());
    g_fail = 1;
    return;
  }
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  char what[96];
  snprintf(what, sizeof what, "  block %s", name);
  g_fail |= compare(what, data, &ref, n);
  b->compared++;
  free(ref.data);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr,
            "usage: %s MODEL LATENTS.npy CONTEXT.npy TIMESTEP EXPECTED.npy [--tol T] [--rel R] [--blocks PREFIX] "
            "[--threads N] [--out OUT.npy]\n",
            argv[0]);
    return 2;
  }
  int threads = 0;
  const char *blocks = NULL, *outp = NULL;
  for (int i = 6; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) g_tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--rel") && i + 1 < argc) g_rel = atof(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--blocks") && i + 1 < argc) blocks = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) outp = argv[++i];
    else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  sd_model_source *m = NULL;
  sd_unet *u = NULL;
  sd_exec *ex = NULL;
  sd_tensor lat = {0}, ctx = {0}, ref = {0};
  float *out = NULL;
  int rc = 1;
  if (sd_model_open(argv[1], &m) || sd_unet_create(m, &u) || sd_exec_create(threads, &ex) ||
      sd_npy_read_f32(argv[2], &lat) || sd_npy_read_f32(argv[3], &ctx) || sd_npy_read_f32(argv[5], &ref)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    goto done;
  }
  float t;
  const char *ts = argv[4];
  size_t tl = strlen(ts);
  if (tl > 4 && !strcmp(ts + tl - 4, ".npy")) {
    sd_tensor tt;
    if (sd_npy_read(ts, &tt)) { fprintf(stderr, "error: timestep file: %s\n", sd_errmsg()); goto done; }
    int ok = sd_numel(&tt) == 1;
    if (tt.dtype == SD_I64) t = (float)((int64_t *)tt.data)[0];
    else if (tt.dtype == SD_I32) t = (float)((int32_t *)tt.data)[0];
    else sd_to_f32(&t, tt.data, tt.dtype, 1);
    free(tt.data);
    if (!ok) { fprintf(stderr, "error: the timestep file holds more than one value\n"); goto done; }
  } else {
    t = strtof(ts, NULL);
  }
  const sd_unet_config *c = sd_unet_cfg(u);
  if (lat.ndim != 4 || lat.shape[1] != c->in_channels || ctx.ndim != 3 || ctx.shape[0] != lat.shape[0] ||
      ctx.shape[2] != c->cross_attention_dim) {
    fprintf(stderr, "latents must be [B, %d, h, w] and context [B, S, %d]\n", c->in_channels, c->cross_attention_dim);
    goto done;
  }
  int B = (int)lat.shape[0], h = (int)lat.shape[2], w = (int)lat.shape[3], S = (int)ctx.shape[1];
  int64_t n = (int64_t)B * c->out_channels * h * w;
  out = malloc(sizeof(float) * (size_t)n);
  if (!out) { fprintf(stderr, "out of memory\n"); goto done; }
  blocks_ctx bc = {blocks, 0};
  if (blocks) sd_unet_set_debug(u, on_block, &bc);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (sd_unet_forward(u, ex, lat.data, B, h, w, t, ctx.data, S, out)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    goto done;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  if (blocks && bc.compared == 0) { printf("FAIL: no block file matches %s<name>.npy\n", blocks); g_fail = 1; }
  char what[1200];
  snprintf(what, sizeof what, "%s: [B %d, %dx%d, t %g, ctx %d, %d threads, %.2f s, arena %.1f MiB]", argv[5], B, h, w,
           (double)t, S, ex->n_threads, secs, sd_unet_arena_bytes(u, B, h, w, S) / 1048576.0);
  g_fail |= compare(what, out, &ref, n);
  if (outp) {
    int64_t shape[4] = {B, c->out_channels, h, w};
    sd_tensor ot = sd_tensor_make(SD_F32, 4, shape, out);
    if (sd_npy_write(outp, &ot)) { fprintf(stderr, "error: %s\n", sd_errmsg()); g_fail = 1; }
  }
  rc = g_fail;
done:
  free(out);
  free(lat.data);
  free(ctx.data);
  free(ref.data);
  sd_unet_free(u);
  sd_exec_destroy(ex);
  if (m) sd_model_close(m);
  return rc;
}
