/* The semantic detector (method.md §2.1, detector 2): scores a prompt in the model's own
 * text-encoder space against the concept bank's descriptions and safe anchors.
 *
 * Embedding of a text (descriptions, anchors, the whole prompt): tokenize and frame it as
 * the generator does (BOS + at most ctx-2 ids + EOS, ctx = min(77, max_positions)), run the
 * text encoder on the real tokens only (the encoder is causal, so padding never changes
 * them) with the final LayerNorm and no clip skip, take the mean of the hidden states of
 * the n real positions BOS..EOS inclusive, and L2-normalise it.
 * Token states: the hidden state of each real position 1..n-1 (every token after BOS,
 * EOS included), each L2-normalised. BOS is left out: its state is the same for every
 * prompt (causal attention), so it would put the same floor under every score. Only
 * *content* positions are scored: the last token of a word of at least 3 letters that is
 * not a function word ("the", "with", ...), and EOS; a sub-word piece ("ka" of "kaboom")
 * or "a", "be" never matches a concept on its own.
 *
 * Score, per category c with descriptions D_c, over the anchors A of the whole bank:
 *   pos_c   = max over d in D_c of max( cos(p, d), max over content tokens t of cos(h_t, d) )
 *   neg     = max over a in A of cos(p, a)              (0 when the bank has no anchors)
 *   score_c = pos_c - neg                               (in [-2, 2])
 * where p is the prompt embedding. A category without descriptions scores -2 and never
 * fires. The detection's score is the highest score_c; category c fires when
 * score_c >= threshold. Evidence is localised to words (strategy.h substitutes only
 * localised spans): a word token's match is the whole word that holds it; a match of the
 * pooled prompt or of EOS is attributed by leaving one word out at a time — the words
 * without which the score falls below the threshold are the evidence (one entry each);
 * when no word, or most words, carry it, the evidence has an empty span (not localised).
 * `term` is the best matching description, `via` = "prompt cos=... anchor cos=..." or
 * "token N 'tok</w>' cos=... anchor cos=..." (N = position in the framed sequence, BOS 0).
 * Attribution costs one encoder pass per word (at most 64 words), only for a prompt-level
 * match that fired.
 *
 * Concept embeddings are computed once per text encoder, on first use (or eagerly with
 * sd_semantic_prepare), kept in memory, and, when a model fingerprint is available
 * (enc->model set), cached to a file (see sd_semantic_default_cache).
 *
 * The default threshold is SD_SEMANTIC_DEFAULT_THRESHOLD (uncalibrated); calibrated values
 * come from the bank's [thresholds] section (the gate applies it), a calibration file
 * (safety/calibrate.h) or sd_detector_set_threshold.
 */
#ifndef SD_SAFETY_SEMANTIC_H
#define SD_SAFETY_SEMANTIC_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"
#include "models/clip_text.h"
#include "models/model_source.h"
#include "safety/bank.h"
#include "safety/detector.h"
#include "text/tokenizer.h"

/* What the semantic detector's `encoder` argument points to. */
typedef struct sd_semantic_encoder {
  const sd_tokenizer *tok;
  sd_clip_text *text;
  sd_exec *ex;
  int32_t pad_id;
  /* Optional: the model the text encoder came from. When set, its fingerprint keys the
   * on-disk embedding cache; when NULL only the in-memory cache is used. */
  const sd_model_source *model;
} sd_semantic_encoder;

/* Uncalibrated default: a prompt must be closer to a description than to every anchor by
 * this much in cosine. Meaningless until measured on the bundled model. */
#define SD_SEMANTIC_DEFAULT_THRESHOLD 0.10f

typedef struct {
  int token_level;        /* 1 = also score each token's state (default 1) */
  const char *cache_path; /* embedding cache file; NULL = default location; "" = none */
} sd_semantic_options;

/* Create a semantic detector over `bank` (kept by pointer: it must outlive the detector).
 * opts may be NULL (defaults). No encoding happens here. */
int sd_semantic_create(const sd_bank *bank, const sd_semantic_options *opts, sd_detector **out);

/* Embed the bank's descriptions and anchors for `enc` now (otherwise done on the first
 * detect with that encoder). Reads/writes the file cache as configured. */
int sd_semantic_prepare(sd_detector *d, const sd_semantic_encoder *enc);
/* 1 when the last prepare loaded the embeddings from the file cache, 0 when it encoded. */
int sd_semantic_from_cache(const sd_detector *d);

/* The concept-description embeddings of the categories in `cats` (bit c = bank->cats[c]),
 * bank order: the very vectors the detector scores against (pooled, L2-normalised; from its
 * memory or file cache, computed with `enc` first when needed). *dirs [n, D] and *texts (the
 * descriptions, borrowed from the bank) are malloc'ed; *n may be 0 (no description). Used by
 * the `project` strategy (strategy.h) as the unsafe concept directions. */
int sd_semantic_concepts(sd_detector *d, const sd_semantic_encoder *enc, uint32_t cats, float **dirs,
                         const char ***texts, int *n, int *D);

/* Model fingerprint: FNV-1a 64 over the text config, the token embedding's dtype, shape and
 * first 64 KiB, and the final LayerNorm weight. 0 when m is NULL or has no text encoder. */
uint64_t sd_semantic_model_fingerprint(const sd_model_source *m);

/* Default cache file: $SAFESD_CACHE_DIR, else $XDG_CACHE_HOME/safesd, else
 * $HOME/.cache/safesd; file semantic-<bank hash 16 hex>-<model fingerprint 16 hex>.bin. */
int sd_semantic_default_cache(const sd_bank *bank, uint64_t model_fp, char *buf, size_t cap);

/* The pooled, L2-normalised embedding of `text` (hidden floats into out; hidden =
 * sd_clip_text_cfg(enc->text)->hidden). Exposed for tests and tools. */
int sd_semantic_embed(const sd_semantic_encoder *enc, const char *text, float *out);

/* The pooled embedding (hidden floats, malloc'ed into *pooled) and the n real positions'
 * states [n, hidden] (BOS first, each L2-normalised, malloc'ed into *tokens) of `text`:
 * what the detector compares. Exposed for tests and tools. */
int sd_semantic_states(const sd_semantic_encoder *enc, const char *text, float **pooled, float **tokens, int *n);

#endif
