/* The concept bank: per-category lexicon terms, concept descriptions, safe anchors, the
 * safety-context text and safe substitutes, read from a human-editable text file.
 *
 * File format (docs/safety-detectors.md has the full description):
 *
 *   # comment (whole line; '#' or ';' as the first non-blank character)
 *   [violence]                          a category (at most SD_BANK_MAX_CATEGORIES)
 *   terms        = blood, gore, murder  comma-separated lexicon terms (repeatable);
 *                                       a term may be several words ("child abuse")
 *   terms.fr     = sang, meurtre        terms in another language (ISO 639-1 code, 2 or 3
 *                                       lower-case letters; plain `terms` are English)
 *   descriptions = a photo of a violent fight with blood     one per line (repeatable)
 *   anchors      = a photo of people shaking hands           one per line (repeatable)
 *   context      = peaceful, non-violent, unharmed           at most one per category
 *   substitute   = blood -> red paint   (repeatable; "gun ->" drops the word)
 *   expand       = gun#1, knife#2       WordNet noun seeds (word#sense, no # = all senses)
 *   exclude      = stick, club          never flagged in this category (bank or WordNet)
 *   safe         = water gun, killer whale   phrases that mask the terms inside them
 *   homographs   = pain, gang           English words that are ordinary words of another
 *                                       language: not read as English in other text
 *   acts         = shoot, =execution    terms of the category naming an act that is not
 *                                       counted when it falls on a lifeless thing
 *                                       ("shooting a wedding", "the execution of the plan";
 *                                       lexical_gate.h); each must be one of its terms
 *
 *   [bank]                              reserved name: not a category, at most one;
 *   base = default                      `default` (the default when absent): this bank adds
 *                                       to the bundled default bank (sd_bank_compose);
 *                                       `none`: it replaces it
 *
 *   [thresholds]                        reserved name: not a category, at most one; the
 *   lexical = 2                         calibrated detector thresholds (safesd calibrate):
 *   semantic = 0.1234                   DETECTOR = threshold, DETECTOR.KEY = value with the
 *   semantic.model = 0123456789abcdef   keys of a calibration file (calibrate.h)
 *
 *   [levels]                            reserved name, at most one: the named safety levels
 *   high = weight 0.9, context 0.1      measured for the bank's model (safesd eval levels;
 *                                       format in safety/levels.h)
 *
 * The gate (src/api/safety.c) sets each detector's threshold from [thresholds] when the
 * section names it (an explicit threshold option still wins), and a level's (λ, τ_gc,
 * strategy, blend) from [levels] when it names the level. Both sections are left out of
 * the bank's hash, so writing them keeps the derived caches (WordNet, concept embeddings)
 * and calibration files made for the bank valid.
 *
 * The file is untrusted: every error names the file and line ("path:12: unknown key
 * 'term'"). Lines longer than SD_BANK_MAX_LINE bytes, invalid UTF-8, empty terms, unknown
 * keys, duplicate categories or duplicate `context` keys are errors.
 */
#ifndef SD_SAFETY_BANK_H
#define SD_SAFETY_BANK_H

#include <stddef.h>
#include <stdint.h>

#include "safety/calibrate.h"
#include "safety/levels.h"

#define SD_BANK_MAX_CATEGORIES 32
#define SD_BANK_MAX_LINE 4096
#define SD_BANK_MAX_FILE (16u << 20)

typedef struct {
  char *from; /* as written in the file (trimmed) */
  char *to;   /* "" = drop the word */
} sd_bank_subst;

typedef struct {
  char **items;
  int n, cap;
} sd_strlist;

typedef struct {
  char *name;
  sd_strlist terms, descriptions, anchors, expand, exclude, safe, homographs, acts;
  sd_strlist term_lang; /* term_lang.items[i]: the language of terms.items[i] ("en" for
                           `terms =`, "fr" for `terms.fr =`) */
  char *context; /* NULL when the category has none */
  sd_bank_subst *subst;
  int n_subst, cap_subst;
  int line; /* line of the [section] header */
} sd_bank_category;

typedef struct sd_bank {
  sd_bank_category *cats;
  int n_cats;
  uint64_t hash; /* FNV-1a 64 of the file's bytes, the lines of the [thresholds] and
                    [levels] sections left out: the key of derived caches */
  char *path;
  sd_calib_file thresholds; /* the [thresholds] section (n = 0 when absent) */
  sd_levels levels;         /* the [levels] section (no level set when absent) */
  int base_default;         /* [bank] base: 1 = adds to the default bank (the default), 0 = replaces it */
  char *sources;            /* the bank files in force, " + "-joined (a loaded file: its path) */
  int n_own;                /* sd_bank_compose: categories 0..n_own-1 are the own bank's (the
                               rest came from the base); a loaded file: n_cats */
} sd_bank;

/* Parse a bank from memory; `name` is used in error messages ("name:line: ..."). */
int sd_bank_parse(const char *text, size_t len, const char *name, sd_bank **out);
/* Load a bank file. */
int sd_bank_load(const char *path, sd_bank **out);
/* Load data/concepts/default.bank from $SAFESD_DATA_DIR, the source tree, then the
 * install prefix (the first that exists). */
int sd_bank_load_default(sd_bank **out);
void sd_bank_free(sd_bank *b);

/* Write e[0..n) into the [thresholds] section of the bank file at path, keeping the other
 * detectors' entries already there: the section is replaced (its comments are not kept) or,
 * when absent, inserted before the first [category]. Everything else in the file is kept
 * byte for byte, so the bank's hash does not change. The new text is parsed before it is
 * written (atomically); a malformed bank is an error and is not rewritten. */
int sd_bank_write_thresholds(const char *path, const sd_calib_entry *e, int n);

/* Write the [levels] section of the bank file at path: the levels set in L (each with its
 * line; comment: "# " lines under the header, may be NULL), replacing the section (comments
 * included) or, when absent, inserting it before the first [category]; everything else is
 * kept byte for byte, so the hash does not change. Parsed before it is written (atomically). */
int sd_bank_write_levels(const char *path, const sd_levels *L, const char *comment);

/* The composition of a bank with the default bank it adds to (sd_bank_compose.c):
 * own's categories first, at the same indices (so own's [thresholds] and a detector built on
 * own alone, e.g. the semantic one, keep their category numbers), then base's categories:
 * one with the name of an own category merges into it (lists united, own first; own's
 * context and substitutes win), the others are appended. Own's `safe` phrases are added to
 * every category that came from base too: they say what is benign in own's domain (the
 * bundled emoji model's "water pistol"). Thresholds and levels are own's; the hash mixes both hashes;
 * `sources` is "own + base". Both inputs are left as they are. */
int sd_bank_compose(const sd_bank *own, const sd_bank *base, sd_bank **out);

/* Index of the category called `name`, or -1. */
int sd_bank_find(const sd_bank *b, const char *name);
/* The substitute for `term` in category `cat` (compared after lexical normalisation by
 * the caller; here an ASCII case-insensitive match of the written form), or NULL. */
const char *sd_bank_substitute(const sd_bank *b, int cat, const char *term);

uint64_t sd_fnv1a64(const void *data, size_t len, uint64_t h);
#define SD_FNV1A64_INIT 0xcbf29ce484222325ULL

#endif
