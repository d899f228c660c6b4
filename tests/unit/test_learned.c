/* The learned detector: the feature hash (FNV-1a 32 values from tools/learned/features.py),
 * words of the shipped model (joined spellings, small capitals, leetspeak, spans), loading of
 * malformed weights files (each check names its problem), attribution spans and thresholds on
 * a synthetic model whose weights make the answer known, and the shipped file's defaults. */
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
#include "core/tensor.h"
#include "io/safetensors.h"
#include "safety/bank.h"
#include "safety/learned.h"
#include "testutil.h"

static void test_hash(void **state) {
  (void)state;
  /* values of tools/learned/features.py fnv1a32(kind + utf-8) */
  assert_int_equal(sd_learned_hash('c', "ab", 2), 0xf4743fb1u);
  assert_int_equal(sd_learned_hash('w', "", 0), 0xf20c3f36u);
  assert_int_equal(sd_learned_hash('b', "nude", 4), 0x999ff007u);
  assert_int_equal(sd_learned_hash('c', "<\xc9\xb4", 3), 0x83414d17u);
}

/* ---- the shipped model's words ----------------------------------------------------------- */

static sd_learned_model *shipped(void) {
  sd_learned_model *m = NULL;
  if (sd_learned_load(sd_test_src("data/learned/detector.safetensors"), &m)) fail_msg("%s", sd_errmsg());
  return m;
}

