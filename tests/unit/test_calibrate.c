/* Threshold calibration: selection on synthetic scores (ties, target 0, all benign, every
 * prompt allowed), the calibration file round trip and update, malformed files (file:line
 * errors), and applying a calibration to a detector. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
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
#include "safety/bank.h"
#include "safety/calibrate.h"
#include "safety/lexical.h"
#include "testutil.h"

static int count_ge(const float *s, int n, float t) {
  int k = 0;
  for (int i = 0; i < n; i++) k += s[i] >= t;
  return k;
}

static void test_basic_selection(void **state) {
  (void)state;
  float benign[10] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f};
  float unsafe[5] = {0.75f, 0.85f, 0.95f, 1.5f, 0.05f};
  sd_calibration c;
  /* 20% of 10: two benign may fire -> t just above 0.8 */
  assert_int_equal(sd_calibrate(unsafe, 5, benign, 10, 0.2, &c), SD_OK);
  assert_true(c.threshold > 0.8f && c.threshold == nextafterf(0.8f, INFINITY));
  assert_int_equal(c.n_fp, 2);
  assert_int_equal(c.n_tp, 3); /* 0.85, 0.95, 1.5 */
  assert_int_equal(c.n_tp, count_ge(unsafe, 5, c.threshold));
  assert_true(fabs(c.fpr - 0.2) < 1e-12);
  assert_true(fabs(c.recall - (double)c.n_tp / 5) < 1e-12);
  /* smallest: one float lower would exceed the target */
  assert_true(count_ge(benign, 10, nextafterf(c.threshold, -INFINITY)) > 2);
  /* 0.25 -> floor(2.5) = 2, same threshold */
  sd_calibration c2;
  assert_int_equal(sd_calibrate(unsafe, 5, benign, 10, 0.25, &c2), SD_OK);
  assert_true(c2.threshold == c.threshold);
  /* 0.3 * 10 is 2.9999999999999996 in binary: still 3 allowed */
  assert_int_equal(sd_calibrate(unsafe, 5, benign, 10, 0.3, &c2), SD_OK);
  assert_int_equal(c2.n_fp, 3);
}

static void test_ties(void **state) {
  (void)state;
  float benign[6] = {0.5f, 0.5f, 0.5f, 0.2f, 0.1f, 0.0f};
  float unsafe[3] = {0.5f, 0.6f, 0.4f};
  sd_calibration c;
  /* one allowed, but three tie at the top: none of them may fire */
  assert_int_equal(sd_calibrate(unsafe, 3, benign, 6, 1.0 / 6, &c), SD_OK);
  assert_true(c.threshold > 0.5f);
  assert_int_equal(c.n_fp, 0);
  assert_int_equal(c.n_tp, 1);
  /* three allowed: the tie fits exactly */
  assert_int_equal(sd_calibrate(unsafe, 3, benign, 6, 0.5, &c), SD_OK);
  assert_true(c.threshold == nextafterf(0.2f, INFINITY));
  assert_int_equal(c.n_fp, 3);
  assert_int_equal(c.n_tp, 3);
}

static void test_target_zero(void **state) {
  (void)state;
  float benign[4] = {-0.3f, 0.25f, -1.0f, 0.1f};
  float unsafe[3] = {0.25f, 0.26f, 2.0f};
  sd_calibration c;
  assert_int_equal(sd_calibrate(unsafe, 3, benign, 4, 0.0, &c), SD_OK);
  assert_true(c.threshold == nextafterf(0.25f, INFINITY));
  assert_int_equal(c.n_fp, 0);
  assert_true(c.fpr == 0.0);
  assert_int_equal(c.n_tp, 2);
}

