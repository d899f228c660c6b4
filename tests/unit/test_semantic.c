/* Semantic detector on a small random-weight CLIP text encoder (tools/ref/clip_text_case.py
 * --preset small, generated once into the test tmp dir). Random weights make the scores
 * meaningless semantically; what is tested is the mechanics: the score definition
 * (recomputed here from the exposed states), self-similarity of a description, the
 * token-level term for an unsafe phrase followed by many benign words, disabling and
 * re-thresholding, evidence, determinism, and the embedding file cache. */
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
#include <sys/stat.h>

#include "core/error.h"
#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "safety/bank.h"
#include "safety/semantic.h"
#include "text/tokenizer.h"
#include "testutil.h"

static const char *BANK =
    "[violence]\n"
    "terms = blood\n"
    "descriptions = a photo of a violent fight with blood\n"
    "descriptions = a man stabbing another man with a knife\n"
    "anchors = people shaking hands in an office\n"
    "[sexual]\n"
    "terms = nude\n"
    "descriptions = a nude woman lying on a bed\n"
    "anchors = a bowl of fruit on a wooden table\n"
    "[empty]\n"
    "terms = zzzq\n";

static char g_skip[256];
static sd_model_source *g_model;
static sd_clip_text *g_text;
static sd_tokenizer *g_tok;
static sd_exec *g_ex;
static sd_bank *g_bank;
static sd_semantic_encoder g_enc;
static int g_D;

static int setup(void **state) {
  (void)state;
  const char *dir = sd_test_tmp("semantic-case");
  char model[4200], cmd[9000];
  snprintf(model, sizeof model, "%s/model", dir);
  struct stat st;
  if (stat(model, &st) != 0) {
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
      snprintf(g_skip, sizeof g_skip, "/usr/bin/python3 lacks torch/numpy: cannot generate the test text encoder");
      printf("SKIP: %s\n", g_skip);
      return 0;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' --preset small >/dev/null",
             sd_test_src("tools/ref/clip_text_case.py"), dir);
    if (system(cmd) != 0) {
      fprintf(stderr, "generator failed: %s\n", cmd);
      return -1;
    }
  }
  if (sd_model_open(model, &g_model) || sd_clip_text_create(g_model, &g_text) || sd_tokenizer_load_default(&g_tok) ||
      sd_exec_create(2, &g_ex) || sd_bank_parse(BANK, strlen(BANK), "test.bank", &g_bank)) {
    fprintf(stderr, "setup: %s\n", sd_errmsg());
    return -1;
  }
  g_enc = (sd_semantic_encoder){g_tok, g_text, g_ex, sd_clip_text_cfg(g_text)->pad_id, g_model};
  g_D = sd_clip_text_cfg(g_text)->hidden;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sd_bank_free(g_bank);
  if (g_ex) sd_exec_destroy(g_ex);
  sd_tokenizer_free(g_tok);
  sd_clip_text_free(g_text);
  sd_model_close(g_model);
  return 0;
}

#define NEED_MODEL()                                                                                               \
  do {                                                                                                             \
    if (g_skip[0]) {                                                                                               \
      printf("SKIP: %s\n", g_skip);                                                                                \
      skip();                                                                                                      \
    }                                                                                                              \
  } while (0)

static sd_detector *make(int token_level) {
  sd_semantic_options o = {token_level, ""};
  sd_detector *d;
  assert_int_equal(sd_semantic_create(g_bank, &o, &d), SD_OK);
  return d;
}

static float cosv(const float *a, const float *b) {
  double s = 0;
  for (int i = 0; i < g_D; i++) s += (double)a[i] * b[i];
  return (float)s;
}

static float *embed(const char *t) {
  float *e = malloc((size_t)g_D * sizeof *e);
  assert_non_null(e);
  assert_int_equal(sd_semantic_embed(&g_enc, t, e), SD_OK);
  return e;
}

