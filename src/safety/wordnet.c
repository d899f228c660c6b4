/* WordNet expansion, derived words and the dictionary (wordnet.h). */
#include "safety/wordnet.h"

#include <libstemmer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SAFESD_HAVE_WORDNET
#include <wn.h>
#endif

#include "core/error.h"
#include "io/fileio.h"

#define WN_MAX_SYNSETS 4000
#define WN_MAX_DERIVED 20000

typedef struct {
  int cat;
  char *seed, *lemma;
} wn_entry;
typedef struct {
  wn_entry *e;
  int n, cap;
} wn_list;

static int wn_push(wn_list *l, int cat, const char *seed, const char *lemma) {
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 256;
    wn_entry *ne = realloc(l->e, (size_t)nc * sizeof *ne);
    if (!ne) return -1;
    l->e = ne;
    l->cap = nc;
  }
  wn_entry *x = &l->e[l->n];
  x->cat = cat;
  x->seed = strdup(seed);
  x->lemma = strdup(lemma);
  if (!x->seed || !x->lemma) {
    free(x->seed);
    free(x->lemma);
    return -1;
  }
  l->n++;
  return 0;
}
static void wn_list_free(wn_list *l) {
  for (int i = 0; i < l->n; i++) {
    free(l->e[i].seed);
    free(l->e[i].lemma);
  }
  free(l->e);
}

int sd_wn_default_cache(const sd_bank *bank, char *buf, size_t cap) {
  if (!bank || !buf) return sd_fail(SD_E_ARG, "sd_lexical_default_cache: NULL argument");
  char dir[2048];
  int rc = sd_cache_dir(dir, sizeof dir);
  if (rc) return rc;
  uint64_t key = bank->hash ^ (uint64_t)SD_WN_RULE_VERSION * 0x9E3779B97F4A7C15ULL;
  int w = snprintf(buf, cap, "%s/wordnet-%016llx.txt", dir, (unsigned long long)key);
  if (w < 0 || (size_t)w >= cap) return sd_fail(SD_E_ARG, "cache path too long");
  return SD_OK;
}

/* Cache file: "bank <hex> v<rule>\n" then "cat\tseed\tlemma" lines. */
static int cache_read(const char *path, uint64_t hash, wn_list *l) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char line[1024], want[64];
  snprintf(want, sizeof want, "bank %016llx v%d\n", (unsigned long long)hash, SD_WN_RULE_VERSION);
  int ok = fgets(line, sizeof line, f) && strcmp(line, want) == 0;
  while (ok && fgets(line, sizeof line, f)) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') line[--n] = 0;
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (!t1 || !t2) {
      ok = 0;
      break;
    }
    *t1 = *t2 = 0;
    char *end;
    long c = strtol(line, &end, 10);
    if (*end || c < 0 || c >= SD_BANK_MAX_CATEGORIES || !t2[1] || wn_push(l, (int)c, t1 + 1, t2 + 1)) ok = 0;
  }
  fclose(f);
  return ok ? 0 : -1;
}

#ifdef SAFESD_HAVE_WORDNET /* writes what only a WordNet build computes */
static void cache_write(const char *path, uint64_t hash, const wn_list *l) {
  sd_mkdirs_for(path);
  char tmp[2240];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return;
  fprintf(f, "bank %016llx v%d\n", (unsigned long long)hash, SD_WN_RULE_VERSION);
  for (int i = 0; i < l->n; i++) fprintf(f, "%d\t%s\t%s\n", l->e[i].cat, l->e[i].seed, l->e[i].lemma);
  if (fclose(f) == 0 && rename(tmp, path) == 0) return;
  remove(tmp);
}
#endif

#ifdef SAFESD_HAVE_WORDNET
static pthread_mutex_t wn_lock = PTHREAD_MUTEX_INITIALIZER;
static int wn_ready = 0;

/* wninit once; call with wn_lock held. */
static int wn_open(void) {
  if (!wn_ready) wn_ready = wninit() == 0;
  return wn_ready;
}

/* Hyponyms: from the seed synset(s) down the hyponym tree (HYPOPTR, transitively), keep a
 * lemma when (1) this synset is the lemma's first (most frequent) WordNet noun sense,
 * (2) it has >= 3 characters and no capital or digit; the category's `exclude` is applied
 * when the term is added. */
