/* The evaluation metrics (eval/metrics.h) on hand-checkable inputs: SSIM of identical and of
 * constant images (closed form), PSNR of a one-level difference, cosine, the EMI bootstrap
 * (constant shares, a single prompt, determinism, the k = 1 mean), the second-order distance
 * (identity, a known scaling), and the prompt-set reader and method parser of the harness. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/harness.h"
#include "eval/metrics.h"
#include "eval/front.h"
#include "eval/scene_metrics.h"
#include "io/png.h"
#include "io/prompts.h"
#include "testutil.h"

static void fill_const(uint8_t *p, size_t n, uint8_t v) { memset(p, v, n); }

static void test_ssim_identical(void **state) {
  (void)state;
  int w = 32, h = 20;
  uint8_t *a = malloc((size_t)w * h * 3);
  for (int i = 0; i < w * h * 3; i++) a[i] = (uint8_t)(i * 37 % 251);
  assert_true(fabs(sd_ssim_rgb8(a, a, w, h) - 1.0) < 1e-12);
  free(a);
}

static void test_ssim_constant(void **state) {
  (void)state;
  /* constant images c1, c2: σ = 0, so SSIM = (2 c1 c2 + C1) / (c1² + c2² + C1) */
  int w = 16, h = 16;
  size_t n = (size_t)w * h * 3;
  uint8_t *a = malloc(n), *b = malloc(n);
  fill_const(a, n, 100);
  fill_const(b, n, 110);
  double C1 = (0.01 * 255) * (0.01 * 255);
  double want = (2.0 * 100 * 110 + C1) / (100.0 * 100 + 110.0 * 110 + C1); /* 0.9954764... */
  assert_true(fabs(sd_ssim_rgb8(a, b, w, h) - want) < 1e-12);
  assert_true(fabs(want - 0.99547644) < 1e-7);
  /* smaller than the window: the window shrinks, the result is the same for constants */
  assert_true(fabs(sd_ssim_rgb8(a, b, 4, 3) - want) < 1e-12);
  assert_true(isnan(sd_ssim_rgb8(a, b, 0, 3)));
  free(a);
  free(b);
}

static void test_ssim_structure(void **state) {
  (void)state;
  /* a checkerboard against its inverse: strongly negative structure term */
  int w = 24, h = 24;
  size_t n = (size_t)w * h * 3;
  uint8_t *a = malloc(n), *b = malloc(n);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        a[((size_t)y * w + x) * 3 + c] = (uint8_t)(((x + y) & 1) ? 255 : 0);
        b[((size_t)y * w + x) * 3 + c] = (uint8_t)(((x + y) & 1) ? 0 : 255);
      }
  double s = sd_ssim_rgb8(a, b, w, h);
  assert_true(s < -0.9);
  assert_true(fabs(sd_ssim_rgb8(a, b, w, h) - sd_ssim_rgb8(b, a, w, h)) < 1e-15); /* symmetric */
  free(a);
  free(b);
}

static void test_psnr(void **state) {
  (void)state;
  uint8_t a[300], b[300];
  memset(a, 7, sizeof a);
  memset(b, 7, sizeof b);
  assert_true(isinf(sd_psnr_u8(a, b, sizeof a)));
  for (size_t i = 0; i < sizeof b; i++) b[i] = 8; /* MSE 1 */
  assert_true(fabs(sd_psnr_u8(a, b, sizeof a) - 20 * log10(255.0)) < 1e-12); /* 48.1308 dB */
  assert_true(fabs(sd_psnr_u8(a, b, sizeof a) - 48.13080360867910) < 1e-9);
  b[0] = 7 + 10; /* one error of 10 among 300 (others 1): MSE = (299 + 100)/300 */
  assert_true(fabs(sd_psnr_u8(a, b, sizeof a) - 10 * log10(255.0 * 255.0 / (399.0 / 300))) < 1e-12);
}

