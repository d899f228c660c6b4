/* The UCE linear-algebra core (edit/uce.h): hand-checked 2×2 edits, agreement with a plain
 * Gauss-Jordan solve of the same closed form on random sizes (rows ≠ d, erase + preserve),
 * the λ → 0 interpolation and the untouched orthogonal complement, the fit measures, the
 * token-state selection rules, and the error paths (no erase state, non-finite states and
 * weights, negative or non-finite scales, singular and nearly singular systems, bad lengths,
 * an empty concept list for a whole-model edit). */
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
#include "edit/uce.h"
#include "testutil.h"
#include "common/check_err.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dULL;
static float frand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((double)(g_rng >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}
static void fill(float *v, size_t n) {
  for (size_t i = 0; i < n; i++) v[i] = frand();
}

static sd_uce_solver *make(int d, int ne, const float *ce, const float *cg, int np, const float *cp, double lam,
                           double se, double sp) {
  sd_uce_terms t = {d, ne, ce, cg, np, cp, lam, se, sp};
  sd_uce_solver *s = NULL;
  int rc = sd_uce_solver_create(&t, &s);
  if (rc) fprintf(stderr, "solver: %s\n", sd_errmsg());
  assert_int_equal(rc, SD_OK);
  return s;
}

/* W = I, erase e1 -> guide e2, λ = 1: A = diag(2, 1), B = I + e2 e1ᵀ, W' = [[.5, 0], [.5, 1]] */
static void test_hand_2x2(void **state) {
  (void)state;
  const float W[4] = {1, 0, 0, 1}, c[2] = {1, 0}, g[2] = {0, 1};
  sd_uce_solver *s = make(2, 1, c, g, 0, NULL, 1.0, 1.0, 0.1);
  float Wn[4];
  assert_int_equal(sd_uce_apply(s, W, 2, Wn), SD_OK);
  const float want[4] = {0.5f, 0, 0.5f, 1};
  for (int i = 0; i < 4; i++) assert_true(fabsf(Wn[i] - want[i]) < 1e-6f);
  /* fit: ‖W'−W‖_F/‖W‖_F = √(.25+.25)/√2 = .5; W'c − Wc* = (.5, .5) − (0, 1): √.5 / 1 */
  sd_uce_fit fit;
  assert_int_equal(sd_uce_measure(s, W, Wn, 2, &fit), SD_OK);
  assert_true(fabs(fit.change - 0.5) < 1e-6);
  assert_true(fabs(fit.erase - sqrt(0.5)) < 1e-6);
  assert_true(fit.preserve == 0);
  sd_uce_solver_free(s);
}

/* W = [[1,2],[3,4]], erase e1 -> guide 0, preserve e2 (s_p = 1), λ = 1:
 * A = 2I, B = W + (W e2) e2ᵀ = [[1,4],[3,8]], W' = B / 2. In place (w_new = w). */
static void test_hand_preserve(void **state) {
  (void)state;
  float W[4] = {1, 2, 3, 4};
  const float c[2] = {1, 0}, g[2] = {0, 0}, p[2] = {0, 1};
  sd_uce_solver *s = make(2, 1, c, g, 1, p, 1.0, 1.0, 1.0);
  assert_int_equal(sd_uce_apply(s, W, 2, W), SD_OK);
  const float want[4] = {0.5f, 2, 1.5f, 4};
  for (int i = 0; i < 4; i++) assert_true(fabsf(W[i] - want[i]) < 1e-6f);
  sd_uce_solver_free(s);
}

/* Gauss-Jordan with partial pivoting: X = B·A⁻¹ for A [d,d], B [rows,d] (double). */
static void naive(int d, int rows, const double *A, const double *B, double *X) {
  double *M = malloc(sizeof(double) * (size_t)d * (size_t)(d + rows));
  /* solve A·Xᵀ = Bᵀ: augmented [A | Bᵀ] */
  for (int i = 0; i < d; i++) {
    for (int j = 0; j < d; j++) M[i * (d + rows) + j] = A[i * d + j];
    for (int r = 0; r < rows; r++) M[i * (d + rows) + d + r] = B[r * d + i];
  }
  for (int col = 0; col < d; col++) {
    int piv = col;
    for (int i = col + 1; i < d; i++)
      if (fabs(M[i * (d + rows) + col]) > fabs(M[piv * (d + rows) + col])) piv = i;
    for (int j = 0; j < d + rows; j++) {
      double t = M[col * (d + rows) + j];
      M[col * (d + rows) + j] = M[piv * (d + rows) + j];
      M[piv * (d + rows) + j] = t;
    }
    double pv = M[col * (d + rows) + col];
    for (int j = 0; j < d + rows; j++) M[col * (d + rows) + j] /= pv;
    for (int i = 0; i < d; i++) {
      if (i == col) continue;
      double f = M[i * (d + rows) + col];
      for (int j = 0; j < d + rows; j++) M[i * (d + rows) + j] -= f * M[col * (d + rows) + j];
    }
  }
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < d; i++) X[r * d + i] = M[i * (d + rows) + d + r];
  free(M);
}

