/* The lexical detector (method.md §2.1, detector 1): the bank's terms matched in the prompt
 * read the way the CLIP text encoder reads it (docs/safety-detectors.md has every rule).
 *
 * The prompt is normalised against obfuscation (normalize.h: NFKC-compatibility folding,
 * case folding, marks, zero-width characters, Unicode confusables through ICU's spoof
 * checker and character names, leetspeak, separated letters, repeats; emoji read by their
 * names), split into words and matched against the terms (lexicon.h): Snowball stems in each
 * term's language (English stem matches limited to inflections), CJK terms as substrings,
 * compounds split the way the CLIP tokenizer splits them, multi-word terms. Negated words
 * ("no blood", "sin sangre") and words inside a `safe` phrase of the same category do not
 * count. WordNet (wordnet.h) adds hyponyms of the bank's `expand =` seeds and words derived
 * from a term whose definition is about its category, resolved once and cached to a file.
 *
 * Score: per category, the number of distinct terms matched; fires when >= threshold
 * (default 1). Evidence lists which term matched which prompt text, and how.
 */
#ifndef SD_SAFETY_LEXICAL_H
#define SD_SAFETY_LEXICAL_H

#include <stddef.h>

#include "safety/bank.h"
#include "safety/detector.h"

struct sd_tokenizer;

typedef struct {
  int wordnet;            /* 1 = use WordNet: `expand =` seeds, derived words, the English
                             dictionary (compounds; English words read as English) (default 1) */
  const char *cache_path; /* WordNet expansion cache; NULL = default location (below);
                             "" = no cache */
  const struct sd_tokenizer *tok; /* CLIP tokenizer whose word stream splits compounds; NULL =
                             the bundled CLIP vocabulary, loaded on first need */
} sd_lexical_options;

/* The default cache file: $SAFESD_CACHE_DIR, else $XDG_CACHE_HOME/safesd, else
 * $HOME/.cache/safesd; the file is wordnet-<16 hex digits of the bank hash>.txt. Writes
 * the path into buf; SD_E_IO when no directory can be determined. */
int sd_lexical_default_cache(const sd_bank *bank, char *buf, size_t cap);

/* Create a lexical detector over `bank` (the detector keeps a pointer: the bank must
 * outlive it). opts may be NULL (defaults). When WordNet is requested but unavailable
 * (not built in, or its database not found) the detector is still created, without
 * expansion; sd_lexical_wordnet_status() says why. */
int sd_lexical_create(const sd_bank *bank, const sd_lexical_options *opts, sd_detector **out);

/* Number of terms in the detector's lexicon after expansion (bank + WordNet). */
int sd_lexical_n_terms(const sd_detector *d);
/* "" when WordNet expansion ran (or came from the cache), else the reason it did not. */
const char *sd_lexical_wordnet_status(const sd_detector *d);
/* One line on what the detector runs with: terms and languages, emoji names, compounds,
 * WordNet ("723 terms (en fr ...); emoji names: on; ..."). */
const char *sd_lexical_status(const sd_detector *d);
/* Whether `word` (normalised lexicon form) came into the lexicon from WordNet for `cat`. */
int sd_lexical_has_term(const sd_detector *d, int cat, const char *word);

/* The normaliser, exposed for tests: writes the prompt's normalised words, space-
 * separated (base forms, leetspeak undone, separated letters joined), into a malloc'ed
 * string. */
int sd_lexical_normalize(const char *text, char **out);

/* One-line human-readable summary of a detection against `bank` (malloc'ed). */
char *sd_detection_summary(const sd_bank *bank, const sd_detection *d);

#endif
