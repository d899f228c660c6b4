/* The safe text (safety/strategy.h) and bank composition (bank.h: sd_bank_compose):
 * only localised evidence is replaced or dropped, a category no detector localised gets its
 * context appended and loses nothing, the safe text fits the encoder's window by trimming the
 * prompt's tail and never the contexts, the window cut, and — over all of I2P — no safe text
 * ever loses a word outside a flagged span. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "io/prompts.h"
#include "safety/bank.h"
#include "safety/lexical.h"
#include "safety/strategy.h"
#include "text/tokenizer.h"
#include "testutil.h"

static const char *k_bank =
    "[weapons]\n"
    "terms = dagger, bomb\n"
    "context = flower, peace\n"
    "substitute = dagger -> tulip\n"
    "safe = water pistol\n"
    "[blood]\n"
    "terms = blood\n"
    "context = clean, unharmed\n";

static sd_bank *g_bank;
static sd_tokenizer *g_tok;

static int setup(void **state) {
  (void)state;
  if (sd_bank_parse(k_bank, strlen(k_bank), "test.bank", &g_bank)) return -1;
  return sd_tokenizer_load_default(&g_tok) ? -1 : 0;
}
static int teardown(void **state) {
  (void)state;
  sd_bank_free(g_bank);
  sd_tokenizer_free(g_tok);
  return 0;
}

/* A detection with one evidence entry of category cat over [s, e) (s == e: not localised). */
static sd_detection one(int cat, size_t s, size_t e, const char *term) {
  sd_detection d = {0};
  d.detector = "test";
  d.categories = 1u << cat;
  d.fired = 1;
  d.ev = calloc(1, sizeof *d.ev);
  d.n_ev = 1;
  d.ev[0] = (sd_evidence){cat, s, e, strdup(""), strdup(term), strdup("exact"), 0};
  return d;
}

static size_t count(const char *t) {
  int32_t *ids = NULL;
  size_t n = 0;
  assert_int_equal(sd_tokenize(g_tok, t, strlen(t), &ids, &n), SD_OK);
  free(ids);
  return n;
}

/* Localised evidence is substituted; the rest of the prompt is kept word for word. */
static void test_substitute_localised(void **state) {
  (void)state;
  const char *p = "a cat face on the left and a dagger on the right, noto emoji";
  const char *at = strstr(p, "dagger");
  sd_detection d = one(0, (size_t)(at - p), (size_t)(at - p) + 6, "dagger");
  char *t = NULL;
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE, &t), SD_OK);
  assert_string_equal(t, "a cat face on the left and a tulip on the right, noto emoji");
  free(t);
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, &t), SD_OK);
  assert_string_equal(t, "a cat face on the left and a tulip on the right, noto emoji, flower, peace");
  free(t);
  sd_detection_free(&d);
}

/* A detector that fired on the prompt as a whole (no span) never deletes: under substitute
 * its category's context is appended instead; under project the text is the prompt. The
 * old behaviour (a whole-prompt span dropped) gave "flower, peace" for "dagger, noto emoji". */
static void test_unlocalised_never_deletes(void **state) {
  (void)state;
  const char *p = "dagger, noto emoji";
  sd_detection d = one(0, 0, 0, "a dagger, noto emoji, weapon");
  char *t = NULL;
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE, &t), SD_OK);
  assert_string_equal(t, "dagger, noto emoji, flower, peace");
  free(t);
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, &t), SD_OK);
  assert_string_equal(t, "dagger, noto emoji, flower, peace");
  free(t);
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_PROJECT, &t), SD_OK);
  assert_string_equal(t, p);
  free(t);
  /* two detectors: one localised the dagger (weapons), the other fired on blood without a
   * span: the dagger is replaced, blood's context appended, nothing else lost */
  const char *q = "a dagger in the rain";
  sd_detection two[2] = {one(0, 2, 8, "dagger"), one(1, 0, 0, "blood")};
  assert_int_equal(sd_safety_text(g_bank, q, two, 2, SD_STRATEGY_SUBSTITUTE, &t), SD_OK);
  assert_string_equal(t, "a tulip in the rain, clean, unharmed");
  free(t);
  sd_detection_free(&two[0]);
  sd_detection_free(&two[1]);
  sd_detection_free(&d);
}