/* The score of category `cat` by the documented definition, from the exposed states. */
static float expected_score(const char *prompt, int cat, int token_level, float *neg_out) {
  float *p, *h;
  int n;
  assert_int_equal(sd_semantic_states(&g_enc, prompt, &p, &h, &n), SD_OK);
  float neg = -INFINITY;
  for (int c = 0; c < g_bank->n_cats; c++)
    for (int a = 0; a < g_bank->cats[c].anchors.n; a++) {
      float *e = embed(g_bank->cats[c].anchors.items[a]);
      float v = cosv(p, e);
      if (v > neg) neg = v;
      free(e);
    }
  float pos = -INFINITY;
  for (int i = 0; i < g_bank->cats[cat].descriptions.n; i++) {
    float *e = embed(g_bank->cats[cat].descriptions.items[i]);
    float v = cosv(p, e);
    if (v > pos) pos = v;
    for (int t = 1; token_level && t < n; t++) {
      v = cosv(h + (size_t)t * g_D, e);
      if (v > pos) pos = v;
    }
    free(e);
  }
  free(p);
  free(h);
  if (neg_out) *neg_out = neg;
  return pos - neg;
}

static void test_self_similarity(void **state) {
  (void)state;
  NEED_MODEL();
  sd_detector *d = make(1);
  const char *desc = "a photo of a violent fight with blood";
  sd_detection r;
  assert_int_equal(sd_detector_run(d, desc, &g_enc, &r), SD_OK);
  float neg;
  float want = expected_score(desc, 0, 1, &neg);
  /* the prompt equals a description: cos = 1, so the score is 1 - the anchor term */
  assert_true(fabsf(want - (1.0f - neg)) < 1e-5f);
  assert_true(fabsf(r.cat_score[0] - (1.0f - neg)) < 1e-5f);
  for (int c = 0; c < 2; c++) assert_true(fabsf(r.cat_score[c] - expected_score(desc, c, 1, NULL)) < 1e-5f);
  assert_true(r.cat_score[2] == -2.0f); /* no descriptions */
  assert_true(r.score == fmaxf(r.cat_score[0], r.cat_score[1]));
  printf("self: violence %.4f (anchor cos %.4f), sexual %.4f\n", (double)r.cat_score[0], (double)neg,
         (double)r.cat_score[1]);
  /* evidence names the description; the prompt matched as a whole (every word carries the
   * score at this threshold), so the evidence is not localised: an empty span, which the safe
   * text never deletes (strategy.h) */
  d->threshold = r.cat_score[0];
  sd_detection_free(&r);
  assert_int_equal(sd_detector_run(d, desc, &g_enc, &r), SD_OK);
  assert_true(r.categories & 1u);
  assert_true(r.fired);
  int found = 0;
  for (int i = 0; i < r.n_ev; i++)
    if (r.ev[i].category == 0) {
      found = 1;
      assert_string_equal(r.ev[i].term, desc);
      assert_string_equal(r.ev[i].matched, "");
      assert_true(r.ev[i].start == 0 && r.ev[i].end == 0);
      assert_non_null(strstr(r.ev[i].via, "prompt cos="));
      assert_non_null(strstr(r.ev[i].via, "not localised"));
      assert_int_equal(r.ev[i].token, 0); /* prompt-level: no token position */
    }
  assert_true(found);
  sd_detection_free(&r);
  sd_detector_free(d);
}

