/* UCE (Unified Concept Editing, Gandikota et al. 2024): the closed-form edit of the UNet's
 * cross-attention projections, the editing baseline of the evaluation (docs/evaluation.md,
 * "UCE (editing baseline)"; ../shared/spec/reference.md §4).
 *
 * For every cross-attention value projection W (attn2.to_v of every transformer block; the key
 * projections attn2.to_k too when asked), with erase states c_i, guide states c*_i and their
 * targets v*_i = W·c*_i, and preserve states c_j:
 *
 *   W_new = [λ·W + s_e·Σ_i v*_i c_iᵀ + s_p·Σ_j (W c_j) c_jᵀ] · [λ·I + s_e·Σ_i c_i c_iᵀ + s_p·Σ_j c_j c_jᵀ]⁻¹
 *
 * (λ = 0.1, s_e = 1, s_p = 0.1 by default). The right factor A is symmetric positive definite
 * for λ > 0 and is the same for every layer (it holds only text-encoder states): it is built
 * and Cholesky-factored once (LAPACKE dpotrf), and each layer is one solve with that factor
 * (dpotrs) of A·W_newᵀ = Bᵀ, never an explicit inverse. Everything is accumulated and solved
 * in double precision; the edited weights are stored in the checkpoint's own dtype.
 *
 * Which token states are the c's (the text encoder's final-LayerNorm output, the states the
 * UNet is conditioned on; framed as the pipeline frames a prompt: BOS, tokens, EOS, padding to
 * 77; `last` = index len-2 where len counts BOS..EOS):
 *   - SD_UCE_TOKENS_LAST (default; the UCE authors' current script, trainscripts/uce_sd_erase.py):
 *     one state per concept text: its last token (the last word piece before EOS; for the empty
 *     text, BOS). The same for guides and preserve concepts.
 *   - SD_UCE_TOKENS_TAIL (the paper's release, train-scripts/train_erase.py): an erase concept
 *     and its guide contribute the states from each one's `last` position to the end of the
 *     77-token context, paired position by position from there (erase last+t with guide
 *     last*+t) and cut to the shorter run (77 − max(last, last*) pairs): the last word, EOS
 *     and every padding state. A preserve concept contributes all 77 of its states.
 */
#ifndef SD_EDIT_UCE_H
#define SD_EDIT_UCE_H

#include <stddef.h>

/* ---- the linear-algebra core ---------------------------------------------------------- */

/* The concept states of one edit: rows of width d. */
typedef struct sd_uce_terms {
  int d;
  int n_erase;            /* ≥ 1 */
  const float *erase;     /* [n_erase, d]: c_i */
  const float *guide;     /* [n_erase, d]: c*_i (v*_i = W·c*_i) */
  int n_preserve;         /* ≥ 0 */
  const float *preserve;  /* [n_preserve, d]: c_j (NULL when n_preserve is 0) */
  double lambda;          /* λ ≥ 0 (0 only when the states alone make A definite) */
  double erase_scale;     /* s_e ≥ 0 */
  double preserve_scale;  /* s_p ≥ 0 */
} sd_uce_terms;

typedef struct sd_uce_solver sd_uce_solver;

/* Check the terms (SD_E_ARG: no erase state, d < 1, a non-finite state or scale, a negative
 * scale), build A and factor it. A that is not (numerically) positive definite, e.g. λ = 0
 * with fewer independent states than d, is SD_E_ARG naming the failing pivot. The solver keeps
 * its own copies of the states. */
int sd_uce_solver_create(const sd_uce_terms *t, sd_uce_solver **out);
void sd_uce_solver_free(sd_uce_solver *s);

/* Edit one projection: w is [rows, d] (row-major, float32), w_new receives [rows, d] (may be
 * w itself). SD_E_ARG for a non-finite weight, SD_E_INTERNAL if the result is not finite. */
int sd_uce_apply(const sd_uce_solver *s, const float *w, int rows, float *w_new);