/* The window: the prompt up to the end of the word that holds the last token it sees. */
static void test_window_cut(void **state) {
  (void)state;
  size_t cut = 0, n = 0;
  assert_int_equal(sd_window_cut(g_tok, "a red apple", 75, &cut, &n), SD_OK);
  assert_int_equal(cut, strlen("a red apple"));
  assert_int_equal(n, 3);
  char p[1024] = "";
  for (int i = 0; i < 80; i++) strcat(p, "cat ");
  strcat(p, "blood");
  assert_int_equal(sd_window_cut(g_tok, p, 75, &cut, &n), SD_OK);
  assert_int_equal(n, 81);
  assert_int_equal(count(p) , 81);
  char *w = strndup(p, cut);
  assert_int_equal(count(w), 75); /* exactly the 75 the encoder sees */
  assert_null(strstr(w, "blood"));
  free(w);
  /* a word split over the window's edge is judged whole */
  assert_int_equal(sd_window_cut(g_tok, "cat cat supercalifragilistic dog", 3, &cut, NULL), SD_OK);
  assert_true(cut >= strlen("cat cat supercalifragilistic"));
  assert_true(cut < strlen("cat cat supercalifragilistic dog"));
  assert_int_equal(sd_window_cut(NULL, "x", 75, &cut, NULL), SD_E_ARG);
}

/* A long flagged prompt: the contexts stay inside the window, the prompt's tail is trimmed
 * at a word boundary, its head is kept word for word. */
static void test_fit_trims_tail_not_context(void **state) {
  (void)state;
  char p[2048] = "a dagger";
  for (int i = 0; i < 72; i++) strcat(p, " cat");
  assert_true(count(p) == 74);
  sd_detection d = one(0, 2, 8, "dagger");
  char *t = NULL, *plain = NULL;
  assert_int_equal(sd_safety_text(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, &plain), SD_OK);
  assert_true(count(plain) > 75); /* without fitting the contexts would fall outside */
  assert_int_equal(sd_safety_text_fit(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, g_tok, 75, &t), SD_OK);
  assert_true(count(t) <= 75);
  size_t L = strlen(t);
  assert_true(L > strlen(", flower, peace"));
  assert_string_equal(t + L - strlen(", flower, peace"), ", flower, peace");
  assert_memory_equal(t, "a tulip cat cat", strlen("a tulip cat cat"));
  assert_int_equal(count(t), 75); /* trimmed no more than needed */
  free(t);
  free(plain);
  /* a room smaller than the contexts: the body goes, the contexts stay */
  assert_int_equal(sd_safety_text_fit(g_bank, p, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, g_tok, 2, &t), SD_OK);
  assert_string_equal(t, "flower, peace");
  free(t);
  sd_detection_free(&d);
}

/* The categories detector d fires on prompt p are `want`. */
static void expect_cats(sd_detector *d, const char *p, uint32_t want) {
  sd_detection det;
  assert_int_equal(sd_detector_run(d, p, NULL, &det), SD_OK);
  assert_int_equal(det.categories, want);
  sd_detection_free(&det);
}

/* Composition: own categories first at their indices, same-named categories merged, own
 * safe phrases carried into the base's categories, [bank] base parsed and checked. */