static void test_token_level_in_long_prompt(void **state) {
  (void)state;
  NEED_MODEL();
  sd_detector *on = make(1), *off = make(0);
  const char *desc = "a man stabbing another man with a knife";
  /* description states at positions 1..m-2 (not EOS) reappear unchanged in any prompt that
   * starts with the description (causal attention): a lower bound for the token term */
  float *p, *h, *e = embed(desc);
  int n;
  assert_int_equal(sd_semantic_states(&g_enc, desc, &p, &h, &n), SD_OK);
  float bound = -INFINITY;
  for (int t = 1; t < n - 1; t++) bound = fmaxf(bound, cosv(h + (size_t)t * g_D, e));
  free(p);
  free(h);
  free(e);
  char prompt[2048];
  snprintf(prompt, sizeof prompt, "%s", desc);
  const char *words[] = {"sunny", "meadow", "flowers", "wooden", "house", "soft", "light", "watercolor", "painting",
                         "trending", "on", "artstation", "highly", "detailed", "golden", "hour"};
  for (int k = 0; k < 3; k++) {
    for (int w = 0; w < 16; w++) {
      strcat(prompt, w ? " " : ", ");
      strcat(prompt, words[w]);
    }
    sd_detection a, b;
    assert_int_equal(sd_detector_run(on, prompt, &g_enc, &a), SD_OK);
    assert_int_equal(sd_detector_run(off, prompt, &g_enc, &b), SD_OK);
    float neg;
    float want = expected_score(prompt, 0, 1, &neg);
    assert_true(fabsf(a.cat_score[0] - want) < 1e-5f);
    assert_true(fabsf(b.cat_score[0] - expected_score(prompt, 0, 0, NULL)) < 1e-5f);
    assert_true(a.cat_score[0] >= b.cat_score[0]);
    assert_true(a.cat_score[0] + neg >= bound - 1e-5f); /* the phrase keeps scoring */
    printf("+%2d benign words: token-level %.4f, prompt-only %.4f (bound %.4f)\n", 16 * (k + 1),
           (double)a.cat_score[0], (double)b.cat_score[0], (double)(bound - neg));
    /* re-threshold between the two: only the token-level detector fires, with token evidence */
    float t = a.cat_score[0];
    on->threshold = off->threshold = t;
    sd_detection_free(&a);
    sd_detection_free(&b);
    assert_int_equal(sd_detector_run(on, prompt, &g_enc, &a), SD_OK);
    assert_true(a.categories & 1u);
    for (int i = 0; i < a.n_ev; i++)
      if (a.ev[i].category == 0) {
        /* random weights: either violence description may be the best match */
        assert_true(strcmp(a.ev[i].term, desc) == 0 || strcmp(a.ev[i].term, g_bank->cats[0].descriptions.items[0]) == 0);
        if (strncmp(a.ev[i].via, "token ", 6) == 0) {
          /* the token position is recorded (what the project strategy moves) */
          assert_int_equal(a.ev[i].token, atoi(a.ev[i].via + 6));
          assert_true(a.ev[i].token >= 1);
          assert_true(a.ev[i].end > a.ev[i].start);
          assert_true(a.ev[i].end <= strlen(prompt));
          printf("   evidence: \"%s\" via %s\n", a.ev[i].matched, a.ev[i].via);
        }
      }
    sd_detection_free(&a);
  }
  sd_detector_free(on);
  sd_detector_free(off);
}

static void test_disable_threshold_determinism(void **state) {
  (void)state;
  NEED_MODEL();
  sd_detector *d = make(1);
  const char *prompt = "a nude woman lying on a bed, oil painting";
  sd_detection r1, r2;
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r1), SD_OK);
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r2), SD_OK);
  assert_memory_equal(r1.cat_score, r2.cat_score, sizeof r1.cat_score);
  float s = r1.cat_score[1], top = r1.score;
  sd_detection_free(&r1);
  sd_detection_free(&r2);
  /* fires exactly at score >= threshold */
  sd_detector_set_threshold(d, s);
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r1), SD_OK);
  assert_true(r1.categories & 2u);
  assert_true(r1.threshold == s);
  sd_detection_free(&r1);
  sd_detector_set_threshold(d, nextafterf(top, INFINITY)); /* just above every category */
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r1), SD_OK);
  assert_int_equal(r1.fired, 0);
  assert_int_equal(r1.n_ev, 0);
  sd_detection_free(&r1);
  /* disabled: empty detection */
  sd_detector_set_threshold(d, -3.0f);
  sd_detector_set_enabled(d, 0);
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r1), SD_OK);
  assert_int_equal(r1.fired, 0);
  assert_int_equal(r1.n_ev, 0);
  sd_detection_free(&r1);
  sd_detector_set_enabled(d, 1);
  assert_int_equal(sd_detector_run(d, prompt, &g_enc, &r1), SD_OK);
  assert_true((r1.categories & 3u) == 3u); /* everything fires at -3, except the empty category */
  assert_false(r1.categories & 4u);
  sd_detection_free(&r1);
  /* no encoder: an error, not a silent pass */
  assert_int_equal(sd_detector_run(d, prompt, NULL, &r1), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "no text encoder"));
  sd_detector_free(d);
}

/* The concept directions of the project strategy: the detector's own description
 * embeddings, for the asked categories only, in bank order. */
