/* Shared by lexicon.c (building the lexicon) and lexicon_match.c (matching a prompt).
 * Internal to src/safety/. */
#ifndef SD_SAFETY_LEXICON_INTERNAL_H
#define SD_SAFETY_LEXICON_INTERNAL_H

#include <stddef.h>

#include "safety/lexicon.h"

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

#endif
