/* Conformance helper: the C nsfwjs MobileNetV2 (src/judge/nsfwjs.c) against the PyTorch
 * reference (tools/ref/nsfwjs_ref.py).
 *
 *   nsfwjs_check classify MODEL CASE_DIR NAME [options]
 *       reads CASE_DIR/img_NAME.npy (int32 [H, W, 3] RGB), preprocesses it and compares the
 *       network input with input_NAME.npy (--tol-input), then runs the network and compares
 *       the logits (logits_NAME.npy, the last Dense before its softmax) and the class
 *       probabilities (probs_NAME.npy) with --tol.
 *   options:
 *     --tol T           max abs error of probabilities and logits (default 1e-4)
 *     --tol-input T     max abs error of the preprocessed input (default 1e-6)
 *     --layer NAME FILE also compare layer NAME's output (NHWC) with FILE:
 *                       max abs error <= --layer-rel × max|expected| (default 1e-4)
 *     --threads N
 *     --repeat N        time N classify calls (preprocess + forward) and print ms/image
 *   nsfwjs_check describe MODEL
 *       load and print the model summary.
 *   nsfwjs_check errors MODEL
 *       the API refuses bad arguments with SD_E_ARG and a reason.
 * Exit 0 when every comparison passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/nsfwjs.h"
#include "io/npy.h"
#include "common/check_err.h"

#define MAX_LAYERS 64

typedef struct {
  const char *name, *file;
  sd_tensor ref;
  int seen;
  double err, scale;
} layer_ref;

typedef struct {
  layer_ref l[MAX_LAYERS];
  int n;
  float logits[SD_NSFWJS_CLASSES];
  int have_logits;
} hook_ctx;

static void on_layer(void *ctx, const char *name, const float *data, int h, int w, int c) {
  hook_ctx *hk = ctx;
  const int64_t n = (int64_t)h * w * c;
  const char *sfx = strstr(name, "/logits");
  if (sfx && !sfx[7] && n == SD_NSFWJS_CLASSES) {
    memcpy(hk->logits, data, sizeof hk->logits);
    hk->have_logits = 1;
  }
  for (int i = 0; i < hk->n; i++) {
    layer_ref *l = &hk->l[i];
    if (strcmp(l->name, name) != 0) continue;
    l->seen = 1;
    if (sd_numel(&l->ref) != n) {
      fprintf(stderr, "%s: layer %s has %dx%dx%d values, the file %lld\n", l->file, name, h, w, c,
              (long long)sd_numel(&l->ref));
      l->err = INFINITY;
      continue;
    }
    const float *r = l->ref.data;
    for (int64_t k = 0; k < n; k++) {
      double d = fabs((double)data[k] - r[k]);
      l->err = sd_check_max(l->err, d);
      l->scale = fmax(l->scale, fabs((double)r[k]));
    }
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double max_err(const float *a, const float *b, int64_t n) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    e = sd_check_max(e, d);
  }
  return e;
}

static int errors(const char *model) {
  sd_nsfwjs *m = NULL;
  sd_exec *ex = NULL;
  int bad = 0;
  if (sd_nsfwjs_load(model, &m) || sd_exec_create(1, &ex)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    sd_nsfwjs_free(m);
    return 1;
  }
  uint8_t px[12] = {0};
  float probs[SD_NSFWJS_CLASSES];
  struct { int w, h; const uint8_t *rgb; const char *what; } cases[] = {
    {0, 2, px, "width 0"}, {2, -1, px, "height -1"}, {65537, 1, px, "width 65537"}, {2, 2, NULL, "NULL pixels"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = sd_nsfwjs_classify(m, ex, cases[i].rgb, cases[i].w, cases[i].h, probs);
    int ok = rc == SD_E_ARG && strlen(sd_errmsg()) > 0;
    printf("errors: %s -> %s (\"%s\") %s\n", cases[i].what, sd_status_name(rc), sd_errmsg(), ok ? "ok" : "FAIL");
    bad |= !ok;
  }
  int rc = sd_nsfwjs_forward(m, NULL, (const float *)px, probs, NULL, NULL);
  printf("errors: NULL exec -> %s %s\n", sd_status_name(rc), rc == SD_E_ARG ? "ok" : "FAIL");
  bad |= rc != SD_E_ARG;
  /* the smallest image: 1x1, resized to the input size; probabilities sum to 1 */
  rc = sd_nsfwjs_classify(m, ex, px, 1, 1, probs);
  double s = 0;
  for (int k = 0; k < SD_NSFWJS_CLASSES; k++) s += probs[k];
  int ok = rc == SD_OK && fabs(s - 1) < 1e-5;
  printf("errors: 1x1 image -> %s, probabilities sum to %.6f %s\n", sd_status_name(rc), s, ok ? "ok" : "FAIL");
  bad |= !ok;
  sd_exec_destroy(ex);
  sd_nsfwjs_free(m);
  return bad;
}

