/* Concept bank loader: the default bank, the format's features, malformed files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"
#include "testutil.h"

static void test_default_bank(void **state) {
  (void)state;
  sd_bank *b = NULL;
  assert_int_equal(sd_bank_load_default(&b), SD_OK);
  assert_int_equal(b->n_cats, 7);
  static const char *names[] = {"hate", "harassment", "violence", "self-harm", "sexual", "shocking", "illegal activity"};
  for (int i = 0; i < 7; i++) {
    int c = sd_bank_find(b, names[i]);
    assert_true(c >= 0);
    assert_non_null(b->cats[c].context);
    assert_true(b->cats[c].terms.n > 10);
    assert_true(b->cats[c].descriptions.n >= 1);
    assert_true(b->cats[c].anchors.n >= 1);
  }
  int v = sd_bank_find(b, "violence");
  assert_string_equal(sd_bank_substitute(b, v, "blood"), "red paint");
  assert_string_equal(sd_bank_substitute(b, v, "Blood"), "red paint");
  assert_string_equal(sd_bank_substitute(b, v, "kill"), ""); /* drop */
  assert_null(sd_bank_substitute(b, v, "flower"));
  assert_int_equal(sd_bank_find(b, "nope"), -1);
  sd_bank_free(b);
}

static void test_format(void **state) {
  (void)state;
  const char *t = "\xEF\xBB\xBF# comment\n  ; another\r\n[a]\nterms = x, y z ,w\nterms=v\n"
                  "descriptions = one, with comma\ndescriptions = two\nanchors = safe one\n"
                  "context = calm, kind\nsubstitute = x -> a b\nsubstitute = y ->\nexpand = gun#1\n"
                  "exclude = q\nsafe = x ray\nhomographs = Pain, gang\n\n[b c]\nterms = \xC3\xA9t\xC3\xA9\n";
  sd_bank *b = NULL;
  assert_int_equal(sd_bank_parse(t, strlen(t), "t.bank", &b), SD_OK);
  assert_int_equal(b->n_cats, 2);
  assert_string_equal(b->cats[0].name, "a");
  assert_int_equal(b->cats[0].terms.n, 4);
  assert_string_equal(b->cats[0].terms.items[1], "y z");
  assert_string_equal(b->cats[0].terms.items[3], "v");
  assert_int_equal(b->cats[0].descriptions.n, 2);
  assert_string_equal(b->cats[0].descriptions.items[0], "one, with comma");
  assert_string_equal(b->cats[0].context, "calm, kind");
  assert_string_equal(sd_bank_substitute(b, 0, "x"), "a b");
  assert_string_equal(sd_bank_substitute(b, 0, "y"), "");
  assert_string_equal(b->cats[0].expand.items[0], "gun#1");
  assert_int_equal(b->cats[0].homographs.n, 2);
  assert_string_equal(b->cats[0].homographs.items[0], "Pain");
  assert_string_equal(b->cats[1].name, "b c");
  for (int i = 0; i < b->cats[0].terms.n; i++) assert_string_equal(b->cats[0].term_lang.items[i], "en");
  uint64_t h = b->hash;
  sd_bank_free(b);
  /* the hash keys caches: it follows the content */
  char t2[1024];
  snprintf(t2, sizeof t2, "%s#\n", t);
  assert_int_equal(sd_bank_parse(t2, strlen(t2), "t.bank", &b), SD_OK);
  assert_true(b->hash != h);
  sd_bank_free(b);
}

static void expect_error(const char *text, const char *needle);

/* terms.LANG = : terms in another language, their language kept beside them */
static void test_term_languages(void **state) {
  (void)state;
  const char *t = "[a]\nterms = blood\nterms.fr = sang, bain de sang\nterms.zh = \xE8\xA1\x80\xE8\x85\xA5\nterms.ast = x\n";
  sd_bank *b = NULL;
  assert_int_equal(sd_bank_parse(t, strlen(t), "l.bank", &b), SD_OK);
  assert_int_equal(b->cats[0].terms.n, 5);
  assert_int_equal(b->cats[0].term_lang.n, 5);
  static const char *want[][2] = {{"blood", "en"}, {"sang", "fr"}, {"bain de sang", "fr"}, {"\xE8\xA1\x80\xE8\x85\xA5", "zh"}, {"x", "ast"}};
  for (int i = 0; i < 5; i++) {
    assert_string_equal(b->cats[0].terms.items[i], want[i][0]);
    assert_string_equal(b->cats[0].term_lang.items[i], want[i][1]);
  }
  sd_bank_free(b);
  expect_error("[a]\nterms.FR = x\n", "bad.bank:2: bad language in 'terms.FR'");
  expect_error("[a]\nterms.f = x\n", "bad.bank:2: bad language in 'terms.f'");
  expect_error("[a]\nterms. = x\n", "bad.bank:2: bad language");
  expect_error("[a]\nterms.french = x\n", "bad.bank:2: bad language");
  expect_error("[a]\nterms.fr = x,,y\n", "bad.bank:2: empty item in 'terms.fr'");
}

