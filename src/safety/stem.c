/* Snowball stemmer pool (stem.h). */
#include "safety/stem.h"

#include <libstemmer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct sd_stemset {
  struct sb_stemmer *s[SD_STEM_MAX_LANGS];
  sd_stemset *next;
};

struct sd_stem_pool {
  char langs[SD_STEM_MAX_LANGS][8];
  int n;
  pthread_mutex_t lock;
  sd_stemset *free_list;
};

int sd_stem_known(const char *lang) {
  struct sb_stemmer *s = sb_stemmer_new(lang, "UTF_8");
  if (s) sb_stemmer_delete(s);
  return s != NULL;
}

int sd_stem_pool_create(const char *const *langs, int n, sd_stem_pool **out) {
  *out = NULL;
  if (n < 0 || n > SD_STEM_MAX_LANGS) return sd_fail(SD_E_ARG, "stemmers: %d languages (at most %d)", n, SD_STEM_MAX_LANGS);
  sd_stem_pool *p = calloc(1, sizeof *p);
  if (!p) return sd_fail(SD_E_NOMEM, "stemmers: out of memory");
  for (int i = 0; i < n; i++) snprintf(p->langs[i], sizeof p->langs[i], "%s", langs[i]);
  p->n = n;
  pthread_mutex_init(&p->lock, NULL);
  *out = p;
  return SD_OK;
}

static void set_free(sd_stemset *s, int n) {
  for (int i = 0; i < n; i++)
    if (s->s[i]) sb_stemmer_delete(s->s[i]);
  free(s);
}

void sd_stem_pool_free(sd_stem_pool *p) {
  if (!p) return;
  while (p->free_list) {
    sd_stemset *s = p->free_list;
    p->free_list = s->next;
    set_free(s, p->n);
  }
  pthread_mutex_destroy(&p->lock);
  free(p);
}

sd_stemset *sd_stem_acquire(sd_stem_pool *p) {
  pthread_mutex_lock(&p->lock);
  sd_stemset *s = p->free_list;
  if (s) p->free_list = s->next;
  pthread_mutex_unlock(&p->lock);
  if (s) return s;
  if (!(s = calloc(1, sizeof *s))) return NULL;
  for (int i = 0; i < p->n; i++) s->s[i] = sb_stemmer_new(p->langs[i], "UTF_8"); /* NULL: no stemmer */
  return s;
}

void sd_stem_release(sd_stem_pool *p, sd_stemset *s) {
  if (!s) return;
  pthread_mutex_lock(&p->lock);
  s->next = p->free_list;
  p->free_list = s;
  pthread_mutex_unlock(&p->lock);
}

void sd_stem(sd_stemset *s, int k, const char *word, size_t n, char *buf, size_t cap) {
  const sb_symbol *r = NULL;
  int len = 0;
  if (s && k >= 0 && k < SD_STEM_MAX_LANGS && s->s[k]) {
    r = sb_stemmer_stem(s->s[k], (const sb_symbol *)word, (int)n);
    len = r ? sb_stemmer_length(s->s[k]) : 0;
  }
  if (!r || len <= 0 || (size_t)len >= cap) {
    r = (const sb_symbol *)word;
    len = (int)(n < cap ? n : cap - 1);
  }
  memcpy(buf, r, (size_t)len);
  buf[len] = 0;
}