static int wn_expand_seed(int cat, const char *seed_spec, wn_list *out, char *why, size_t whycap) {
  char word[256];
  int sense = 0;
  snprintf(word, sizeof word, "%s", seed_spec);
  char *hash = strchr(word, '#');
  if (hash) {
    *hash = 0;
    sense = atoi(hash + 1);
  }
  for (char *p = word; *p; p++)
    if (*p == ' ') *p = '_';
  IndexPtr idx = index_lookup(word, NOUN);
  if (!idx) {
    snprintf(why, whycap, "WordNet has no noun '%s'", word);
    return 0; /* not an error: reported in the status */
  }
  long *queue = malloc(WN_MAX_SYNSETS * sizeof *queue);
  int nq = 0;
  if (!queue) {
    free_index(idx);
    return -1;
  }
  for (int s = 0; s < idx->off_cnt && nq < WN_MAX_SYNSETS; s++)
    if (sense == 0 || sense == s + 1) queue[nq++] = (long)idx->offset[s];
  free_index(idx);
  for (int qi = 0; qi < nq; qi++) {
    SynsetPtr ss = read_synset(NOUN, queue[qi], "");
    if (!ss) continue;
    for (int w = 0; w < ss->wcount; w++) {
      if (ss->wnsns[w] != 1) continue;
      char lemma[256];
      snprintf(lemma, sizeof lemma, "%s", ss->words[w]);
      for (char *p = lemma; *p; p++) {
        if (*p == '_') *p = ' ';
        if (*p == '(') *p = 0;
      }
      if (strlen(lemma) < 3) continue;
      int proper = 0;
      for (const char *p = lemma; *p; p++) proper |= (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
      if (proper) continue; /* proper names and codes (Elvis, M-1, .22): too ambiguous */
      if (wn_push(out, cat, seed_spec, lemma)) {
        free_synset(ss);
        free(queue);
        return -1;
      }
    }
    for (int p = 0; p < ss->ptrcount; p++) {
      if (ss->ptrtyp[p] != HYPOPTR || ss->ppos[p] != NOUN) continue;
      int seen = 0;
      for (int j = 0; j < nq && !seen; j++) seen = queue[j] == ss->ptroff[p];
      if (!seen && nq < WN_MAX_SYNSETS) queue[nq++] = ss->ptroff[p];
    }
    free_synset(ss);
  }
  free(queue);
  return 0;
}

static const char *const pos_name[NUMPARTS + 1] = {"", "noun", "verb", "adj", "adv"};

/* Open WordNet's index.<pos> or data.<pos> with a handle of our own (libwordnet seeks in its
 * own handles on every lookup). */
static FILE *wn_file(const char *kind, int pos) {
  char path[4096];
  const char *dir = SetSearchdir();
  if (!dir) return NULL;
  if (!strcmp(kind, "exc")) snprintf(path, sizeof path, "%s/%s.exc", dir, pos_name[pos]);
  else snprintf(path, sizeof path, "%s/%s.%s", dir, kind, pos_name[pos]);
  return fopen(path, "rb");
}

/* The gloss of the synset at `off` in data.<pos>: the text after " | " on its line. */
static int wn_gloss(FILE *data, long off, char *buf, size_t cap) {
  if (fseek(data, off, SEEK_SET) || !fgets(buf, (int)cap, data)) return 0;
  char *bar = strstr(buf, " | ");
  if (!bar) return 0;
  memmove(buf, bar + 3, strlen(bar + 3) + 1);
  return 1;
}

/* Derived words: a one-word lemma (letters only, >= 5) that starts with a single-word term
 * T (>= 3 letters; T's final e may be dropped: nude -> nudist) followed by >= 2 letters, or
 * ends with one after >= 3 letters, that is not itself a term of the category and does not
 * start with a negation (non-, anti-, counter-, un-), joins the category when the gloss of
 * its first (most frequent) sense, in any part of speech, holds a term of the category
 * other than T (and T's stem-mates): "nudist" ("a person who practices nudity"), not
 * "bloodstream" ("the blood flowing through the circulatory system"). The lemma's synonyms
 * are not read (bloodline's synonyms include "blood"). Index lines: "lemma pos synset_cnt
 * p_cnt [ptr...] sense_cnt tagsense_cnt offset...": the first offset is the first sense. */
#define WN_DERIVED_TS 8
static int wn_derived(const sd_wn_hooks *h, wn_list *out) {
  static char line[65536], gloss[65536];
  int added = 0;
  for (int pos = 1; pos <= NUMPARTS; pos++) {
    FILE *f = wn_file("index", pos), *data = wn_file("data", pos);
    while (f && data && fgets(line, sizeof line, f) && added < WN_MAX_DERIVED) {
      if (line[0] == ' ') continue; /* licence header */
      char *sp = strchr(line, ' ');
      if (!sp) continue;
      *sp = 0;
      size_t n = strlen(line);
      int letters = n >= 5;
      for (size_t i = 0; i < n && letters; i++) letters = line[i] >= 'a' && line[i] <= 'z';
      if (!letters) continue;
      if (!strncmp(line, "non", 3) || !strncmp(line, "anti", 4) || !strncmp(line, "counter", 7) ||
          !strncmp(line, "un", 2))
        continue;
      char ts[WN_DERIVED_TS][64];
      uint32_t tc[WN_DERIVED_TS], own = h->term_cats(h->ctx, line, n), cats = 0;
      int nt = 0;
#define CAND(str, len)                                                   \
  do {                                                                   \
    uint32_t c_ = h->term_cats(h->ctx, (str), (len)) & ~own;             \
    if (c_ && nt < WN_DERIVED_TS && (len) < 64) {                        \
      memcpy(ts[nt], (str), (len));                                      \
      ts[nt][(len)] = 0;                                                 \
      tc[nt++] = c_;                                                     \
      cats |= c_;                                                        \
    }                                                                    \
  } while (0)
      for (size_t k = 3; k + 2 <= n && k < 60; k++) {
        CAND(line, k); /* term + rest */
        if (line[k] != 'e') { /* nude -> nud + ist */
          char t[64];
          memcpy(t, line, k);
          t[k] = 'e';
          CAND(t, k + 1);
        }
        if (n - k >= 3) CAND(line + k, n - k); /* rest + term */
      }
#undef CAND
      if (!cats) continue;
      /* the first synset offset: the fields after the pointer symbols */
      char *tok = strtok(sp + 1, " "); /* pos */
      tok = tok ? strtok(NULL, " ") : NULL; /* synset_cnt */
      tok = tok ? strtok(NULL, " ") : NULL; /* p_cnt */
      int np = tok ? atoi(tok) : -1;
      for (int i = 0; tok && i < np + 3; i++) tok = strtok(NULL, " "); /* pointers, sense_cnt, tagsense_cnt, offset */
      if (!tok || np < 0 || !wn_gloss(data, atol(tok), gloss, sizeof gloss)) continue;
      for (int c = 0; c < SD_BANK_MAX_CATEGORIES; c++) {
        int yes = 0;
        for (int i = 0; i < nt && !yes; i++) yes = (tc[i] >> c & 1) && h->judge(h->ctx, c, gloss, ts[i]);
        if (!yes) continue;
        if (wn_push(out, c, "gloss", line)) {
          fclose(f);
          fclose(data);
          return -1;
        }
        added++;
      }
    }
    if (f) fclose(f);
    if (data) fclose(data);
  }
  return 0;
}
#endif

static int add_all(const wn_list *l, int from, const sd_wn_hooks *h, int n_cats) {
  for (int i = from; i < l->n; i++) {
    if (l->e[i].cat >= n_cats) continue;
    char src[300];
    snprintf(src, sizeof src, "wordnet:%s", l->e[i].seed);
    int rc = h->add(h->ctx, l->e[i].cat, l->e[i].lemma, src);
    if (rc) return rc;
  }
  return SD_OK;
}

int sd_wn_resolve(const sd_bank *b, const char *cache_path, const sd_wn_hooks *h, char *status, size_t cap) {
  status[0] = 0;
  char path[2200] = "";
  int use_cache = 1;
  if (cache_path) {
    if (!*cache_path) use_cache = 0;
    else snprintf(path, sizeof path, "%s", cache_path);
  } else if (sd_wn_default_cache(b, path, sizeof path)) {
    use_cache = 0;
    sd_clear_error();
  }
  wn_list l = {0};
  if (use_cache && cache_read(path, b->hash, &l) == 0) {
    int rc = add_all(&l, 0, h, b->n_cats);
    wn_list_free(&l);
    return rc;
  }
  wn_list_free(&l);
  memset(&l, 0, sizeof l);
#ifdef SAFESD_HAVE_WORDNET
  pthread_mutex_lock(&wn_lock);
  if (!wn_open()) {
    pthread_mutex_unlock(&wn_lock);
    snprintf(status, cap, "WordNet database not found (install wordnet-base, or set WNSEARCHDIR)");
    return SD_OK;
  }
  int rc = SD_OK;
  for (int c = 0; c < b->n_cats && !rc; c++)
    for (int s = 0; s < b->cats[c].expand.n && !rc; s++) {
      char why[300] = "";
      if (wn_expand_seed(c, b->cats[c].expand.items[s], &l, why, sizeof why)) rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
      if (why[0] && !status[0]) snprintf(status, cap, "[%.40s] %.200s", b->cats[c].name, why);
    }
  int n1 = l.n;
  if (!rc) rc = add_all(&l, 0, h, b->n_cats); /* the hyponyms take part in judging glosses */
  if (!rc && wn_derived(h, &l)) rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
  pthread_mutex_unlock(&wn_lock);
  if (!rc) rc = add_all(&l, n1, h, b->n_cats);
  if (!rc && use_cache) cache_write(path, b->hash, &l);
  wn_list_free(&l);
  return rc;
#else
  (void)h;
  snprintf(status, cap, "built without WordNet (libwordnet / wordnet-dev not found)");
  return SD_OK;
#endif
}

/* ------------------------------------------------------------------------------------- */
/* the dictionary                                                                          */

#define DICT_MAGIC "safesd-wordnet-dict v4\n"
#define DICT_MAX_FILE (64u << 20)

typedef struct {
  char **s;
  size_t n, cap;
} strvec;

#ifdef SAFESD_HAVE_WORDNET /* the word lists are built from WordNet only */
static int sv_push(strvec *v, const char *s) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? 2 * v->cap : 4096;
    char **ns = realloc(v->s, nc * sizeof *ns);
    if (!ns) return -1;
    v->s = ns;
    v->cap = nc;
  }
  return (v->s[v->n] = strdup(s)) ? (int)(v->n++, 0) : -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sort, drop duplicates and pack into a set. */