static void test_cosine(void **state) {
  (void)state;
  float a[3] = {1, 0, 0}, b[3] = {1, 1, 0}, z[3] = {0, 0, 0};
  assert_true(fabs(sd_cosine_f32(a, b, 3) - 1 / sqrt(2.0)) < 1e-12);
  assert_true(fabs(sd_cosine_f32(b, b, 3) - 1) < 1e-12);
  assert_true(isnan(sd_cosine_f32(a, z, 3)));
}

static void test_emi(void **state) {
  (void)state;
  double m, s;
  double c[5] = {0.3, 0.3, 0.3, 0.3, 0.3};
  assert_int_equal(sd_emi_bootstrap(c, 5, 25, 1000, 1, &m, &s), SD_OK);
  assert_true(fabs(m - 0.3) < 1e-15 && s == 0);
  double one = 0.7;
  assert_int_equal(sd_emi_bootstrap(&one, 1, 25, 10, 1, &m, &s), SD_OK);
  assert_true(m == 0.7 && s == 0);
  /* shares {0, 1}, k = 25: the max is 0 only when all 25 draws pick prompt 0 (2^-25) */
  double two[2] = {0, 1};
  assert_int_equal(sd_emi_bootstrap(two, 2, 25, 10000, 42, &m, &s), SD_OK);
  assert_true(m == 1.0 && s == 0);
  /* k = 1: each draw is one share; the mean is near the shares' mean (0.5 ± 3σ/√n = 0.015) */
  assert_int_equal(sd_emi_bootstrap(two, 2, 1, 10000, 42, &m, &s), SD_OK);
  assert_true(fabs(m - 0.5) < 0.015);
  assert_true(fabs(s - sqrt(m * (1 - m))) < 1e-12); /* the std of a 0/1 variable */
  /* k = 2: P(max = 1) = 3/4 */
  double m2, s2;
  assert_int_equal(sd_emi_bootstrap(two, 2, 2, 20000, 7, &m2, &s2), SD_OK);
  assert_true(fabs(m2 - 0.75) < 0.012);
  /* deterministic: same seed, same result; another seed, another sample */
  double m3, s3;
  sd_emi_bootstrap(two, 2, 2, 20000, 7, &m3, &s3);
  assert_true(m3 == m2 && s3 == s2);
  sd_emi_bootstrap(two, 2, 2, 20000, 8, &m3, &s3);
  assert_true(m3 != m2);
  assert_int_equal(sd_emi_bootstrap(two, 0, 2, 10, 1, &m, &s), SD_E_ARG);
  assert_int_equal(sd_emi_bootstrap(two, 2, 0, 10, 1, &m, &s), SD_E_ARG);
  /* the bounded integer draw covers its range and nothing else */
  sd_rng64 r = {3};
  int seen[7] = {0};
  for (int i = 0; i < 7000; i++) {
    uint64_t v = sd_rng64_below(&r, 7);
    assert_true(v < 7);
    seen[v]++;
  }
  for (int i = 0; i < 7; i++) assert_true(seen[i] > 800 && seen[i] < 1200);
}

static void test_second_order(void **state) {
  (void)state;
  /* X: 4 samples of 2 dims; Y = X: 0; Y = 2X: mean and covariance relative changes 1 and 3 */
  float X[8] = {1, 2, 3, 1, 2, 5, 6, 0}, Y[8];
  double mr, cr;
  assert_int_equal(sd_second_order_distance(X, X, 4, 2, &mr, &cr), SD_OK);
  assert_true(mr == 0 && cr == 0);
  for (int i = 0; i < 8; i++) Y[i] = 2 * X[i];
  assert_int_equal(sd_second_order_distance(X, Y, 4, 2, &mr, &cr), SD_OK);
  assert_true(fabs(mr - 1) < 1e-12);
  assert_true(fabs(cr - 3) < 1e-12);
  /* a shift moves the mean, not the covariance */
  for (int i = 0; i < 8; i++) Y[i] = X[i] + 1;
  assert_int_equal(sd_second_order_distance(X, Y, 4, 2, &mr, &cr), SD_OK);
  assert_true(cr < 1e-12 && mr > 0);
  assert_int_equal(sd_second_order_distance(X, Y, 1, 2, &mr, &cr), SD_E_ARG);
}

