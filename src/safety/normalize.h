/* The lexical detector's text normaliser (internal to src/safety/): a prompt becomes code
 * points that keep their source byte span, then pieces (words), lookup units and the
 * negation scope of each piece. docs/safety-detectors.md ("Lexical detector") has the rules.
 *
 * 1. utf8proc compatibility decomposition + case folding + marks stripped + default
 *    ignorables dropped + punctuation lumped (fullwidth, mathematical alphanumerics,
 *    circled letters, diacritics, zero-width characters); CJK characters (Han, kana, Hangul
 *    syllables) and Cyrillic й are kept whole (a voicing mark or a breve is part of the
 *    letter there).
 * 2. Emoji (sequences from data/emoji/emoji-names.tsv, longest match, variation selectors
 *    and skin tones ignored) become one code point of class SD_CL_EMOJI.
 * 3. Every other non-ASCII letter that reads as Latin gets `fold`: its ASCII reading from
 *    ICU's confusable skeleton (uspoof_getSkeleton: Cyrillic/Greek lookalikes), else from its
 *    Unicode name ("LATIN LETTER SMALL CAPITAL N", "NEGATIVE SQUARED LATIN CAPITAL LETTER N",
 *    regional indicators), else from the skeleton of its capital. The fold is a second
 *    reading of the character: the text is matched both as written and folded.
 * 4. Pieces: runs of letters/digits/leet symbols; runs of CJK characters (Han, kana,
 *    Hangul) are pieces of their own, and so is each emoji.
 */
#ifndef SD_SAFETY_NORMALIZE_H
#define SD_SAFETY_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "safety/emoji.h"

enum { SD_CL_SEP = 0, SD_CL_LETTER, SD_CL_DIGIT, SD_CL_LEET, SD_CL_INTRA, SD_CL_SPACE, SD_CL_CJK, SD_CL_EMOJI };

typedef struct {
  int32_t cp;       /* folded code point (for an emoji: its first code point) */
  uint8_t cls;      /* SD_CL_* */
  uint8_t nonascii; /* from a non-ASCII source character: 1, or 2 for a precomposed Latin
                       letter with a diacritic (U+00C0-U+024F, U+1E00-U+1EFF: "ü", "ğ", "é") */
  uint8_t nfold;    /* 0, or the length of fold[] */
  uint8_t upper;    /* the first code point of an upper-case source letter (camel case) */
  char fold[3];     /* the ASCII letters this character reads as (confusables) */
  int32_t emoji;    /* emoji table index when cls == SD_CL_EMOJI, else -1 */
  size_t s0, s1;    /* source byte span */
} sd_ncp;

enum { SD_PIECE_WORD = 0, SD_PIECE_CJK, SD_PIECE_EMOJI };

typedef struct {
  int a, b;     /* ncp range */
  int gap;      /* separator before it: 0 none, 1 intra-word only, 2 whitespace, 3 other */
  int kind;     /* SD_PIECE_* */
  int nonascii; /* holds a non-ASCII letter */
  int folds;    /* holds a letter with a confusable fold */
  int neg;      /* inside a negation's scope (sd_norm_negation) */
  int accented; /* its non-ASCII letters (at least one) all come from accented Latin letters
                   (sd_ncp.nonascii == 2): a word of a language written with them */
} sd_piece;

/* A string to look up, spanning pieces [p0, p1). */
typedef struct {
  int p0, p1;
  int joined; /* 1: separated letters or parts joined ("b.l.o.o.d", "b l o o d") */
} sd_unit;

typedef struct {
  sd_ncp *v;
  int n;
  sd_piece *ps;
  int np;
  sd_unit *us;
  int nu;
  const char *src; /* the text given to sd_norm_text (not owned: valid while the caller's text
                      lives); negation cues of scripts whose marks the normaliser strips are
                      read there */
} sd_norm;

/* Normalise and segment `text` (NUL-terminated UTF-8; invalid bytes are separators). `em`
 * may be NULL (no emoji recognition). Fills *out; sd_norm_free releases it. */
int sd_norm_text(const char *text, const sd_emoji_table *em, sd_norm *out);
void sd_norm_free(sd_norm *n);

/* Text modes of sd_norm_unit_text: leetspeak (1: 1->i, 2: 1->l), | SD_TEXT_FOLD for the
 * confusable reading. */
#define SD_TEXT_LEET_I 1
#define SD_TEXT_LEET_L 2
#define SD_TEXT_FOLD 4
/* | SD_TEXT_MASK: each '*' between joined parts reads as '?', one masked letter ("n*ked" ->
 * "n?ked", "b**bs" -> "b??bs"), for the lexicon's masked-word reading. */
#define SD_TEXT_MASK 8

typedef struct {
  char *p;
  size_t n, cap;
} sd_sbuf;
int sd_sb_putn(sd_sbuf *b, const char *s, size_t n);
int sd_sb_puts(sd_sbuf *b, const char *s);

/* The text of unit u (UTF-8, into out, replacing its contents): symbols dropped, or undone
 * as leetspeak; with SD_TEXT_FOLD confusables read as their ASCII letters. */
int sd_norm_unit_text(const sd_norm *n, const sd_unit *u, int mode, sd_sbuf *out);

/* Mark the pieces inside a negation's scope (sd_piece.neg): after a cue ("no", "not",
 * "without", "non-", and the other languages' cues, docs/safety-detectors.md) up to the end
 * of its phrase (punctuation, a contrast word such as "but"), at most SD_NEG_SCOPE words; after
 * an opposition prefix ("anti-racism", "anti war", Russian "анти"), the next word only; before
 * a cue that follows what it negates (Turkish "değil", "yok", "olmadan"; Hindi "नहीं", "रहित"),
 * the words back to the start of its phrase, at most SD_NEG_SCOPE. Vietnamese, Hindi and Thai
 * cues are read in n->src, with their marks. "not only", "not just" and a doubled cue ("not
 * without") are not negations. */
#define SD_NEG_SCOPE 4
void sd_norm_negation(sd_norm *n);
/* Whether a CJK substring [i, j) of piece p (code point indices) is negated by a CJK cue
 * right before it (不, 没有, 无, 非, 未, 别; 無, 非; 비, 무; Thai ไม่มี, ไม่, ไร้, ปราศจาก, as
 * written in n->src) or right after it (なし, 無し, のない, がない, ない; 없는, 없이, 없음, 없고). */
int sd_norm_cjk_negated(const sd_norm *n, int p, int i, int j);

/* The script family of a UTF-8 word, for choosing stemmers. */
enum { SD_SCRIPT_OTHER = 0, SD_SCRIPT_LATIN, SD_SCRIPT_CYRILLIC, SD_SCRIPT_ARABIC, SD_SCRIPT_GREEK };
int sd_script_of(const char *word);

#endif