static int sv_pack(strvec *v, sd_wn_set *out) {
  qsort(v->s, v->n, sizeof *v->s, cmp_str);
  size_t bytes = 0, k = 0;
  for (size_t i = 0; i < v->n; i++)
    if (!i || strcmp(v->s[i], v->s[i - 1])) bytes += strlen(v->s[i]) + 1;
  out->blob = malloc(bytes + 1);
  out->off = malloc((v->n + 1) * sizeof *out->off);
  if (!out->blob || !out->off) return -1;
  size_t pos = 0;
  for (size_t i = 0; i < v->n; i++) {
    if (i && !strcmp(v->s[i], v->s[i - 1])) continue;
    size_t l = strlen(v->s[i]) + 1;
    memcpy(out->blob + pos, v->s[i], l);
    out->off[k++] = (uint32_t)pos;
    pos += l;
  }
  out->n = (uint32_t)k;
  return 0;
}

static void sv_free(strvec *v) {
  for (size_t i = 0; i < v->n; i++) free(v->s[i]);
  free(v->s);
}
#endif

static void dict_free(sd_wn_dict *d) {
  for (int i = 0; i < SD_WN_NSETS; i++) {
    free(d->set[i].blob);
    free(d->set[i].off);
  }
  memset(d, 0, sizeof *d);
}

