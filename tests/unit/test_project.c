/* The `project` safety-context strategy (safety/strategy.h): the orthonormal basis of the
 * concept directions (modified Gram-Schmidt with a tolerance), the projection of flagged
 * token states (component along the directions removed, every other row bit-identical,
 * idempotent), degenerate directions (zero, collinear, nearly collinear, non-finite), and
 * the mapping of the detectors' evidence to framed token positions. */
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
#include "safety/lexical.h"
#include "safety/strategy.h"
#include "text/tokenizer.h"
#include "testutil.h"

#define D 64

/* deterministic pseudo-random floats in [-1, 1) */
static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static float frand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((double)(g_rng >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}
static void fill(float *v, size_t n, float scale) {
  for (size_t i = 0; i < n; i++) v[i] = scale * frand();
}
static double dotd(const float *a, const float *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}
static double norm(const float *a, int n) { return sqrt(dotd(a, a, n)); }

static void test_basis_orthonormal(void **state) {
  (void)state;
  float dirs[5 * D], q[5 * D];
  fill(dirs, sizeof dirs / sizeof *dirs, 1.0f);
  /* correlated directions, as CLIP embeddings are: a common component plus a small part */
  for (int i = 1; i < 5; i++)
    for (int k = 0; k < D; k++) dirs[i * D + k] = dirs[k] + 0.3f * dirs[i * D + k];
  int rank = -1;
  assert_int_equal(sd_orthonormal_basis(dirs, 5, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(rank, 5);
  for (int i = 0; i < rank; i++)
    for (int j = 0; j < rank; j++) {
      double d = dotd(q + i * D, q + j * D, D);
      assert_true(fabs(d - (i == j ? 1.0 : 0.0)) < 1e-6);
    }
  /* each direction lies in the span: removing the basis leaves (almost) nothing */
  for (int i = 0; i < 5; i++) {
    float v[D];
    memcpy(v, dirs + i * D, sizeof v);
    double n0 = norm(v, D);
    sd_project_out(v, D, q, rank);
    assert_true(norm(v, D) < 1e-6 * n0);
  }
}

static void test_projection_removes_component(void **state) {
  (void)state;
  float dirs[3 * D], q[3 * D], h[D];
  fill(dirs, sizeof dirs / sizeof *dirs, 1.0f);
  int rank;
  assert_int_equal(sd_orthonormal_basis(dirs, 3, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(rank, 3);
  for (int trial = 0; trial < 20; trial++) {
    fill(h, D, 10.0f);
    /* give h a large component along the directions */
    for (int k = 0; k < D; k++) h[k] += 25.0f * dirs[k] - 7.0f * dirs[2 * D + k];
    float before[D];
    memcpy(before, h, sizeof h);
    double hn = norm(h, D);
    sd_project_out(h, D, q, rank);
    for (int i = 0; i < 3; i++) {
      assert_true(fabs(dotd(h, q + i * D, D)) < 1e-5 * hn);
      assert_true(fabs(dotd(h, dirs + i * D, D)) < 1e-5 * hn * norm(dirs + i * D, D));
    }
    /* what was removed lies in the span; what is left is the orthogonal part: h = p + r */
    float removed[D];
    for (int k = 0; k < D; k++) removed[k] = before[k] - h[k];
    float rr[D];
    memcpy(rr, removed, sizeof rr);
    sd_project_out(rr, D, q, rank);
    assert_true(norm(rr, D) < 1e-5 * hn);
  }
}

static void test_exact_on_axes(void **state) {
  (void)state;
  /* directions along axes 0 and 3 (one of them scaled): the projection zeroes exactly those */
  float dirs[2 * 8] = {0}, q[2 * 8], h[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  dirs[0] = 1;
  dirs[8 + 3] = -2.5f;
  int rank;
  assert_int_equal(sd_orthonormal_basis(dirs, 2, 8, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(rank, 2);
  sd_project_out(h, 8, q, rank);
  float want[8] = {0, 2, 3, 0, 5, 6, 7, 8};
  for (int k = 0; k < 8; k++) assert_true(h[k] == want[k]);
}

static void test_untouched_rows_bit_identical(void **state) {
  (void)state;
  enum { SEQ = 77 };
  float *st = malloc(sizeof(float) * SEQ * D), *orig = malloc(sizeof(float) * SEQ * D);
  float dirs[2 * D], q[2 * D];
  assert_non_null(st);
  assert_non_null(orig);
  fill(st, (size_t)SEQ * D, 3.0f);
  fill(dirs, 2 * D, 1.0f);
  memcpy(orig, st, sizeof(float) * SEQ * D);
  int rank, pos[3] = {1, 5, 76};
  assert_int_equal(sd_orthonormal_basis(dirs, 2, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(sd_project_tokens(st, SEQ, D, pos, 3, q, rank), SD_OK);
  for (int t = 0; t < SEQ; t++) {
    int flagged = t == 1 || t == 5 || t == 76;
    int same = memcmp(st + t * D, orig + t * D, sizeof(float) * D) == 0;
    assert_int_equal(same, !flagged);
  }
  /* rank 0 (nothing to project against): every row bit-identical */
  memcpy(st, orig, sizeof(float) * SEQ * D);
  assert_int_equal(sd_project_tokens(st, SEQ, D, pos, 3, q, 0), SD_OK);
  assert_memory_equal(st, orig, sizeof(float) * SEQ * D);
  /* bad positions */
  int badpos[1] = {SEQ};
  assert_int_equal(sd_project_tokens(st, SEQ, D, badpos, 1, q, rank), SD_E_ARG);
  badpos[0] = -1;
  assert_int_equal(sd_project_tokens(st, SEQ, D, badpos, 1, q, rank), SD_E_ARG);
  free(st);
  free(orig);
}

static void test_idempotent(void **state) {
  (void)state;
  float dirs[4 * D], q[4 * D], h[D], once[D];
  fill(dirs, 4 * D, 1.0f);
  int rank;
  assert_int_equal(sd_orthonormal_basis(dirs, 4, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  for (int trial = 0; trial < 20; trial++) {
    fill(h, D, 50.0f);
    sd_project_out(h, D, q, rank);
    memcpy(once, h, sizeof h);
    sd_project_out(h, D, q, rank);
    double hn = norm(once, D);
    for (int k = 0; k < D; k++) assert_true(fabs((double)h[k] - once[k]) <= 1e-6 * hn);
  }
}

static void test_degenerate_directions(void **state) {
  (void)state;
  float dirs[6 * D], q[6 * D];
  fill(dirs, D, 1.0f);                                            /* v */
  memset(dirs + D, 0, sizeof(float) * D);                         /* zero */
  for (int k = 0; k < D; k++) dirs[2 * D + k] = -3.0f * dirs[k];  /* collinear with v */
  fill(dirs + 3 * D, D, 1.0f);                                    /* w */
  for (int k = 0; k < D; k++) dirs[4 * D + k] = 2.0f * dirs[k] + 0.5f * dirs[3 * D + k]; /* in span(v, w) */
  for (int k = 0; k < D; k++) dirs[5 * D + k] = dirs[3 * D + k] + (k == 0 ? 1e-6f : 0.0f); /* nearly w */
  int rank = -1;
  assert_int_equal(sd_orthonormal_basis(dirs, 6, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(rank, 2);
  for (int i = 0; i < rank; i++) {
    assert_true(fabs(norm(q + i * D, D) - 1.0) < 1e-6);
    for (int k = 0; k < D; k++) assert_true(isfinite(q[i * D + k]));
  }
  assert_true(fabs(dotd(q, q + D, D)) < 1e-6);
  /* tolerance 0 keeps a direction with any residual at all, still orthonormal */
  assert_int_equal(sd_orthonormal_basis(dirs + 3 * D, 1, D, 0.0f, q, &rank), SD_OK);
  assert_int_equal(rank, 1);
  /* only zero directions: rank 0; no directions: rank 0 */
  float zero[2 * D] = {0};
  assert_int_equal(sd_orthonormal_basis(zero, 2, D, SD_PROJECT_TOL, q, &rank), SD_OK);
  assert_int_equal(rank, 0);
  assert_int_equal(sd_orthonormal_basis(NULL, 0, D, SD_PROJECT_TOL, NULL, &rank), SD_OK);
  assert_int_equal(rank, 0);
  /* a non-finite value is an error, not a silent NaN basis */
  dirs[7] = NAN;
  assert_int_equal(sd_orthonormal_basis(dirs, 6, D, SD_PROJECT_TOL, q, &rank), SD_E_ARG);
  dirs[7] = INFINITY;
  assert_int_equal(sd_orthonormal_basis(dirs, 6, D, SD_PROJECT_TOL, q, &rank), SD_E_ARG);
  assert_int_equal(sd_orthonormal_basis(dirs, 1, 0, SD_PROJECT_TOL, q, &rank), SD_E_ARG);
  assert_int_equal(sd_orthonormal_basis(dirs, 1, D, -1.0f, q, &rank), SD_E_ARG);
}

/* ---- token positions ------------------------------------------------------------------ */

static sd_tokenizer *g_tok;
static sd_bank *g_bank;
static sd_detector *g_lex;

static const char *BANK =
    "[violence]\n"
    "terms = blood, knife, gore\n"
    "descriptions = a violent scene\n"
    "[sexual]\n"
    "terms = nude\n";

static int setup(void **state) {
  (void)state;
  sd_lexical_options o = {.wordnet = 0, .cache_path = ""};
  if (sd_tokenizer_load_default(&g_tok) || sd_bank_parse(BANK, strlen(BANK), "test.bank", &g_bank) ||
      sd_lexical_create(g_bank, &o, &g_lex)) {
    fprintf(stderr, "setup: %s\n", sd_errmsg());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sd_detector_free(g_lex);
  sd_bank_free(g_bank);
  sd_tokenizer_free(g_tok);
  return 0;
}

/* Positions for prompt as the lexical detector flags it. */
static int positions(const char *prompt, int *out, int cap) {
  sd_detection det;
  assert_int_equal(sd_detector_run(g_lex, prompt, NULL, &det), SD_OK);
  int *pos = NULL, n = -1;
  assert_int_equal(sd_project_positions(g_tok, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_OK);
  sd_detection_free(&det);
  assert_true(n <= cap);
  for (int i = 0; i < n; i++) out[i] = pos[i];
  free(pos);
  return n;
}

/* The token string at framed position p of prompt. */
static const char *token_at(const char *prompt, int p) {
  int32_t ids[SD_CLIP_CONTEXT];
  assert_true(sd_tokenize_prompt(g_tok, prompt, 49407, SD_CLIP_CONTEXT, ids) > p);
  return sd_tokenizer_token(g_tok, ids[p]);
}

static void test_positions_lexical(void **state) {
  (void)state;
  int pos[80], n;
  const char *p1 = "a man holding a knife, blood on the floor";
  n = positions(p1, pos, 80);
  /* <start> a man holding a knife , blood on the floor */
  assert_int_equal(n, 2);
  assert_int_equal(pos[0], 5);
  assert_int_equal(pos[1], 7);
  assert_string_equal(token_at(p1, 5), "knife</w>");
  assert_string_equal(token_at(p1, 7), "blood</w>");
  /* case: the word's token */
  const char *p2 = "BLOOD on the floor";
  n = positions(p2, pos, 80);
  assert_int_equal(n, 1);
  assert_int_equal(pos[0], 1);
  assert_string_equal(token_at(p2, pos[0]), "blood</w>");
  /* an obfuscated word split into many tokens: every token of the span */
  const char *p3 = "the b.l.o.o.d stain";
  n = positions(p3, pos, 80);
  int32_t *ids;
  size_t nid;
  assert_int_equal(sd_tokenize(g_tok, "b.l.o.o.d", 9, &ids, &nid), SD_OK);
  assert_int_equal(n, (int)nid);
  for (int i = 0; i < n; i++) assert_int_equal(pos[i], 2 + i);
  free(ids);
  /* benign prompt: nothing */
  assert_int_equal(positions("a red apple on a table", pos, 80), 0);
  /* past the 75 tokens the encoder sees: dropped */
  char longp[1024] = "";
  for (int i = 0; i < 80; i++) strcat(longp, "cat ");
  strcat(longp, "blood");
  assert_int_equal(positions(longp, pos, 80), 0);
  /* at the last position kept: position 75 */
  longp[0] = 0;
  for (int i = 0; i < 74; i++) strcat(longp, "cat ");
  strcat(longp, "blood cat cat");
  n = positions(longp, pos, 80);
  assert_int_equal(n, 1);
  assert_int_equal(pos[0], 75);
}

static void test_positions_handmade(void **state) {
  (void)state;
  const char *prompt = "a bloodbath";
  sd_evidence ev[4] = {{0}};
  sd_detection det = {0};
  det.ev = ev;
  det.categories = 1u; /* violence fired, sexual did not */
  /* a span cut inside a word: the token overlapping it is moved */
  ev[0].category = 0;
  ev[0].start = 2;
  ev[0].end = 7; /* "blood" of "bloodbath" */
  det.n_ev = 1;
  int *pos = NULL, n = -1;
  assert_int_equal(sd_project_positions(g_tok, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_OK);
  assert_true(n >= 1);
  assert_int_equal(pos[0], 2);
  free(pos);
  /* evidence of a category that did not fire is ignored; a token position is used as is
   * (the semantic detector's token-level evidence), EOS included */
  ev[0] = (sd_evidence){.category = 1, .start = 2, .end = 11};
  ev[1] = (sd_evidence){.category = 0, .start = 0, .end = 11, .token = 3};
  det.n_ev = 2;
  int32_t ids[SD_CLIP_CONTEXT];
  int len = sd_tokenize_prompt(g_tok, prompt, 49407, SD_CLIP_CONTEXT, ids);
  assert_true(len >= 4);
  ev[1].token = len - 1; /* EOS */
  assert_int_equal(sd_project_positions(g_tok, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_OK);
  assert_int_equal(n, 1);
  assert_int_equal(pos[0], len - 1);
  free(pos);
  /* a whole-prompt span (the semantic detector's prompt-level evidence): every word token */
  ev[1].token = 0;
  assert_int_equal(sd_project_positions(g_tok, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_OK);
  assert_int_equal(n, len - 2);
  for (int i = 0; i < n; i++) assert_int_equal(pos[i], 1 + i);
  free(pos);
  /* the same position from two pieces of evidence: once */
  ev[0] = (sd_evidence){.category = 0, .start = 2, .end = 11};
  ev[1] = (sd_evidence){.category = 0, .start = 0, .end = 0, .token = 2};
  assert_int_equal(sd_project_positions(g_tok, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_OK);
  for (int i = 1; i < n; i++) assert_true(pos[i] > pos[i - 1]);
  assert_int_equal(pos[0], 2);
  free(pos);
  assert_int_equal(sd_project_positions(NULL, prompt, &det, 1, SD_CLIP_CONTEXT, &pos, &n), SD_E_ARG);
}

static void test_safety_text_unchanged(void **state) {
  (void)state;
  const char *prompt = "a man holding a knife, blood on the floor";
  sd_detection det;
  assert_int_equal(sd_detector_run(g_lex, prompt, NULL, &det), SD_OK);
  assert_true(det.fired);
  char *t = NULL;
  assert_int_equal(sd_safety_text(g_bank, prompt, &det, 1, SD_STRATEGY_PROJECT, &t), SD_OK);
  assert_string_equal(t, prompt);
  free(t);
  sd_detection_free(&det);
  assert_int_equal(sd_strategy_parse("project"), SD_STRATEGY_PROJECT);
  assert_string_equal(sd_strategy_name(SD_STRATEGY_PROJECT), "project");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basis_orthonormal),
      cmocka_unit_test(test_projection_removes_component),
      cmocka_unit_test(test_exact_on_axes),
      cmocka_unit_test(test_untouched_rows_bit_identical),
      cmocka_unit_test(test_idempotent),
      cmocka_unit_test(test_degenerate_directions),
      cmocka_unit_test(test_positions_lexical),
      cmocka_unit_test(test_positions_handmade),
      cmocka_unit_test(test_safety_text_unchanged),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
