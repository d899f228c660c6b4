/* UCE closed-form edit of the cross-attention projections (edit/uce.h). */
#include "edit/uce.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "api/model_write.h"
#include "core/error.h"
#include "core/ops.h"
#include "io/fileio.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "text/tokenizer.h"

/* ---- the linear-algebra core ---------------------------------------------------------- */

struct sd_uce_solver {
  int d, n_e, n_p;
  double lambda, se, sp;
  double *ce, *cg, *cp; /* [n_e,d], [n_e,d], [n_p,d] */
  double *chol;         /* d×d Cholesky factor of A (lower, column-major) */
};

static int all_finite_f(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

static double *to_double(const float *x, size_t n) {
  double *y = malloc((n ? n : 1) * sizeof *y);
  if (y)
    for (size_t i = 0; i < n; i++) y[i] = x[i];
  return y;
}

void sd_uce_solver_free(sd_uce_solver *s) {
  if (!s) return;
  free(s->ce);
  free(s->cg);
  free(s->cp);
  free(s->chol);
  free(s);
}

int sd_uce_solver_create(const sd_uce_terms *t, sd_uce_solver **out) {
  *out = NULL;
  if (!t) return sd_fail(SD_E_ARG, "uce: no terms");
  if (t->d < 1) return sd_fail(SD_E_ARG, "uce: state width %d", t->d);
  if (t->n_erase < 1 || !t->erase || !t->guide) return sd_fail(SD_E_ARG, "UCE: no erase concept states");
  if (t->n_preserve < 0 || (t->n_preserve > 0 && !t->preserve)) return sd_fail(SD_E_ARG, "uce: bad preserve states");
  if (!isfinite(t->lambda) || t->lambda < 0) return sd_fail(SD_E_ARG, "lambda must be a finite number >= 0 (got %g)", t->lambda);
  if (!isfinite(t->erase_scale) || t->erase_scale < 0)
    return sd_fail(SD_E_ARG, "the erase scale must be a finite number >= 0 (got %g)", t->erase_scale);
  if (!isfinite(t->preserve_scale) || t->preserve_scale < 0)
    return sd_fail(SD_E_ARG, "the preserve scale must be a finite number >= 0 (got %g)", t->preserve_scale);
  size_t d = (size_t)t->d, ne = (size_t)t->n_erase, np = (size_t)t->n_preserve;
  if (!all_finite_f(t->erase, ne * d)) return sd_fail(SD_E_ARG, "an erase concept state is not finite");
  if (!all_finite_f(t->guide, ne * d)) return sd_fail(SD_E_ARG, "a guide concept state is not finite");
  if (np && !all_finite_f(t->preserve, np * d)) return sd_fail(SD_E_ARG, "a preserve concept state is not finite");

  sd_uce_solver *s = calloc(1, sizeof *s);
  if (!s) return sd_fail(SD_E_NOMEM, "out of memory");
  s->d = t->d;
  s->n_e = t->n_erase;
  s->n_p = t->n_preserve;
  s->lambda = t->lambda;
  s->se = t->erase_scale;
  s->sp = t->preserve_scale;
  s->ce = to_double(t->erase, ne * d);
  s->cg = to_double(t->guide, ne * d);
  s->cp = np ? to_double(t->preserve, np * d) : NULL;
  s->chol = calloc(d * d, sizeof *s->chol);
  if (!s->ce || !s->cg || (np && !s->cp) || !s->chol) {
    sd_uce_solver_free(s);
    return sd_fail(SD_E_NOMEM, "out of memory (uce system of width %zu)", d);
  }
  /* A = λI + s_e·Ceᵀ·Ce + s_p·Cpᵀ·Cp (symmetric: the lower triangle is what is used) */
  double *A = s->chol;
  for (size_t i = 0; i < d; i++) A[i * d + i] = s->lambda;
  cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)d, (int)ne, s->se, s->ce, (int)d, 1.0, A, (int)d);
  if (np) cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)d, (int)np, s->sp, s->cp, (int)d, 1.0, A, (int)d);
  /* (row-major [n,d] is column-major d×n, so "NoTrans" above is Σ c cᵀ) */
  double anorm = 0; /* 1-norm of the symmetric A, for the condition estimate */
  for (size_t j = 0; j < d; j++) {
    double col = 0;
    for (size_t i = 0; i < d; i++) col += fabs(i >= j ? A[j * d + i] : A[i * d + j]);
    if (col > anorm) anorm = col;
  }
  lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)d, A, (lapack_int)d);
  if (info > 0) {
    sd_uce_solver_free(s);
    return sd_fail(SD_E_ARG,
                   "the UCE system is singular (not positive definite at pivot %d of %zu): with lambda %g the concept "
                   "states do not span the %zu-wide space; use lambda > 0",
                   (int)info, d, t->lambda, d);
  }
  if (info < 0) {
    sd_uce_solver_free(s);
    return sd_fail(SD_E_INTERNAL, "uce: dpotrf argument %d is invalid", (int)-info);
  }
  double rcond = 0;
  info = LAPACKE_dpocon(LAPACK_COL_MAJOR, 'L', (lapack_int)d, A, (lapack_int)d, anorm, &rcond);
  if (info != 0 || !(rcond > 1e-14)) {
    sd_uce_solver_free(s);
    return sd_fail(SD_E_ARG,
                   "the UCE system is singular to working precision (reciprocal condition number %.3g) with lambda %g; "
                   "use a larger lambda",
                   rcond, t->lambda);
  }
  *out = s;
  return SD_OK;
}