int sd_wn_dict_has(const sd_wn_dict *d, int set, const char *w) {
  if (!d || set < 0 || set >= SD_WN_NSETS) return 0;
  const sd_wn_set *s = &d->set[set];
  uint32_t lo = 0, hi = s->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->blob + s->off[mid], w);
    if (!c) return 1;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

/* Whether the word, as written or as a regular plural, is in set `set`. */
static int noun_has(const sd_wn_dict *d, int set, const char *word, size_t n) {
  char w[64];
  if (!d || n < 2 || n >= sizeof w) return 0;
  memcpy(w, word, n);
  w[n] = 0;
  if (sd_wn_dict_has(d, set, w)) return 1;
  if (w[n - 1] != 's') return 0;
  w[n - 1] = 0; /* pheasants */
  if (sd_wn_dict_has(d, set, w)) return 1;
  if (n >= 4 && w[n - 2] == 'e') {
    w[n - 2] = 0; /* foxes */
    if (sd_wn_dict_has(d, set, w)) return 1;
    if (w[n - 3] == 'i') { /* puppies */
      w[n - 3] = 'y';
      return sd_wn_dict_has(d, set, w);
    }
  }
  return 0;
}

int sd_wn_is_animal(const sd_wn_dict *d, const char *word, size_t n, int strict) {
  return noun_has(d, SD_WN_ANIMALS, word, n) && !(strict && noun_has(d, SD_WN_PERSONS, word, n));
}

int sd_wn_is_thing(const sd_wn_dict *d, const char *word, size_t n) { return noun_has(d, SD_WN_THINGS, word, n); }

int sd_wn_is_person(const sd_wn_dict *d, const char *word, size_t n) { return noun_has(d, SD_WN_PERSONS, word, n); }

int sd_wn_is_compound(const sd_wn_dict *d, const char *words, size_t n) { return noun_has(d, SD_WN_COMPOUNDS, words, n); }

int sd_wn_is_inanimate(const sd_wn_dict *d, const char *word, size_t n) { return noun_has(d, SD_WN_INANIMATE, word, n); }

static int dict_path(char *buf, size_t cap) {
  char dir[2048];
  if (sd_cache_dir(dir, sizeof dir)) {
    sd_clear_error();
    return -1;
  }
  int w = snprintf(buf, cap, "%s/wordnet-dict-v4.bin", dir);
  return w < 0 || (size_t)w >= cap ? -1 : 0;
}

/* The cache file: the magic line, then per set "<count> <bytes>\n" and the bytes. Every
 * string is checked to be in strictly increasing order: a damaged file is not used. */