static int load_npy(const char *dir, const char *kind, const char *name, sd_tensor *t, int as_int) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s_%s.npy", dir, kind, name);
  return as_int ? sd_npy_read(path, t) : sd_npy_read_f32(path, t);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "errors")) return errors(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "describe")) {
    sd_nsfwjs *m = NULL;
    if (sd_nsfwjs_load(argv[2], &m)) {
      fprintf(stderr, "error: %s\n", sd_errmsg());
      return 1;
    }
    char buf[256];
    sd_nsfwjs_describe(m, buf, sizeof buf);
    printf("%s\n", buf);
    sd_nsfwjs_free(m);
    return 0;
  }
  if (argc < 5 || strcmp(argv[1], "classify")) {
    fprintf(stderr, "usage: %s classify MODEL CASE_DIR NAME [--tol T] [--tol-input T] [--layer NAME FILE]... "
                    "[--layer-rel R] [--threads N] [--repeat N]\n       %s describe|errors MODEL\n", argv[0], argv[0]);
    return 2;
  }
  const char *model = argv[2], *dir = argv[3], *name = argv[4];
  double tol = 1e-4, tol_in = 1e-6, layer_rel = 1e-4;
  int threads = 0, repeat = 0;
  static hook_ctx hk;
  for (int i = 5; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--tol-input") && i + 1 < argc) tol_in = atof(argv[++i]);
    else if (!strcmp(argv[i], "--layer-rel") && i + 1 < argc) layer_rel = atof(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--layer") && i + 2 < argc && hk.n < MAX_LAYERS) {
      hk.l[hk.n].name = argv[i + 1];
      hk.l[hk.n].file = argv[i + 2];
      hk.n++;
      i += 2;
    } else {
      fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  sd_nsfwjs *m = NULL;
  sd_exec *ex = NULL;
  sd_tensor img = {0}, in_ref = {0}, probs_ref = {0}, logits_ref = {0};
  uint8_t *rgb = NULL;
  float *x = NULL;
  int ok = 0;
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); ok = 0; goto done; } while (0)
  double t0 = now();
  if (sd_nsfwjs_load(model, &m)) FAIL("error: %s\n", sd_errmsg());
  double t_load = now() - t0;
  if (sd_exec_create(threads, &ex) || load_npy(dir, "img", name, &img, 1) || load_npy(dir, "input", name, &in_ref, 0) ||
      load_npy(dir, "probs", name, &probs_ref, 0) || load_npy(dir, "logits", name, &logits_ref, 0))
    FAIL("error: %s\n", sd_errmsg());
  for (int i = 0; i < hk.n; i++)
    if (sd_npy_read_f32(hk.l[i].file, &hk.l[i].ref)) FAIL("error: %s\n", sd_errmsg());
  int H, W;
  sd_nsfwjs_input_size(m, &H, &W);
  if (img.ndim != 3 || img.shape[2] != 3 || img.dtype != SD_I32) FAIL("img_%s.npy is not int32 [H, W, 3]\n", name);
  const int h = (int)img.shape[0], w = (int)img.shape[1];
  const int64_t in_shape[3] = {H, W, 3}, cls_shape[1] = {SD_NSFWJS_CLASSES};
  if (!sd_shape_eq(&in_ref, 3, in_shape) || !sd_shape_eq(&probs_ref, 1, cls_shape) || !sd_shape_eq(&logits_ref, 1, cls_shape))
    FAIL("reference files of %s do not have the shapes [%d, %d, 3], [5], [5]\n", name, H, W);
  rgb = malloc((size_t)h * w * 3);
  x = malloc(sizeof(float) * (size_t)H * W * 3);
  if (!rgb || !x) FAIL("out of memory\n");
  for (int64_t i = 0; i < (int64_t)h * w * 3; i++) {
    int32_t v = ((const int32_t *)img.data)[i];
    if (v < 0 || v > 255) FAIL("img_%s.npy: pixel value %d outside [0, 255]\n", name, v);
    rgb[i] = (uint8_t)v;
  }
  ok = 1;
  if (sd_nsfwjs_preprocess(m, rgb, w, h, x)) FAIL("error: %s\n", sd_errmsg());
  double e_in = max_err(x, in_ref.data, (int64_t)H * W * 3);
  int p_in = e_in <= tol_in;
  float probs[SD_NSFWJS_CLASSES];
  t0 = now();
  if (sd_nsfwjs_forward(m, ex, x, probs, on_layer, &hk)) FAIL("error: %s\n", sd_errmsg());
  double t_fwd = now() - t0;
  if (!hk.have_logits) FAIL("the model reported no logits\n");
  double e_p = max_err(probs, probs_ref.data, SD_NSFWJS_CLASSES);
  double e_l = max_err(hk.logits, logits_ref.data, SD_NSFWJS_CLASSES);
  int p_p = e_p <= tol, p_l = e_l <= tol;
  ok &= p_in && p_p && p_l;
  printf("%-14s %4dx%-4d input max err %.2g (<= %.2g) %s | logits %.2g %s | probs max err %.2g (<= %.2g) %s |",
         name, h, w, e_in, tol_in, p_in ? "ok" : "FAIL", e_l, p_l ? "ok" : "FAIL", e_p, tol, p_p ? "ok" : "FAIL");
  for (int k = 0; k < SD_NSFWJS_CLASSES; k++) printf(" %s %.4f", sd_nsfwjs_class_name(k), probs[k]);
  printf(" | load %.0f ms, forward %.0f ms, %d threads\n", t_load * 1e3, t_fwd * 1e3, ex->n_threads);
  for (int i = 0; i < hk.n; i++) {
    layer_ref *l = &hk.l[i];
    int lp = l->seen && l->err <= layer_rel * l->scale;
    ok &= lp;
    if (!l->seen) printf("  layer %s: never produced FAIL\n", l->name);
    else printf("  layer %-26s max abs error %.3g, scale %.3g (rel %.2g) %s\n", l->name, l->err, l->scale,
                l->scale > 0 ? l->err / l->scale : l->err, lp ? "ok" : "FAIL");
  }
  if (repeat > 0) {
    float p2[SD_NSFWJS_CLASSES];
    t0 = now();
    for (int r = 0; r < repeat; r++)
      if (sd_nsfwjs_classify(m, ex, rgb, w, h, p2)) FAIL("error: %s\n", sd_errmsg());
    double dt = (now() - t0) / repeat;
    int same = !memcmp(p2, probs, sizeof probs);
    ok &= same;
    printf("  classify: %.1f ms/image over %d runs (%d threads), repeat gives the same bytes: %s\n", dt * 1e3, repeat,
           ex->n_threads, same ? "ok" : "FAIL");
  }
done:
  for (int i = 0; i < hk.n; i++) free(hk.l[i].ref.data);
  free(img.data);
  free(in_ref.data);
  free(probs_ref.data);
  free(logits_ref.data);
  free(rgb);
  free(x);
  sd_exec_destroy(ex);
  sd_nsfwjs_free(m);
  return ok ? 0 : 1;
}