/* out[rows, n] = W[rows, d] · Cᵀ (C [n, d]) */
static void w_ct(const double *W, int rows, int d, const double *C, int n, double *out) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, 1.0, W, d, C, d, 0.0, out, n);
}

int sd_uce_apply(const sd_uce_solver *s, const float *w, int rows, float *w_new) {
  if (!s || !w || !w_new || rows < 1) return sd_fail(SD_E_ARG, "uce: no weight to edit");
  size_t d = (size_t)s->d, r = (size_t)rows;
  if (!all_finite_f(w, r * d)) return sd_fail(SD_E_ARG, "the weight holds a non-finite value");
  int n = s->n_e > s->n_p ? s->n_e : s->n_p;
  double *W = to_double(w, r * d), *B = malloc(r * d * sizeof *B), *V = malloc(r * (size_t)n * sizeof *V);
  int rc = SD_OK;
  if (!W || !B || !V) { rc = sd_fail(SD_E_NOMEM, "out of memory (uce, %zu x %zu)", r, d); goto done; }
  /* B = λW + s_e·(W Cgᵀ)·Ce + s_p·(W Cpᵀ)·Cp: the targets v*_i = W c*_i, (W c_j) */
  for (size_t i = 0; i < r * d; i++) B[i] = s->lambda * W[i];
  w_ct(W, rows, s->d, s->cg, s->n_e, V);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s->d, s->n_e, s->se, V, s->n_e, s->ce, s->d, 1.0, B, s->d);
  if (s->n_p) {
    w_ct(W, rows, s->d, s->cp, s->n_p, V);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s->d, s->n_p, s->sp, V, s->n_p, s->cp, s->d, 1.0, B, s->d);
  }
  /* W_new·A = B  <=>  A·W_newᵀ = Bᵀ (A symmetric). Row-major B [rows, d] is the column-major
   * d×rows matrix Bᵀ, so one Cholesky solve in place leaves W_new in B, row-major. */
  lapack_int info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)d, (lapack_int)rows, s->chol, (lapack_int)d, B,
                                   (lapack_int)d);
  if (info != 0) { rc = sd_fail(SD_E_INTERNAL, "uce: dpotrs failed (info %d)", (int)info); goto done; }
  for (size_t i = 0; i < r * d; i++) {
    if (!isfinite(B[i]) || fabs(B[i]) > 3.0e38) { rc = sd_fail(SD_E_INTERNAL, "the edited weight is not finite"); goto done; }
  }
  for (size_t i = 0; i < r * d; i++) w_new[i] = (float)B[i];