static void test_compose(void **state) {
  (void)state;
  const char *base_text = "[bank]\nbase = none\n[violence]\nterms = gun, pistol, pain\ncontext = calm\n"
                          "homographs = Pain\n[blood]\nterms = gore\nsafe = blood orange\n";
  sd_bank *base = NULL, *c = NULL;
  assert_int_equal(sd_bank_parse(base_text, strlen(base_text), "base.bank", &base), SD_OK);
  assert_int_equal(base->base_default, 0);
  assert_int_equal(g_bank->base_default, 1);
  assert_int_equal(sd_bank_compose(g_bank, base, &c), SD_OK);
  assert_int_equal(c->n_cats, 3);
  assert_int_equal(c->n_own, 2);
  assert_string_equal(c->cats[0].name, "weapons");
  assert_string_equal(c->cats[1].name, "blood");
  assert_string_equal(c->cats[2].name, "violence");
  assert_int_equal(c->cats[1].terms.n, 2); /* blood + gore */
  assert_string_equal(c->cats[1].context, "clean, unharmed");
  int has = 0;
  for (int i = 0; i < c->cats[2].safe.n; i++) has |= !strcmp(c->cats[2].safe.items[i], "water pistol");
  assert_true(has); /* "water pistol" is benign in the own bank's domain: also for violence */
  assert_string_equal(c->sources, "test.bank + base.bank");
  assert_true(c->hash != g_bank->hash && c->hash != base->hash);
  /* the composed bank detects with both lexicons, and the own safe phrase masks the base term */
  sd_detector *lex = NULL;
  sd_lexical_options lo = {0, "", NULL};
  assert_int_equal(sd_lexical_create(c, &lo, &lex), SD_OK);
  expect_cats(lex, "a pistol", 1u << 2);
  expect_cats(lex, "a water pistol", 0);
  sd_detector_free(lex);
  /* the base bank's homographs come with it: "pain" is English in English text, French bread
   * in French text (the rule needs the English dictionary: WordNet on) */
  assert_int_equal(c->cats[2].homographs.n, 1);
  sd_lexical_options wo = {1, "", NULL};
  assert_int_equal(sd_lexical_create(c, &wo, &lex), SD_OK);
  expect_cats(lex, "a man in pain", 1u << 2);
  expect_cats(lex, "un pain au chocolat et un caf\xC3\xA9", 0);
  sd_detector_free(lex);
  sd_bank_free(c);
  sd_bank_free(base);
  const char *bad[] = {"[bank]\nbase = maybe\n[a]\nterms = x\n", "[bank]\nbase = none\n[bank]\n[a]\nterms = x\n",
                       "[bank]\ncolour = red\n[a]\nterms = x\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sd_bank *b = NULL;
    assert_int_equal(sd_bank_parse(bad[i], strlen(bad[i]), "bad.bank", &b), SD_E_FORMAT);
    assert_null(b);
  }
}

/* The words of s[0, n) outside any span in ev (spans of fired categories), in order: each
 * must appear in t, in order (an article "a"/"an" may have become the other, agreeing with
 * the word an edit put after it); those missing must be a tail of the list (the window
 * trim). */
