/* Conformance helper: the C emoji-judge (src/judge/emoji_judge.c) against the PyTorch
 * reference (tools/ref/sdref_judge.py, cases from tools/ref/judge_case.py).
 *
 *   judge_check classify MODEL CASE_DIR NAME [--tol T] [--tol-input T] [--threads N]
 *       reads CASE_DIR/img_NAME.npy (int32 [H, W, 3]), compares the preprocessed input with
 *       input_NAME.npy (--tol-input, default 1e-6), the presence logits (presence_NAME.npy)
 *       and background logits (background_NAME.npy, when present) with --tol (default 1e-4,
 *       times max(1, |reference|)), the argmax cells with cell_NAME.npy (where it is not
 *       -1) and checks the probabilities are the sigmoid / softmax of the logits.
 *   judge_check describe MODEL      load and print the vocabulary.
 * Exit 0 when every comparison passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "judge/emoji_judge.h"
#include "io/npy.h"
#include "common/check_err.h"

static int load_npy(const char *dir, const char *kind, const char *name, sd_tensor *t, int as_int) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s_%s.npy", dir, kind, name);
  return as_int ? sd_npy_read(path, t) : sd_npy_read_f32(path, t);
}

static double rel_err(const float *a, const float *ref, int64_t n) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - ref[i]) / fmax(1.0, fabs((double)ref[i]));
    e = sd_check_max(e, d);
  }
  return e;
}

static int describe(const char *model) {
  sd_emoji_judge *j = NULL;
  if (sd_emoji_judge_load(model, &j)) {
    fprintf(stderr, "error: %s\n", sd_errmsg());
    return 1;
  }
  printf("emoji-judge %s: input %d px, %d objects, %d background colours, threshold %g\n", model,
         sd_emoji_judge_image_size(j), sd_emoji_judge_n_objects(j), sd_emoji_judge_n_backgrounds(j),
         (double)sd_emoji_judge_threshold(j));
  sd_emoji_judge_free(j);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "describe")) return describe(argv[2]);
  if (argc < 5 || strcmp(argv[1], "classify")) {
    fprintf(stderr, "usage: %s classify MODEL CASE_DIR NAME [--tol T] [--tol-input T] [--threads N]\n"
                    "       %s describe MODEL\n", argv[0], argv[0]);
    return 2;
  }
  const char *model = argv[2], *dir = argv[3], *name = argv[4];
  double tol = 1e-4, tol_in = 1e-6;
  int threads = 0;
  for (int i = 5; i < argc; i++) {
    if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--tol-input") && i + 1 < argc) tol_in = atof(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  sd_emoji_judge *j = NULL;
  sd_exec *ex = NULL;
  sd_tensor img = {0}, in_ref = {0}, pres_ref = {0}, cell_ref = {0}, bg_ref = {0};
  sd_emoji_judge_result r = {0};
  uint8_t *rgb = NULL;
  float *x = NULL;
  int ok = 0;
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); ok = 0; goto done; } while (0)
  if (sd_emoji_judge_load(model, &j)) FAIL("error: %s\n", sd_errmsg());
  const int S = sd_emoji_judge_image_size(j), No = sd_emoji_judge_n_objects(j), Nb = sd_emoji_judge_n_backgrounds(j);
  if (sd_exec_create(threads, &ex) || load_npy(dir, "img", name, &img, 1) || load_npy(dir, "input", name, &in_ref, 0) ||
      load_npy(dir, "presence", name, &pres_ref, 0) || load_npy(dir, "cell", name, &cell_ref, 1) ||
      (Nb && load_npy(dir, "background", name, &bg_ref, 0)) || sd_emoji_judge_result_alloc(j, &r))
    FAIL("error: %s\n", sd_errmsg());
  if (img.ndim != 3 || img.shape[2] != 3 || img.dtype != SD_I32) FAIL("img_%s.npy is not int32 [H, W, 3]\n", name);
  const int h = (int)img.shape[0], w = (int)img.shape[1];
  const int64_t in_shape[3] = {3, S, S}, o_shape[1] = {No}, b_shape[1] = {Nb};
  if (!sd_shape_eq(&in_ref, 3, in_shape) || !sd_shape_eq(&pres_ref, 1, o_shape) || !sd_shape_eq(&cell_ref, 1, o_shape) ||
      cell_ref.dtype != SD_I32 || (Nb && !sd_shape_eq(&bg_ref, 1, b_shape)))
    FAIL("reference files of %s do not have the shapes [3, %d, %d], [%d], [%d]\n", name, S, S, No, Nb);
  rgb = malloc((size_t)h * w * 3);
  x = malloc(sizeof(float) * 3 * (size_t)S * S);
  if (!rgb || !x) FAIL("out of memory\n");
  for (int64_t i = 0; i < (int64_t)h * w * 3; i++) {
    int32_t v = ((const int32_t *)img.data)[i];
    if (v < 0 || v > 255) FAIL("img_%s.npy: pixel value %d outside [0, 255]\n", name, v);
    rgb[i] = (uint8_t)v;
  }
  ok = 1;
  if (sd_emoji_judge_preprocess(j, rgb, w, h, x)) FAIL("error: %s\n", sd_errmsg());
  double e_in = 0;
  for (int64_t i = 0; i < 3LL * S * S; i++) e_in = sd_check_max(e_in, fabs((double)x[i] - ((const float *)in_ref.data)[i]));
  if (sd_emoji_judge_classify(j, ex, rgb, w, h, &r)) FAIL("error: %s\n", sd_errmsg());
  double e_p = rel_err(r.object_logit, pres_ref.data, No), e_b = Nb ? rel_err(r.background_logit, bg_ref.data, Nb) : 0;
  int cells_checked = 0, cells_bad = 0;
  for (int o = 0; o < No; o++) {
    int want = ((const int32_t *)cell_ref.data)[o];
    if (want < 0) continue;
    const int g = sd_emoji_judge_grid(j), got = r.object_cell[o];
    cells_checked++;
    if (got != want || fabs(r.object_x[o] - ((got % g) + 0.5) / g) > 1e-6 || fabs(r.object_y[o] - ((got / g) + 0.5) / g) > 1e-6) {
      cells_bad++;
      fprintf(stderr, "%s: object %d: argmax cell %d, reference %d\n", name, o, got, want);
    }
  }
  double e_sig = 0, e_soft = 0, psum = 0;
  for (int o = 0; o < No; o++) e_sig = sd_check_max(e_sig, fabs(r.object_p[o] - 1.0 / (1.0 + exp(-(double)r.object_logit[o]))));
  for (int k = 0; k < Nb; k++) psum += r.background_p[k];
  if (Nb) e_soft = fabs(psum - 1.0);
  int top_ok = 1;
  for (int k = 0; k < Nb; k++)
    if (r.background_logit[k] > r.background_logit[r.background_top]) top_ok = 0;
  ok = e_in <= tol_in && e_p <= tol && e_b <= tol && !cells_bad && e_sig < 1e-6 && e_soft < 1e-5 && top_ok;
  printf("%s: %dx%d -> %d px: input err %.2e, presence logits err %.2e (%d), background logits err %.2e (%d), "
         "cells %d/%d equal, sigmoid err %.1e, softmax sum err %.1e: %s\n",
         name, w, h, S, e_in, e_p, No, e_b, Nb, cells_checked - cells_bad, cells_checked, e_sig, e_soft,
         ok ? "ok" : "FAIL");
done:
  free(rgb);
  free(x);
  free(img.data);
  free(in_ref.data);
  free(pres_ref.data);
  free(cell_ref.data);
  free(bg_ref.data);
  sd_emoji_judge_result_free(&r);
  sd_exec_destroy(ex);
  sd_emoji_judge_free(j);
  return ok ? 0 : 1;
}