static void expect_error(const char *text, const char *needle) {
  sd_bank *b = (sd_bank *)1;
  int rc = sd_bank_parse(text, strlen(text), "bad.bank", &b);
  assert_int_equal(rc, SD_E_FORMAT);
  assert_null(b);
  if (!strstr(sd_errmsg(), needle)) fail_msg("error '%s' lacks '%s'", sd_errmsg(), needle);
}

static void test_malformed(void **state) {
  (void)state;
  expect_error("[a]\nterm = x\n", "bad.bank:2: unknown key 'term'");
  expect_error("[a]\nterms = x\n[b]\nterms = y\n[a]\n", "bad.bank:5: duplicate category [a] (first at line 1)");
  expect_error("[a]\nterms = x,,y\n", "bad.bank:2: empty item in 'terms'");
  expect_error("[a]\nterms = x,\n", "bad.bank:2: empty item");
  expect_error("[a]\nterms =\n", "bad.bank:2: empty item");
  expect_error("[a]\nterms = bl\xC3\n", "bad.bank:2: invalid UTF-8");
  expect_error("[a]\n\nterms = \xFF\n", "bad.bank:3: invalid UTF-8");
  expect_error("[a]\nterms = x\x01y\n", "bad.bank:2: control character");
  expect_error("[a]\nanch\x7frs = x\n", "bad.bank:2: control character U+007F"); /* DEL, C1: never quoted raw */
  expect_error("[a]\nterms = x\xC2\x85y\n", "bad.bank:2: control character U+0085");
  expect_error("[a]\r\nterms = x\ry\r\n", "bad.bank:2: control character U+000D"); /* CR only as CRLF */
  /* a key too long to be one is quoted to 40 bytes, whole characters only ('x' and 19 of the
   * 50 two-byte characters: the 20th would be cut in half) */
  char longkey[160], longwant[96];
  snprintf(longkey, sizeof longkey, "[a]\nx");
  snprintf(longwant, sizeof longwant, "bad.bank:2: unknown key 'x");
  for (int i = 0; i < 50; i++) strcat(longkey, "\xC3\xA9");
  for (int i = 0; i < 19; i++) strcat(longwant, "\xC3\xA9");
  strcat(longkey, " = y\n");
  strcat(longwant, "'");
  expect_error(longkey, longwant);
  expect_error("terms = x\n", "bad.bank:1: key 'terms' before the first [category]");
  expect_error("[a]\nblood\n", "bad.bank:2: expected 'key = value'");
  expect_error("[a\n", "bad.bank:1: section header without closing");
  expect_error("[]\n", "bad.bank:1: bad category name");
  expect_error("[a]\ncontext = x\ncontext = y\n", "bad.bank:3: second 'context'");
  expect_error("[a]\nsubstitute = blood red paint\n", "bad.bank:2: 'substitute' needs");
  expect_error("[a]\nsubstitute = -> x\n", "bad.bank:2: empty term before");
  expect_error("# nothing\n", "bad.bank: the concept bank has no [category]");
  char *long_line = malloc(SD_BANK_MAX_LINE + 64);
  strcpy(long_line, "[a]\nterms = ");
  size_t n = strlen(long_line);
  memset(long_line + n, 'x', SD_BANK_MAX_LINE);
  strcpy(long_line + n + SD_BANK_MAX_LINE, "\n");
  expect_error(long_line, "bad.bank:2: line is");
  free(long_line);
  char many[4096] = "";
  for (int i = 0; i <= SD_BANK_MAX_CATEGORIES; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "[c%d]\n", i);
  expect_error(many, "bad.bank:33: more than 32 categories");
  /* files */
  sd_bank *b = NULL;
  assert_int_equal(sd_bank_load("/nonexistent/x.bank", &b), SD_E_IO);
  assert_non_null(strstr(sd_errmsg(), "/nonexistent/x.bank"));
  const char *p = sd_test_tmp("bad_file.bank");
  FILE *f = fopen(p, "wb");
  fputs("[a]\nterms = x\nbogus = 1\n", f);
  fclose(f);
  assert_int_equal(sd_bank_load(p, &b), SD_E_FORMAT);
  char want[4200];
  snprintf(want, sizeof want, "%s:3: unknown key 'bogus'", p);
  assert_non_null(strstr(sd_errmsg(), want));
}