static int dict_read(const char *path, sd_wn_dict *d) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char line[128];
  int ok = fgets(line, sizeof line, f) && !strcmp(line, DICT_MAGIC);
  for (int i = 0; i < SD_WN_NSETS && ok; i++) {
    unsigned long n, bytes;
    ok = fgets(line, sizeof line, f) && sscanf(line, "%lu %lu", &n, &bytes) == 2 && bytes <= DICT_MAX_FILE &&
         n <= bytes;
    sd_wn_set *s = &d->set[i];
    if (ok) {
      s->blob = malloc(bytes + 1);
      s->off = malloc((n + 1) * sizeof *s->off);
      ok = s->blob && s->off && fread(s->blob, 1, bytes, f) == bytes && (!bytes || s->blob[bytes - 1] == 0);
    }
    uint32_t k = 0;
    for (size_t pos = 0; ok && pos < bytes; k++) {
      ok = k < n && (!k || strcmp(s->blob + s->off[k - 1], s->blob + pos) < 0);
      if (ok) s->off[k] = (uint32_t)pos;
      pos += strlen(s->blob + pos) + 1;
    }
    ok = ok && k == n;
    s->n = k;
  }
  ok = ok && fgetc(f) == EOF;
  fclose(f);
  if (!ok) dict_free(d);
  return ok ? 0 : -1;
}

#ifdef SAFESD_HAVE_WORDNET /* writes what only a WordNet build computes */
static void dict_write(const char *path, const sd_wn_dict *d) {
  sd_mkdirs_for(path);
  char tmp[2400];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return;
  fputs(DICT_MAGIC, f);
  for (int i = 0; i < SD_WN_NSETS; i++) {
    const sd_wn_set *s = &d->set[i];
    size_t bytes = s->n ? s->off[s->n - 1] + strlen(s->blob + s->off[s->n - 1]) + 1 : 0;
    fprintf(f, "%lu %lu\n", (unsigned long)s->n, (unsigned long)bytes);
    fwrite(s->blob, 1, bytes, f);
  }
  if (fclose(f) == 0 && rename(tmp, path) == 0) return;
  remove(tmp);
}
#endif

static pthread_once_t dict_once = PTHREAD_ONCE_INIT;
static sd_wn_dict dict;
static int dict_ok;
static char dict_why[256];

#ifdef SAFESD_HAVE_WORDNET
/* Every synset of data.noun: its offset, its lexicographer file number (noun.act 04,
 * noun.animal 05, noun.artifact 06, noun.body 08, noun.food 13, noun.group 14,
 * noun.location 15, noun.object 17, noun.person 18, noun.plant 20...) and its hypernyms
 * (pointers "@" and "@i": hyp[hyp_at[i] .. hyp_at[i + 1]]), in increasing offset order (the
 * file's own); `under` says which synsets lie under a root of PLACE_ROOTS (lextable_under). */
enum { LF_ACT = 4, LF_ANIMAL = 5, LF_ARTIFACT = 6, LF_BODY = 8, LF_FOOD = 13, LF_OBJECT = 17, LF_PERSON = 18,
       LF_PLANT = 20 };
typedef struct {
  long *off, *hyp;
  unsigned char *lf, *under;
  size_t *hyp_at;
  size_t n, cap, nh, hcap;
} lextable;

/* Room for `need` synsets in t's per-synset arrays. */
static int lextable_room(lextable *t, size_t need) {
  if (need <= t->cap) return 0;
  size_t nc = t->cap ? 2 * t->cap : 16384;
  long *off = realloc(t->off, nc * sizeof *off);
  if (off) t->off = off;
  unsigned char *lf = off ? realloc(t->lf, nc) : NULL;
  if (lf) t->lf = lf;
  size_t *at = lf ? realloc(t->hyp_at, nc * sizeof *at) : NULL;
  if (!at) return -1;
  t->hyp_at = at;
  t->cap = nc;
  return 0;
}

static int lexfile_table(lextable *t) {
  static char line[65536];
  FILE *f = wn_file("data", 1);
  if (!f) return 0;
  int ok = 1;
  while (ok && fgets(line, sizeof line, f)) {
    if (line[0] == ' ') continue; /* licence header */
    /* "offset lex_filenum ss_type w_cnt word lex_id [...] p_cnt [sym offset pos src/tgt...]" */
    char *save = NULL, *tok = strtok_r(line, " ", &save), *tl = tok ? strtok_r(NULL, " ", &save) : NULL;
    tok = tl ? strtok_r(NULL, " ", &save) : NULL; /* ss_type */
    char *tw = tok ? strtok_r(NULL, " ", &save) : NULL;
    if (!tw) continue;
    if (lextable_room(t, t->n + 2)) {
      ok = 0;
      break;
    }
    t->off[t->n] = atol(line);
    t->lf[t->n] = (unsigned char)atoi(tl);
    t->hyp_at[t->n] = t->nh;
    int nw = (int)strtol(tw, NULL, 16);
    for (int i = 0; tok && i < 2 * nw; i++) tok = strtok_r(NULL, " ", &save);
    int np = tok && (tok = strtok_r(NULL, " ", &save)) ? atoi(tok) : 0;
    for (int i = 0; ok && i < np; i++) {
      char *sym = strtok_r(NULL, " ", &save), *po = sym ? strtok_r(NULL, " ", &save) : NULL,
           *pos = po ? strtok_r(NULL, " ", &save) : NULL;
      if (!pos || !strtok_r(NULL, " ", &save)) break;
      if ((strcmp(sym, "@") && strcmp(sym, "@i")) || strcmp(pos, "n")) continue;
      if (t->nh == t->hcap) {
        size_t nc = t->hcap ? 2 * t->hcap : 16384;
        long *h = realloc(t->hyp, nc * sizeof *h);
        if (!h) {
          ok = 0;
          break;
        }
        t->hyp = h;
        t->hcap = nc;
      }
      t->hyp[t->nh++] = atol(po);
    }
    t->n++;
    t->hyp_at[t->n] = t->nh;
  }
  fclose(f);
  return ok ? 0 : -1;
}