static void test_random_vs_naive(void **state) {
  (void)state;
  enum { D = 16, R = 5, NE = 3, NP = 4 };
  const double lam = 0.3, se = 0.7, sp = 0.2;
  float W[R * D], ce[NE * D], cg[NE * D], cp[NP * D], Wn[R * D];
  fill(W, R * D);
  fill(ce, NE * D);
  fill(cg, NE * D);
  fill(cp, NP * D);
  sd_uce_solver *s = make(D, NE, ce, cg, NP, cp, lam, se, sp);
  assert_int_equal(sd_uce_apply(s, W, R, Wn), SD_OK);
  double A[D * D], B[R * D], X[R * D];
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++) {
      double a = i == j ? lam : 0;
      for (int k = 0; k < NE; k++) a += se * ce[k * D + i] * ce[k * D + j];
      for (int k = 0; k < NP; k++) a += sp * cp[k * D + i] * cp[k * D + j];
      A[i * D + j] = a;
    }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < D; j++) {
      double b = lam * W[r * D + j];
      for (int k = 0; k < NE; k++) {
        double v = 0; /* v*_k = W c*_k */
        for (int i = 0; i < D; i++) v += (double)W[r * D + i] * cg[k * D + i];
        b += se * v * ce[k * D + j];
      }
      for (int k = 0; k < NP; k++) {
        double v = 0;
        for (int i = 0; i < D; i++) v += (double)W[r * D + i] * cp[k * D + i];
        b += sp * v * cp[k * D + j];
      }
      B[r * D + j] = b;
    }
  naive(D, R, A, B, X);
  double worst = 0, big = 0;
  for (int i = 0; i < R * D; i++) {
    worst = sd_check_max(worst, fabs(Wn[i] - X[i]));
    big = fmax(big, fabs(X[i]));
  }
  assert_true(worst <= 1e-6 * big);
  sd_uce_solver_free(s);
}

/* λ → 0 with s_e = s_p = 1 and fewer states than d: the edit meets its targets, W'c_i = Wc*_i
 * and W'c_j = Wc_j; and any u orthogonal to every c_i, c_j passes unchanged (for any λ). */
