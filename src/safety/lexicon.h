/* The lexical detector's lexicon: terms (or safe phrases) indexed by their match keys, and
 * the matching of a normalised prompt (normalize.h) against them. Internal to src/safety/.
 *
 * Keys: each word of a term is stemmed with the Snowball stemmer of the term's language
 * (stem.h), so "shoot" and "shooting" are one term and "nakedness" matches "naked"; a
 * lexicon of safe phrases (surface = 1) keeps the words as written, and its last word may
 * take a plural -s/-es. Terms in CJK scripts are matched as substrings of CJK runs; a term
 * that is an emoji matches that emoji. A prompt word is looked up under the stemmers of the
 * languages written in its script; a Latin-script word that is an English dictionary word is
 * everyday English word is read as English only ("arm" is not Spanish "arma").
 *
 * A word with letters masked by '*' ("n*ked", "f**king", "c*caine") is filled from the
 * one-word terms that fit it, and the filled word is looked up like any other.
 *
 * In English text, a word broken by spaces into pieces that are not all everyday or function
 * words ("nu de", "na ked", "co caine") is read joined; a word that is neither a dictionary
 * word nor one CLIP knows whole is also read with two neighbouring letters swapped or a
 * doubled letter written once ("ndue", "nakde", "nakked") or backwards ("edun"), and matches
 * an English term only as the term is written.
 *
 * Words the CLIP tokenizer splits ("bloodsoaked" = blood + soaked, "BREAKnude" = break +
 * nude) match when every part is a term or a dictionary word and the whole is not a
 * dictionary word ("bloodhound", "gunmetal", "sexton" stay whole). Emoji match through their
 * names (emoji.h).
 */
#ifndef SD_SAFETY_LEXICON_H
#define SD_SAFETY_LEXICON_H

#include <stddef.h>
#include <stdint.h>

#include "safety/emoji.h"
#include "safety/normalize.h"
#include "safety/stem.h"
#include "safety/strmap.h"
#include "safety/wordnet.h"

struct sd_tokenizer;

enum {
  SD_VIA_LEET = 1,
  SD_VIA_SEP = 2,
  SD_VIA_REPEAT = 4,
  SD_VIA_STEM = 8,
  SD_VIA_UNICODE = 16,
  SD_VIA_CONFUSABLE = 32,
  SD_VIA_COMPOUND = 64,
  SD_VIA_EMOJI = 128,
  SD_VIA_MASK = 256,
  SD_VIA_SPLIT = 512, /* a word broken by spaces ("nu de", "na ked") */
  SD_VIA_TYPO = 1024, /* two letters swapped or one doubled on purpose ("ndue", "nakked") */
  SD_VIA_REVERSED = 2048, /* written backwards ("edun", "doolb") */
  SD_VIA_ROT13 = 4096,    /* written in rot13 ("ahqr", "anxrq") */
  SD_VIA_PIGLATIN = 8192, /* written in pig latin ("ethmay", "udenay") */
  SD_VIA_VOWELS = 16384,  /* written without its vowels ("nkd", "prn") */
  SD_VIA_NATO = 32768     /* spelled in the NATO alphabet ("mike echo tango hotel") */
};

typedef struct {
  char **w;      /* match keys of the words */
  char *surface; /* the words as written (normalised), joined by spaces; the forms of the
                    terms merged into this one follow, each after a '|' */
  int exact;     /* written "=word" in the bank: matched as written, not stemmed */
  int nw;
  int cat;
  int lang;      /* index in the lexicon's languages */
  int kind;      /* 0 words, 1 CJK substring, 2 emoji */
  char *display; /* as written in the bank / the WordNet lemma */
  char *src;     /* NULL (bank) or "wordnet:gun#1" */
  int act;       /* one of its category's `acts` (sd_lex_mark_act) */
} sd_term;

typedef struct {
  char code[8];
  int script;      /* SD_SCRIPT_* */
  int prefilter;   /* stems keep the word's first letters (not Arabic, not Indonesian) */
  sd_strmap first; /* key of a term's first word, and the joined key of multi-word terms */
  sd_strmap pre;   /* first 1-3 bytes of every key */
} sd_lex_lang;