/* The index of the synset at `off`, or -1. */
static long lex_index(const lextable *t, long off) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->off[mid] == off) return (long)mid;
    if (t->off[mid] < off) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/* The lexicographer file of the synset at `off`, or -1. */
static int lexfile_of(const lextable *t, long off) {
  long i = lex_index(t, off);
  return i < 0 ? -1 : t->lf[i];
}

/* Places and vehicles, where people are: a noun whose first sense is a structure ("mosque",
 * "classroom", "camp", "house") or a conveyance ("bus", "car", "plane") is not lifeless for
 * an act ("shooting a school bus"). */
static const char *const PLACE_ROOTS[] = {"structure#1", "conveyance#3", NULL};

/* 2 when synset i lies under a synset marked 2 (following its hypernyms), else 3; under[]
 * holds 0 for not yet known, 1 while being followed (a cycle reads as no). */
static int under_root(lextable *t, size_t i, int depth) {
  if (t->under[i] >= 2) return t->under[i];
  if (t->under[i] == 1 || depth > 64) return 3;
  t->under[i] = 1;
  int r = 3;
  for (size_t k = t->hyp_at[i]; k < t->hyp_at[i + 1] && r == 3; k++) {
    long j = lex_index(t, t->hyp[k]);
    if (j >= 0 && under_root(t, (size_t)j, depth + 1) == 2) r = 2;
  }
  return t->under[i] = (unsigned char)r;
}

/* Fill t->under for every synset from PLACE_ROOTS (word#sense, found with index_lookup). */
static int lextable_under(lextable *t) {
  if (!(t->under = calloc(t->n + 1, 1))) return -1;
  for (int r = 0; PLACE_ROOTS[r]; r++) {
    char word[64];
    snprintf(word, sizeof word, "%s", PLACE_ROOTS[r]);
    char *hash = strchr(word, '#');
    int sense = hash ? atoi(hash + 1) : 1;
    if (hash) *hash = 0;
    IndexPtr idx = index_lookup(word, NOUN);
    if (!idx) continue;
    if (sense >= 1 && sense <= idx->off_cnt) {
      long i = lex_index(t, (long)idx->offset[sense - 1]);
      if (i >= 0) t->under[i] = 2;
    }
    free_index(idx);
  }
  for (size_t i = 0; i < t->n; i++) under_root(t, i, 0);
  return 0;
}

/* The lifeless kinds of SD_WN_INANIMATE's first sense: acts, artifacts, attributes,
 * cognition, communication, events, foods, natural objects, phenomena, plants, possessions,
 * quantities, shapes, substances, times. */
static int lifeless(int lf) {
  switch (lf) {
    case 4: case 6: case 7: case 9: case 10: case 11: case 13: case 17: case 19: case 20: case 21: case 23:
    case 25: case 27: case 28:
      return 1;
    default:
      return 0;
  }
}

/* An index.<pos> line's fields after the lemma, "pos synset_cnt p_cnt [ptr...] sense_cnt
 * tagsense_cnt offset...", read up to tagsense_cnt: that token, or NULL when the line is
 * malformed; the synset offsets follow (strtok_r(NULL, " \n", save)). */
static char *index_tagsense(char *rest, char **save) {
  char *tok = strtok_r(rest, " ", save);
  for (int i = 0; tok && i < 2; i++) tok = strtok_r(NULL, " ", save);
  int np = tok ? atoi(tok) : -1;
  for (int i = 0; tok && i < np + 2; i++) tok = strtok_r(NULL, " ", save);
  return np >= 0 ? tok : NULL;
}

/* The first sense's offset and whether any sense is a person, of an index.noun line's
 * fields after the lemma. */