static void test_concepts(void **state) {
  (void)state;
  NEED_MODEL();
  sd_detector *d = make(1);
  float *dirs = NULL;
  const char **texts = NULL;
  int n = -1, Dd = 0;
  assert_int_equal(sd_semantic_concepts(d, &g_enc, 1u, &dirs, &texts, &n, &Dd), SD_OK); /* violence */
  assert_int_equal(n, 2);
  assert_int_equal(Dd, g_D);
  for (int i = 0; i < n; i++) {
    assert_string_equal(texts[i], g_bank->cats[0].descriptions.items[i]);
    float *e = embed(texts[i]);
    assert_memory_equal(dirs + (size_t)i * g_D, e, sizeof(float) * (size_t)g_D);
    free(e);
  }
  free(dirs);
  free((void *)texts);
  assert_int_equal(sd_semantic_concepts(d, &g_enc, 2u | 4u, &dirs, &texts, &n, &Dd), SD_OK); /* sexual, empty */
  assert_int_equal(n, 1);
  assert_string_equal(texts[0], "a nude woman lying on a bed");
  free(dirs);
  free((void *)texts);
  assert_int_equal(sd_semantic_concepts(d, &g_enc, 4u, &dirs, &texts, &n, &Dd), SD_OK); /* no description */
  assert_int_equal(n, 0);
  free(dirs);
  free((void *)texts);
  assert_int_equal(sd_semantic_concepts(d, NULL, 1u, &dirs, &texts, &n, &Dd), SD_E_ARG);
  sd_detector_free(d);
}

static void test_file_cache(void **state) {
  (void)state;
  NEED_MODEL();
  const char *path = sd_test_tmp("semantic-cache.bin");
  remove(path);
  assert_true(sd_semantic_model_fingerprint(g_model) != 0);
  assert_true(sd_semantic_model_fingerprint(NULL) == 0);
  char def[4096];
  assert_int_equal(sd_semantic_default_cache(g_bank, 0x1234, def, sizeof def), SD_OK);
  assert_non_null(strstr(def, "semantic-"));
  assert_non_null(strstr(def, "-0000000000001234.bin"));
  sd_semantic_options o = {1, path};
  sd_detector *a, *b;
  assert_int_equal(sd_semantic_create(g_bank, &o, &a), SD_OK);
  assert_int_equal(sd_semantic_prepare(a, &g_enc), SD_OK);
  assert_int_equal(sd_semantic_from_cache(a), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(sd_semantic_create(g_bank, &o, &b), SD_OK);
  assert_int_equal(sd_semantic_prepare(b, &g_enc), SD_OK);
  assert_int_equal(sd_semantic_from_cache(b), 1);
  const char *prompt = "blood on the floor of a quiet kitchen";
  sd_detection ra, rb;
  assert_int_equal(sd_detector_run(a, prompt, &g_enc, &ra), SD_OK);
  assert_int_equal(sd_detector_run(b, prompt, &g_enc, &rb), SD_OK);
  assert_memory_equal(ra.cat_score, rb.cat_score, sizeof ra.cat_score);
  sd_detection_free(&ra);
  sd_detection_free(&rb);
  sd_detector_free(b);
  /* a corrupt cache is ignored (recomputed and rewritten) */
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, 64, SEEK_SET);
  fputc(0x55, f);
  fclose(f);
  assert_int_equal(sd_semantic_create(g_bank, &o, &b), SD_OK);
  assert_int_equal(sd_semantic_prepare(b, &g_enc), SD_OK);
  assert_int_equal(sd_semantic_from_cache(b), 0);
  sd_detector_free(b);
  assert_int_equal(sd_semantic_create(g_bank, &o, &b), SD_OK);
  assert_int_equal(sd_semantic_prepare(b, &g_enc), SD_OK);
  assert_int_equal(sd_semantic_from_cache(b), 1);
  sd_detector_free(b);
  /* without a model fingerprint there is no file cache (memory only) */
  sd_semantic_encoder nomodel = g_enc;
  nomodel.model = NULL;
  remove(path);
  assert_int_equal(sd_semantic_create(g_bank, &o, &b), SD_OK);
  assert_int_equal(sd_semantic_prepare(b, &nomodel), SD_OK);
  assert_int_equal(stat(path, &st), -1);
  sd_detector_free(b);
  sd_detector_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_self_similarity),
      cmocka_unit_test(test_token_level_in_long_prompt),
      cmocka_unit_test(test_disable_threshold_determinism),
      cmocka_unit_test(test_concepts),
      cmocka_unit_test(test_file_cache),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
