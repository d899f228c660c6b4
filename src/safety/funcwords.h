/* English function words (articles, pronouns, prepositions, conjunctions, auxiliaries and a
 * few adverbs): no unsafe concept lives in them. Internal to src/safety/: the learned
 * detector never takes one as evidence, and the lexical detector never joins one into a word
 * broken by spaces ("me the" is not "meth", "an al" not "anal"; in any of its Latin-script
 * languages: "se nos" is not Spanish "senos"). */
#ifndef SD_SAFETY_FUNCWORDS_H
#define SD_SAFETY_FUNCWORDS_H

#include <stddef.h>

/* Whether the n bytes at w (lower-case ASCII) are an English function word. */
int sd_en_function_word(const char *w, size_t n);
/* The same, or a common function word of Spanish, French, German, Italian or Portuguese
 * (written without accents): "de mon" is not "demon", "por no" not "porno". */
int sd_function_word(const char *w, size_t n);
/* Whether they are a function word of those other languages (some are English ones too:
 * "a", "in", "no"). */
int sd_other_function_word(const char *w, size_t n);
/* Whether they are a function word of any other Latin-script bank language: those above, and
 * Dutch, Swedish, Polish, Turkish and Indonesian ones written in ASCII ("het", "och", "przy",
 * "ile", "yang"). A sign that a text is in another language; never used to join words. */
int sd_foreign_function_word(const char *w, size_t n);

#endif