static long noun_senses(char *rest, const lextable *lt, int *person) {
  char *save = NULL, *tok = index_tagsense(rest, &save);
  long first = -1;
  *person = 0;
  for (int k = 0; tok && (tok = strtok_r(NULL, " \n", &save)); k++) {
    long off = atol(tok);
    if (!k) first = off;
    *person |= lexfile_of(lt, off) == LF_PERSON;
  }
  return first;
}

/* An index.noun lemma of two or three words ("robber_fly", "naked_mole_rat"), each of two or
 * more letters a-z, whose first sense is an animal, a plant or a food and none a person:
 * a candidate of SD_WN_COMPOUNDS, written with spaces (compounds_finish keeps those whose
 * last word is itself such a noun). */
static int compound_line(char *line, char *rest, const lextable *lt, strvec *cand) {
  int words = 1, run = 0;
  for (char *c = line; *c; c++) {
    if (*c == '_') {
      if (run < 2) return 0;
      words++, run = 0, *c = ' ';
    } else if (*c >= 'a' && *c <= 'z') run++;
    else return 0;
  }
  if (words < 2 || words > 3 || run < 2) return 0;
  int person;
  long first = noun_senses(rest, lt, &person);
  int lf = first < 0 ? -1 : lexfile_of(lt, first);
  if (person || !(lf == LF_ANIMAL || lf == LF_PLANT || lf == LF_FOOD)) return 0;
  return sv_push(cand, line);
}

/* The lists dict_line fills besides the sets: the candidates of SD_WN_COMPOUNDS, the
 * one-word nouns with a sense in noun.animal, noun.plant or noun.food (the heads a compound
 * may end in), and the everyday adjectives (a sense in the tagged corpus; animals_finish). */
typedef struct {
  strvec cand, heads, adj;
} dict_extra;

/* One line of an index.<pos> or <pos>.exc file into the word lists; the nouns into
 * SD_WN_ANIMALS, SD_WN_PERSONS and SD_WN_THINGS (wordnet.h), the rest into x. */
static int dict_line(char *line, int pos, int exc, struct sb_stemmer *st, const lextable *lt, strvec v[SD_WN_NSETS],
                     dict_extra *x) {
  if (line[0] == ' ') return 0; /* licence header */
  char *sp = strchr(line, ' ');
  if (!sp) return 0;
  *sp = 0;
  if (pos == NOUN && !exc && strchr(line, '_')) return compound_line(line, sp + 1, lt, &x->cand);
  size_t n = strlen(line);
  int letters = n >= 2;
  for (size_t i = 0; i < n && letters; i++) letters = line[i] >= 'a' && line[i] <= 'z';
  if (!letters) return 0;
  int common = exc;
  if (!exc) {
    char *save = NULL, *tok = index_tagsense(sp + 1, &save);
    common = tok && atoi(tok) > 0;
    if (pos == ADJ && common && sv_push(&x->adj, line)) return -1;
    /* the senses' offsets, most frequent first when the tagged corpus ranked them
     * (tagsense_cnt > 0): then the first sense decides, else any sense ("raccoon": the fur
     * comes first) when no sense is a person ("redhead": a person, or a duck) */
    int first_animal = 0, any_animal = 0, person = 0, thing = 0, living = 0, body = 0, first_lifeless = 0, place = 0;
    for (int k = 0; pos == NOUN && tok && (tok = strtok_r(NULL, " \n", &save)); k++) {
      long si = lex_index(lt, atol(tok));
      int lf = si < 0 ? -1 : lt->lf[si];
      place |= k == 0 && si >= 0 && lt->under && lt->under[si] == 2;
      int a = lf == LF_ANIMAL, h = lf == LF_PERSON;
      first_animal |= k == 0 && a;
      any_animal |= a;
      person |= h;
      body |= lf == LF_BODY;
      living |= a || lf == LF_PLANT || lf == LF_FOOD;
      thing |= k == 0 && (a || h || lf == LF_ARTIFACT || lf == LF_BODY || lf == LF_OBJECT);
      first_lifeless |= k == 0 && lifeless(lf);
    }
    if (first_lifeless && !person && !any_animal && !body && !place && sv_push(&v[SD_WN_INANIMATE], line)) return -1;
    if (living && sv_push(&x->heads, line)) return -1;
    if ((common ? first_animal : any_animal && !person) && sv_push(&v[SD_WN_ANIMALS], line)) return -1;
    if (person && sv_push(&v[SD_WN_PERSONS], line)) return -1;
    if (thing && sv_push(&v[SD_WN_THINGS], line)) return -1;
  }
  const sb_symbol *s = sb_stemmer_stem(st, (const sb_symbol *)line, (int)n);
  if (!s || sv_push(&v[SD_WN_LEMMAS], line) || sv_push(&v[SD_WN_STEMS], (const char *)s)) return -1;
  return common ? sv_push(&v[SD_WN_COMMON], (const char *)s) : 0;
}
#endif

