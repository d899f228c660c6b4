/* Snowball stemmers (libstemmer, Debian libstemmer-dev) for the lexical detector, one per
 * language of the concept bank's terms ("en", "fr", ...: the ISO 639-1 codes libstemmer
 * knows; a language it does not know is matched unstemmed). A stemmer instance is not
 * thread-safe, so the detector takes a set from a pool for each call. */
#ifndef SD_SAFETY_STEM_H
#define SD_SAFETY_STEM_H

#include <stddef.h>

#define SD_STEM_MAX_LANGS 32

typedef struct sd_stem_pool sd_stem_pool;
typedef struct sd_stemset sd_stemset;

/* Whether libstemmer has an algorithm for the language code. */
int sd_stem_known(const char *lang);
int sd_stem_pool_create(const char *const *langs, int n, sd_stem_pool **out);
void sd_stem_pool_free(sd_stem_pool *p);
/* A set of stemmers for this thread's use until sd_stem_release; NULL when out of memory. */
sd_stemset *sd_stem_acquire(sd_stem_pool *p);
void sd_stem_release(sd_stem_pool *p, sd_stemset *s);
/* The stem of word (n bytes, lower-case UTF-8) in language k of the pool, NUL-terminated in
 * buf; the word itself when the language has no stemmer or the stem does not fit. */
void sd_stem(sd_stemset *s, int k, const char *word, size_t n, char *buf, size_t cap);

#endif