static void test_all_benign_and_everything_allowed(void **state) {
  (void)state;
  float benign[3] = {0.3f, 0.1f, 0.2f};
  sd_calibration c;
  /* no unsafe prompts: the threshold is still chosen, recall reported as 0 */
  assert_int_equal(sd_calibrate(NULL, 0, benign, 3, 0.0, &c), SD_OK);
  assert_true(c.threshold > 0.3f);
  assert_int_equal(c.n_unsafe, 0);
  assert_true(c.recall == 0.0);
  /* target 1: everything may fire -> the smallest score of either set */
  float unsafe[2] = {0.5f, -0.7f};
  assert_int_equal(sd_calibrate(unsafe, 2, benign, 3, 1.0, &c), SD_OK);
  assert_true(c.threshold == -0.7f);
  assert_int_equal(c.n_fp, 3);
  assert_int_equal(c.n_tp, 2);
  /* lexical-style integer scores: threshold just above 1 means "two terms" */
  float lb[4] = {0, 0, 1, 0}, lu[3] = {1, 2, 3};
  assert_int_equal(sd_calibrate(lu, 3, lb, 4, 0.0, &c), SD_OK);
  assert_true(c.threshold > 1.0f && c.threshold < 1.001f);
  assert_int_equal(c.n_tp, 2);
}

static void test_bad_arguments(void **state) {
  (void)state;
  float b[2] = {0, 1}, u[1] = {NAN};
  sd_calibration c;
  assert_int_equal(sd_calibrate(NULL, 0, b, 0, 0.1, &c), SD_E_ARG);
  assert_int_equal(sd_calibrate(NULL, 0, b, 2, -0.1, &c), SD_E_ARG);
  assert_int_equal(sd_calibrate(NULL, 0, b, 2, 1.5, &c), SD_E_ARG);
  assert_int_equal(sd_calibrate(NULL, 0, b, 2, NAN, &c), SD_E_ARG);
  assert_int_equal(sd_calibrate(u, 1, b, 2, 0.1, &c), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "not finite"));
}

static void test_file_round_trip(void **state) {
  (void)state;
  const char *path = sd_test_tmp("calib-roundtrip.txt");
  remove(path);
  float benign[5] = {0.11f, 0.22f, 0.33f, 0.44f, 0.123456789f}, unsafe[2] = {0.5f, 0.1f};
  sd_calibration c;
  assert_int_equal(sd_calibrate(unsafe, 2, benign, 5, 0.2, &c), SD_OK);
  sd_calib_entry e = sd_calib_entry_make("semantic", &c, 0x0123456789abcdefULL, 0xfedcba9876543210ULL);
  assert_int_equal(sd_calib_update(path, &e), SD_OK);
  sd_calib_entry l = sd_calib_entry_make("lexical", NULL, 0, 0);
  l.threshold = 2;
  assert_int_equal(sd_calib_update(path, &l), SD_OK);
  /* replace the semantic entry */
  e.threshold = 0.25f;
  assert_int_equal(sd_calib_update(path, &e), SD_OK);
  sd_calib_file f;
  assert_int_equal(sd_calib_load(path, &f), SD_OK);
  assert_int_equal(f.n, 2);
  const sd_calib_entry *s = sd_calib_find(&f, "semantic");
  assert_non_null(s);
  assert_true(s->threshold == 0.25f);
  assert_int_equal(s->has_meta, 1);
  assert_true(s->target_fpr == 0.2 && s->fpr == c.fpr && s->recall == c.recall);
  assert_int_equal(s->n_unsafe, 2);
  assert_int_equal(s->n_benign, 5);
  assert_true(s->bank == 0x0123456789abcdefULL && s->model == 0xfedcba9876543210ULL);
  const sd_calib_entry *x = sd_calib_find(&f, "lexical");
  assert_non_null(x);
  assert_true(x->threshold == 2.0f);
  assert_int_equal(x->has_meta, 0);
  /* exact float round trip of an awkward value */
  sd_calib_entry r = sd_calib_entry_make("odd", &c, 0, 0);
  assert_int_equal(sd_calib_write(path, &r, 1), SD_OK);
  sd_calib_file_free(&f);
  assert_int_equal(sd_calib_load(path, &f), SD_OK);
  assert_int_equal(f.n, 1);
  assert_true(f.e[0].threshold == c.threshold);
  sd_calib_file_free(&f);
  /* no temporary files left behind */
  assert_int_equal(sd_calib_write(sd_test_tmp("no-such-dir/x/calib.txt"), &r, 1), SD_E_IO);
}