typedef struct {
  int surface;     /* 1: safe phrases (no stemming; plural on the last word) */
  sd_term *t;
  int n, cap;
  sd_lex_lang lang[SD_STEM_MAX_LANGS];
  int n_lang;
  int en;          /* index of "en" */
  sd_strmap first1; /* run-collapsed single-word surface forms */
  sd_strmap exact;  /* "=word" terms, as written (and joined) */
  sd_strmap cjk;    /* CJK terms */
  int cjk_max;      /* longest CJK term, in code points */
  sd_strmap emoji;  /* emoji terms, by emoji key */
  sd_strmap single; /* single-word terms as written (normalised): for WordNet's derived words */
  sd_strmap skel;   /* the consonants of one-word English terms (a-z, three or more, a vowel
                       or more left out): "nkd" -> naked; words written without vowels */
  sd_stem_pool *stems;
  const sd_emoji_table *em; /* recognises emoji in terms (NULL: none) */
} sd_lexicon;

/* Register the languages first (sd_lex_lang_add for every term language, "en" included),
 * then sd_lex_finish_langs, then add terms. */
int sd_lex_lang_add(sd_lexicon *L, const char *code);
int sd_lex_finish_langs(sd_lexicon *L);
/* Add a term (or safe phrase) of category cat in language code (NULL = "en"); text as in the
 * bank ("=word": matched as written). A term whose keys equal another's of the same category
 * is the same term. excl: the category's `exclude` list, each entry as sd_lex_words_key
 * gives it (NULL for none): an excluded term is not added. */
int sd_lex_add(sd_lexicon *L, int cat, const char *lang, const char *text, const char *src, const sd_strmap *excl);
/* The normalised words of text joined by spaces (malloc'ed), or NULL. */
char *sd_lex_words_key(const sd_lexicon *L, const char *text);
void sd_lex_free(sd_lexicon *L);
/* Bit c set when `word` (n bytes, normalised) is a single-word English term of category c. */
uint32_t sd_lex_single_cats(const sd_lexicon *L, const char *word, size_t n);
/* Whether term text (as in the bank) is a term of category cat. */
int sd_lex_has(const sd_lexicon *L, int cat, const char *text);
/* Mark the term of category cat that text (as in the bank) is as an act of the category's
 * `acts` list (lexical_gate.h); 0 when text is no term of cat. */
int sd_lex_mark_act(sd_lexicon *L, int cat, const char *text);
/* Whether the one-word text has term t's key in t's language. */
int sd_lex_same(const sd_lexicon *L, const sd_term *t, const char *text);

typedef struct {
  int term;
  int a, b;   /* ncp span */
  int p0, p1; /* pieces */
  int flags;  /* SD_VIA_* */
  int neg;    /* negated */
  int emoji_name; /* for an emoji hit through its names: the name index, else -1 */
} sd_lex_hit;

typedef struct {
  sd_lex_hit *h;
  int n, cap;
} sd_lex_hits;

/* What matching may use besides the lexicon. */
typedef struct {
  const sd_emoji_table *emoji;    /* emoji table (NULL: none) */
  /* the CLIP tokenizer for compounds, asked for on first need (NULL, or returning NULL: no
   * compounds) */
  const struct sd_tokenizer *(*tok)(void *ctx);
  void *tok_ctx;
  const sd_wn_dict *dict;         /* English dictionary (NULL: no compounds, no English-first rule,
                                     no inflection check of English stems, no reading of words
                                     of another language as English ones) */
  const sd_strmap *homographs;    /* English words that are ordinary words of another language
                                     (the bank's `homographs`, lower-case; NULL: none): in text
                                     that is not English they are not read as English */
} sd_lex_env;

/* All matches of the lexicon in the normalised text (negation marks must be set). */
int sd_lex_match(const sd_lexicon *L, const sd_lex_env *env, const sd_norm *nm, sd_lex_hits *out);

#endif