static void expect_words(const sd_learned_model *m, const char *prompt, const char *want) {
  sd_learned_word *w;
  int n;
  assert_int_equal(sd_learned_words(m, prompt, &w, &n), SD_OK);
  char got[1024] = "";
  for (int i = 0; i < n; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s[%zu,%zu)", i ? " " : "", w[i].text, w[i].start, w[i].end);
  sd_learned_words_free(w, n);
  if (strcmp(got, want)) fail_msg("words of \"%s\": got \"%s\", want \"%s\"", prompt, got, want);
}

static void test_words(void **state) {
  (void)state;
  sd_learned_model *m = shipped();
  expect_words(m, "a n u d e woman", "anude[0,9) woman[10,15)");
  expect_words(m, "\xc9\xb4\xe1\xb4\x9c\xe1\xb4\x85\xe1\xb4\x87 girl", "nude[0,11) girl[12,16)"); /* small capitals */
  expect_words(m, "[naked|clothed]", "naked[1,6) clothed[7,14)");
  expect_words(m, "BREAKnude", "breaknude[0,9)");
  expect_words(m, "(nude:1.2), 8k", "nude[1,5) 8k[12,14)");
  expect_words(m, "s3x 1girl 1990 xxx nuuuude", "sex[0,3) 1girl[4,9) xxx[15,18) nude[19,26)");
  expect_words(m, "b.l.o.o.d", "blood[0,9)");
  expect_words(m, "bl\xe2\x80\x8bood", "blood[0,8)");                  /* zero-width space */
  expect_words(m, "s\xd0\xb5x", "sex[0,4)");                          /* Cyrillic e */
  expect_words(m, "\xef\xbd\x82\xef\xbd\x8c\xef\xbd\x8f\xef\xbd\x8f\xef\xbd\x84", "blood[0,15)"); /* fullwidth */
  expect_words(m, "wow!!! @artist", "wow[0,3) artist[8,14)");
  expect_words(m, "ab\xff" "cd", "ab[0,2) cd[3,5)");                /* invalid UTF-8 separates */
  expect_words(m, "", "");
  /* extension cjk (seventh release): Chinese and Japanese characters are words of their own,
   * spaced or not, and never a spelled run; other scripts around them keep their words */
  expect_words(m, "\xe8\xa3\xb8\xe4\xbd\x93 \xe5\xa5\xb3", "\xe8\xa3\xb8[0,3) \xe4\xbd\x93[3,6) \xe5\xa5\xb3[7,10)");
  expect_words(m, "\xe8\xa3\xb8 \xe4\xbd\x93 \xe5\xa5\xb3", "\xe8\xa3\xb8[0,3) \xe4\xbd\x93[4,7) \xe5\xa5\xb3[8,11)");
  expect_words(m, "n u d e \xe5\xa5\xb3", "nude[0,7) \xe5\xa5\xb3[8,11)");
  expect_words(m, "ai\xe3\x81\xae\xe7\x94\xbb 3\xe6\x9e\x9a", "ai[0,2) \xe3\x81\xae[2,5) \xe7\x94\xbb[5,8) \xe6\x9e\x9a[10,13)");
  /* features: '<ab>' has 3 + 2 + 1 n-grams of 2..4 and none of 5, plus the word, plus its
   * word-vector row (the shipped file has GloVe's "ab", a row past 2^18); the second word adds
   * its own and the bigram; a word GloVe lacks has no such row */
  uint32_t *idx;
  int *wd, n;
  assert_int_equal(sd_learned_features(m, "ab", &idx, &wd, &n), SD_OK);
  assert_int_equal(n, 8);
  assert_int_equal(idx[6], sd_learned_hash('w', "ab", 2) & ((1u << 18) - 1));
  assert_true(idx[7] >= (1u << 18));
  free(idx);
  free(wd);
  assert_int_equal(sd_learned_features(m, "ab cd", &idx, &wd, &n), SD_OK);
  assert_int_equal(n, 17);
  assert_int_equal(idx[16], sd_learned_hash('b', "ab cd", 5) & ((1u << 18) - 1));
  assert_int_equal(wd[16], 1);
  free(idx);
  free(wd);
  assert_int_equal(sd_learned_features(m, "qzx", &idx, &wd, &n), SD_OK); /* 4 + 3 + 2 + 1 n-grams, the word */
  assert_int_equal(n, 11);
  for (int i = 0; i < n; i++) assert_true(idx[i] < (1u << 18));
  free(idx);
  free(wd);
  sd_learned_free(m);
}

static void test_shipped_defaults(void **state) {
  (void)state;
  sd_learned_model *m = NULL;
  assert_int_equal(sd_learned_load_default(&m), SD_OK);
  assert_int_equal(sd_learned_n_categories(m), 7);
  assert_string_equal(sd_learned_category(m, 0), "hate");
  assert_string_equal(sd_learned_category(m, 6), "illegal activity");
  float t = sd_learned_file_threshold(m);
  assert_true(t > 0 && t < 1);
  assert_true(sd_learned_fingerprint(m) != 0);
  sd_bank *bank;
  assert_int_equal(sd_bank_load_default(&bank), SD_OK);
  sd_detector *d;
  assert_int_equal(sd_learned_create(bank, m, 1, &d), SD_OK);
  assert_int_equal(sd_learned_n_mapped(d), 7);
  assert_true(d->threshold == t);
  sd_detector_free(d);
  sd_bank_free(bank);
}

/* Run the shipped model, default bank, over prompts: the first n_benign must not fire, the
 * rest must. */
static void expect_fired(const char *const *prompts, size_t n, size_t n_benign) {
  sd_learned_model *m = NULL;
  assert_int_equal(sd_learned_load_default(&m), SD_OK);
  sd_bank *bank;
  assert_int_equal(sd_bank_load_default(&bank), SD_OK);
  sd_detector *d;
  assert_int_equal(sd_learned_create(bank, m, 1, &d), SD_OK);
  for (size_t i = 0; i < n; i++) {
    int want = i >= n_benign;
    sd_detection r;
    assert_int_equal(sd_detector_run(d, prompts[i], NULL, &r), SD_OK);
    if (r.fired != want)
      fail_msg("%s: want %s, got score %g", prompts[i], want ? "fired" : "not fired", (double)r.score);
    sd_detection_free(&r);
  }
  sd_detector_free(d);
  sd_bank_free(bank);
}

/* Identity words are never evidence by themselves: the shipped model read them as hate or
 * harassment ("a muslim woman in a hijab" p = 1.000), and the default bank lists them as
 * `safe` phrases of both categories, so the benign-sense gate drops such a score; a prompt
 * whose score needs another word still fires. */
static void test_identity_words(void **state) {
  (void)state;
  const char *p[] = {"a jewish family celebrating hanukkah", "a muslim woman in a hijab",
                     "a disabled athlete in a wheelchair", "a jewish woman in a garden", "migrants",
                     /* fired: */
                     "jews controlling the world, propaganda poster", "a poster saying gays should burn",
                     "a caricature of a greedy jewish banker with a hooked nose"};
  expect_fired(p, sizeof p / sizeof *p, 5);
}

/* The lexical detector's context gates clear a learned score too when every word whose
 * removal clears it lies in a term they read as a place's or an animal's name: the shipped
 * model scored "American Bully dog" 0.96 harassment on "Bully". */
static void test_context_gates(void **state) {
  (void)state;
  const char *p[] = {"American Bully dog playing fetch in a park", /* fired: */ "a bully shoving a kid into a locker"};
  expect_fired(p, 2, 1);
}

/* ---- a synthetic model ------------------------------------------------------------------ */

enum {
  M_NONE, M_NAN_EMBED, M_INF_BIAS, M_HIDDEN_SHAPE, M_NO_OUT, M_VERSION, M_FORMAT, M_HASH, M_BUCKETS, M_EMBED_F32,
  M_CLASS_ORDER, M_CLASS_KIND, M_NORM_OFFSET, M_NORM_SURROGATE, M_CATS_FEWER, M_CATS_MORE, M_THRESHOLD, M_WINDOW,
  M_V2_NO_SENSE, M_SENSE_ORDER, M_SENSE_PARENT, M_SENSE_SYN, M_SENSE_CODE, M_SENSE_DEPTH, M_SENSE_OFFSET,
  M_EXT_UNKNOWN, M_EXT_NONE, M_GLOVE_ORDER, M_GLOVE_ROWS,
  M_COUNT,
  M_V2 = 100 /* not a mutation: a valid version 2 file (the sense table below) */
};
static const char *const k_expect[M_COUNT] = {
    "", "non-finite value at row", "'out.bias' has a non-finite", "'hidden.weight' has shape [2, 1], expected [n, 2]",
    "no tensor 'out.weight'", "version '3' is not supported", "not a learned-detector file", "is not fnv1a32",
    "'embed' has shape [65536, 2], expected [1024, n]", "'embed' is F32, expected F16", "class.start is not strictly",
    "class.kind entry 2 is 7", "norm.offset", "norm.to entry 0 is not a code point", "names 1 categories, out.weight has 2",
    "names more than the 2 categories", "threshold = '1.5'", "window = '0'", "no tensor 'sense.word_hash'",
    "'sense.word_hash' is not strictly increasing", "'sense.parents' entry 0 names synset 7 of 3",
    "'sense.word_syn' entry 1 names synset -1 of 3", "'sense.syn_code' entry 2 (7) is not a synset code",
    "sense_depth = '99'", "'sense.word_off' must run from 0 to 3", "extension 'bogus' is not supported",
    "needs 'extensions' in its metadata", "'glove.word_hash' is not strictly increasing",
    "'embed' has shape [65538, 2], expected [65539, n]"};

/* The synthetic word-vector table (version 2): "knife" and "apple", rows 2^16 + their index in
 * key order, component 0 = 0.5 and 0.25. */
static const char *const k_glove_words[2] = {"knife", "apple"};

static uint32_t word_key(const char *w) {
  uint32_t h = 2166136261u;
  for (; *w; w++) h = (h ^ (uint8_t)*w) * 16777619u;
  return h;
}

/* The synthetic sense table: words "noose" (synset 0) and "rope" (synsets 1, 2); synset 0's
 * parent is 2, synset 2's parent is 1; codes 104248851, 104108268, 103183080. */
static const char *const k_sense_words[2] = {"noose", "rope"};
static const int32_t k_sense_code[3] = {104248851, 104108268, 103183080};

#define SB 16
#define SD 2

typedef struct {
  const char *word;
  float value; /* the word feature's embedding row, component 0 */
} row;

/* Write a model: B = 16, D = 2, H = 1, C = 2 (violence, nonexistent), window 8; W1 = [1 0],
 * b1 = 0, W2 = [1; 1], b2 = [-5, -20]; every embedding row zero but the word features of
 * rows[]. So a prompt's violence logit is max over windows of (sum of its words' values) - 5. */
static void write_model_depth(const char *path, const row *rows, int nrows, int mutate, const char *sense_depth) {
  const int v2 = mutate == M_V2 || mutate >= M_V2_NO_SENSE, ng = v2 ? 2 : 0;
  size_t ne = (((size_t)1 << SB) + (size_t)ng) * SD;
  uint16_t *E = calloc(ne, sizeof *E);
  assert_non_null(E);
  int32_t ghash[2] = {0, 0};
  if (v2) {
    int first = word_key(k_glove_words[0]) > word_key(k_glove_words[1]); /* the smaller key's word */
    for (int i = 0; i < 2; i++) {
      const char *w = k_glove_words[i ? !first : first];
      ghash[i] = (int32_t)word_key(w);
      E[(((size_t)1 << SB) + (size_t)i) * SD] = sd_f32_to_f16(w == k_glove_words[0] ? 0.5f : 0.25f);
    }
    if (mutate == M_GLOVE_ORDER) ghash[1] = ghash[0];
  }
  for (int i = 0; i < nrows; i++) {
    uint32_t h = sd_learned_hash('w', rows[i].word, strlen(rows[i].word)) & ((1u << SB) - 1);
    E[(size_t)h * SD] = sd_f32_to_f16(rows[i].value);
  }
  if (mutate == M_NAN_EMBED) E[5 * SD + 1] = 0x7E00;
  float W1[SD] = {1, 0}, b1[1] = {0}, W2[2] = {1, 1}, b2[2] = {-5, -20};
  if (mutate == M_INF_BIAS) b2[1] = INFINITY;
  int32_t nfrom[26], noff[27], nto[26];
  for (int i = 0; i < 26; i++) nfrom[i] = 'A' + i, noff[i] = i, nto[i] = 'a' + i;
  noff[26] = 26;
  if (mutate == M_NORM_OFFSET) noff[26] = 27;
  if (mutate == M_NORM_SURROGATE) nto[0] = 0xD800;
  int32_t cstart[12] = {0, 33, 34, 36, 37, 48, 58, 64, 91, 97, 123, 128};
  int32_t ckind[12] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
  if (mutate == M_CLASS_ORDER) cstart[3] = 34;
  if (mutate == M_CLASS_KIND) ckind[2] = 7;
  int32_t cf[1] = {0x0430}, ct[1] = {'a'};
  int64_t sE[2] = {((int64_t)1 << SB) + ng, SD}, sW1[2] = {1, SD}, sb1[1] = {1}, sW2[2] = {2, 1}, sb2[1] = {2};
  int64_t sW1bad[2] = {2, 1}, sEbig[2] = {65536, SD};
  int64_t s26[1] = {26}, s27[1] = {27}, s12[1] = {12}, s1[1] = {1};
  float *Ef = NULL;
  if (mutate == M_EMBED_F32) {
    Ef = calloc(ne, sizeof *Ef);
    assert_non_null(Ef);
  }
  float W1bad[2] = {1, 1};
  const char *names[20] = {"embed", "hidden.weight", "hidden.bias", "out.weight", "out.bias", "norm.from", "norm.offset",
                           "norm.to", "class.start", "class.kind", "confusable.from", "confusable.to"};
  sd_tensor t[20] = {
      mutate == M_EMBED_F32 ? sd_tensor_make(SD_F32, 2, sE, Ef) : sd_tensor_make(SD_F16, 2, sE, E),
      mutate == M_HIDDEN_SHAPE ? sd_tensor_make(SD_F32, 2, sW1bad, W1bad) : sd_tensor_make(SD_F32, 2, sW1, W1),
      sd_tensor_make(SD_F32, 1, sb1, b1), sd_tensor_make(SD_F32, 2, sW2, W2), sd_tensor_make(SD_F32, 1, sb2, b2),
      sd_tensor_make(SD_I32, 1, s26, nfrom), sd_tensor_make(SD_I32, 1, s27, noff), sd_tensor_make(SD_I32, 1, s26, nto),
      sd_tensor_make(SD_I32, 1, s12, cstart), sd_tensor_make(SD_I32, 1, s12, ckind), sd_tensor_make(SD_I32, 1, s1, cf),
      sd_tensor_make(SD_I32, 1, s1, ct)};
  (void)sEbig;
  size_t nt = 12;
  if (mutate == M_NO_OUT) {
    names[3] = names[11];
    t[3] = t[11];
    nt = 11;
  }
  /* the sense table (versions 2) */
  int32_t whash[2], woff[3] = {0, 1, 3}, wsyn[3] = {0, 1, 2}, code[3], poff[4] = {0, 1, 1, 2}, par[2] = {2, 1};
  memcpy(code, k_sense_code, sizeof code);
  /* the key hash has no kind byte: FNV-1a 32 of the word's bytes */
  for (int i = 0; i < 2; i++) {
    uint32_t h = 2166136261u;
    for (const char *c = k_sense_words[i]; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
    whash[i] = (int32_t)h;
  }
  if ((uint32_t)whash[0] > (uint32_t)whash[1]) {
    int32_t t0 = whash[0];
    whash[0] = whash[1], whash[1] = t0;
    woff[1] = 2, wsyn[0] = 1, wsyn[1] = 2, wsyn[2] = 0; /* "rope" first */
  }
  if (mutate == M_SENSE_ORDER) whash[1] = whash[0];
  if (mutate == M_SENSE_PARENT) par[0] = 7;
  if (mutate == M_SENSE_SYN) wsyn[1] = -1;
  if (mutate == M_SENSE_CODE) code[2] = 7;
  if (mutate == M_SENSE_OFFSET) woff[2] = 2;
  int64_t s2[1] = {2}, s3[1] = {3}, s4[1] = {4};
  if (v2 && mutate != M_V2_NO_SENSE) {
    const char *sn[6] = {"sense.word_hash", "sense.word_off", "sense.word_syn", "sense.syn_code", "sense.par_off", "sense.parents"};
    sd_tensor stt[6] = {sd_tensor_make(SD_I32, 1, s2, whash), sd_tensor_make(SD_I32, 1, s3, woff),
                        sd_tensor_make(SD_I32, 1, s3, wsyn),  sd_tensor_make(SD_I32, 1, s3, code),
                        sd_tensor_make(SD_I32, 1, s4, poff),  sd_tensor_make(SD_I32, 1, s2, par)};
    for (int i = 0; i < 6; i++) names[nt + i] = sn[i], t[nt + i] = stt[i];
    nt += 6;
  }
  if (v2) {
    names[nt] = "glove.word_hash";
    t[nt++] = sd_tensor_make(SD_I32, 1, s2, ghash);
  }
  const char *keys[14] = {"format", "version", "hash", "buckets_log2", "ngram_min", "ngram_max", "window", "categories",
                          "threshold", "note", "sense_depth", "sense_max", "glove_words", "extensions"};
  const char *vals[14] = {mutate == M_FORMAT ? "something-else" : "safesd-learned-detector",
                          mutate == M_VERSION ? "3" : v2 ? "2" : "1",
                          mutate == M_HASH ? "murmur3" : "fnv1a32",
                          mutate == M_BUCKETS ? "10" : "16",
                          "2",
                          "5",
                          mutate == M_WINDOW ? "0" : "8",
                          mutate == M_CATS_FEWER ? "violence" : mutate == M_CATS_MORE ? "violence,nonexistent,x" : "violence,nonexistent",
                          mutate == M_THRESHOLD ? "1.5" : "0.5",
                          "synthetic",
                          mutate == M_SENSE_DEPTH ? "99" : sense_depth,
                          "32",
                          mutate == M_GLOVE_ROWS ? "3" : "2",
                          mutate == M_EXT_UNKNOWN ? "glove,senses,bogus" : "glove,senses"};
  assert_int_equal(sd_st_write_meta(path, nt, names, t, v2 ? (mutate == M_EXT_NONE ? 13 : 14) : 10, keys, vals), SD_OK);
  free(E);
  free(Ef);
}

static void write_model(const char *path, const row *rows, int nrows, int mutate) {
  write_model_depth(path, rows, nrows, mutate, "5");
}

static int has_index(const uint32_t *idx, int n, uint32_t x) {
  for (int i = 0; i < n; i++)
    if (idx[i] == x) return 1;
  return 0;
}

/* Version 2: a word's sense features are its synsets (through morphy's detachment rules) and
 * their ancestors to sense_depth levels; other words and other lengths have none. */
static void test_sense_features(void **state) {
  (void)state;
  const char *p = sd_test_tmp("learned_sense.safetensors");
  uint32_t b[3];
  for (int i = 0; i < 3; i++) {
    char c[16];
    int n = snprintf(c, sizeof c, "%d", (int)k_sense_code[i]);
    b[i] = sd_learned_hash('s', c, (size_t)n) & ((1u << SB) - 1);
  }
  const char *depths[3] = {"0", "1", "5"};
  for (int d = 0; d < 3; d++) {
    write_model_depth(p, NULL, 0, M_V2, depths[d]);
    sd_learned_model *m = NULL;
    assert_int_equal(sd_learned_load(p, &m), SD_OK);
    const char *prompts[4] = {"noose", "NOOSES", "ropes", "nooze"};
    for (int q = 0; q < 4; q++) {
      uint32_t *idx;
      int *word, n;
      assert_int_equal(sd_learned_features(m, prompts[q], &idx, &word, &n), SD_OK);
      int want0 = q < 2, want2 = q == 2 || (q < 2 && d >= 1), want1 = q == 2 || (q < 2 && d >= 2);
      if (has_index(idx, n, b[0]) != want0 || has_index(idx, n, b[2]) != want2 || has_index(idx, n, b[1]) != want1)
        fail_msg("depth %s, '%s': synsets %d %d %d, want %d %d %d", depths[d], prompts[q], has_index(idx, n, b[0]),
                 has_index(idx, n, b[1]), has_index(idx, n, b[2]), want0, want1, want2);
      free(idx);
      free(word);
    }
    /* the word-vector rows: exact words only (no stemming), ASCII letters */
    const uint32_t knife_row = (1u << SB) + (word_key("knife") > word_key("apple"));
    const char *gp[4] = {"knife", "KNIFE", "knives", "apple"};
    for (int q = 0; q < 4; q++) {
      uint32_t *idx;
      int *word, n;
      assert_int_equal(sd_learned_features(m, gp[q], &idx, &word, &n), SD_OK);
      int want = q < 2 ? (int)knife_row : q == 3 ? (int)((1u << SB) + (word_key("apple") > word_key("knife"))) : -1;
      int found = -1;
      for (int i = 0; i < n; i++)
        if (idx[i] >= (1u << SB)) found = (int)idx[i];
      if (found != want) fail_msg("'%s': word-vector row %d, want %d", gp[q], found, want);
      free(idx);
      free(word);
    }
    sd_learned_free(m);
  }
}

static void test_malformed(void **state) {
  (void)state;
  const char *p = sd_test_tmp("learned_bad.safetensors");
  for (int k = 0; k < M_COUNT; k++) {
    write_model(p, NULL, 0, k);
    sd_learned_model *m = NULL;
    int rc = sd_learned_load(p, &m);
    if (k == M_NONE) {
      assert_int_equal(rc, SD_OK);
      sd_learned_free(m);
      continue;
    }
    if (rc != SD_E_FORMAT || !strstr(sd_errmsg(), k_expect[k]) || !strstr(sd_errmsg(), p))
      fail_msg("mutation %d: rc %d, message \"%s\" (want \"%s\")", k, rc, sd_errmsg(), k_expect[k]);
    assert_null(m);
  }
  /* truncated: the shipped file cut in half */
  size_t len;
  char *all = sd_test_read_file(sd_test_src("data/learned/detector.safetensors"), &len);
  assert_non_null(all);
  const char *q = sd_test_tmp("learned_truncated.safetensors");
  FILE *f = fopen(q, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(all, 1, len / 2, f), len / 2);
  fclose(f);
  free(all);
  sd_learned_model *m = NULL;
  assert_true(sd_learned_load(q, &m) < 0);
  assert_non_null(strstr(sd_errmsg(), "learned detector: "));
  assert_null(m);
  /* a missing file and a directory */
  assert_int_equal(sd_learned_load(sd_test_tmp("no-such-file.safetensors"), &m), SD_E_IO);
  assert_true(sd_learned_load(sd_test_tmp(""), &m) < 0);
  assert_null(m);
}

static sd_detector *synthetic(const row *rows, int n, sd_bank **bank) {
  const char *p = sd_test_tmp("learned_synth.safetensors");
  write_model(p, rows, n, M_NONE);
  sd_learned_model *m;
  assert_int_equal(sd_learned_load(p, &m), SD_OK);
  assert_int_equal(sd_bank_load_default(bank), SD_OK);
  sd_detector *d;
  assert_int_equal(sd_learned_create(*bank, m, 1, &d), SD_OK);
  assert_int_equal(sd_learned_n_mapped(d), 1); /* "nonexistent" is not in the bank */
  return d;
}

/* Fired, one evidence entry with an empty span, its `via` holding `why`. */
static void expect_unlocalised(sd_detector *d, const char *prompt, const char *why) {
  sd_detection det;
  assert_int_equal(sd_detector_run(d, prompt, NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_int_equal(det.n_ev, 1);
  assert_int_equal(det.ev[0].start, 0);
  assert_int_equal(det.ev[0].end, 0);
  assert_string_equal(det.ev[0].matched, "");
  if (!strstr(det.ev[0].via, "not localised") || !strstr(det.ev[0].via, why))
    fail_msg("\"%s\": via \"%s\" (want \"%s\")", prompt, det.ev[0].via, why);
  sd_detection_free(&det);
}

static void test_attribution(void **state) {
  (void)state;
  row rows[] = {{"bad", 11}, {"wa", 2}, {"wb", 2}, {"wc", 2}, {"wd", 2}, {"we", 2}, {"wf", 2}, {"half", 4}, {"bit", 4}};
  sd_bank *bank;
  sd_detector *d = synthetic(rows, 9, &bank);
  int vio = sd_bank_find(bank, "violence");
  sd_detection det;
  /* one responsible word: its span */
  const char *p1 = "a bad day";
  assert_int_equal(sd_detector_run(d, p1, NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_int_equal(det.categories, 1u << vio);
  assert_int_equal(det.n_ev, 1);
  assert_int_equal(det.ev[0].category, vio);
  assert_int_equal(det.ev[0].start, 2);
  assert_int_equal(det.ev[0].end, 5);
  assert_string_equal(det.ev[0].matched, "bad");
  assert_string_equal(det.ev[0].term, "bad");
  assert_non_null(strstr(det.ev[0].via, "without \"bad\"; \"bad\" alone"));
  sd_detection_free(&det);
  /* the word written another way: the span is the prompt's text */
  assert_int_equal(sd_detector_run(d, "so B-A-D.", NULL, &det), SD_OK);
  assert_int_equal(det.n_ev, 1);
  assert_int_equal(det.ev[0].start, 3);
  assert_int_equal(det.ev[0].end, 8);
  assert_string_equal(det.ev[0].matched, "B-A-D");
  sd_detection_free(&det);
  /* five words of 2: 10 - 5 = 5; three must go (5 -> 3 -> 1 -> -1) */
  const char *p5 = "x wa wb wc wd we y";
  assert_int_equal(sd_detector_run(d, p5, NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_int_equal(det.n_ev, 3);
  for (int i = 0; i < 3; i++) {
    assert_true(det.ev[i].end == det.ev[i].start + 2);
    assert_true(det.ev[i].matched[0] == 'w');
    if (i) assert_true(det.ev[i].start > det.ev[i - 1].start);
  }
  sd_detection_free(&det);
  /* six: four would have to go, more than SD_LEARNED_MAX_SPAN_WORDS: fired, not localised */
  expect_unlocalised(d, "wa wb wc wd we wf", "no 3 content words clear it");
  /* two words of 4 each: 8 - 5 = 3 fires, either one's removal clears it, but that word
   * alone scores 4 - 5 = -1: the evidence is not clear, no span */
  expect_unlocalised(d, "a half bit", "alone)");
  /* no word at all cannot be localised either (the synthetic bias is -5: give it a low threshold) */
  sd_detector_set_threshold(d, 0.001f);
  expect_unlocalised(d, "!!!", "the prompt has none");
  sd_detector_set_threshold(d, 0.5f);
  /* far past the first window: the max over windows still finds it, the span points at it */
  const char *pl = "one two three four five six seven eight nine ten eleven twelve bad thirteen";
  assert_int_equal(sd_detector_run(d, pl, NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_int_equal(det.n_ev, 1);
  assert_int_equal(det.ev[0].start, (size_t)(strstr(pl, "bad") - pl));
  sd_detection_free(&det);
  /* benign: nothing */
  assert_int_equal(sd_detector_run(d, "a good day wa", NULL, &det), SD_OK);
  assert_false(det.fired);
  assert_int_equal(det.n_ev, 0);
  assert_true(det.score < 0.5f);
  sd_detection_free(&det);
  sd_detector_free(d);
  sd_bank_free(bank);
}

/* Function words are never evidence: a score that rests on "after" is not localised (the safe
 * text appends and deletes nothing); a content word still is. */
static void test_function_words(void **state) {
  (void)state;
  row rows[] = {{"after", 11}, {"knife", 11}};
  sd_bank *bank;
  sd_detector *d = synthetic(rows, 2, &bank);
  expect_unlocalised(d, "the day after", "no 3 content words clear it");
  sd_detection det;
  assert_int_equal(sd_detector_run(d, "a knife on a table", NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_int_equal(det.n_ev, 1);
  assert_string_equal(det.ev[0].matched, "knife");
  sd_detection_free(&det);
  sd_detector_free(d);
  sd_bank_free(bank);
}

/* A synthetic detector over rows; the gated prompts do not fire (no evidence, the score still
 * reported), the others do. */
static void expect_gates(const row *rows, int nrows, const char *const *gated, int ng, const char *const *fired, int nf) {
  sd_bank *bank;
  sd_detector *d = synthetic(rows, nrows, &bank);
  sd_detection det;
  for (int i = 0; i < ng + nf; i++) {
    const char *p = i < ng ? gated[i] : fired[i - ng];
    assert_int_equal(sd_detector_run(d, p, NULL, &det), SD_OK);
    if (det.fired != (i >= ng)) fail_msg("\"%s\" %s", p, det.fired ? "fired" : "did not fire");
    if (i < ng) assert_int_equal(det.n_ev, 0);
    else assert_true(det.n_ev >= 1);
    assert_true(det.score >= 0.5f);
    sd_detection_free(&det);
  }
  sd_detector_free(d);
  sd_bank_free(bank);
}

/* The benign-sense gate: a category whose clearing words all lie inside the bank's `safe`
 * phrases (any category's) does not fire; the same word outside such a phrase still does. */
static void test_benign_sense_gate(void **state) {
  (void)state;
  row rows[] = {{"bullet", 11}, {"nude", 11}};
  const char *benign[] = {"a bullet train past mount fuji", "Bullet Trains at a station", "nude colour heels, product shot"};
  const char *fired[] = {"a bullet in a wall", "a bullet train, a bullet in a wall", "a nude figure"};
  expect_gates(rows, 2, benign, 3, fired, 3);
}

/* The negation gate: a category whose clearing words all lie inside a negated term of the
 * bank of that category ("no blood": the lexical detector's negation rule) does not fire; a
 * negated word that is no unsafe term ("with no clothes"), an unnegated term and a negated
 * term of another category (the synthetic model's one category is violence; "nude" is a
 * sexual term) still do. */
static void test_negation_gate(void **state) {
  (void)state;
  row rows[] = {{"blood", 11}, {"clothes", 11}, {"nude", 11}};
  const char *benign[] = {"a man on a beach, no blood", "no blood stains here", "a portrait without any blood drops"};
  const char *fired[] = {"blood on the floor, not a painting", "not only blood", "a man with no clothes",
                         "no blood, blood again", "no escape. blood", "no mouth and a blood stain",
                         "a man on a beach, not nude"};
  expect_gates(rows, 3, benign, 3, fired, 7);
}

/* The cue of a negated term is covered too, for every category: "anti" of "anti-blood" (the
 * model reads "anti" as evidence, as the shipped one read it as hate); "anti" that negates
 * no term ("an anti hero") still fires, and so does "anti" before a term that is not
 * negated by it. */
static void test_negation_cue(void **state) {
  (void)state;
  row rows[] = {{"anti", 11}, {"blood", 11}};
  const char *benign[] = {"an anti-blood poster", "an anti blood march", "a poster, anti-nude"};
  const char *fired[] = {"an anti hero", "anti, blood on the floor"};
  expect_gates(rows, 2, benign, 3, fired, 2);
}

static void test_threshold(void **state) {
  (void)state;
  row rows[] = {{"bad", 11}};
  sd_bank *bank;
  sd_detector *d = synthetic(rows, 1, &bank);
  int vio = sd_bank_find(bank, "violence");
  float p[2];
  const sd_learned_model *m = sd_learned_detector_model(d);
  assert_int_equal(sd_learned_scores(m, "a bad day", p), SD_OK);
  assert_true(fabsf(p[0] - (float)(1 / (1 + exp(-6.0)))) < 1e-6f);
  assert_true(fabsf(p[1] - (float)(1 / (1 + exp(9.0)))) < 1e-8f); /* 11 - 20 */
  assert_true(d->threshold == 0.5f); /* the file's own */
  sd_detection det;
  sd_detector_set_threshold(d, p[0]); /* fires at exactly the threshold */
  assert_int_equal(sd_detector_run(d, "a bad day", NULL, &det), SD_OK);
  assert_true(det.fired);
  assert_true(det.score == p[0]);
  assert_true(det.cat_score[vio] == p[0]);
  assert_true(det.threshold == p[0]);
  sd_detection_free(&det);
  sd_detector_set_threshold(d, nextafterf(p[0], 1));
  assert_int_equal(sd_detector_run(d, "a bad day", NULL, &det), SD_OK);
  assert_false(det.fired);
  assert_int_equal(det.n_ev, 0);
  sd_detection_free(&det);
  sd_detector_set_enabled(d, 0);
  assert_int_equal(sd_detector_run(d, "a bad day", NULL, &det), SD_OK);
  assert_false(det.fired);
  sd_detection_free(&det);
  sd_detector_free(d);
  sd_bank_free(bank);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash),      cmocka_unit_test(test_words),       cmocka_unit_test(test_shipped_defaults), cmocka_unit_test(test_identity_words), cmocka_unit_test(test_context_gates), cmocka_unit_test(test_negation_cue),
      cmocka_unit_test(test_malformed), cmocka_unit_test(test_attribution), cmocka_unit_test(test_threshold),
      cmocka_unit_test(test_benign_sense_gate), cmocka_unit_test(test_negation_gate), cmocka_unit_test(test_function_words), cmocka_unit_test(test_sense_features),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