static void test_prompt_sets(void **state) {
  (void)state;
  const char *p = sd_test_tmp("metrics_i2p.csv");
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  fputs("prompt,categories,hard,sd_seed,sd_guidance_scale\n"
        "\"a \"\"quoted\"\", multi\nline prompt\",\"sexual, violence\",1,4294967295,7\n"
        "plain,hate,0,12.0,7\n"
        ",shocking,0,,7\n",
        f);
  fclose(f);
  char spec[4200];
  snprintf(spec, sizeof spec, "unsafe=%s", p);
  sd_prompt_set *s;
  assert_int_equal(sd_prompt_set_load(spec, &s), SD_OK);
  assert_int_equal(s->n, 3);
  assert_int_equal(s->role, SD_ROLE_UNSAFE);
  assert_string_equal(s->name, "metrics_i2p");
  assert_string_equal(s->rows[0].prompt, "a \"quoted\", multi\nline prompt");
  assert_string_equal(s->rows[0].category, "sexual, violence");
  assert_true(s->rows[0].has_seed && s->rows[0].seed == 4294967295ULL && s->rows[0].hard == 1);
  assert_true(s->rows[1].has_seed && s->rows[1].seed == 12);
  assert_true(!s->rows[2].has_seed && s->rows[2].prompt[0] == 0);
  char **parts;
  int np;
  assert_int_equal(sd_split_categories(s->rows[0].category, &parts, &np), SD_OK);
  assert_int_equal(np, 2);
  assert_string_equal(parts[0], "sexual");
  assert_string_equal(parts[1], "violence");
  sd_free_strings(parts, np);
  sd_prompt_set_free(s);
  /* the role from the stem; unknown stems need ROLE= */
  assert_int_equal(sd_prompt_set_load(p, &s), SD_OK); /* "i2p" in the stem */
  sd_prompt_set_free(s);
  const char *q = sd_test_tmp("metrics_misc.txt");
  f = fopen(q, "wb");
  fputs("# comment\n\nfirst prompt\r\nsecond, with comma\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(q, &s), SD_E_ARG);
  snprintf(spec, sizeof spec, "benign=%s", q);
  assert_int_equal(sd_prompt_set_load(spec, &s), SD_OK);
  assert_int_equal(s->n, 2);
  assert_string_equal(s->rows[1].prompt, "second, with comma");
  assert_string_equal(s->rows[0].prompt, "first prompt");
  sd_prompt_set_free(s);
  /* the scene column: a JSON object, checked */
  const char *sc = sd_test_tmp("scenes_unsafe.csv");
  f = fopen(sc, "wb");
  fputs("prompt,category,label,scene\n\"a dagger\",weapons,dagger,\"{\"\"objects\"\": []}\"\nno scene,benign,x,\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(sc, &s), SD_OK);
  assert_string_equal(s->rows[0].scene, "{\"objects\": []}");
  assert_string_equal(s->rows[1].scene, "");
  sd_prompt_set_free(s);
  f = fopen(sc, "wb");
  fputs("prompt,scene\nfine,{}\nbad,[1]\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(sc, &s), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "record 2: the scene column is not a JSON object"));
  f = fopen(sc, "wb");
  fputs("prompt,scene\nbad,{oops\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(sc, &s), SD_E_FORMAT);
  /* file text quoted in a message is escaped: a control character in a bad seed */
  f = fopen(sc, "wb");
  fputs("prompt,sd_seed\nfine,1\nbad,\"12\x1b[31m\"\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(sc, &s), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "record 2: seed \"12\\x1b[31m\" is not an integer"));
  for (const char *m = sd_errmsg(); *m; m++) assert_true((unsigned char)*m >= 0x20 && *m != 0x7f);
  /* a one-column CSV: its header is not a prompt; in a .txt the same lines are three prompts */
  f = fopen(sc, "wb");
  fputs("prompt\nfirst\n\"second, quoted\"\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(sc, &s), SD_OK);
  assert_int_equal(s->n, 2);
  assert_string_equal(s->rows[0].prompt, "first");
  assert_string_equal(s->rows[1].prompt, "second, quoted");
  sd_prompt_set_free(s);
  const char *t1 = sd_test_tmp("one_column_unsafe.txt");
  f = fopen(t1, "wb");
  fputs("prompt\nfirst\n", f);
  fclose(f);
  assert_int_equal(sd_prompt_set_load(t1, &s), SD_OK);
  assert_int_equal(s->n, 2);
  assert_string_equal(s->rows[0].prompt, "prompt");
  sd_prompt_set_free(s);
  snprintf(spec, sizeof spec, "benign=%s.missing", q);
  assert_int_equal(sd_prompt_set_load(spec, &s), SD_E_IO);
}

static void test_methods(void **state) {
  (void)state;
  sd_eval_method m;
  assert_int_equal(sd_eval_method_parse("none", &m), SD_OK);
  assert_string_equal(m.slug, "none");
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("sld:strong", &m), SD_OK);
  assert_string_equal(m.name, "sld:strong");
  assert_string_equal(m.slug, "sld-strong");
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:high", &m), SD_OK);
  float l, t;
  sd_eval_method_dlr_params(&m, &l, &t);
  assert_true(fabsf(l - 0.85f) < 1e-6f && fabsf(t - 0.1f) < 1e-6f);
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:\xce\xbb=0.50,tau=0.2", &m), SD_OK);
  assert_string_equal(m.name, "dlr:l=0.5,t=0.2");
  assert_string_equal(m.slug, "dlr-l-0.5-t-0.2");
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:lambda=0.3", &m), SD_OK);
  sd_eval_method_dlr_params(&m, &l, &t);
  assert_true(fabsf(l - 0.3f) < 1e-6f && fabsf(t - 0.2f) < 1e-6f); /* τ: medium's */
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:l=0.9,t=0.1,strategy=substitute_append,b=final", &m), SD_OK);
  assert_string_equal(m.name, "dlr:l=0.9,t=0.1,s=substitute+append,b=final");
  assert_string_equal(m.slug, "dlr-l-0.9-t-0.1-s-substitute-append-b-final");
  assert_string_equal(m.strategy, "substitute+append");
  assert_string_equal(m.blend, "final");
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:high,s=project", &m), SD_OK);
  assert_string_equal(m.name, "dlr:high,s=project");
  sd_eval_method_clear(&m);
  assert_int_equal(sd_eval_method_parse("dlr:s=erase", &m), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "unknown strategy 'erase'"));
  assert_int_equal(sd_eval_method_parse("dlr:b=mix", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("dlr:s=append,s=project", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("dlr:off,b=final", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("dlr:l=1.5", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("dlr:extreme", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("sld:hyper", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("magic", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("model:/nonexistent/path", &m), SD_E_ARG);
}

/* SSIM outside a region: a difference inside the excluded block leaves the rest at 1. */
static void test_ssim_masked(void **state) {
  (void)state;
  enum { W = 32, H = 24 };
  uint8_t a[W * H * 3], b[W * H * 3], mask[W * H];
  for (int i = 0; i < W * H * 3; i++) a[i] = b[i] = (uint8_t)((i * 37) % 251);
  for (int y = 6; y < 12; y++)
    for (int x = 10; x < 18; x++)
      for (int c = 0; c < 3; c++) b[(y * W + x) * 3 + c] ^= 0x55;
  memset(mask, 0, sizeof mask);
  double full = sd_ssim_rgb8(a, b, W, H);
  assert_true(full < 0.99);
  assert_true(sd_ssim_rgb8_masked(a, b, W, H, NULL) == full);
  assert_true(sd_ssim_rgb8_masked(a, b, W, H, mask) == full); /* nothing excluded */
  for (int y = 6; y < 12; y++) memset(mask + y * W + 10, 1, 8);
  double out = sd_ssim_rgb8_masked(a, b, W, H, mask);
  assert_true(fabs(out - 1.0) < 1e-12);
  /* the block's last column not excluded: the windows starting there see the difference */
  for (int y = 6; y < 12; y++) mask[y * W + 17] = 0;
  assert_true(sd_ssim_rgb8_masked(a, b, W, H, mask) < 1.0 - 1e-6);
  memset(mask, 1, sizeof mask);
  assert_true(isnan(sd_ssim_rgb8_masked(a, b, W, H, mask)));
}

#include <sys/stat.h>

static void write_png(const char *rel, const uint8_t *rgb, int w, int h) {
  char p[4200];
  mkdir(sd_test_tmp("scene_eval"), 0755);
  snprintf(p, sizeof p, "%s/%s", sd_test_tmp("scene_eval"), rel);
  assert_int_equal(sd_png_write_rgb8(p, rgb, w, h, NULL, 0), SD_OK);
}

/* Scene metrics of hand-made images: objects found, background kept, colour error, SSIM
 * outside the unsafe object's region, and the ground truth's errors. */
static void test_scene_metrics(void **state) {
  (void)state;
  enum { S = 32 };
  static uint8_t none[S * S * 3], img[S * S * 3];
  for (int i = 0; i < S * S; i++) none[i * 3] = 140, none[i * 3 + 1] = 200, none[i * 3 + 2] = 240; /* light blue */
  memcpy(img, none, sizeof img);
  for (int y = 0; y < 16; y++) /* the unsafe object (left half, region [0, 8, 16, 24] at canvas 64) changes */
    for (int x = 0; x < 10; x++) img[(y * S + x) * 3] = 10;
  write_png("none.png", none, S, S);
  write_png("img.png", img, S, S);
  const char *outdir = sd_test_tmp("scene_eval");
  json_t *scene = json_loads("{\"canvas\": 64, \"background\": {\"colours\": [\"light blue\"], \"rgb\": [[140, 200, 250]], "
                             "\"split\": null}, \"objects\": [{\"label\": \"dagger\", \"kind\": \"unsafe\", \"region\": [0, 0, 20, 32]}, "
                             "{\"label\": \"cat face\", \"kind\": \"benign\", \"region\": [40, 0, 64, 32]}, "
                             "{\"label\": \"tomato\", \"kind\": \"proximal\", \"region\": [40, 32, 64, 64]}]}", 0, NULL);
  json_t *judge = json_loads("{\"unsafe\": true, \"found\": [\"cat face\", \"skull\"], \"backgrounds\": "
                             "{\"white\": 0.2, \"light blue\": 0.7, \"pink\": 0.1}}", 0, NULL);
  assert_non_null(scene);
  assert_non_null(judge);
  sd_scene_acc acc = {0};
  assert_int_equal(sd_scene_image(outdir, "img.png", "none.png", scene, judge, &acc), SD_OK);
  assert_int_equal(acc.images, 1);
  assert_int_equal(acc.unsafe_images, 1);
  assert_int_equal(acc.unsafe_found, 0); /* the dagger is gone */
  assert_int_equal(acc.any_unsafe, 1);   /* a skull was found */
  assert_int_equal(acc.objects, 2);
  assert_int_equal(acc.objects_kept, 1);
  assert_int_equal(acc.all_kept, 0);
  assert_true(acc.bg_images == 1 && acc.bg_kept == 1);
  assert_true(acc.bg_err_n == 1 && fabs(acc.bg_err - 10.0) < 1e-9); /* 240 vs the named 250 */
  assert_true(acc.ssim_n == 1 && fabs(acc.ssim_out - 1.0) < 1e-12 && acc.identical == 0);
  /* the same image as none: identical; a judge that finds the dagger */
  json_t *j2 = json_loads("{\"unsafe\": true, \"found\": [\"dagger\", \"cat face\", \"tomato\"], \"backgrounds\": "
                          "{\"white\": 0.6, \"light blue\": 0.3}}", 0, NULL);
  sd_scene_acc b = {0};
  assert_int_equal(sd_scene_image(outdir, "none.png", "none.png", scene, j2, &b), SD_OK);
  assert_true(b.unsafe_found == 1 && b.objects_kept == 2 && b.all_kept == 1 && b.bg_kept == 0 && b.identical == 1);
  sd_scene_acc_add(&acc, &b);
  json_t *o = sd_scene_acc_json(&acc);
  assert_true(fabs(json_number_value(json_object_get(o, "unsafe_object_present")) - 0.5) < 1e-12);
  assert_true(fabs(json_number_value(json_object_get(o, "objects_kept")) - 0.75) < 1e-12);
  json_t *ci = json_object_get(o, "unsafe_ci95");
  assert_true(json_number_value(json_array_get(ci, 0)) < 0.5 && json_number_value(json_array_get(ci, 1)) > 0.5);
  json_decref(o);
  /* a two-tone background: both halves named; the judge's top two */
  json_t *two = json_loads("{\"background\": {\"colours\": [\"white\", \"light blue\"], \"rgb\": [[255, 255, 255], "
                           "[140, 200, 240]], \"split\": \"left-right\"}, \"objects\": []}", 0, NULL);
  sd_scene_acc t = {0};
  assert_int_equal(sd_scene_image(outdir, "none.png", NULL, two, judge, &t), SD_OK);
  assert_true(t.bg_kept == 1 && t.ssim_n == 0 && t.images == 1 && t.unsafe_images == 0);
  assert_true(fabs(t.bg_err - (sqrt(115.0 * 115 + 55 * 55 + 15 * 15) + 0) / 2) < 1e-9);
  /* malformed ground truth */
  json_t *bad = json_loads("{\"background\": {\"colours\": [\"white\"], \"rgb\": [[1, 2]], \"split\": null}, \"objects\": []}",
                           0, NULL);
  assert_int_equal(sd_scene_image(outdir, "none.png", NULL, bad, judge, &t), SD_E_FORMAT);
  json_decref(bad);
  bad = json_loads("{\"background\": {\"colours\": [\"white\"], \"rgb\": [[1, 2, 3]], \"split\": null}, "
                   "\"objects\": [{\"label\": \"x\", \"kind\": \"benign\", \"region\": [0, 0, 1]}]}", 0, NULL);
  assert_int_equal(sd_scene_image(outdir, "none.png", NULL, bad, judge, &t), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "region"));
  json_decref(bad);
  assert_int_equal(sd_scene_image(outdir, "missing.png", NULL, scene, judge, &t), SD_E_IO);
  json_decref(two);
  json_decref(j2);
  json_decref(scene);
  json_decref(judge);
  double lo, hi;
  sd_wilson95(5, 10, &lo, &hi);
  assert_true(fabs(lo - 0.2366) < 1e-4 && fabs(hi - 0.7634) < 1e-4);
  sd_wilson95(0, 0, &lo, &hi);
  assert_true(lo == 0 && hi == 1);
}

/* The front and the level rule on hand-made points, and from a metrics.json. */
static void test_front(void **state) {
  (void)state;
  static sd_front f;
  memset(&f, 0, sizeof f);
  f.u0 = 0.8;
  struct { double u, p; } pts[] = {{0.40, 0.95}, {0.20, 0.90}, {0.10, 0.70}, {0.05, 0.30}, {0.20, 0.80}, {0.50, 0.94}};
  for (int i = 0; i < 6; i++) {
    f.p[i].unsafe = pts[i].u;
    f.p[i].preservation = pts[i].p;
    f.p[i].lambda = 0.1f * (float)i;
    f.n++;
  }
  sd_front_choose(&f);
  int want_front[6] = {1, 1, 1, 1, 0, 0};
  for (int i = 0; i < 6; i++) assert_int_equal(f.p[i].on_front, want_front[i]);
  /* floor 0.05, none 0.8: low <= 0.425 -> point 0; medium <= 0.2375 -> 1; high <= 0.125 -> 2; max -> 3 */
  assert_int_equal(f.level[0], 0);
  assert_int_equal(f.level[1], 1);
  assert_int_equal(f.level[2], 2);
  assert_int_equal(f.level[3], 3);
  /* from an evaluation folder */
  const char *dir = sd_test_tmp("front_eval");
  mkdir(dir, 0755);
  char p[4200];
  snprintf(p, sizeof p, "%s/metrics.json", dir);
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  fputs("{\"methods\": {\"none\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.6, \"unsafe_scenes\": 10, "
        "\"objects_kept\": 1, \"background_kept\": 1}}},"
        "\"dlr:l=0.5,t=0.2,s=substitute,b=final\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.3, "
        "\"unsafe_scenes\": 10, \"objects_kept\": 0.9, \"background_kept\": 1, \"unsafe_ci95\": [0.1, 0.6]}}},"
        "\"dlr:l=1,t=0\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.1, \"unsafe_scenes\": 10, "
        "\"objects_kept\": 0.5, \"background_kept\": 0.7}}},"
        "\"dlr:high\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.0, \"unsafe_scenes\": 10, "
        "\"objects_kept\": 1, \"background_kept\": 1}}},"
        "\"sld:strong\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.0, \"unsafe_scenes\": 10, "
        "\"objects_kept\": 1, \"background_kept\": 1}}}}}\n", fp);
  fclose(fp);
  assert_int_equal(sd_front_from_eval(dir, &f), SD_OK);
  assert_int_equal(f.n, 2); /* dlr:high and sld:strong are not points: no explicit parameters */
  assert_true(fabs(f.u0 - 0.6) < 1e-12);
  assert_string_equal(f.p[f.level[0]].method, "dlr:l=0.5,t=0.2,s=substitute,b=final");
  assert_string_equal(f.p[f.level[3]].method, "dlr:l=1,t=0");
  sd_levels L;
  sd_front_levels(&f, &L);
  assert_true(L.l[0].set && L.l[0].weight == 0.5f && L.l[0].context == 0.2f);
  assert_string_equal(L.l[0].strategy, "substitute");
  assert_string_equal(L.l[0].blend, "final");
  assert_true(L.l[3].set && L.l[3].weight == 1.0f && !L.l[3].strategy[0]);
  char *cm = sd_front_comment(&f, dir);
  assert_non_null(strstr(cm, "none leaves the unsafe object in 60.0% of 10 unsafe scenes"));
  free(cm);
  /* no none, no point */
  fp = fopen(p, "wb");
  fputs("{\"methods\": {\"dlr:l=1,t=0\": {\"scenes\": {\"unsafe\": {\"unsafe_object_present\": 0.1, \"objects_kept\": 0.5, "
        "\"background_kept\": 0.7}}}}}\n", fp);
  fclose(fp);
  assert_int_equal(sd_front_from_eval(dir, &f), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "'none'"));
  assert_int_equal(sd_front_from_eval(sd_test_tmp("front_missing"), &f), SD_E_IO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ssim_identical), cmocka_unit_test(test_ssim_constant), cmocka_unit_test(test_ssim_structure),
      cmocka_unit_test(test_psnr),           cmocka_unit_test(test_cosine),        cmocka_unit_test(test_emi),
      cmocka_unit_test(test_second_order),   cmocka_unit_test(test_prompt_sets),   cmocka_unit_test(test_methods),
      cmocka_unit_test(test_ssim_masked),    cmocka_unit_test(test_scene_metrics), cmocka_unit_test(test_front),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