/* The [thresholds] section: parsed into calibration entries, left out of the hash, rewritten
 * in place by sd_bank_write_thresholds with everything else kept byte for byte. */
static void test_thresholds_section(void **state) {
  (void)state;
  const char *plain = "# a bank\n[a]\nterms = x\n\n[b]\nterms = y\n";
  const char *with = "# a bank\n[thresholds]\n# made by hand\nlexical = 2\nlexical.target_fpr = 0.05\n"
                     "semantic = 0.25\nsemantic.model = 00000000000000ff\n\n[a]\nterms = x\n\n[b]\nterms = y\n";
  sd_bank *b0 = NULL, *b1 = NULL;
  assert_int_equal(sd_bank_parse(plain, strlen(plain), "p.bank", &b0), SD_OK);
  assert_int_equal(sd_bank_parse(with, strlen(with), "w.bank", &b1), SD_OK);
  assert_int_equal(b1->n_cats, 2); /* not a category */
  assert_int_equal(b0->thresholds.n, 0);
  assert_int_equal(b1->thresholds.n, 2);
  const sd_calib_entry *l = sd_calib_find(&b1->thresholds, "lexical"), *m = sd_calib_find(&b1->thresholds, "semantic");
  assert_non_null(l);
  assert_non_null(m);
  assert_true(l->threshold == 2.0f && l->has_meta && l->target_fpr == 0.05);
  assert_true(m->threshold == 0.25f && m->model == 0xff);
  /* the section is not part of the hash; a bank without one hashes all its bytes */
  assert_true(b0->hash == b1->hash);
  assert_true(b0->hash == sd_fnv1a64(plain, strlen(plain), SD_FNV1A64_INIT));
  sd_bank_free(b0);
  sd_bank_free(b1);
  /* a section at the end, and a BOM */
  const char *end = "\xEF\xBB\xBF[a]\nterms = x\n[thresholds]\nlexical = 3\n";
  assert_int_equal(sd_bank_parse(end, strlen(end), "e.bank", &b1), SD_OK);
  const char *end0 = "\xEF\xBB\xBF[a]\nterms = x\n";
  assert_true(b1->hash == sd_fnv1a64(end0, strlen(end0), SD_FNV1A64_INIT));
  assert_true(b1->thresholds.n == 1 && b1->thresholds.e[0].threshold == 3.0f);
  sd_bank_free(b1);
  /* errors */
  expect_error("[a]\nterms = x\n[thresholds]\nlexical = 1\n[thresholds]\n", "bad.bank:5: second [thresholds] section");
  expect_error("[a]\nterms = x\n[thresholds]\nlexical.fpr = 0.1\n", "bad.bank:4: [thresholds] gives lexical.* keys but no");
  expect_error("[a]\nterms = x\n[thresholds]\nlexical.bogus = 1\n", "bad.bank:4: unknown key 'lexical.bogus'");
  expect_error("[a]\nterms = x\n[thresholds]\nlexical = lots\n", "bad.bank:4: threshold must be a finite number");
  expect_error("[a]\nterms = x\n[thresholds]\nlexical = 1\nlexical = 2\n", "bad.bank:5: duplicate key 'lexical'");
  expect_error("[a]\nterms = x\n[thresholds]\nlexical.fpr = 2\nlexical = 1\n", "bad.bank:4: fpr must be in [0, 1]");
  expect_error("[a]\nterms = x\n[thresholds]\nbad name = 1\n", "bad.bank:4: bad detector name");

  /* writing: inserted before the first category, then replaced; other bytes kept */
  const char *path = sd_test_tmp("thresholds.bank");
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(plain, f);
  fclose(f);
  sd_calibration c = {0};
  c.threshold = 2;
  c.target_fpr = 0.05;
  c.recall = 0.5;
  c.n_unsafe = 4;
  c.n_benign = 10;
  sd_calib_entry e = sd_calib_entry_make("lexical", &c, 0, 0);
  assert_int_equal(sd_bank_write_thresholds(path, &e, 1), SD_OK);
  sd_bank *w = NULL;
  assert_int_equal(sd_bank_load(path, &w), SD_OK);
  assert_true(w->hash == sd_fnv1a64(plain, strlen(plain), SD_FNV1A64_INIT));
  assert_int_equal(w->thresholds.n, 1);
  assert_true(w->thresholds.e[0].threshold == 2.0f && w->thresholds.e[0].n_benign == 10);
  sd_bank_free(w);
  size_t len;
  char *text = sd_test_read_file(path, &len);
  assert_non_null(text);
  assert_true(strncmp(text, "# a bank\n[thresholds]\n", 22) == 0);
  assert_non_null(strstr(text, "\n[a]\nterms = x\n\n[b]\nterms = y\n"));
  free(text);
  /* a second detector joins, the first is replaced */
  sd_calib_entry s = sd_calib_entry_make("semantic", NULL, 0, 0x1234);
  s.threshold = 0.125f;
  e.threshold = 3;
  assert_int_equal(sd_bank_write_thresholds(path, &s, 1), SD_OK);
  assert_int_equal(sd_bank_write_thresholds(path, &e, 1), SD_OK);
  assert_int_equal(sd_bank_load(path, &w), SD_OK);
  assert_true(w->hash == sd_fnv1a64(plain, strlen(plain), SD_FNV1A64_INIT));
  assert_int_equal(w->thresholds.n, 2);
  assert_true(sd_calib_find(&w->thresholds, "lexical")->threshold == 3.0f);
  assert_true(sd_calib_find(&w->thresholds, "semantic")->threshold == 0.125f);
  assert_true(sd_calib_find(&w->thresholds, "semantic")->model == 0x1234);
  sd_bank_free(w);
  text = sd_test_read_file(path, &len);
  assert_non_null(text);
  const char *first = strstr(text, "[thresholds]");
  assert_non_null(first);
  assert_null(strstr(first + 1, "[thresholds]")); /* one section */
  free(text);
  /* a malformed bank is not rewritten */
  f = fopen(path, "wb");
  fputs("[a]\nbogus = 1\n", f);
  fclose(f);
  assert_int_equal(sd_bank_write_thresholds(path, &e, 1), SD_E_FORMAT);
  text = sd_test_read_file(path, &len);
  assert_string_equal(text, "[a]\nbogus = 1\n");
  free(text);
  assert_int_equal(sd_bank_write_thresholds(sd_test_tmp("no-such.bank"), &e, 1), SD_E_IO);
}