static void test_interpolation_and_complement(void **state) {
  (void)state;
  enum { D = 12, R = 7, NE = 2, NP = 3 };
  float W[R * D], ce[NE * D], cg[NE * D], cp[NP * D], Wn[R * D];
  fill(W, R * D);
  fill(ce, NE * D);
  fill(cg, NE * D);
  fill(cp, NP * D);
  sd_uce_solver *s = make(D, NE, ce, cg, NP, cp, 1e-9, 1.0, 1.0);
  assert_int_equal(sd_uce_apply(s, W, R, Wn), SD_OK);
  sd_uce_fit fit;
  assert_int_equal(sd_uce_measure(s, W, Wn, R, &fit), SD_OK);
  assert_true(fit.erase < 1e-5);
  assert_true(fit.preserve < 1e-5);
  assert_true(fit.change > 0.01);
  sd_uce_solver_free(s);

  /* the complement: u = e_D-1 with every state's last coordinate zeroed */
  for (int k = 0; k < NE; k++) ce[k * D + D - 1] = 0;
  for (int k = 0; k < NP; k++) cp[k * D + D - 1] = 0;
  s = make(D, NE, ce, cg, NP, cp, 0.1, 1.0, 0.1);
  assert_int_equal(sd_uce_apply(s, W, R, Wn), SD_OK);
  for (int r = 0; r < R; r++) assert_true(fabsf(Wn[r * D + D - 1] - W[r * D + D - 1]) < 1e-6f);
  sd_uce_solver_free(s);
}

static void test_errors(void **state) {
  (void)state;
  float c[2] = {1, 0}, g[2] = {0, 1}, W[4] = {1, 0, 0, 1}, Wn[4];
  sd_uce_solver *s = NULL;
  sd_uce_terms t = {2, 0, c, g, 0, NULL, 0.1, 1, 0.1};
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG); /* no erase state */
  assert_non_null(strstr(sd_errmsg(), "no erase"));
  assert_null(s);
  t.n_erase = 1;
  t.lambda = -0.1;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  t.lambda = NAN;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  t.lambda = 0.1;
  t.preserve_scale = INFINITY;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  t.preserve_scale = 0.1;
  t.erase_scale = -1;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  t.erase_scale = 1;
  c[1] = NAN;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "not finite"));
  c[1] = 0;
  g[0] = INFINITY;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  g[0] = 0;
  /* singular: λ = 0 and one state in 2 dimensions */
  t.lambda = 0;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "singular"));
  assert_null(s);
  /* nearly singular: λ = 0, two nearly collinear states (Cholesky alone would pass) */
  float c2[4] = {1, 0, 1, 1e-9f}, g2[4] = {0, 1, 0, 1};
  sd_uce_terms t2 = {2, 2, c2, g2, 0, NULL, 0, 1, 0.1};
  assert_int_equal(sd_uce_solver_create(&t2, &s), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "singular"));
  /* λ = 0 is fine when the states span the space */
  float c3[4] = {1, 0, 0, 1};
  t2.erase = c3;
  assert_int_equal(sd_uce_solver_create(&t2, &s), SD_OK);
  sd_uce_solver_free(s);
  /* a non-finite weight */
  t.lambda = 0.1;
  assert_int_equal(sd_uce_solver_create(&t, &s), SD_OK);
  W[3] = NAN;
  assert_int_equal(sd_uce_apply(s, W, 2, Wn), SD_E_ARG);
  W[3] = 1;
  assert_int_equal(sd_uce_apply(s, W, 0, Wn), SD_E_ARG);
  sd_uce_solver_free(s);
  sd_uce_solver_free(NULL);
}

