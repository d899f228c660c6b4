/* What learned.c (weights, scores, the detector) and learned_text.c (words and features)
 * share: the loaded model and the word list. Not part of the safety layer's interface. */
#ifndef SD_SAFETY_LEARNED_INTERNAL_H
#define SD_SAFETY_LEARNED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "safety/learned.h"

#define SD_LEARNED_MAX_WORD 64   /* code points of a word that make features */
#define SD_LEARNED_CP_LIMIT 0x30000 /* the norm table covers code points below this */
#define SD_LEARNED_MAX_NGRAM 8
#define SD_LEARNED_MAX_SENSE 64 /* sense features of one word (metadata sense_max) */
/* features of one word at most: n-grams (s = '<' w '>' of <= 66 code points), the word and
 * its sense features */
#define SD_LEARNED_MAX_WORD_FEATURES (SD_LEARNED_MAX_NGRAM * (SD_LEARNED_MAX_WORD + 2) + 2 + SD_LEARNED_MAX_SENSE)
#define SD_LEARNED_MAX_GLOVE (1 << 22) /* word-vector rows (metadata glove_words) */

enum { SD_LCLASS_SEP = 0, SD_LCLASS_WORD = 1, SD_LCLASS_SYMBOL = 2, SD_LCLASS_IGNORE = 3 };

struct sd_learned_model {
  char *path;
  int B, D, H, C, window, nmin, nmax;
  uint32_t mask;
  float *E;            /* [2^B, D], widened from float16 */
  float *W1, *b1;      /* [H, D], [H] */
  float *W2, *b2;      /* [C, H], [C] */
  int32_t *norm_from, *norm_off, *norm_to;
  int n_norm, n_norm_to;
  int32_t *class_start, *class_kind;
  int n_class;
  int32_t *conf_from, *conf_to;
  int n_conf;
  char **cats;
  /* ASCII fast paths, filled from the tables at load: the class, and the norm entry index
   * (-1: none) */
  int ascii_class[128], ascii_norm[128];
  /* version 2, extension glove: the word-vector rows E[2^B + i] of the words keyed by
   * glove_hash[i] (strictly increasing); learned_sense.c */
  int n_glove;
  uint32_t *glove_hash;
  /* version 2, extension senses: the WordNet sense table (learned_sense.c) */
  int has_sense, sense_depth, sense_max;
  uint32_t *sense_hash; /* [n_sense_words], strictly increasing */
  int32_t *sense_off, *sense_syn; /* word i's synsets: sense_syn[sense_off[i] .. sense_off[i + 1]) */
  int n_sense_words, n_syn;
  int32_t *syn_code, *par_off, *parents; /* synset s's parents: parents[par_off[s] .. par_off[s + 1]) */
  uint32_t *syn_bucket;                 /* [n_syn]: the feature index of each synset */
  /* version 2, extension cjk: Chinese and Japanese characters are words of their own */
  int cjk;
  float file_threshold; /* NAN: none */
  uint64_t fingerprint;
};

/* A prompt's words: word i is cp[w[i].off .. w[i].off + w[i].len) with byte span
 * [w[i].start, w[i].end) in the prompt. */
typedef struct {
  int off, len;
  size_t start, end;
} sd_lword;

typedef struct {
  uint32_t *cp;
  int ncp, cap_cp;
  sd_lword *w;
  int n, cap;
} sd_lwords;

int sd_learned_split(const struct sd_learned_model *m, const char *prompt, sd_lwords *out);
void sd_lwords_free(sd_lwords *w);
/* The n-gram and word feature indices of word j into out (at most SD_LEARNED_MAX_WORD_FEATURES);
 * returns their count. */
int sd_learned_word_features(const struct sd_learned_model *m, const sd_lwords *w, int j, uint32_t *out);
/* The bigram feature of word j >= 1 (words j-1 and j). */
uint32_t sd_learned_bigram(const struct sd_learned_model *m, const sd_lwords *w, int j);
/* The metadata entry `key` as a whole number in [lo, hi], or SD_E_FORMAT naming it. */
int sd_learned_meta_int(const sd_safetensors *st, const char *key, int lo, int hi, int *out);
/* An I32 vector of the file (length *n; *n < 0: any length 1 .. 2^24, written to *n), copied. */
int sd_learned_copy_i32(const sd_safetensors *st, const char *name, int *n, int32_t **out);
/* The sense table of a version 2 file into m (validated); m->mask must be set. */
int sd_learned_sense_load(sd_learned_model *m, const sd_safetensors *st);
/* The word tables of a version 2 file (word vectors, senses). */
void sd_learned_word_tables_free(sd_learned_model *m);
/* The glove table of a version 2 file (m->n_glove rows, read from its metadata before). */
int sd_learned_glove_load(sd_learned_model *m, const sd_safetensors *st);
/* The word-vector feature of a word (code points cp[0..len)) into out: 1 when the table has
 * it, else 0. */
int sd_learned_glove_feature(const sd_learned_model *m, const uint32_t *cp, int len, uint32_t *out);
/* The sense feature indices of a word (code points cp[0..len)) into out (at most
 * SD_LEARNED_MAX_SENSE); returns their count (0 without a sense table). */
int sd_learned_sense_features(const sd_learned_model *m, const uint32_t *cp, int len, uint32_t *out);
/* UTF-8 of code points (no NUL); returns the bytes written (at most 4 * n). */
size_t sd_learned_utf8(const uint32_t *cp, int n, char *out);

#endif