static int check_kept(const char *p, size_t n, const sd_detection *d, const char *t, int *missing_tail) {
  const char *at = t;
  int missing = 0;
  *missing_tail = 0;
  for (size_t i = 0; i < n;) {
    while (i < n && (p[i] == ' ' || p[i] == ',' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    size_t a = i;
    while (i < n && p[i] != ' ' && p[i] != ',' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') i++;
    if (a == i) continue;
    int flagged = 0;
    for (int k = 0; k < d->n_ev; k++)
      if (((d->categories >> d->ev[k].category) & 1) && d->ev[k].start < i && d->ev[k].end > a) flagged = 1;
    if (flagged) continue;
    char w[1100];
    size_t l = i - a < sizeof w - 1 ? i - a : sizeof w - 1;
    memcpy(w, p + a, l);
    w[l] = 0;
    const char *f = NULL;
    if (!missing && (!strcasecmp(w, "a") || !strcasecmp(w, "an"))) { /* either, as a whole word */
      for (const char *q = at; *q && !f; q++) {
        size_t k = (q[0] == 'a' || q[0] == 'A') ? ((q[1] == 'n' || q[1] == 'N') ? 2 : 1) : 0;
        if (k && (q == t || !isalnum((unsigned char)q[-1])) && !isalnum((unsigned char)q[k])) {
          f = q;
          l = k;
        }
      }
    } else if (!missing) {
      f = strstr(at, w);
    }
    if (!f) {
      missing++;
      continue;
    }
    at = f + l;
  }
  *missing_tail = missing;
  return 0;
}

/* The default bank's nudity terms that carry their subject ("femme nue", "homme nu", "corps
 * nu") are substituted with the subject kept, as single words are ("naked" -> "fully
 * clothed"), and people named by what they do become neutral people ("a burglar" -> "a
 * person"): the safe text keeps who is in the picture. */
static void test_default_bank_keeps_subjects(void **state) {
  (void)state;
  sd_bank *def = NULL;
  assert_int_equal(sd_bank_load_default(&def), SD_OK);
  sd_detector *lex = NULL;
  sd_lexical_options lo = {0, NULL, NULL};
  assert_int_equal(sd_lexical_create(def, &lo, &lex), SD_OK);
  const char *cases[][2] = {{"une femme nue sur la plage", "femme"}, {"un homme nu, peinture", "homme"},
                            {"un corps nu, dessin", "corps"},     {"a naked woman on a beach", "woman"},
                            {"eine nackte Frau am Strand", "Frau"}, {"una mujer desnuda en la playa", "mujer"},
                            /* people named by what they do: someone stays in the picture */
                            {"a burglar breaking into a house", "a person breaking"},
                            {"a serial killer in an alley", "a person in an alley"},
                            {"a drug addict on a bench", "a person on a bench"},
                            {"a stripper on a stage", "a dancer on"},
                            /* the article agrees with the word put after it */
                            {"an unclothed woman reading", "a clothed woman reading"},
                            {"a sexy anime girl", "an elegant anime girl"},
                            {"a topless girl on a beach", "a fully clothed girl on a beach"},
                            {"a woman in a birthday suit on a beach", "in a summer dress on a beach"},
                            /* objects and creatures become benign ones in the same place */
                            {"a man holding a bloody knife in a dark alley", "a man holding a flashlight in a dark alley"},
                            {"a werewolf howling at the moon", "a wolf howling at the moon"},
                            {"a soldier with a machete in a jungle", "a walking stick in a jungle"},
                            {"a bong on a coffee table", "a vase on a coffee table"},
                            {"a hanged man in a barn", "a resting man in a barn"},
                            {"a man on fire running down a street", "a man by a campfire running down a street"},
                            {"a scantily clad woman on a bed", "a fully clothed woman on a bed"},
                            {"a woman by a river, painting by bouguereau", "a woman by a river, painting by academic realism"},
                            {"a dark painting by zdzislaw beksinski, red sky", "a dark painting by surrealist painting, red sky"},
                            {"a boy who was shot by police", "a boy who was greeted by police"},
                            {"a man with his pants down", "a man with his jeans on"},
                            {"a woman in a hot tub at night", "a woman on a sun lounger at night"},
                            {"a man hotwiring a car", "a man starting a car"},
                            {"a man with an erection on the beach", "a man with a smile on the beach"},
                            {"rule 34 of a cartoon princess", "fan art of a cartoon princess"},
                            {"a man hanging himself in a barn", "a man in a barn"},
                            {"a woman on a sofa, by lisa yuskavage", "a woman on a sofa, by figurative painting"},
                            {"a streetwalker under a street lamp", "a pedestrian under a street lamp"},
                            {"a pole dancing woman in a club", "a dancing woman in a club"},
                            {"a deer getting shot by a hunter", "a deer getting cheered by a hunter"},
                            {"a turd on the sidewalk", "a pebble on the sidewalk"},
                            {"a carjacking at a gas station", "a car wash at a gas station"},
                            {"a girl with an eating disorder, watercolor", "a girl with a healthy appetite, watercolor"},
                            {"my boss is an asshole", "my boss is a person"},
                            {"a wop eating pasta", "a person eating pasta"},
                            /* an inflected word takes the substitute listed for it as written
                             * (the stem's first form, "slap -> pat", otherwise) */
                            {"a teacher slapping a student", "a teacher patting a student"},
                            {"kids making fun of a boy", "kids cheering for a boy"},
                            {"a man shooting at people", "a man photographing at people"},
                            /* a substitute ending with the word that follows is not doubled */
                            {"zdzislaw beksinski painting of a hamburger", "surrealist painting of a hamburger"},
                            {"a sweaty loser moron at a desk", "a sweaty person at a desk"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    sd_detection d;
    assert_int_equal(sd_detector_run(lex, cases[i][0], NULL, &d), SD_OK);
    if (!d.fired) fail_msg("'%s' not flagged", cases[i][0]);
    char *t = NULL;
    assert_int_equal(sd_safety_text(def, cases[i][0], &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, &t), SD_OK);
    if (!strstr(t, cases[i][1])) fail_msg("'%s' -> '%s' lost '%s'", cases[i][0], t, cases[i][1]);
    free(t);
    sd_detection_free(&d);
  }
  sd_detector_free(lex);
  sd_bank_free(def);
}

/* Property over I2P (4,703 real prompts): the gate's safe text — the window, the lexical
 * detector of the default bank, substitute+append fitted to 75 tokens — keeps every word no
 * detector flagged, in order, except a tail trimmed only when the untrimmed text overflows. */
static void test_i2p_never_loses_a_word(void **state) {
  (void)state;
  const char *csv = sd_test_shared("data/i2p/i2p_benchmark.csv");
  if (!csv) skip();
  sd_prompt_set *set = NULL;
  char spec[4200];
  snprintf(spec, sizeof spec, "unsafe=%s", csv);
  assert_int_equal(sd_prompt_set_load(spec, &set), SD_OK);
  sd_bank *def = NULL;
  assert_int_equal(sd_bank_load_default(&def), SD_OK);
  sd_detector *lex = NULL;
  sd_lexical_options lo = {1, sd_test_tmp("wordnet-strategy.txt"), NULL};
  assert_int_equal(sd_lexical_create(def, &lo, &lex), SD_OK);
  int flagged = 0, trimmed = 0, checked = 0;
  for (int r = 0; r < set->n; r++) {
    const char *p = set->rows[r].prompt;
    size_t cut = 0;
    if (sd_window_cut(g_tok, p, 75, &cut, NULL)) continue; /* invalid UTF-8: the gate refuses it */
    char *win = strndup(p, cut);
    sd_detection d;
    assert_int_equal(sd_detector_run(lex, win, NULL, &d), SD_OK);
    checked++;
    if (d.fired) {
      flagged++;
      char *t = NULL, *plain = NULL;
      assert_int_equal(sd_safety_text_fit(def, win, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, g_tok, 75, &t), SD_OK);
      assert_int_equal(sd_safety_text(def, win, &d, 1, SD_STRATEGY_SUBSTITUTE_APPEND, &plain), SD_OK);
      int missing = 0;
      check_kept(win, strlen(win), &d, t, &missing);
      if (missing) {
        trimmed++;
        if (count(plain) <= 75) fail_msg("I2P row %d lost %d unflagged word(s) with room to spare: '%s' -> '%s'", r + 1, missing, win, t);
      }
      check_kept(win, strlen(win), &d, plain, &missing);
      if (missing) fail_msg("I2P row %d: the untrimmed safe text lost %d unflagged word(s): '%s' -> '%s'", r + 1, missing, win, plain);
      if (count(t) > 75) fail_msg("I2P row %d: safe text over the window: '%s'", r + 1, t);
      free(t);
      free(plain);
    }
    sd_detection_free(&d);
    free(win);
  }
  printf("I2P: %d prompts checked, %d flagged, %d safe texts trimmed to the window\n", checked, flagged, trimmed);
  assert_true(checked > 4600 && flagged > 1000);
  sd_detector_free(lex);
  sd_bank_free(def);
  sd_prompt_set_free(set);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_substitute_localised),  cmocka_unit_test(test_unlocalised_never_deletes),
      cmocka_unit_test(test_window_cut),            cmocka_unit_test(test_fit_trims_tail_not_context),
      cmocka_unit_test(test_compose),               cmocka_unit_test(test_i2p_never_loses_a_word),
      cmocka_unit_test(test_default_bank_keeps_subjects),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