done:
  free(W);
  free(B);
  free(V);
  return rc;
}

/* √Σ‖A[:,k] − B[:,k]‖² / √Σ‖B[:,k]‖² over [rows, n] */
static double rel_diff(const double *a, const double *b, size_t cnt) {
  double num = 0, den = 0;
  for (size_t i = 0; i < cnt; i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

int sd_uce_measure(const sd_uce_solver *s, const float *w, const float *w_new, int rows, sd_uce_fit *fit) {
  memset(fit, 0, sizeof *fit);
  size_t d = (size_t)s->d, r = (size_t)rows;
  int n = s->n_e > s->n_p ? s->n_e : s->n_p;
  double *W = to_double(w, r * d), *Wn = to_double(w_new, r * d);
  double *X = malloc(r * (size_t)n * sizeof *X), *Y = malloc(r * (size_t)n * sizeof *Y);
  int rc = SD_OK;
  if (!W || !Wn || !X || !Y) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  fit->change = rel_diff(Wn, W, r * d);
  w_ct(Wn, rows, s->d, s->ce, s->n_e, X);
  w_ct(W, rows, s->d, s->cg, s->n_e, Y);
  fit->erase = rel_diff(X, Y, r * (size_t)s->n_e);
  if (s->n_p) {
    w_ct(Wn, rows, s->d, s->cp, s->n_p, X);
    w_ct(W, rows, s->d, s->cp, s->n_p, Y);
    fit->preserve = rel_diff(X, Y, r * (size_t)s->n_p);
  }
done:
  free(W);
  free(Wn);
  free(X);
  free(Y);
  return rc;
}

/* ---- token states ----------------------------------------------------------------------- */

int sd_uce_tokens_parse(const char *s) {
  if (!s) return -1;
  if (!strcmp(s, "last")) return SD_UCE_TOKENS_LAST;
  if (!strcmp(s, "tail")) return SD_UCE_TOKENS_TAIL;
  return -1;
}

const char *sd_uce_tokens_name(sd_uce_tokens t) { return t == SD_UCE_TOKENS_TAIL ? "tail" : "last"; }

int sd_uce_pair_states(sd_uce_tokens mode, int ctx, int d, const float *erase_ctx, int erase_len,
                       const float *guide_ctx, int guide_len, float *erase_out, float *guide_out) {
  if (ctx < 2 || d < 1 || erase_len < 2 || erase_len > ctx || guide_len < 2 || guide_len > ctx)
    return sd_fail(SD_E_ARG, "uce: token lengths %d, %d outside 2..%d", erase_len, guide_len, ctx);
  int fe = erase_len - 2, fg = guide_len - 2; /* the last token before EOS (BOS for empty text) */
  int n = 1;
  if (mode == SD_UCE_TOKENS_TAIL) n = ctx - (fe > fg ? fe : fg);
  else if (mode != SD_UCE_TOKENS_LAST) return sd_fail(SD_E_ARG, "uce: unknown token mode %d", (int)mode);
  memcpy(erase_out, erase_ctx + (size_t)fe * (size_t)d, (size_t)n * (size_t)d * sizeof *erase_out);
  memcpy(guide_out, guide_ctx + (size_t)fg * (size_t)d, (size_t)n * (size_t)d * sizeof *guide_out);
  return n;
}

int sd_uce_preserve_states(sd_uce_tokens mode, int ctx, int d, const float *ctx_states, int len, float *out) {
  if (ctx < 2 || d < 1 || len < 2 || len > ctx) return sd_fail(SD_E_ARG, "uce: token length %d outside 2..%d", len, ctx);
  if (mode == SD_UCE_TOKENS_TAIL) {
    memcpy(out, ctx_states, (size_t)ctx * (size_t)d * sizeof *out);
    return ctx;
  }
  if (mode != SD_UCE_TOKENS_LAST) return sd_fail(SD_E_ARG, "uce: unknown token mode %d", (int)mode);
  memcpy(out, ctx_states + (size_t)(len - 2) * (size_t)d, (size_t)d * sizeof *out);
  return 1;
}

/* ---- editing a model ---------------------------------------------------------------------- */

void sd_uce_opts_init(sd_uce_opts *o) {
  memset(o, 0, sizeof *o);
  o->lambda = 0.1;
  o->erase_scale = 1.0;
  o->preserve_scale = 0.1;
  o->tokens = SD_UCE_TOKENS_LAST;
}

void sd_uce_result_free(sd_uce_result *r) {
  if (!r) return;
  free(r->skipped);
  r->skipped = NULL;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

/* Encode texts (n) into states [n, ctx, d] and real lengths. */
static int encode_texts(sd_clip_text *te, sd_exec *ex, const sd_tokenizer *tok, int32_t pad, const char *const *texts,
                        int n, int d, float *states, int *lens) {
  enum { BATCH = 8 };
  int32_t ids[BATCH * SD_CLIP_CONTEXT];
  sd_clip_text_opts co = {1, 1}; /* what the pipeline conditions on: last layer, final LayerNorm */
  for (int i0 = 0; i0 < n; i0 += BATCH) {
    int b = n - i0 < BATCH ? n - i0 : BATCH;
    for (int k = 0; k < b; k++) {
      int len = sd_tokenize_prompt(tok, texts[i0 + k], pad, SD_CLIP_CONTEXT, ids + (size_t)k * SD_CLIP_CONTEXT);
      if (len < 0) return sd_fail_prefix(len, "concept \"%.60s\": ", texts[i0 + k]);
      lens[i0 + k] = len;
    }
    int rc = sd_clip_text_encode(te, ex, ids, b, SD_CLIP_CONTEXT, &co,
                                 states + (size_t)i0 * SD_CLIP_CONTEXT * (size_t)d);
    if (rc) return sd_fail_prefix(rc, "encoding the concepts: ");
  }
  return SD_OK;
}

static int is_edited(const char *name, int keys) {
  return ends_with(name, ".attn2.to_v.weight") || (keys && ends_with(name, ".attn2.to_k.weight"));
}

/* The edit record (uce_edit.json / the single file's metadata). */
static char *edit_record(const char *model, const sd_uce_opts *o, int n_e_states, int n_p_states,
                         const char *const *layers, int n_layers, int compact) {
  json_t *r = json_object(), *e = json_array(), *g = json_array(), *p = json_array(), *l = json_array();
  if (!r || !e || !g || !p || !l) {
    json_decref(r); json_decref(e); json_decref(g); json_decref(p); json_decref(l);
    return NULL;
  }
  for (int i = 0; i < o->n_erase; i++) {
    json_array_append_new(e, json_string(o->erase[i]));
    json_array_append_new(g, json_string(o->n_guide == 0 ? "" : o->guide[o->n_guide == 1 ? 0 : i]));
  }
  for (int i = 0; i < o->n_preserve; i++) json_array_append_new(p, json_string(o->preserve[i]));
  for (int i = 0; i < n_layers; i++) json_array_append_new(l, json_string(layers[i]));
  json_object_set_new(r, "method", json_string("UCE"));
  json_object_set_new(r, "tool", json_string("safesd " SAFESD_VERSION));
  char *abs = realpath(model, NULL);
  json_object_set_new(r, "source", json_string(abs ? abs : model));
  free(abs);
  json_object_set_new(r, "erase", e);
  json_object_set_new(r, "guide", g);
  json_object_set_new(r, "preserve", p);
  json_object_set_new(r, "lambda", json_real(o->lambda));
  json_object_set_new(r, "erase_scale", json_real(o->erase_scale));
  json_object_set_new(r, "preserve_scale", json_real(o->preserve_scale));
  json_object_set_new(r, "tokens", json_string(sd_uce_tokens_name(o->tokens)));
  json_object_set_new(r, "edit_keys", json_boolean(o->edit_keys));
  json_object_set_new(r, "erase_states", json_integer(n_e_states));
  json_object_set_new(r, "preserve_states", json_integer(n_p_states));
  json_object_set_new(r, "layers", l);
  char *s = json_dumps(r, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
  json_decref(r);
  if (!s || compact) return s;
  size_t n = strlen(s);
  char *t = realloc(s, n + 2); /* a final newline */
  if (!t) { free(s); return NULL; }
  t[n] = '\n';
  t[n + 1] = 0;
  return t;
}

static int check_opts(const sd_uce_opts *o) {
  if (!o) return sd_fail(SD_E_ARG, "uce: no options");
  if (o->n_erase < 1 || !o->erase) return sd_fail(SD_E_ARG, "no concept to erase (give at least one)");
  for (int i = 0; i < o->n_erase; i++)
    if (!o->erase[i] || !*o->erase[i]) return sd_fail(SD_E_ARG, "erase concept %d is empty", i + 1);
  if (o->n_guide != 0 && o->n_guide != 1 && o->n_guide != o->n_erase)
    return sd_fail(SD_E_ARG, "%d guide concepts for %d erase concepts: give none, one, or one per erase concept",
                   o->n_guide, o->n_erase);
  if (o->n_guide && !o->guide) return sd_fail(SD_E_ARG, "uce: guide list is NULL");
  for (int i = 0; i < o->n_guide; i++)
    if (!o->guide[i]) return sd_fail(SD_E_ARG, "uce: guide %d is NULL", i + 1);
  if (o->n_preserve < 0 || (o->n_preserve && !o->preserve)) return sd_fail(SD_E_ARG, "uce: bad preserve list");
  for (int i = 0; i < o->n_preserve; i++)
    if (!o->preserve[i]) return sd_fail(SD_E_ARG, "uce: preserve concept %d is NULL", i + 1);
  if (!isfinite(o->lambda) || o->lambda < 0) return sd_fail(SD_E_ARG, "lambda must be a finite number >= 0 (got %g)", o->lambda);
  if (!isfinite(o->erase_scale) || o->erase_scale < 0)
    return sd_fail(SD_E_ARG, "the erase scale must be a finite number >= 0 (got %g)", o->erase_scale);
  if (!isfinite(o->preserve_scale) || o->preserve_scale < 0)
    return sd_fail(SD_E_ARG, "the preserve scale must be a finite number >= 0 (got %g)", o->preserve_scale);
  if (o->tokens != SD_UCE_TOKENS_LAST && o->tokens != SD_UCE_TOKENS_TAIL)
    return sd_fail(SD_E_ARG, "unknown token mode %d", (int)o->tokens);
  return SD_OK;
}

int sd_uce_edit_model(const char *model, const char *out, const sd_uce_opts *o, sd_uce_result *res) {
  memset(res, 0, sizeof *res);
  int rc = check_opts(o);
  if (rc) return rc;
  if (!out || !*out) return sd_fail(SD_E_ARG, "no output given");
  char bundled[4096];
  if (!model) {
    if ((rc = sd_bundled_model_dir(bundled, sizeof bundled))) return rc;
    model = bundled;
  }
  int single = ends_with(out, ".safetensors");
  struct stat sb;
  if (lstat(out, &sb) == 0) return sd_fail(SD_E_IO, "%s already exists (remove it or choose another output)", out);

  sd_model_source *m = NULL;
  sd_tokenizer *tok = NULL;
  sd_clip_text *te = NULL;
  sd_exec *ex = NULL;
  sd_uce_solver *solver = NULL;
  float *states = NULL, *ce = NULL, *cg = NULL, *cp = NULL, *wf = NULL;
  int *lens = NULL;
  const char **texts = NULL;
  sd_tensor_override *ov = NULL;
  void **bufs = NULL;
  const char **layer_names = NULL;
  char *record = NULL;
  int n_ov = 0;

  sd_model_open_opts oo = {o->config_dir, 1};
  if ((rc = sd_model_open_ex(model, &oo, &m))) goto done;
  if ((rc = sd_model_need(m, SD_COMP_TEXT)) || (rc = sd_model_need(m, SD_COMP_UNET))) goto done;
  if (!single && sd_model_layout(m) != SD_LAYOUT_DIFFUSERS) {
    rc = sd_fail(SD_E_ARG, "%s is a single file: write the edited model as a .safetensors file (-o NAME.safetensors)", model);
    goto done;
  }
  const sd_clip_text_config *tc = sd_model_text_config(m);
  const sd_unet_config *uc = sd_model_unet_config(m);
  const int d = tc->hidden;
  if (uc->cross_attention_dim != d) {
    rc = sd_fail(SD_E_FORMAT, "%s: the text encoder's width %d is not the UNet's cross-attention width %d", model, d,
                 uc->cross_attention_dim);
    goto done;
  }
  const char *vocab = sd_model_vocab_path(m), *merges = sd_model_merges_path(m);
  if ((rc = vocab && merges ? sd_tokenizer_load_hf(vocab, merges, &tok) : sd_tokenizer_load_default(&tok))) goto done;
  if ((rc = sd_clip_text_create(m, &te)) || (rc = sd_exec_create(o->n_threads, &ex))) goto done;

  /* the texts to encode: erase, their guides, preserve */
  const int ne = o->n_erase, np = o->n_preserve, nt = 2 * ne + np;
  const size_t ctx_sz = (size_t)SD_CLIP_CONTEXT * (size_t)d;
  texts = malloc((size_t)nt * sizeof *texts);
  lens = malloc((size_t)nt * sizeof *lens);
  states = malloc((size_t)nt * ctx_sz * sizeof *states);
  ce = malloc((size_t)ne * ctx_sz * sizeof *ce);
  cg = malloc((size_t)ne * ctx_sz * sizeof *cg);
  cp = malloc(((size_t)np * ctx_sz + 1) * sizeof *cp);
  if (!texts || !lens || !states || !ce || !cg || !cp) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (int i = 0; i < ne; i++) {
    texts[i] = o->erase[i];
    texts[ne + i] = o->n_guide == 0 ? "" : o->guide[o->n_guide == 1 ? 0 : i];
  }
  for (int j = 0; j < np; j++) texts[2 * ne + j] = o->preserve[j];
  if ((rc = encode_texts(te, ex, tok, tc->pad_id, texts, nt, d, states, lens))) goto done;
  int n_es = 0, n_ps = 0;
  for (int i = 0; i < ne; i++) {
    int k = sd_uce_pair_states(o->tokens, SD_CLIP_CONTEXT, d, states + (size_t)i * ctx_sz, lens[i],
                               states + (size_t)(ne + i) * ctx_sz, lens[ne + i], ce + (size_t)n_es * d,
                               cg + (size_t)n_es * d);
    if (k < 0) { rc = k; goto done; }
    n_es += k;
  }
  for (int j = 0; j < np; j++) {
    int k = sd_uce_preserve_states(o->tokens, SD_CLIP_CONTEXT, d, states + (size_t)(2 * ne + j) * ctx_sz,
                                   lens[2 * ne + j], cp + (size_t)n_ps * d);
    if (k < 0) { rc = k; goto done; }
    n_ps += k;
  }
  sd_uce_terms terms = {d, n_es, ce, cg, n_ps, np ? cp : NULL, o->lambda, o->erase_scale, o->preserve_scale};
  if ((rc = sd_uce_solver_create(&terms, &solver))) goto done;

  /* the projections to edit */
  const sd_component_weights *w = sd_model_weights(m, SD_COMP_UNET);
  int count = 0;
  for (size_t i = 0; i < w->n; i++) count += is_edited(w->w[i].name, o->edit_keys);
  if (!count) { rc = sd_fail(SD_E_FORMAT, "%s: the UNet has no cross-attention (attn2) projections to edit", model); goto done; }
  ov = calloc((size_t)count, sizeof *ov);
  bufs = calloc((size_t)count, sizeof *bufs);
  layer_names = calloc((size_t)count, sizeof *layer_names);
  if (!ov || !bufs || !layer_names) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  for (size_t i = 0; i < w->n; i++) {
    const sd_weight *wt = &w->w[i];
    if (!is_edited(wt->name, o->edit_keys)) continue;
    const sd_tensor *t = &wt->t;
    if (t->ndim != 2 || t->shape[1] != d || t->shape[0] < 1 || t->shape[0] > (1 << 20) || !sd_dtype_is_float(t->dtype)) {
      char sh[96];
      rc = sd_fail(SD_E_FORMAT, "%s: %s has shape %s %s, expected [rows, %d] float", model, wt->source_name,
                   sd_dtype_name(t->dtype), sd_shape_str(t, sh, sizeof sh), d);
      goto done;
    }
    int rows = (int)t->shape[0];
    size_t cnt = (size_t)rows * (size_t)d;
    float *nw = malloc(cnt * sizeof *nw);
    wf = malloc(cnt * sizeof *wf);
    void *stored = malloc(cnt * sd_dtype_size(t->dtype));
    if (!nw || !wf || !stored) {
      free(nw); free(stored);
      rc = sd_fail(SD_E_NOMEM, "out of memory");
      goto done;
    }
    sd_to_f32(wf, t->data, t->dtype, cnt);
    sd_uce_fit fit;
    rc = sd_uce_apply(solver, wf, rows, nw);
    if (rc == SD_OK) rc = sd_uce_measure(solver, wf, nw, rows, &fit);
    if (rc == SD_OK) sd_from_f32(stored, t->dtype, nw, cnt);
    free(nw);
    free(wf);
    wf = NULL;
    if (rc) {
      free(stored);
      sd_fail_prefix(rc, "%s: ", wt->name);
      goto done;
    }
    bufs[n_ov] = stored;
    ov[n_ov].comp = SD_COMP_UNET;
    ov[n_ov].name = wt->name;
    ov[n_ov].t = sd_tensor_make(t->dtype, 2, t->shape, stored);
    layer_names[n_ov] = wt->name;
    n_ov++;
    if (o->progress) {
      sd_uce_layer_info info = {n_ov, count, wt->name, rows, d, fit};
      o->progress(o->user, &info);
    }
  }

  record = edit_record(model, o, n_es, n_ps, layer_names, n_ov, single);
  if (!record) { rc = sd_fail(SD_E_NOMEM, "out of memory"); goto done; }
  if (single) {
    const char *keys[] = {"format", "safesd_uce"};
    const char *vals[] = {"pt", record};
    rc = sd_write_ldm_file(m, out, SD_DTYPE_COUNT, ov, (size_t)n_ov, 2, keys, vals);
  } else {
    rc = sd_write_diffusers_copy(m, out, ov, (size_t)n_ov, "uce_edit.json", record, &res->skipped);
  }
  if (rc == SD_OK) {
    res->n_layers = n_ov;
    res->n_erase_states = n_es;
    res->n_preserve_states = n_ps;
    res->folder = !single;
  }
done:
  for (int i = 0; i < n_ov; i++) free(bufs[i]);
  free(bufs);
  free(ov);
  free(layer_names);
  free(record);
  free(wf);
  sd_uce_solver_free(solver);
  free(states);
  free(ce);
  free(cg);
  free(cp);
  free(lens);
  free(texts);
  sd_exec_destroy(ex);
  sd_clip_text_free(te);
  sd_tokenizer_free(tok);
  sd_model_close(m);
  return rc;
}
