/* A string -> list of ints map (open addressing + postings), for the lexical detector's
 * lexicon, the emoji table and the WordNet dictionary. Keys are copied. */
#ifndef SD_SAFETY_STRMAP_H
#define SD_SAFETY_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *key;
  int head; /* first posting, -1 = none */
} sd_strmap_slot;

typedef struct {
  int val, next;
} sd_strmap_post;

typedef struct {
  sd_strmap_slot *slots;
  size_t cap, used;
  sd_strmap_post *post;
  int n_post, cap_post;
} sd_strmap;

/* The slot of key k (NUL-terminated), or NULL. */
const sd_strmap_slot *sd_strmap_find(const sd_strmap *m, const char *k);
/* The same for the n bytes at k. */
const sd_strmap_slot *sd_strmap_findn(const sd_strmap *m, const char *k, size_t n);
/* Add val to k's postings (a value already there is not added twice). -1 when out of memory. */
int sd_strmap_add(sd_strmap *m, const char *k, int val);
void sd_strmap_free(sd_strmap *m);

/* Iterate a slot's postings: for (int p = s ? s->head : -1; p >= 0; p = m->post[p].next). */

#endif
