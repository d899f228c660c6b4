/* The lexical detector (method.md §2.1, detector 1).
 *
 * The prompt is normalised against obfuscation — Unicode NFKC-compatibility decomposition
 * with case folding, diacritics stripped (marks dropped), a few Cyrillic/Greek homoglyphs
 * folded to Latin, default-ignorable characters (zero-width spaces, soft hyphens) dropped,
 * leetspeak digits and symbols undone, separators inside words joined ("b.l.o.o.d",
 * "b-l-o-o-d", "b l o o d"), runs of a repeated letter collapsed — split into words and
 * matched, whole word, against the bank's terms, with simple inflections (-s, -es, -ies,
 * -ed, -ing, -er) and multi-word terms. Terms may be expanded with WordNet synonyms and
 * hyponyms (`expand =` in the bank), resolved once and cached to a file.
 *
 * Score: per category, the number of distinct terms matched; fires when >= threshold
 * (default 1). Evidence lists which term matched which prompt text, and how.
 */
#ifndef SD_SAFETY_LEXICAL_H
#define SD_SAFETY_LEXICAL_H

#include <stddef.h>

#include "safety/bank.h"
#include "safety/detector.h"

typedef struct {
  int wordnet;            /* 1 = expand `expand =` seeds with WordNet (default 1) */
  const char *cache_path; /* WordNet expansion cache; NULL = default location (below);
                             "" = no cache */
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
/* Whether `word` (normalised lexicon form) came into the lexicon from WordNet for `cat`. */
int sd_lexical_has_term(const sd_detector *d, int cat, const char *word);

/* The normaliser, exposed for tests: writes the prompt's normalised words, space-
 * separated (base forms, leetspeak undone, separated letters joined), into a malloc'ed
 * string. */
int sd_lexical_normalize(const char *text, char **out);

/* One-line human-readable summary of a detection against `bank` (malloc'ed). */
char *sd_detection_summary(const sd_bank *bank, const sd_detection *d);

#endif
