/* The learned detector's word tables (weights file version 2): the pretrained word vectors'
 * keys (extension glove: tools/learned/glove.py) and the WordNet sense table (extension
 * senses: tools/learned/senses.py, the lookup of a word's synsets and their ancestors), each
 * validated at load. docs/safety-detectors.md, "Learned detector". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/learned_internal.h"

#define SENSE_MIN_LEN 3
#define SENSE_MAX_LEN 32
#define SENSE_MAX_PER_WORD 64 /* senses of one table word */

/* morphy's detachment rules and the -ing/-ed ones (senses.py DETACH, same order) */
static const char *const detach[][2] = {
    {"s", ""},   {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
    {"men", "man"}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"},   {"ed", ""},
    {"ing", "e"}, {"ing", ""}, {"er", ""},  {"est", ""}, {"er", "e"},   {"est", "e"},
};
#define N_DETACH ((int)(sizeof detach / sizeof detach[0]))

static uint32_t key_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

/* offsets [n + 1] from 0 to total, non-decreasing, each step at most max_step */
static int check_offsets(const char *path, const char *name, const int32_t *off, int n, int total, int max_step) {
  if (off[0] != 0 || off[n] != total)
    return sd_fail(SD_E_FORMAT, "%s: tensor '%s' must run from 0 to %d", path, name, total);
  for (int i = 0; i < n; i++)
    if (off[i + 1] < off[i] || off[i + 1] - off[i] > max_step)
      return sd_fail(SD_E_FORMAT, "%s: tensor '%s' entry %d is out of order or spans over %d", path, name, i, max_step);
  return SD_OK;
}

int sd_learned_sense_load(sd_learned_model *m, const sd_safetensors *st) {
  const char *p = st->path;
  int rc;
  if ((rc = sd_learned_meta_int(st, "sense_depth", 0, 16, &m->sense_depth)) ||
      (rc = sd_learned_meta_int(st, "sense_max", 1, SD_LEARNED_MAX_SENSE, &m->sense_max)))
    return rc;
  int nw = -1, nwo, nws = -1, nsyn = -1, npo, npar = -1;
  int32_t *hash = NULL;
  if ((rc = sd_learned_copy_i32(st, "sense.word_hash", &nw, &hash))) return rc;
  m->sense_hash = (uint32_t *)hash;
  m->n_sense_words = nw;
  nwo = nw + 1;
  if ((rc = sd_learned_copy_i32(st, "sense.word_off", &nwo, &m->sense_off)) ||
      (rc = sd_learned_copy_i32(st, "sense.word_syn", &nws, &m->sense_syn)) ||
      (rc = sd_learned_copy_i32(st, "sense.syn_code", &nsyn, &m->syn_code)))
    return rc;
  m->n_syn = nsyn;
  npo = nsyn + 1;
  if ((rc = sd_learned_copy_i32(st, "sense.par_off", &npo, &m->par_off)) ||
      (rc = sd_learned_copy_i32(st, "sense.parents", &npar, &m->parents)))
    return rc;
  for (int i = 1; i < nw; i++)
    if (m->sense_hash[i] <= m->sense_hash[i - 1])
      return sd_fail(SD_E_FORMAT, "%s: tensor 'sense.word_hash' is not strictly increasing (entry %d)", p, i);
  if ((rc = check_offsets(p, "sense.word_off", m->sense_off, nw, nws, SENSE_MAX_PER_WORD)) ||
      (rc = check_offsets(p, "sense.par_off", m->par_off, nsyn, npar, 1 << 16)))
    return rc;
  for (int i = 0; i < nws; i++)
    if (m->sense_syn[i] < 0 || m->sense_syn[i] >= nsyn)
      return sd_fail(SD_E_FORMAT, "%s: tensor 'sense.word_syn' entry %d names synset %d of %d", p, i, m->sense_syn[i], nsyn);
  for (int i = 0; i < npar; i++)
    if (m->parents[i] < 0 || m->parents[i] >= nsyn)
      return sd_fail(SD_E_FORMAT, "%s: tensor 'sense.parents' entry %d names synset %d of %d", p, i, m->parents[i], nsyn);
  if (!(m->syn_bucket = malloc((size_t)nsyn * sizeof *m->syn_bucket)))
    return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  for (int i = 0; i < nsyn; i++) {
    if (m->syn_code[i] < 100000000 || m->syn_code[i] >= 400000000)
      return sd_fail(SD_E_FORMAT, "%s: tensor 'sense.syn_code' entry %d (%d) is not a synset code", p, i, m->syn_code[i]);
    char b[16];
    int n = snprintf(b, sizeof b, "%d", (int)m->syn_code[i]);
    m->syn_bucket[i] = sd_learned_hash('s', b, (size_t)n) & m->mask;
  }
  m->has_sense = 1;
  return SD_OK;
}

int sd_learned_glove_load(sd_learned_model *m, const sd_safetensors *st) {
  int n = m->n_glove, rc;
  int32_t *hash = NULL;
  if ((rc = sd_learned_copy_i32(st, "glove.word_hash", &n, &hash))) return rc;
  m->glove_hash = (uint32_t *)hash;
  for (int i = 1; i < n; i++)
    if (m->glove_hash[i] <= m->glove_hash[i - 1])
      return sd_fail(SD_E_FORMAT, "%s: tensor 'glove.word_hash' is not strictly increasing (entry %d)", st->path, i);
  return SD_OK;
}

static int find_key(const uint32_t *keys, int n, uint32_t h) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (keys[mid] == h) return mid;
    if (keys[mid] < h) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

int sd_learned_glove_feature(const sd_learned_model *m, const uint32_t *cp, int len, uint32_t *out) {
  if (!m->n_glove || len < 2 || len > SENSE_MAX_LEN) return 0;
  char w[SENSE_MAX_LEN];
  for (int i = 0; i < len; i++) {
    if (cp[i] < 'a' || cp[i] > 'z') return 0;
    w[i] = (char)cp[i];
  }
  int i = find_key(m->glove_hash, m->n_glove, key_hash(w, (size_t)len));
  if (i < 0) return 0;
  *out = (1u << m->B) + (uint32_t)i;
  return 1;
}

void sd_learned_word_tables_free(sd_learned_model *m) {
  free(m->glove_hash);
  free(m->sense_hash);
  free(m->sense_off);
  free(m->sense_syn);
  free(m->syn_code);
  free(m->par_off);
  free(m->parents);
  free(m->syn_bucket);
}


static int has(const int *set, int n, int s) {
  for (int i = 0; i < n; i++)
    if (set[i] == s) return 1;
  return 0;
}

int sd_learned_sense_features(const sd_learned_model *m, const uint32_t *cp, int len, uint32_t *out) {
  if (!m->has_sense || len < SENSE_MIN_LEN || len > SENSE_MAX_LEN) return 0;
  char w[SENSE_MAX_LEN + 1];
  for (int i = 0; i < len; i++) {
    if (cp[i] < 'a' || cp[i] > 'z') return 0;
    w[i] = (char)cp[i];
  }
  /* step 2: candidates (no replacement is longer than its suffix: each at most len bytes) */
  char cand[1 + N_DETACH][SENSE_MAX_LEN + 2];
  int clen[1 + N_DETACH], nc = 0;
  memcpy(cand[0], w, (size_t)len);
  clen[nc++] = len;
  for (int r = 0; r < N_DETACH; r++) {
    int ls = (int)strlen(detach[r][0]), lr = (int)strlen(detach[r][1]);
    if (len - ls < 2 || memcmp(w + len - ls, detach[r][0], (size_t)ls)) continue;
    char *c = cand[nc];
    int n = len - ls;
    memcpy(c, w, (size_t)n);
    memcpy(c + n, detach[r][1], (size_t)lr);
    n += lr;
    int dup = 0;
    for (int q = 0; q < nc && !dup; q++) dup = clen[q] == n && !memcmp(cand[q], c, (size_t)n);
    if (!dup) clen[nc++] = n;
  }
  /* step 3: the start set */
  int set[SD_LEARNED_MAX_SENSE], n = 0;
  for (int q = 0; q < nc; q++) {
    int i = find_key(m->sense_hash, m->n_sense_words, key_hash(cand[q], (size_t)clen[q]));
    if (i < 0) continue;
    for (int k = m->sense_off[i]; k < m->sense_off[i + 1]; k++)
      if (n < m->sense_max && !has(set, n, m->sense_syn[k])) set[n++] = m->sense_syn[k];
  }
  /* step 4: ancestors level by level */
  int lo = 0;
  for (int d = 0; d < m->sense_depth; d++) {
    int hi = n;
    for (int i = lo; i < hi; i++)
      for (int k = m->par_off[set[i]]; k < m->par_off[set[i] + 1]; k++)
        if (n < m->sense_max && !has(set, n, m->parents[k])) set[n++] = m->parents[k];
    lo = hi;
  }
  for (int i = 0; i < n; i++) out[i] = m->syn_bucket[set[i]];
  return n;
}
