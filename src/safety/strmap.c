/* String -> postings map (strmap.h). */
#include "safety/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "safety/bank.h"

static uint64_t hbytes(const char *s, size_t n) { return sd_fnv1a64(s, n, SD_FNV1A64_INIT); }

const sd_strmap_slot *sd_strmap_findn(const sd_strmap *m, const char *k, size_t n) {
  if (!m->cap) return NULL;
  size_t i = (size_t)hbytes(k, n) & (m->cap - 1);
  while (m->slots[i].key) {
    const char *sk = m->slots[i].key;
    if ((!n || sk[0] == k[0]) && strncmp(sk, k, n) == 0 && sk[n] == 0) return &m->slots[i];
    i = (i + 1) & (m->cap - 1);
  }
  return NULL;
}

const sd_strmap_slot *sd_strmap_find(const sd_strmap *m, const char *k) { return sd_strmap_findn(m, k, strlen(k)); }

int sd_strmap_add(sd_strmap *m, const char *k, int val) {
  if ((m->used + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    sd_strmap_slot *ns = calloc(nc, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i].key) {
        size_t j = (size_t)hbytes(m->slots[i].key, strlen(m->slots[i].key)) & (nc - 1);
        while (ns[j].key) j = (j + 1) & (nc - 1);
        ns[j] = m->slots[i];
      }
    free(m->slots);
    m->slots = ns;
    m->cap = nc;
  }
  if (m->n_post == m->cap_post) {
    int nc = m->cap_post ? 2 * m->cap_post : 256;
    sd_strmap_post *np = realloc(m->post, (size_t)nc * sizeof *np);
    if (!np) return -1;
    m->post = np;
    m->cap_post = nc;
  }
  sd_strmap_slot *s = (sd_strmap_slot *)sd_strmap_find(m, k);
  if (!s) {
    size_t n = strlen(k);
    size_t i = (size_t)hbytes(k, n) & (m->cap - 1);
    while (m->slots[i].key) i = (i + 1) & (m->cap - 1);
    s = &m->slots[i];
    if (!(s->key = malloc(n + 1))) return -1;
    memcpy(s->key, k, n + 1);
    s->head = -1;
    m->used++;
  }
  for (int p = s->head; p >= 0; p = m->post[p].next)
    if (m->post[p].val == val) return 0;
  m->post[m->n_post] = (sd_strmap_post){val, s->head};
  s->head = m->n_post++;
  return 0;
}

void sd_strmap_free(sd_strmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
  free(m->slots);
  free(m->post);
  memset(m, 0, sizeof *m);
}