/* How well an edited projection meets its targets, as relative norms (for progress lines):
 *   change    = ‖W_new − W‖_F / ‖W‖_F
 *   erase     = √(Σ_i ‖W_new c_i − W c*_i‖²) / √(Σ_i ‖W c*_i‖²)
 *   preserve  = √(Σ_j ‖W_new c_j − W c_j‖²) / √(Σ_j ‖W c_j‖²) (0 without preserve states) */
typedef struct sd_uce_fit {
  double change, erase, preserve;
} sd_uce_fit;
int sd_uce_measure(const sd_uce_solver *s, const float *w, const float *w_new, int rows, sd_uce_fit *fit);

/* ---- token states ----------------------------------------------------------------------- */

typedef enum { SD_UCE_TOKENS_LAST = 0, SD_UCE_TOKENS_TAIL } sd_uce_tokens;
/* "last" / "tail" -> mode; -1 if unknown. */
int sd_uce_tokens_parse(const char *s);
const char *sd_uce_tokens_name(sd_uce_tokens t);

/* The (erase, guide) state pairs of one concept under a mode, from the encoded contexts
 * (ctx rows of d, the framed prompt) and real lengths (BOS..EOS inclusive, 2..ctx):
 * copies the pairs into erase_out/guide_out (room for ctx rows each) and returns how many
 * (≥ 1), or a negative sd_status. */
int sd_uce_pair_states(sd_uce_tokens mode, int ctx, int d, const float *erase_ctx, int erase_len,
                       const float *guide_ctx, int guide_len, float *erase_out, float *guide_out);
/* The preserve states of one concept (room for ctx rows); returns the count or an error. */
int sd_uce_preserve_states(sd_uce_tokens mode, int ctx, int d, const float *ctx_states, int len, float *out);

/* ---- editing a model ---------------------------------------------------------------------- */

/* Progress: one call per edited projection. */
typedef struct sd_uce_layer_info {
  int index, count;        /* 1-based index of count */
  const char *name;        /* internal (diffusers) name, "...attn2.to_v.weight" */
  int rows, d;
  sd_uce_fit fit;
} sd_uce_layer_info;

typedef struct sd_uce_opts {
  const char *const *erase;    int n_erase;     /* ≥ 1 concept texts */
  const char *const *guide;    int n_guide;     /* 0 (the empty text for all), 1 (one guide for
                                                   all) or n_erase (pairwise) */
  const char *const *preserve; int n_preserve;
  double lambda, erase_scale, preserve_scale;   /* defaults 0.1, 1, 0.1 */
  int edit_keys;                                /* also attn2.to_k */
  sd_uce_tokens tokens;                         /* default SD_UCE_TOKENS_LAST */
  const char *config_dir;                       /* for a single-file model, as sd_model_open_ex */
  int n_threads;                                /* 0 = all cores */
  void (*progress)(void *user, const sd_uce_layer_info *info);
  void *user;
} sd_uce_opts;

void sd_uce_opts_init(sd_uce_opts *o);

/* What an edit did. */
typedef struct sd_uce_result {
  int n_layers;          /* projections edited */
  int n_erase_states, n_preserve_states;
  int folder;            /* 1: wrote a diffusers folder, 0: a single LDM .safetensors file */
  char *skipped;         /* folder output: files of the source left out (other weight files of
                            an edited component, dot-files), ", "-joined; NULL when none */
} sd_uce_result;
void sd_uce_result_free(sd_uce_result *r);

/* Edit the model at `model` (diffusers folder or single file; NULL = the bundled model) and
 * write the result to `out`:
 *  - out ending in ".safetensors": one single-file checkpoint in the LDM layout (the writer of
 *    `safesd convert`, dtypes kept; SD 1.x text encoders only);
 *  - otherwise (the source must be a diffusers folder): a diffusers folder, a copy of the
 *    source with unet/<its weights file> rewritten (edited tensors in the stored dtype, every
 *    other tensor byte-identical) and a uce_edit.json describing the edit.
 * out must not exist. Nothing is left at out on error (the folder is built under a temporary
 * name beside it and renamed at the end; a file is written atomically). */
int sd_uce_edit_model(const char *model, const char *out, const sd_uce_opts *o, sd_uce_result *res);

#endif