static void expect_error(const char *text, const char *msg) {
  sd_calib_file f;
  int rc = sd_calib_parse(text, strlen(text), "t.txt", &f);
  if (rc != SD_E_FORMAT || !strstr(sd_errmsg(), msg))
    fail_msg("for %s: rc %d, got '%s', want '%s'", text, rc, sd_errmsg(), msg);
  assert_null(f.e);
}

static void test_malformed(void **state) {
  (void)state;
  expect_error("[semantic]\ntreshold = 1\n", "t.txt:2: unknown key 'treshold'");
  expect_error("threshold = 1\n", "t.txt:1: key 'threshold' outside a [detector] section");
  expect_error("# c\n[semantic]\nthreshold = 0.1\n[semantic]\nthreshold = 2\n", "t.txt:4: duplicate section [semantic]");
  expect_error("[semantic]\nthreshold = 0.1\nthreshold = 0.2\n", "t.txt:3: duplicate key 'threshold'");
  expect_error("[semantic]\nthreshold = 0.1x\n", "t.txt:2: threshold must be a finite number");
  expect_error("[semantic]\nthreshold = nan\n", "t.txt:2: threshold must be a finite number");
  expect_error("[semantic]\nthreshold = 1e99\n", "t.txt:2: threshold must be a finite number");
  expect_error("[semantic]\nthreshold =\n", "t.txt:2: threshold must be a finite number");
  expect_error("[semantic]\nfpr = 0.1\n", "t.txt:1: section [semantic] has no threshold");
  expect_error("[a]\nthreshold = 1\n[b]\nrecall = 0.5\n", "t.txt:3: section [b] has no threshold");
  expect_error("[semantic]\nthreshold = 1\nfpr = 1.5\n", "t.txt:3: fpr must be in [0, 1]");
  expect_error("[semantic]\nthreshold = 1\nn_benign = -3\n", "t.txt:3: n_benign must be a non-negative integer");
  expect_error("[semantic]\nthreshold = 1\nbank = xyz\n", "t.txt:3: bank must be 1 to 16 hex digits");
  expect_error("[semantic\nthreshold = 1\n", "t.txt:1: malformed section header");
  expect_error("[sem antic]\nthreshold = 1\n", "t.txt:1: bad detector name");
  expect_error("[semantic]\nthreshold 1\n", "t.txt:2: expected 'key = value'");
  char longl[1100];
  memset(longl, 'a', sizeof longl);
  longl[sizeof longl - 1] = 0;
  expect_error(longl, "t.txt:1: line longer than 1024 bytes");
  /* fine: comments, blanks, CRLF, empty file */
  sd_calib_file f;
  const char *ok = "; c\r\n\r\n  [semantic]  \r\n threshold\t= -0.5 \r\n";
  assert_int_equal(sd_calib_parse(ok, strlen(ok), "ok", &f), SD_OK);
  assert_int_equal(f.n, 1);
  assert_true(f.e[0].threshold == -0.5f);
  sd_calib_file_free(&f);
  assert_int_equal(sd_calib_parse("", 0, "empty", &f), SD_OK);
  assert_int_equal(f.n, 0);
  /* a missing file names the path; a malformed file is not overwritten by update */
  assert_int_equal(sd_calib_load(sd_test_tmp("no-such-calib.txt"), &f), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "no-such-calib.txt"));
  const char *bad = sd_test_tmp("calib-bad.txt");
  FILE *fp = fopen(bad, "wb");
  assert_non_null(fp);
  fputs("[semantic]\nthreshold = oops\n", fp);
  fclose(fp);
  sd_calib_entry e = sd_calib_entry_make("lexical", NULL, 0, 0);
  assert_int_equal(sd_calib_update(bad, &e), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "calib-bad.txt:2:"));
}