/* states numbered by position: row k of a context holds k (d = 1) */
static void test_token_states(void **state) {
  (void)state;
  enum { CTX = 6 };
  float a[CTX], b[CTX], eo[CTX], go[CTX];
  for (int k = 0; k < CTX; k++) { a[k] = (float)k; b[k] = 100.0f + (float)k; }
  /* erase "x y" (BOS x y EOS, len 4, last = 2); guide "" (len 2, last = BOS = 0) */
  assert_int_equal(sd_uce_pair_states(SD_UCE_TOKENS_LAST, CTX, 1, a, 4, b, 2, eo, go), 1);
  assert_true(eo[0] == 2 && go[0] == 100);
  /* tail: pairs from each last position, 6 - max(2, 0) = 4 of them */
  assert_int_equal(sd_uce_pair_states(SD_UCE_TOKENS_TAIL, CTX, 1, a, 4, b, 2, eo, go), 4);
  for (int k = 0; k < 4; k++) assert_true(eo[k] == 2 + k && go[k] == 100 + k);
  /* the other way round: the guide is the longer text */
  assert_int_equal(sd_uce_pair_states(SD_UCE_TOKENS_TAIL, CTX, 1, a, 3, b, 5, eo, go), 3);
  for (int k = 0; k < 3; k++) assert_true(eo[k] == 1 + k && go[k] == 103 + k);
  /* preserve */
  assert_int_equal(sd_uce_preserve_states(SD_UCE_TOKENS_LAST, CTX, 1, a, 3, eo), 1);
  assert_true(eo[0] == 1);
  assert_int_equal(sd_uce_preserve_states(SD_UCE_TOKENS_TAIL, CTX, 1, a, 3, eo), CTX);
  for (int k = 0; k < CTX; k++) assert_true(eo[k] == k);
  /* bad lengths */
  assert_int_equal(sd_uce_pair_states(SD_UCE_TOKENS_LAST, CTX, 1, a, 1, b, 2, eo, go), SD_E_ARG);
  assert_int_equal(sd_uce_pair_states(SD_UCE_TOKENS_LAST, CTX, 1, a, 2, b, CTX + 1, eo, go), SD_E_ARG);
  assert_int_equal(sd_uce_preserve_states(SD_UCE_TOKENS_LAST, CTX, 1, a, 0, eo), SD_E_ARG);
  assert_int_equal(sd_uce_pair_states((sd_uce_tokens)7, CTX, 1, a, 3, b, 3, eo, go), SD_E_ARG);
  /* names */
  assert_int_equal(sd_uce_tokens_parse("last"), SD_UCE_TOKENS_LAST);
  assert_int_equal(sd_uce_tokens_parse("tail"), SD_UCE_TOKENS_TAIL);
  assert_int_equal(sd_uce_tokens_parse("all"), -1);
  assert_string_equal(sd_uce_tokens_name(SD_UCE_TOKENS_TAIL), "tail");
}

/* whole-model edits: option errors come before any model is opened */
static void test_model_options(void **state) {
  (void)state;
  sd_uce_opts o;
  sd_uce_opts_init(&o);
  assert_true(o.lambda == 0.1 && o.erase_scale == 1.0 && o.preserve_scale == 0.1 && o.tokens == SD_UCE_TOKENS_LAST);
  sd_uce_result r;
  const char *out = sd_test_tmp("uce_never");
  assert_int_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_E_ARG); /* empty concept list */
  assert_non_null(strstr(sd_errmsg(), "no concept to erase"));
  const char *erase[] = {"a", "b", "c"}, *guide[] = {"x", "y"}, *empty[] = {""}, *none[] = {NULL};
  o.erase = erase;
  o.n_erase = 3;
  o.guide = guide;
  o.n_guide = 2;
  assert_int_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "2 guide concepts for 3 erase concepts"));
  o.n_guide = 0;
  o.preserve = none;
  o.n_preserve = 1;
  assert_int_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_E_ARG);
  o.n_preserve = 0;
  o.erase = empty; /* erasing the empty text (BOS) is refused */
  o.n_erase = 1;
  assert_int_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_E_ARG);
  assert_non_null(strstr(sd_errmsg(), "erase concept 1 is empty"));
  o.erase = erase;
  o.n_erase = 3;
  o.lambda = -1;
  assert_int_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_E_ARG);
  o.lambda = 0.1;
  assert_int_not_equal(sd_uce_edit_model("/nonexistent", out, &o, &r), SD_OK); /* no such model */
  assert_non_null(strstr(sd_errmsg(), "/nonexistent"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_2x2),
      cmocka_unit_test(test_hand_preserve),
      cmocka_unit_test(test_random_vs_naive),
      cmocka_unit_test(test_interpolation_and_complement),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_token_states),
      cmocka_unit_test(test_model_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