/* The [levels] section: parsed with the same rigour, left out of the hash (with
 * [thresholds] beside it), rewritten in place by sd_bank_write_levels. */
static void test_levels_section(void **state) {
  (void)state;
  const char *plain = "# a bank\n[a]\nterms = x\n";
  const char *with = "# a bank\n[levels]\n# measured\nhigh = weight 0.9, context 0.1, strategy substitute+append, blend step\n"
                     "low = weight 0.5 ,context 0.3\nmax=weight 1,context 0, blend final, strategy project\n"
                     "[thresholds]\nlexical = 2\n[a]\nterms = x\n";
  sd_bank *b0 = NULL, *b1 = NULL;
  assert_int_equal(sd_bank_parse(plain, strlen(plain), "p.bank", &b0), SD_OK);
  assert_int_equal(sd_bank_parse(with, strlen(with), "w.bank", &b1), SD_OK);
  assert_true(b0->hash == b1->hash);
  assert_int_equal(b1->n_cats, 1);
  for (int i = 0; i < SD_LEVEL_COUNT; i++) assert_int_equal(b0->levels.l[i].set, 0);
  const sd_level *lo = &b1->levels.l[0], *me = &b1->levels.l[1], *hi = &b1->levels.l[2], *mx = &b1->levels.l[3];
  assert_true(lo->set && lo->weight == 0.5f && lo->context == 0.3f && !lo->strategy[0] && !lo->blend[0]);
  assert_false(me->set);
  assert_true(hi->set && hi->weight == 0.9f && hi->context == 0.1f && hi->line == 4);
  assert_string_equal(hi->strategy, "substitute+append");
  assert_string_equal(hi->blend, "step");
  assert_true(mx->set && mx->weight == 1.0f && mx->context == 0.0f);
  assert_string_equal(mx->strategy, "project");
  assert_string_equal(mx->blend, "final");
  assert_int_equal(b1->thresholds.n, 1);
  sd_bank_free(b0);
  sd_bank_free(b1);
  assert_int_equal(sd_level_index("high"), 2);
  assert_int_equal(sd_level_index("off"), -1);
  assert_string_equal(sd_level_name(3), "max");
  assert_null(sd_level_name(4));
  /* errors, each naming the line */
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.9, context 0.1\n[levels]\n", "bad.bank:5: second [levels] section");
  expect_error("[a]\nterms = x\n[levels]\nextreme = weight 1, context 0\n", "bad.bank:4: [levels]: unknown level 'extreme'");
  expect_error("[a]\nterms = x\n[levels]\noff = weight 0, context 0\n", "bad.bank:4: [levels]: unknown level 'off'");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.9, context 0.1\nhigh = weight 1, context 0\n",
               "bad.bank:5: [levels]: level 'high' given twice (first at line 4)");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.9\n", "bad.bank:4: [levels] high: needs both 'weight' and 'context'");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 1.5, context 0\n", "bad.bank:4: [levels] high: weight '1.5' is not");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight nan, context 0\n", "weight 'nan' is not a number in [0, 1]");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context -0.1\n", "context '-0.1' is not");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5x, context 0\n", "weight '0.5x' is not");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context 0, strategy erase\n", "unknown strategy 'erase'");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context 0, blend mix\n", "unknown blend 'mix'");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context 0, speed 3\n", "unknown item 'speed'");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, weight 0.6, context 0\n", "'weight' given twice");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context 0, strategy substitute, strategy bogus\n",
               "'strategy' given twice");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5, context 0, blend step, blend bogus\n", "'blend' given twice");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight 0.5,, context 0\n", "bad.bank:4: [levels] high: an empty item");
  expect_error("[a]\nterms = x\n[levels]\nhigh = weight, context 0\n", "'weight' has no value");
  expect_error("[a]\nterms = x\n[levels]\nhigh = \n", "bad.bank:4: [levels] high: an empty item");

  /* writing: inserted before the first category, then replaced; the hash stays */
  const char *path = sd_test_tmp("levels.bank");
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(plain, f);
  fclose(f);
  sd_levels L;
  memset(&L, 0, sizeof L);
  L.l[2] = (sd_level){.set = 1, .weight = 0.9f, .context = 0.1f, .strategy = "substitute"};
  assert_int_equal(sd_bank_write_levels(path, &L, "measured by a test\nsecond line"), SD_OK);
  size_t len;
  char *text = sd_test_read_file(path, &len);
  assert_non_null(text);
  assert_string_equal(text, "# a bank\n[levels]\n# measured by a test\n# second line\nhigh = weight 0.9, context 0.1, "
                            "strategy substitute\n\n[a]\nterms = x\n");
  free(text);
  L.l[0] = (sd_level){.set = 1, .weight = 0.25f, .context = 0.3f, .blend = "final"};
  L.l[2].set = 0;
  assert_int_equal(sd_bank_write_levels(path, &L, NULL), SD_OK);
  sd_bank *w = NULL;
  assert_int_equal(sd_bank_load(path, &w), SD_OK);
  assert_true(w->hash == sd_fnv1a64(plain, strlen(plain), SD_FNV1A64_INIT));
  assert_true(w->levels.l[0].set && w->levels.l[0].weight == 0.25f && !w->levels.l[2].set);
  assert_string_equal(w->levels.l[0].blend, "final");
  sd_bank_free(w);
  /* an invalid level is refused and the file is left alone */
  L.l[1] = (sd_level){.set = 1, .weight = 2.0f, .context = 0.1f};
  text = sd_test_read_file(path, &len);
  assert_int_equal(sd_bank_write_levels(path, &L, NULL), SD_E_ARG);
  char *after = sd_test_read_file(path, &len);
  assert_string_equal(text, after);
  free(text);
  free(after);
  assert_int_equal(sd_bank_write_levels(sd_test_tmp("no-such.bank"), &L, NULL), SD_E_IO);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_default_bank), cmocka_unit_test(test_format),
                                     cmocka_unit_test(test_malformed), cmocka_unit_test(test_thresholds_section),
                                     cmocka_unit_test(test_levels_section),
                                     cmocka_unit_test(test_term_languages)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