#ifdef SAFESD_HAVE_WORDNET
/* The compound candidates dict_line collected whose last word is a head (an animal, plant
 * or food noun of its own: "robber fly", "killer whale"; not the Latin binomials "cannabis
 * sativa", "juglans nigra"), into out. */
static int compounds_finish(strvec *cand, strvec *heads, strvec *out) {
  qsort(heads->s, heads->n, sizeof *heads->s, cmp_str);
  for (size_t i = 0; i < cand->n; i++) {
    const char *last = strrchr(cand->s[i], ' ') + 1;
    if (bsearch(&last, heads->s, heads->n, sizeof *heads->s, cmp_str) && sv_push(out, cand->s[i])) return -1;
  }
  return 0;
}

/* The animals dict_line collected, finished: no noun that is an everyday adjective too
 * ("male", "young", "human", "giant": nouns of noun.animal as well, and adjectives with a
 * sense in WordNet's tagged corpus; "fly", "beetle", "tabby", whose adjective senses are rare,
 * stay animals), then the irregular plurals of those left ("geese goose", "mice mouse":
 * noun.exc is read again here, once the animals are known). */
static int animals_finish(strvec *an, strvec *adj) {
  qsort(adj->s, adj->n, sizeof *adj->s, cmp_str);
  size_t kept = 0;
  for (size_t i = 0; i < an->n; i++) {
    char *w = an->s[i];
    if (bsearch(&w, adj->s, adj->n, sizeof *adj->s, cmp_str)) free(w);
    else an->s[kept++] = w;
  }
  an->n = kept;
  qsort(an->s, an->n, sizeof *an->s, cmp_str);
  static char line[65536];
  FILE *exc = wn_file("exc", 1);
  size_t n_animals = an->n;
  int ok = 1;
  while (ok && exc && fgets(line, sizeof line, exc)) {
    char infl[256], base[256];
    if (sscanf(line, "%255s %255s", infl, base) != 2) continue;
    const char *key = base;
    if (bsearch(&key, an->s, n_animals, sizeof *an->s, cmp_str)) ok = sv_push(an, infl) == 0;
  }
  if (exc) fclose(exc);
  return ok ? 0 : -1;
}
#endif

static void dict_load(void) {
  char path[2300];
  int cached = dict_path(path, sizeof path) == 0;
  if (cached && dict_read(path, &dict) == 0) {
    dict_ok = 1;
    return;
  }
#ifdef SAFESD_HAVE_WORDNET
  struct sb_stemmer *st = sb_stemmer_new("english", "UTF_8");
  pthread_mutex_lock(&wn_lock);
  if (!st || !wn_open()) {
    pthread_mutex_unlock(&wn_lock);
    if (st) sb_stemmer_delete(st);
    snprintf(dict_why, sizeof dict_why, "WordNet database not found (install wordnet-base, or set WNSEARCHDIR)");
    return;
  }
  static char line[65536];
  strvec v[SD_WN_NSETS] = {{0}};
  lextable lt = {0};
  dict_extra x = {{0}, {0}, {0}};
  int ok = lexfile_table(&lt) == 0 && lextable_under(&lt) == 0;
  for (int pos = 1; pos <= NUMPARTS && ok; pos++)
    for (int exc = 0; exc <= 1 && ok; exc++) {
      FILE *f = wn_file(exc ? "exc" : "index", pos);
      while (ok && f && fgets(line, sizeof line, f)) {
        ok = dict_line(line, pos, exc, st, &lt, v, &x) == 0;
      }
      if (f) fclose(f);
    }
  free(lt.off);
  free(lt.lf);
  free(lt.hyp);
  free(lt.hyp_at);
  free(lt.under);
  if (ok) ok = animals_finish(&v[SD_WN_ANIMALS], &x.adj) == 0;
  if (ok) ok = compounds_finish(&x.cand, &x.heads, &v[SD_WN_COMPOUNDS]) == 0;
  sv_free(&x.adj);
  sv_free(&x.cand);
  sv_free(&x.heads);
  pthread_mutex_unlock(&wn_lock);
  sb_stemmer_delete(st);
  for (int i = 0; i < SD_WN_NSETS && ok; i++) ok = sv_pack(&v[i], &dict.set[i]) == 0;
  for (int i = 0; i < SD_WN_NSETS; i++) sv_free(&v[i]);
  if (!ok) {
    dict_free(&dict);
    snprintf(dict_why, sizeof dict_why, "out of memory reading the WordNet dictionary");
    return;
  }
  dict_ok = 1;
  if (cached) dict_write(path, &dict);
#else
  snprintf(dict_why, sizeof dict_why, "built without WordNet (libwordnet / wordnet-dev not found)");
#endif
}

const sd_wn_dict *sd_wn_dictionary(const char **why) {
  pthread_once(&dict_once, dict_load);
  if (why) *why = dict_ok ? "" : dict_why;
  return dict_ok ? &dict : NULL;
}
