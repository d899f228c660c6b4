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
#include "eval/prompts.h"
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
  assert_int_equal(sd_eval_method_parse("dlr:l=1.5", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("dlr:extreme", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("sld:hyper", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("magic", &m), SD_E_ARG);
  assert_int_equal(sd_eval_method_parse("model:/nonexistent/path", &m), SD_E_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ssim_identical), cmocka_unit_test(test_ssim_constant), cmocka_unit_test(test_ssim_structure),
      cmocka_unit_test(test_psnr),           cmocka_unit_test(test_cosine),        cmocka_unit_test(test_emi),
      cmocka_unit_test(test_second_order),   cmocka_unit_test(test_prompt_sets),   cmocka_unit_test(test_methods),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
