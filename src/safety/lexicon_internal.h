/* Shared by lexicon.c (building the lexicon) and lexicon_match.c (matching a prompt).
 * Internal to src/safety/. */
#ifndef SD_SAFETY_LEXICON_INTERNAL_H
#define SD_SAFETY_LEXICON_INTERNAL_H

#include <stddef.h>

#include "safety/lexicon.h"
#include "safety/normalize.h"
#include "safety/stem.h"
#include "safety/wordnet.h"

#define KEY_MAX 512
#define CJK_MAX_TERM 64 /* longer CJK terms never match: bounded work on a bad bank */

/* The match key of a word (n bytes) in language k: its stem (surface lexicon: itself), into
 * buf (KEY_MAX bytes). */
void sd_lex_key_of(const sd_lexicon *L, sd_stemset *ss, int k, const char *w, size_t n, char *buf);
/* Runs of one ASCII character longer than `keep` cut to `keep` ("bloood" -> "blood" with 2):
 * into dst (as long as s); returns its length. */
size_t sd_lex_collapse(const char *s, int keep, char *dst);
/* Whether s holds an ASCII character three times in a row. */
int sd_lex_has_run3(const char *s);

/* lexicon_lang.c: the language of a prompt's words, for lexicon_match.c. */
typedef struct {
  const sd_lexicon *L;
  const sd_lex_env *env;
  const sd_norm *nm;
  sd_stemset *ss;
  signed char *wlang; /* per piece, made on first need (the caller frees it): 0 not counted,
                         1 English, 2 another language */
} sd_lex_text;
/* Whether s is an English word: a WordNet lemma, or stemmed like one ("soaked"). */
int sd_lex_dict_has(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s);
/* Whether s is everyday English (stems like a lemma seen in WordNet's tagged corpus). */
int sd_lex_common_english(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s);
/* Whether the prompt's words outside pieces [p0, p1) are English text (0 also when out of
 * memory). */
int sd_lex_english_text(sd_lex_text *x, int p0, int p1);
/* Whether one-piece English hit h reads a word of another language (docs/safety-detectors.md,
 * "Words of another language"). */
int sd_lex_foreign_reading(sd_lex_text *x, const sd_lex_hit *h);
/* Whether hit h of a Vietnamese term is a different word with the same letters: its words
 * carry diacritics (Vietnamese writes its tones with them) and a letter's differs from the
 * term's ("con gái gói bánh": "gói", to wrap, not "gọi" of "gái gọi"). Words typed without
 * any diacritics ("gai goi") match by folding, as before. */
int sd_lex_tone_mismatch(const sd_lex_text *x, const sd_lex_hit *h);

/* lexicon_match.c and lexicon_typo.c: the matching of one prompt. */
typedef struct {
  char *s;
  int flags;
  int c1; /* 1: run-collapsed to one, looked up among first1 only; 2: a masked-word pattern
             ('?' for each '*' between joined parts), filled by mask_lookup */
} sd_lex_cand;

typedef struct {
  sd_lex_cand *c;
  int n, cap;
} sd_lex_candset;

typedef struct {
  const sd_lexicon *L;
  const sd_lex_env *env;
  const sd_norm *nm;
  sd_stemset *ss;
  sd_lex_candset cs2;
  sd_lex_hits *out;
  signed char *wlang; /* per piece, once needed: 0 not counted, 1 English, 2 another language */
} sd_lex_mctx;

#define CMP_TERMS 8
/* Adds hit h to l (a hit of the same term and span merges into it); -1 when out of memory. */
int sd_lex_hits_add(sd_lex_hits *l, sd_lex_hit h);
/* The one-word terms (up to CMP_TERMS) whose key is the key of s in some Latin-script
 * language, into terms; with as_written, only those s is written as (no stem matches). */
int sd_lex_term_piece(sd_lex_mctx *m, const char *s, int *terms, int as_written);
/* Whether the prompt's words outside pieces [p0, p1) are English text (sd_lex_english_text,
 * with m's per-piece cache). */
int sd_lex_english_text_m(sd_lex_mctx *m, int p0, int p1);
/* lexicon_typo.c: the typo readings of word s of unit u (swaps, doublings, sound-alikes,
 * backwards, rot13, pig latin, vowels dropped), and the NATO code words of the prompt; the
 * number of hits added, -1 on an error. */
int sd_lex_typo(sd_lex_mctx *m, const sd_unit *u, const char *s, int flags);
int sd_lex_nato_words(sd_lex_mctx *m);

#endif
