/* WordNet (libwordnet, Debian wordnet-dev + wordnet-base) for the lexical detector: the
 * bank's `expand =` seeds grown into their hyponyms, the dictionary words derived from or
 * compounded with a term whose definition is about the term's category ("nudist": "a person
 * who practices nudity"; "gunpoint": "the gun muzzle's direction"), and the English dictionary
 * that decides whether a word is a word (compounds the CLIP tokenizer splits are split only
 * into words). docs/safety-detectors.md has the rules.
 *
 * The bank-dependent part (seeds and derived words) is resolved once and cached in a file
 * keyed by the bank's hash and SD_WN_RULE_VERSION (bump it when a rule changes). The
 * dictionary does not depend on the bank: it is read once per process.
 */
#ifndef SD_SAFETY_WORDNET_H
#define SD_SAFETY_WORDNET_H

#include <stddef.h>
#include <stdint.h>

#include "safety/bank.h"

#define SD_WN_RULE_VERSION 5

/* What the detector offers the resolution (all called with the detector's lexicon). */
typedef struct {
  void *ctx;
  /* add a term: category, lemma, source ("wordnet:gun#1", "wordnet:gloss of nude") */
  int (*add)(void *ctx, int cat, const char *lemma, const char *src);
  /* bit c set when `word` (n bytes) is a single-word term of category c, as written */
  uint32_t (*term_cats)(void *ctx, const char *word, size_t n);
  /* whether `text` holds a (non-negated) term of category c other than `word` and the
   * terms that stem like it */
  int (*judge)(void *ctx, int cat, const char *text, const char *word);
} sd_wn_hooks;

/* Resolve the bank's WordNet terms (from the cache when valid; cache_path "" = no cache)
 * and hand each to hooks->add. status (cap bytes) gets "" or why WordNet was not used. */
int sd_wn_resolve(const sd_bank *bank, const char *cache_path, const sd_wn_hooks *hooks, char *status, size_t cap);

/* The default cache file of a bank (sd_lexical_default_cache). */
int sd_wn_default_cache(const sd_bank *bank, char *buf, size_t cap);

/* The English dictionary: WordNet's one-word lemmas (all parts of speech, and the
 * irregular inflections of its .exc files), their Snowball English stems, and the stems of
 * everyday words (a sense seen in WordNet's tagged corpus, tagsense_cnt > 0, or an irregular
 * inflection: "arm", "sang"; not the genus "nuda"). Built once from WordNet and kept in
 * $cache/wordnet-dict-v4.bin (sorted strings, read back in a millisecond; a damaged file is
 * rebuilt), loaded once per process. */
enum { SD_WN_LEMMAS = 0, SD_WN_STEMS, SD_WN_COMMON, SD_WN_ANIMALS, SD_WN_PERSONS, SD_WN_THINGS, SD_WN_COMPOUNDS,
       SD_WN_INANIMATE, SD_WN_NSETS };
/* SD_WN_ANIMALS: the nouns whose first (most frequent) sense is in the lexicographer file
 * noun.animal, or, when WordNet's tagged corpus does not rank their senses, one of whose
 * senses is and none a person ("pheasant", "dog", "raccoon"; not "redhead"), and that are
 * no adjective ("male", "young", "human"), and their irregular plurals ("geese");
 * SD_WN_PERSONS: the nouns with a sense in noun.person ("dog":
 * a cad; "chick"); SD_WN_THINGS: the nouns whose first sense (as WordNet lists them) is a
 * concrete thing — noun.animal, noun.person, noun.artifact, noun.body or noun.object
 * ("sword", "skull", "robber", "werewolf"; not "shooting" or "massacre", acts). One-word
 * lemmas. SD_WN_COMPOUNDS: the nouns of two or three words, written with spaces, whose first
 * sense is in noun.animal, noun.plant or noun.food, none in noun.person, and whose last word
 * has a sense there of its own ("robber fly", "killer whale", "death cap", "blood sausage",
 * "naked mole rat"; not "cannabis sativa"). SD_WN_INANIMATE: the one-word nouns whose first
 * sense is a lifeless thing (noun.act, artifact, attribute, cognition, communication, event,
 * food, object, phenomenon, plant, possession, quantity, shape, substance or time) and none
 * a person, an animal or a part of the body ("cake", "plan", "wedding", "lantern"; not
 * "chest", "hand", "crowd", "city"). */
typedef struct {
  char *blob;     /* the strings, NUL-terminated, sorted */
  uint32_t *off;  /* offset of string i */
  uint32_t n;
} sd_wn_set;
typedef struct {
  sd_wn_set set[SD_WN_NSETS];
} sd_wn_dict;
/* NULL (and *why set) when WordNet is missing and no dictionary file is cached. */
const sd_wn_dict *sd_wn_dictionary(const char **why);
int sd_wn_dict_has(const sd_wn_dict *d, int set, const char *word);
/* Whether the lower-case word (n bytes) names an animal (SD_WN_ANIMALS), as written or as a
 * regular plural ("pheasants", "foxes", "puppies"); `strict`: and no person (SD_WN_PERSONS:
 * not "chick", "fox", "dog"). */
int sd_wn_is_animal(const sd_wn_dict *d, const char *word, size_t n, int strict);
/* Whether the lower-case word names a concrete thing (SD_WN_THINGS), as written or as a
 * regular plural. */
int sd_wn_is_thing(const sd_wn_dict *d, const char *word, size_t n);
/* Whether the lower-case word has a sense that is a person (SD_WN_PERSONS), as written or as
 * a regular plural. */
int sd_wn_is_person(const sd_wn_dict *d, const char *word, size_t n);
/* Whether the lower-case words (n bytes, one space between) are a compound of SD_WN_COMPOUNDS,
 * as written or with the last word a regular plural ("robber flies"). */
int sd_wn_is_compound(const sd_wn_dict *d, const char *words, size_t n);
/* Whether the lower-case word is a noun of SD_WN_INANIMATE, as written or as a regular plural. */
int sd_wn_is_inanimate(const sd_wn_dict *d, const char *word, size_t n);

#endif
