/* safesd — Stable Diffusion in C with an editing-free safety layer.
 *
 * The public C API. All functions return 0 on success or a negative error code
 * (SAFESD_E_*); safesd_last_error() then gives a one-line reason (thread-local).
 * Objects are not shared between threads unless stated.
 */
#ifndef SAFESD_H
#define SAFESD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  SAFESD_OK = 0,
  SAFESD_E_IO = -1,          /* file missing, unreadable or unwritable */
  SAFESD_E_FORMAT = -2,      /* malformed or inconsistent model/input file */
  SAFESD_E_NOMEM = -3,       /* out of memory, or a size over a sanity limit */
  SAFESD_E_ARG = -4,         /* invalid argument */
  SAFESD_E_UNSUPPORTED = -5, /* valid input not handled */
  SAFESD_E_INTERNAL = -6
};

/* The number of token positions of the SD text encoders. */
#define SAFESD_TOKENS 77

const char *safesd_version(void);
const char *safesd_last_error(void);

/* ---- tokenizer ---------------------------------------------------------------------- */

typedef struct safesd_tokenizer safesd_tokenizer;

/* The tokenizer of a model (diffusers folder: its tokenizer/ files; single-file
 * checkpoint: the bundled CLIP vocabulary), or the bundled CLIP vocabulary when
 * model_path is NULL. */
int safesd_tokenizer_open(const char *model_path, safesd_tokenizer **out);
/* The same, for a model opened with a config folder (see safesd_model_options). */
int safesd_tokenizer_open_ex(const char *model_path, const char *config_dir, safesd_tokenizer **out);
void safesd_tokenizer_close(safesd_tokenizer *tok);
/* Tokenize and frame one prompt: ids[0..76] = BOS, up to 75 tokens, EOS, padding with
 * pad_id (49407 for SD 1.x, 0 for SD 2.x). Returns the real length (2..77) or an error.
 * Safe to call from several threads on one tokenizer. */
int safesd_tokenize(const safesd_tokenizer *tok, const char *prompt, int32_t pad_id,
                    int32_t ids[SAFESD_TOKENS]);
/* The token string of an id ("cat</w>") or NULL. */
const char *safesd_token_text(const safesd_tokenizer *tok, int32_t id);

/* ---- model -------------------------------------------------------------------------- */

typedef struct safesd_model safesd_model;

typedef struct safesd_model_options {
  int n_threads;          /* <= 0: all CPUs */
  const char *config_dir; /* single-file checkpoints: a diffusers folder whose configs (and
                             tokenizer) describe the file, as diffusers' from_single_file
                             config=...; NULL: infer the hyper-parameters from the weights */
} safesd_model_options;

/* Open a diffusers folder or a single-file .safetensors checkpoint (original LDM layout).
 * opts may be NULL. */
int safesd_model_open(const char *path, const safesd_model_options *opts, safesd_model **out);
void safesd_model_close(safesd_model *m);
/* Width of the text encoder's output (768 for SD 1.x, 1024 for SD 2.x). */
int safesd_model_text_dim(const safesd_model *m);
/* The padding id the model's text encoder expects. */
int32_t safesd_model_pad_id(const safesd_model *m);

/* Encode a prompt with the model's own tokenizer and text encoder into
 * out[SAFESD_TOKENS × safesd_model_text_dim()], exactly what the UNet is conditioned on.
 * clip_skip: 1 = last layer (SD 1.x default), 2 = penultimate ("clip skip 2"), ... */
int safesd_encode_prompt(safesd_model *m, const char *prompt, int clip_skip, float *out);
/* The same from token ids (n_seq rows of SAFESD_TOKENS ids) into
 * out[n_seq × SAFESD_TOKENS × dim]. */
int safesd_encode_ids(safesd_model *m, const int32_t *ids, int n_seq, int clip_skip, float *out);

/* Describe a model (family, layout, components, dtypes, parameter counts, hyper-parameters,
 * problems found) as text or JSON, without loading more than the file headers. */
int safesd_inspect(const char *path, const char *config_dir, int as_json, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
