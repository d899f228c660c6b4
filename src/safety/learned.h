/* The learned detector (docs/safety-detectors.md, "Learned detector"; issue 16 item 3): a
 * concept-presence classifier in the spirit of Latent Guard (arXiv 2404.08031), trained by
 * tools/learned/ on generated unsafe / near-concept benign prompt pairs, so that paraphrases,
 * euphemisms and obfuscations of a concept are caught. It does not use any model's text
 * encoder: its features are hashed character n-grams and words of its own normalised words.
 *
 * Weights file (safetensors, data/learned/detector.safetensors; format and checks below):
 *   embed [2^B, D] F16, hidden.weight [H, D] F32, hidden.bias [H], out.weight [C, H], out.bias [C];
 *   norm.from [N] I32, norm.offset [N+1], norm.to [M]   code point -> its image (may be empty)
 *   class.start [R] I32, class.kind [R]                 code point classes, by ranges
 *   confusable.from [K] I32, confusable.to [K]           Cyrillic/Greek look-alikes -> Latin
 *   metadata: format = safesd-learned-detector, version = 1, hash = fnv1a32, buckets_log2 = B,
 *   ngram_min, ngram_max, window, categories (C comma-separated names), threshold (optional:
 *   the calibrated one), and the training's record (corpus seed, held-out concepts, ...).
 *
 * Words and features (learned_text.c; the definition is tools/learned/features.py, which
 * builds the tables, and the two agree bit for bit): decode UTF-8 (invalid bytes are
 * separators), map each code point through `norm`, classify (separator, word character,
 * symbol = a word of its own, ignored), build words, join spelled-out runs ("n u d e"),
 * collapse repeated letters, fold confusables, undo leetspeak, drop number-only words; the
 * features of word j are the character n-grams of '<' word '>', the word, and the bigram with
 * word j-1, each FNV-1a 32 over a kind byte and its UTF-8 text, masked to 2^B.
 *
 * Scores: per word u_j (its n-grams and word) and g_j (its bigram) are sums of embedding rows;
 * a window of `window` consecutive words sums them (bigrams inside the window only), goes
 * through relu(W1 x + b1) and W2 h + b2; the prompt's logit per category is the max over its
 * windows, its score the sigmoid (a probability in [0, 1]).
 *
 * The file is untrusted input: sd_learned_load checks the format and version, every tensor's
 * presence, dtype and shape against the metadata, sizes (B <= 24, D <= 256, H <= 1024,
 * C <= 32, 1 <= window <= 64, 1 <= ngram_min <= ngram_max <= 8), finite weights, sorted
 * tables, offsets in range, valid code points and class kinds; each failure is one line
 * naming the file and the problem.
 */
#ifndef SD_SAFETY_LEARNED_H
#define SD_SAFETY_LEARNED_H

#include <stddef.h>
#include <stdint.h>

#include "safety/bank.h"
#include "safety/detector.h"

/* The weights file under safesd's data folder (sd_data_file). */
#define SD_LEARNED_FILE "learned/detector.safetensors"
/* A model folder may carry its own: <model>/safety/learned.safetensors. */
#define SD_LEARNED_MODEL_FILE "safety/learned.safetensors"
/* The threshold when neither the bank's [thresholds] nor the file's metadata give one. */
#define SD_LEARNED_DEFAULT_THRESHOLD 0.5f
/* At most this many words are reported as responsible for one category (attribution). */
#define SD_LEARNED_MAX_SPAN_WORDS 3

typedef struct sd_learned_model sd_learned_model;

int sd_learned_load(const char *path, sd_learned_model **out);
/* data/learned/detector.safetensors, found like the default bank (sd_data_file). */
int sd_learned_load_default(sd_learned_model **out);
void sd_learned_free(sd_learned_model *m);

const char *sd_learned_path(const sd_learned_model *m);
int sd_learned_n_categories(const sd_learned_model *m);
const char *sd_learned_category(const sd_learned_model *m, int i);
/* The calibrated threshold stored in the file's metadata, or NAN when it has none. */
float sd_learned_file_threshold(const sd_learned_model *m);
/* FNV-1a 64 of the file's bytes: the `model` a calibration of this detector records. */
uint64_t sd_learned_fingerprint(const sd_learned_model *m);

/* ---- words and features (learned_text.c), exposed for tests and tools ---------------- */

typedef struct {
  char *text;        /* the normalised word, UTF-8 */
  size_t start, end; /* its byte span in the prompt */
} sd_learned_word;

void sd_learned_words_free(sd_learned_word *w, int n);
/* The prompt's words (*words malloc'ed, free with sd_learned_words_free). */
int sd_learned_words(const sd_learned_model *m, const char *prompt, sd_learned_word **words, int *n);
/* The prompt's feature indices in order (per word: n-grams by length then position, the
 * word, the bigram when j >= 1) and the word each belongs to; both malloc'ed. */
int sd_learned_features(const sd_learned_model *m, const char *prompt, uint32_t **idx, int **word, int *n);
/* FNV-1a 32 of a kind byte followed by `len` bytes (the feature hash before masking). */
uint32_t sd_learned_hash(char kind, const char *bytes, size_t len);

/* ---- scores ------------------------------------------------------------------------------ */

/* The model's per-category probabilities (sd_learned_n_categories floats, file order). */
int sd_learned_scores(const sd_learned_model *m, const char *prompt, float *p);

/* A detector over `bank` (kept by pointer; must outlive it): the model's categories are
 * mapped to the bank's by name, and those the bank lacks are not reported. The model is
 * owned by the detector when own_model is 1 (freed with it), else borrowed.
 *
 * detect: cat_score[c] = the model's probability for bank category c (0 when unmapped),
 * score = their max, category c fires when cat_score[c] >= threshold. Evidence, per fired
 * category: the words responsible, found by leaving words out (greedily, the one whose
 * removal lowers the category's max window logit most, until its probability falls under
 * the threshold). Attribution is clear when at most SD_LEARNED_MAX_SPAN_WORDS words suffice
 * AND those words alone (their word vectors, and the bigrams between neighbours among them, as
 * one window) reach the threshold too. Then the evidence is the core of that set: the words
 * left after dropping, latest choice first, each word without which the rest still reaches
 * the threshold alone; one entry per core word (its byte span, the prompt text as `matched`,
 * the normalised word as `term`, `via` "learned p=0.994; 0.070 without \"a n u d e\",
 * \"woman\"; \"a n u d e\" alone 0.992"). Otherwise (a paraphrase whose meaning is spread over its words) one
 * entry with an empty span (start == end == 0, `matched` "", `via` "... not localised to
 * words ..."): callers must not edit the prompt for it. */
int sd_learned_create(const sd_bank *bank, sd_learned_model *model, int own_model, sd_detector **out);
/* The number of the model's categories the detector maps to bank categories. */
int sd_learned_n_mapped(const sd_detector *d);
const sd_learned_model *sd_learned_detector_model(const sd_detector *d);

#endif