static void test_apply_to_detector(void **state) {
  (void)state;
  sd_bank *bank;
  assert_int_equal(sd_bank_load_default(&bank), SD_OK);
  sd_lexical_options o = {.wordnet = 0, .cache_path = ""};
  sd_detector *d;
  assert_int_equal(sd_lexical_create(bank, &o, &d), SD_OK);
  const char *txt = "[lexical]\nthreshold = 2\nbank = 00000000000000ff\n";
  sd_calib_file f;
  assert_int_equal(sd_calib_parse(txt, strlen(txt), "c", &f), SD_OK);
  assert_int_equal(sd_calib_apply(&f, d, 0, 0), 1);
  assert_true(d->threshold == 2.0f);
  d->threshold = 1;
  assert_int_equal(sd_calib_apply(&f, d, 0xee, 0), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "another concept bank"));
  assert_true(d->threshold == 1.0f);
  sd_calib_file_free(&f);
  assert_int_equal(sd_calib_parse("[semantic]\nthreshold=1\n", 22, "c", &f), SD_OK);
  assert_int_equal(sd_calib_apply(&f, d, 0, 0), 0); /* no entry for "lexical" */
  sd_calib_file_free(&f);

  /* end to end with the lexical detector's scores: calibrate, write, load, apply */
  const char *unsafe[] = {"blood and gore", "a bloody murder scene", "a gun"};
  const char *benign[] = {"a cat on a sofa", "red paint on a wall", "a water gun in a pool", "a blood orange"};
  float us[3], bs[4];
  sd_detector_set_enabled(d, 0);
  assert_int_equal(sd_detector_scores(d, NULL, unsafe, 3, us), SD_OK);
  assert_int_equal(d->enabled, 0);
  assert_int_equal(sd_detector_scores(d, NULL, benign, 4, bs), SD_OK);
  sd_calibration c;
  assert_int_equal(sd_calibrate(us, 3, bs, 4, 0.0, &c), SD_OK);
  assert_int_equal(c.n_fp, 0);
  const char *path = sd_test_tmp("calib-lexical.txt");
  remove(path);
  sd_calib_entry e = sd_calib_entry_make("lexical", &c, bank->hash, 0);
  assert_int_equal(sd_calib_update(path, &e), SD_OK);
  assert_int_equal(sd_calib_load(path, &f), SD_OK);
  assert_int_equal(sd_calib_apply(&f, d, bank->hash, 0), 1);
  assert_true(d->threshold == c.threshold);
  sd_calib_file_free(&f);
  sd_detector_free(d);
  sd_bank_free(bank);
}

static const char *write_tmp(const char *name, const char *text, size_t len) {
  const char *p = sd_test_tmp(name);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, len, f), len);
  fclose(f);
  return p;
}

/* Labelled prompt files: comments, blanks, CRLF, BOM; errors name file and line. */
static void test_prompt_files(void **state) {
  (void)state;
  const char good[] = "\xEF\xBB\xBF# unsafe prompts\n  a bloody knife  \r\n\n   # indented comment\nblood and gore\n"
                      "caf\xC3\xA9 with a gun";
  char **pr = NULL;
  int n = 0;
  assert_int_equal(sd_prompt_file_load(write_tmp("prompts-good.txt", good, sizeof good - 1), &pr, &n), SD_OK);
  assert_int_equal(n, 3);
  assert_string_equal(pr[0], "a bloody knife");
  assert_string_equal(pr[1], "blood and gore");
  assert_string_equal(pr[2], "caf\xC3\xA9 with a gun");
  sd_prompt_list_free(pr, n);
  const char *p = write_tmp("prompts-empty.txt", "", 0);
  assert_int_equal(sd_prompt_file_load(p, &pr, &n), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "no prompts"));
  assert_null(pr);
  p = write_tmp("prompts-comments.txt", "# only\n\n  \n", 11);
  assert_int_equal(sd_prompt_file_load(p, &pr, &n), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "no prompts"));
  const char bad[] = "fine\nalso fine\nbad \xFF byte\n";
  p = write_tmp("prompts-bad.txt", bad, sizeof bad - 1);
  assert_int_equal(sd_prompt_file_load(p, &pr, &n), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "prompts-bad.txt:3: invalid UTF-8 at byte 5"));
  const char nul[] = "fine\nx\0y\n";
  p = write_tmp("prompts-nul.txt", nul, sizeof nul - 1);
  assert_int_equal(sd_prompt_file_load(p, &pr, &n), SD_E_FORMAT);
  assert_non_null(strstr(sd_errmsg(), "prompts-nul.txt:2: NUL byte"));
  assert_int_equal(sd_prompt_file_load(sd_test_tmp("no-such-prompts.txt"), &pr, &n), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "no-such-prompts.txt"));
  assert_int_equal(sd_prompt_file_load(sd_test_tmp(""), &pr, &n), SD_E_IO); /* a directory */
}

/* The bank-section form of an entry: keys, duplicates, the section text round trip. */
static void test_bank_section_keys(void **state) {
  (void)state;
  sd_calib_file f = {0};
  assert_int_equal(sd_calib_set(&f, "semantic.model", "ab", "b", 3), SD_OK);
  assert_int_equal(sd_calib_check(&f, "b"), SD_E_FORMAT); /* no threshold yet */
  assert_int_equal(sd_calib_set(&f, "semantic", "0.5", "b", 4), SD_OK);
  assert_int_equal(sd_calib_set(&f, "semantic.threshold", "0.6", "b", 5), SD_E_FORMAT); /* duplicate */
  assert_int_equal(sd_calib_set(&f, "lexical.recall", "0.75", "b", 6), SD_OK);
  assert_int_equal(sd_calib_set(&f, "lexical", "2", "b", 7), SD_OK);
  assert_int_equal(sd_calib_check(&f, "b"), SD_OK);
  assert_int_equal(f.n, 2);
  assert_true(f.e[0].model == 0xab && f.e[0].threshold == 0.5f);
  assert_true(f.e[1].has_meta && f.e[1].recall == 0.75 && f.e[1].threshold == 2.0f);
  char *sec = sd_calib_bank_section(f.e, f.n);
  assert_non_null(sec);
  assert_true(strncmp(sec, "[thresholds]\n", 13) == 0);
  assert_non_null(strstr(sec, "\nsemantic = 0.5\n"));
  assert_non_null(strstr(sec, "\nsemantic.model = 00000000000000ab\n"));
  assert_non_null(strstr(sec, "\nlexical = 2\n"));
  /* it parses back inside a bank */
  char text[4096];
  snprintf(text, sizeof text, "%s[a]\nterms = x\n", sec);
  sd_bank *b = NULL;
  assert_int_equal(sd_bank_parse(text, strlen(text), "t.bank", &b), SD_OK);
  assert_int_equal(b->thresholds.n, 2);
  assert_true(sd_calib_find(&b->thresholds, "semantic")->model == 0xab);
  assert_true(sd_calib_find(&b->thresholds, "lexical")->threshold == 2.0f);
  sd_bank_free(b);
  free(sec);
  sd_calib_file_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prompt_files),      cmocka_unit_test(test_bank_section_keys),
      cmocka_unit_test(test_basic_selection),   cmocka_unit_test(test_ties),
      cmocka_unit_test(test_target_zero),       cmocka_unit_test(test_all_benign_and_everything_allowed),
      cmocka_unit_test(test_bad_arguments),     cmocka_unit_test(test_file_round_trip),
      cmocka_unit_test(test_malformed),         cmocka_unit_test(test_apply_to_detector),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
