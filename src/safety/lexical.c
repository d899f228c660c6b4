/* The lexical detector: obfuscation-resistant normalisation + whole-word lexicon matching,
 * with WordNet expansion of the bank's `expand =` seeds (see lexical.h and
 * docs/safety-detectors.md). */
#include "safety/lexical.h"
#include "io/fileio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#ifdef SAFESD_HAVE_WORDNET
#include <wn.h>
#endif

#include "core/error.h"

/* Bump when the expansion rule changes: it is part of the cache key. */
#define WN_RULE_VERSION 3
#define WN_MAX_SYNSETS 4000

/* ------------------------------------------------------------------------------------- */
/* small utilities                                                                         */

typedef struct {
  char *p;
  size_t n, cap;
} sbuf;

static int sb_putn(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->n + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return -1;
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}
static int sb_puts(sbuf *b, const char *s) { return sb_putn(b, s, strlen(s)); }
static int sb_putc(sbuf *b, char c) { return sb_putn(b, &c, 1); }

static char *xstrdup(const char *s) {
  size_t n = strlen(s);
  char *r = malloc(n + 1);
  if (r) memcpy(r, s, n + 1);
  return r;
}

/* String -> list of ints (postings), open addressing. */
typedef struct {
  char *key;
  int head;
} hslot;
typedef struct {
  int val, next;
} hpost;
typedef struct {
  hslot *slots;
  size_t cap, used;
  hpost *post;
  int n_post, cap_post;
} hmap;

static uint64_t hstr(const char *s) { return sd_fnv1a64(s, strlen(s), SD_FNV1A64_INIT); }

static hslot *hm_find(const hmap *m, const char *k) {
  if (!m->cap) return NULL;
  size_t i = (size_t)hstr(k) & (m->cap - 1);
  while (m->slots[i].key) {
    if (strcmp(m->slots[i].key, k) == 0) return &m->slots[i];
    i = (i + 1) & (m->cap - 1);
  }
  return NULL;
}

static int hm_add(hmap *m, const char *k, int val) {
  if ((m->used + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    hslot *ns = calloc(nc, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i].key) {
        size_t j = (size_t)hstr(m->slots[i].key) & (nc - 1);
        while (ns[j].key) j = (j + 1) & (nc - 1);
        ns[j] = m->slots[i];
      }
    free(m->slots);
    m->slots = ns;
    m->cap = nc;
  }
  if (m->n_post == m->cap_post) {
    int nc = m->cap_post ? 2 * m->cap_post : 256;
    hpost *np = realloc(m->post, (size_t)nc * sizeof *np);
    if (!np) return -1;
    m->post = np;
    m->cap_post = nc;
  }
  hslot *s = hm_find(m, k);
  if (!s) {
    size_t i = (size_t)hstr(k) & (m->cap - 1);
    while (m->slots[i].key) i = (i + 1) & (m->cap - 1);
    s = &m->slots[i];
    if (!(s->key = xstrdup(k))) return -1;
    s->head = -1;
    m->used++;
  }
  for (int p = s->head; p >= 0; p = m->post[p].next)
    if (m->post[p].val == val) return 0;
  m->post[m->n_post] = (hpost){val, s->head};
  s->head = m->n_post++;
  return 0;
}

static void hm_free(hmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
  free(m->slots);
  free(m->post);
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------- */
/* normalisation                                                                           */

enum { CL_SEP = 0, CL_LETTER, CL_DIGIT, CL_LEET, CL_INTRA, CL_SPACE };

typedef struct {
  int32_t cp;
  int cls;
  size_t s0, s1;  /* source byte span */
  int nonascii;   /* came from a non-ASCII source character */
} ncp;

static int32_t homoglyph(int32_t c) {
  switch (c) {
    case 0x0430: case 0x03B1: return 'a';
    case 0x0435: case 0x03B5: return 'e';
    case 0x043E: case 0x03BF: return 'o';
    case 0x0440: case 0x03C1: return 'p';
    case 0x0441: return 'c';
    case 0x0445: case 0x03C7: return 'x';
    case 0x0443: return 'y';
    case 0x0456: case 0x03B9: return 'i';
    case 0x0455: return 's';
    case 0x0458: return 'j';
    case 0x043A: case 0x03BA: return 'k';
    case 0x043C: return 'm';
    case 0x0442: case 0x03C4: return 't';
    case 0x043D: return 'h';
    case 0x03BD: return 'v';
    case 0x03C5: return 'u';
    case 0x00DF: return 's'; /* ß casefolds to "ss" already; kept for safety */
    default: return c;
  }
}

static int classify(int32_t c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0) return CL_SPACE;
  if (c == '@' || c == '$' || c == '!' || c == '|' || c == '+' || c == 0x20AC) return CL_LEET;
  if (c == '.' || c == '-' || c == '_' || c == '*' || c == '\'' || c == '`' || c == '~' || c == 0xB7 ||
      c == 0x2022)
    return CL_INTRA;
  utf8proc_category_t k = utf8proc_category(c);
  if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) return CL_LETTER;
  if (k == UTF8PROC_CATEGORY_ND) return CL_DIGIT;
  if (k == UTF8PROC_CATEGORY_ZS) return CL_SPACE;
  return CL_SEP;
}

/* Decode, decompose (compatibility), case-fold, strip marks and ignorables, lump
 * punctuation, fold homoglyphs; every output code point keeps its source byte span. */
static int normalize_cps(const char *text, ncp **out, int *n_out) {
  size_t len = strlen(text);
  size_t cap = len * 2 + 16;
  ncp *v = malloc(cap * sizeof *v);
  if (!v) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  int n = 0;
  size_t i = 0;
  while (i < len) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &c);
    if (k <= 0) { /* invalid byte: a separator */
      if ((size_t)n + 1 > cap) break;
      v[n++] = (ncp){' ', CL_SPACE, i, i + 1, 1};
      i++;
      continue;
    }
    utf8proc_int32_t buf[32];
    int last = 0;
    utf8proc_ssize_t m = utf8proc_decompose_char(
        c, buf, 32,
        UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_IGNORE |
            UTF8PROC_LUMP,
        &last);
    if (m < 0 || m > 32) {
      buf[0] = ' ';
      m = 1;
    }
    if ((size_t)(n + m) > cap) {
      cap = cap * 2 + (size_t)m;
      ncp *nv = realloc(v, cap * sizeof *nv);
      if (!nv) {
        free(v);
        return sd_fail(SD_E_NOMEM, "lexical: out of memory");
      }
      v = nv;
    }
    for (utf8proc_ssize_t j = 0; j < m; j++) {
      int32_t d = homoglyph(utf8proc_tolower(buf[j]));
      v[n++] = (ncp){d, classify(d), i, i + (size_t)k, c >= 0x80};
    }
    i += (size_t)k;
  }
  *out = v;
  *n_out = n;
  return SD_OK;
}

/* A piece: a maximal run of letters, digits and leet symbols. */
typedef struct {
  int a, b;      /* ncp range */
  int gap;       /* separator before it: 1 intra-word only, 2 whitespace(+intra), 3 other */
  int nonascii;
} piece;

/* A string to look up, spanning pieces [p0, p1). */
typedef struct {
  int p0, p1;
  int joined; /* from separated letters/parts */
} unit;

enum { VIA_LEET = 1, VIA_SEP = 2, VIA_REPEAT = 4, VIA_INFL = 8, VIA_DIACRITIC = 16, VIA_WORDNET = 32 };

static int leet_char(int32_t c, int alt) {
  switch (c) {
    case '0': return 'o';
    case '1': return alt ? 'l' : 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '6': return 'g';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    case '@': return 'a';
    case '$': return 's';
    case '!': return 'i';
    case '|': return 'l';
    case '+': return 't';
    case 0x20AC: return 'e';
    default: return 0;
  }
}

/* Text of the unit: mode 0 plain (symbols dropped), 1 leet (1->i), 2 leet (1->l). */
static int unit_text(const ncp *v, const piece *ps, const unit *u, int mode, sbuf *out) {
  out->n = 0;
  if (sb_puts(out, "")) return -1;
  int last = ps[u->p1 - 1].b; /* trailing symbols are punctuation ("blood!"), not leetspeak */
  while (last > ps[u->p1 - 1].a && v[last - 1].cls == CL_LEET) last--;
  for (int p = u->p0; p < u->p1; p++)
    for (int i = ps[p].a; i < ps[p].b && i < last; i++) {
      int32_t c = v[i].cp;
      if (mode && (v[i].cls == CL_DIGIT || v[i].cls == CL_LEET)) {
        int l = leet_char(c, mode == 2);
        if (l) c = l;
        else if (v[i].cls == CL_LEET) continue;
      } else if (v[i].cls == CL_LEET) {
        continue;
      }
      utf8proc_uint8_t enc[4];
      utf8proc_ssize_t k = utf8proc_encode_char(c, enc);
      if (sb_putn(out, (const char *)enc, (size_t)k)) return -1;
    }
  return 0;
}

/* Collapse runs of a repeated byte-character: to at most `keep` (1 or 2). Returns whether
 * a run of >= 3 existed. ASCII-only runs are enough for the obfuscations we undo. */
static int collapse(const char *s, int keep, char *dst) {
  int had = 0;
  size_t o = 0;
  for (size_t i = 0; s[i];) {
    size_t j = i;
    while (s[j] == s[i]) j++;
    size_t run = j - i;
    if (run >= 3 && (unsigned char)s[i] < 0x80) had = 1;
    size_t k = ((unsigned char)s[i] < 0x80 && run > (size_t)keep) ? (size_t)keep : run;
    for (size_t t = 0; t < k; t++) dst[o++] = s[i];
    i = j;
  }
  dst[o] = 0;
  return had;
}

/* ------------------------------------------------------------------------------------- */
/* the lexicon                                                                             */

typedef struct {
  char **w;
  int nw;
  int cat;
  char *display; /* as written in the bank / WordNet lemma */
  char *src;     /* NULL (bank) or "wordnet:gun#1" */
} term;

typedef struct {
  const sd_bank *bank;
  term *terms;
  int n_terms, cap_terms;
  hmap first;   /* first word of a term (and the joined form of multi-word terms) -> term */
  hmap first1;  /* run-collapsed (to 1) form of single-word terms -> term */
  term *safe;   /* safe phrases */
  int n_safe, cap_safe;
  hmap safe_first;
  char wn_status[256];
} lexical;

static void term_free(term *t) {
  for (int i = 0; i < t->nw; i++) free(t->w[i]);
  free(t->w);
  free(t->display);
  free(t->src);
}

/* Split a bank term into normalised words (plain form). */
static int term_words(const char *s, char ***w_out, int *nw_out) {
  ncp *v;
  int n;
  int rc = normalize_cps(s, &v, &n);
  if (rc) return rc;
  char **w = NULL;
  int nw = 0;
  sbuf b = {0};
  for (int i = 0; i <= n; i++) {
    int in = i < n && (v[i].cls == CL_LETTER || v[i].cls == CL_DIGIT);
    if (in) {
      utf8proc_uint8_t enc[4];
      utf8proc_ssize_t k = utf8proc_encode_char(v[i].cp, enc);
      if (sb_putn(&b, (const char *)enc, (size_t)k)) goto oom;
    } else if (b.n) {
      char **nwp = realloc(w, (size_t)(nw + 1) * sizeof *nwp);
      if (!nwp) goto oom;
      w = nwp;
      if (!(w[nw] = xstrdup(b.p))) goto oom;
      nw++;
      b.n = 0;
    }
  }
  free(b.p);
  free(v);
  *w_out = w;
  *nw_out = nw;
  return SD_OK;
oom:
  free(b.p);
  free(v);
  for (int i = 0; i < nw; i++) free(w[i]);
  free(w);
  return sd_fail(SD_E_NOMEM, "lexical: out of memory");
}

static int join_words(char **w, int nw, sbuf *b) {
  b->n = 0;
  if (sb_puts(b, "")) return -1;
  for (int i = 0; i < nw; i++)
    if (sb_puts(b, w[i])) return -1;
  return 0;
}

static int is_excluded(const sd_bank_category *k, char **w, int nw) {
  for (int e = 0; e < k->exclude.n; e++) {
    char **ew;
    int enw;
    if (term_words(k->exclude.items[e], &ew, &enw)) continue;
    int same = enw == nw;
    for (int i = 0; same && i < nw; i++) same = strcmp(ew[i], w[i]) == 0;
    for (int i = 0; i < enw; i++) free(ew[i]);
    free(ew);
    if (same) return 1;
  }
  return 0;
}

/* Add a term (or safe phrase) to the lexicon. */
static int add_term(lexical *L, int safe, int cat, const char *text, const char *src) {
  char **w;
  int nw;
  int rc = term_words(text, &w, &nw);
  if (rc) return rc;
  if (nw == 0 || (!safe && is_excluded(&L->bank->cats[cat], w, nw))) {
    for (int i = 0; i < nw; i++) free(w[i]);
    free(w);
    return SD_OK;
  }
  term **arr = safe ? &L->safe : &L->terms;
  int *n = safe ? &L->n_safe : &L->n_terms;
  int *cap = safe ? &L->cap_safe : &L->cap_terms;
  hmap *m = safe ? &L->safe_first : &L->first;
  /* duplicate (same words, same category)? */
  hslot *s = hm_find(m, w[0]);
  for (int p = s ? s->head : -1; p >= 0; p = m->post[p].next) {
    term *t = &(*arr)[m->post[p].val];
    int same = t->cat == cat && t->nw == nw;
    for (int i = 0; same && i < nw; i++) same = strcmp(t->w[i], w[i]) == 0;
    if (same) {
      for (int i = 0; i < nw; i++) free(w[i]);
      free(w);
      return SD_OK;
    }
  }
  if (*n == *cap) {
    int nc = *cap ? 2 * *cap : 256;
    term *na = realloc(*arr, (size_t)nc * sizeof *na);
    if (!na) goto oom;
    *arr = na;
    *cap = nc;
  }
  term *t = &(*arr)[*n];
  *t = (term){w, nw, cat, xstrdup(text), src ? xstrdup(src) : NULL};
  if (!t->display || (src && !t->src)) {
    term_free(t);
    return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  int id = (*n)++;
  if (hm_add(m, w[0], id)) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  if (nw > 1) {
    sbuf b = {0};
    if (join_words(w, nw, &b) || hm_add(m, b.p, id)) {
      free(b.p);
      return sd_fail(SD_E_NOMEM, "lexical: out of memory");
    }
    free(b.p);
  } else if (!safe) {
    char *c1 = malloc(strlen(w[0]) + 1);
    if (!c1) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
    collapse(w[0], 1, c1);
    int r = hm_add(&L->first1, c1, id);
    free(c1);
    if (r) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  return SD_OK;
oom:
  for (int i = 0; i < nw; i++) free(w[i]);
  free(w);
  return sd_fail(SD_E_NOMEM, "lexical: out of memory");
}

/* ------------------------------------------------------------------------------------- */
/* WordNet expansion                                                                       */

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
  x->seed = xstrdup(seed);
  x->lemma = xstrdup(lemma);
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

int sd_lexical_default_cache(const sd_bank *bank, char *buf, size_t cap) {
  if (!bank || !buf) return sd_fail(SD_E_ARG, "sd_lexical_default_cache: NULL argument");
  char dir[2048];
  int rc = sd_cache_dir(dir, sizeof dir);
  if (rc) return rc;
  uint64_t key = bank->hash ^ (uint64_t)WN_RULE_VERSION * 0x9E3779B97F4A7C15ULL;
  int w = snprintf(buf, cap, "%s/wordnet-%016llx.txt", dir, (unsigned long long)key);
  if (w < 0 || (size_t)w >= cap) return sd_fail(SD_E_ARG, "cache path too long");
  return SD_OK;
}

/* Cache file: "# safesd wordnet cache v<rule>\nbank <hex>\n" then "cat\tseed\tlemma" lines. */
static int cache_read(const char *path, uint64_t hash, wn_list *l) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char line[1024], want[64];
  snprintf(want, sizeof want, "bank %016llx v%d\n", (unsigned long long)hash, WN_RULE_VERSION);
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
    if (*end || c < 0 || c >= SD_BANK_MAX_CATEGORIES || wn_push(l, (int)c, t1 + 1, t2 + 1)) ok = 0;
  }
  fclose(f);
  return ok ? 0 : -1;
}


static void cache_write(const char *path, uint64_t hash, const wn_list *l) {
  sd_mkdirs_for(path);
  char tmp[2100];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return;
  fprintf(f, "bank %016llx v%d\n", (unsigned long long)hash, WN_RULE_VERSION);
  for (int i = 0; i < l->n; i++) fprintf(f, "%d\t%s\t%s\n", l->e[i].cat, l->e[i].seed, l->e[i].lemma);
  if (fclose(f) == 0 && rename(tmp, path) == 0) return;
  remove(tmp);
}

#ifdef SAFESD_HAVE_WORDNET
static pthread_mutex_t wn_lock = PTHREAD_MUTEX_INITIALIZER;
static int wn_ready = 0;

/* The rule: from the seed synset(s) down the hyponym tree (HYPOPTR, transitively), keep a
 * lemma when (1) this synset is the lemma's first (most frequent) WordNet noun sense,
 * (2) it has >= 3 characters, (3) the category does not `exclude` it (checked when
 * added). Seeds' own synonyms follow the same rule. */
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
        if (*p == '(') *p = 0; /* adjective markers never appear in nouns; be safe */
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
#endif

static int wordnet_expand(lexical *L, const sd_lexical_options *o) {
  const sd_bank *b = L->bank;
  int any = 0;
  for (int c = 0; c < b->n_cats; c++) any |= b->cats[c].expand.n > 0;
  if (!any) return SD_OK;
  char path[2200] = "";
  int use_cache = 1;
  if (o && o->cache_path) {
    if (!*o->cache_path) use_cache = 0;
    else snprintf(path, sizeof path, "%s", o->cache_path);
  } else if (sd_lexical_default_cache(b, path, sizeof path)) {
    use_cache = 0;
    sd_clear_error();
  }
  wn_list l = {0};
  int from_cache = use_cache && cache_read(path, b->hash, &l) == 0;
  if (!from_cache) {
    wn_list_free(&l);
    memset(&l, 0, sizeof l);
#ifdef SAFESD_HAVE_WORDNET
    pthread_mutex_lock(&wn_lock);
    if (!wn_ready) wn_ready = wninit() == 0;
    if (!wn_ready) {
      pthread_mutex_unlock(&wn_lock);
      snprintf(L->wn_status, sizeof L->wn_status,
               "WordNet database not found (install wordnet-base, or set WNSEARCHDIR)");
      return SD_OK;
    }
    for (int c = 0; c < b->n_cats; c++)
      for (int s = 0; s < b->cats[c].expand.n; s++) {
        char why[300] = "";
        if (wn_expand_seed(c, b->cats[c].expand.items[s], &l, why, sizeof why)) {
          pthread_mutex_unlock(&wn_lock);
          wn_list_free(&l);
          return sd_fail(SD_E_NOMEM, "lexical: out of memory");
        }
        if (why[0] && !L->wn_status[0]) snprintf(L->wn_status, sizeof L->wn_status, "[%.40s] %.200s", b->cats[c].name, why);
      }
    pthread_mutex_unlock(&wn_lock);
    if (use_cache) cache_write(path, b->hash, &l);
#else
    snprintf(L->wn_status, sizeof L->wn_status, "built without WordNet (libwordnet / wordnet-dev not found)");
    return SD_OK;
#endif
  }
  int rc = SD_OK;
  for (int i = 0; i < l.n && !rc; i++) {
    if (l.e[i].cat >= b->n_cats) continue;
    char src[300];
    snprintf(src, sizeof src, "wordnet:%s", l.e[i].seed);
    rc = add_term(L, 0, l.e[i].cat, l.e[i].lemma, src);
  }
  wn_list_free(&l);
  return rc;
}

/* ------------------------------------------------------------------------------------- */
/* matching                                                                                */

typedef struct {
  char *s;
  int flags;
  int c1; /* look up in the run-collapsed index */
} cand;

typedef struct {
  cand *c;
  int n, cap;
} candset;

static int cs_add(candset *cs, const char *s, int flags, int c1) {
  if (!*s) return 0;
  for (int i = 0; i < cs->n; i++)
    if (cs->c[i].c1 == c1 && strcmp(cs->c[i].s, s) == 0) return 0;
  if (cs->n == cs->cap) {
    int nc = cs->cap ? 2 * cs->cap : 16;
    cand *n = realloc(cs->c, (size_t)nc * sizeof *n);
    if (!n) return -1;
    cs->c = n;
    cs->cap = nc;
  }
  if (!(cs->c[cs->n].s = xstrdup(s))) return -1;
  cs->c[cs->n].flags = flags;
  cs->c[cs->n].c1 = c1;
  cs->n++;
  return 0;
}
static void cs_clear(candset *cs) {
  for (int i = 0; i < cs->n; i++) free(cs->c[i].s);
  cs->n = 0;
}

static int ends(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static int is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

/* Add s[0..n) (+ optional suffix) as an inflection stem, and its de-doubled form. */
static int add_stem(candset *cs, const char *s, size_t n, const char *suf, int flags) {
  if (n < 3) return 0;
  char buf[512];
  if (n + 2 >= sizeof buf) return 0;
  memcpy(buf, s, n);
  buf[n] = 0;
  if (suf) strcat(buf, suf);
  if (cs_add(cs, buf, flags | VIA_INFL, 0)) return -1;
  if (!suf && n >= 4 && s[n - 1] == s[n - 2] && !is_vowel(s[n - 1]) && s[n - 1] != 's' && s[n - 1] != 'l') {
    buf[n - 1] = 0;
    if (cs_add(cs, buf, flags | VIA_INFL, 0)) return -1;
  }
  return 0;
}

static int add_inflections(candset *cs, const char *s, int flags) {
  size_t n = strlen(s);
  int r = 0;
  if (ends(s, n, "ies")) r |= add_stem(cs, s, n - 3, "y", flags);
  /* -es only after sibilants and o (crosses, boxes, torches, heroes; not spices -> spic) */
  if (ends(s, n, "ses") || ends(s, n, "xes") || ends(s, n, "zes") || ends(s, n, "ches") || ends(s, n, "shes") ||
      ends(s, n, "oes"))
    r |= add_stem(cs, s, n - 2, NULL, flags);
  if (ends(s, n, "s") && !ends(s, n, "ss")) r |= add_stem(cs, s, n - 1, NULL, flags);
  if (ends(s, n, "ied")) r |= add_stem(cs, s, n - 3, "y", flags);
  if (ends(s, n, "ed")) {
    r |= add_stem(cs, s, n - 2, NULL, flags);
    r |= add_stem(cs, s, n - 1, NULL, flags);
  }
  if (ends(s, n, "ing")) {
    r |= add_stem(cs, s, n - 3, NULL, flags);
    r |= add_stem(cs, s, n - 3, "e", flags);
  }
  if (ends(s, n, "er")) {
    r |= add_stem(cs, s, n - 2, NULL, flags);
    r |= add_stem(cs, s, n - 1, NULL, flags);
  }
  if (ends(s, n, "ers")) {
    r |= add_stem(cs, s, n - 3, NULL, flags);
    r |= add_stem(cs, s, n - 2, NULL, flags);
  }
  return r;
}

static int unit_candidates(const ncp *v, const piece *ps, const unit *u, candset *cs, sbuf *tmp) {
  cs_clear(cs);
  int has_letter = 0, has_leet = 0, has_one = 0, nonascii = 0;
  for (int p = u->p0; p < u->p1; p++) {
    nonascii |= ps[p].nonascii;
    for (int i = ps[p].a; i < ps[p].b; i++) {
      has_letter |= v[i].cls == CL_LETTER;
      has_leet |= v[i].cls == CL_DIGIT || v[i].cls == CL_LEET;
      has_one |= v[i].cp == '1';
    }
  }
  int base = (u->joined ? VIA_SEP : 0) | (nonascii ? VIA_DIACRITIC : 0);
  int nmodes = (has_letter && has_leet) ? (has_one ? 3 : 2) : 1;
  int first = cs->n;
  for (int mode = 0; mode < nmodes; mode++) {
    if (unit_text(v, ps, u, mode, tmp)) return -1;
    int fl = base | (mode ? VIA_LEET : 0);
    if (cs_add(cs, tmp->p, fl, 0)) return -1;
    char *c = malloc(tmp->n + 1);
    if (!c) return -1;
    if (collapse(tmp->p, 2, c)) {
      int r = cs_add(cs, c, fl | VIA_REPEAT, 0);
      collapse(tmp->p, 1, c);
      r |= cs_add(cs, c, fl | VIA_REPEAT, 1);
      if (r) {
        free(c);
        return -1;
      }
    }
    free(c);
  }
  int end = cs->n;
  for (int i = first; i < end; i++)
    if (!cs->c[i].c1) {
      char *s = xstrdup(cs->c[i].s);
      if (!s) return -1;
      int r = add_inflections(cs, s, cs->c[i].flags);
      free(s);
      if (r) return -1;
    }
  return 0;
}

typedef struct {
  int term, p0, p1, flags;
} hit;

typedef struct {
  hit *h;
  int n, cap;
} hitlist;

static int hl_add(hitlist *l, int term, int p0, int p1, int flags) {
  for (int i = 0; i < l->n; i++)
    if (l->h[i].term == term && l->h[i].p0 == p0 && l->h[i].p1 == p1) return 0;
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 16;
    hit *n = realloc(l->h, (size_t)nc * sizeof *n);
    if (!n) return -1;
    l->h = n;
    l->cap = nc;
  }
  l->h[l->n++] = (hit){term, p0, p1, flags};
  return 0;
}

/* Does piece p (words after the first of a multi-word term) match word w? */
static int piece_matches(const ncp *v, const piece *ps, int p, const char *w, candset *cs, sbuf *tmp, int *flags) {
  unit u = {p, p + 1, 0};
  if (unit_candidates(v, ps, &u, cs, tmp)) return -1;
  for (int i = 0; i < cs->n; i++)
    if (!cs->c[i].c1 && strcmp(cs->c[i].s, w) == 0) {
      *flags |= cs->c[i].flags;
      return 1;
    }
  return 0;
}

/* Find all matches of the lexicon (terms, or safe phrases) in the prompt. */
static int match_all(const ncp *v, const piece *ps, int np, const unit *units, int nu, const term *terms,
                     const hmap *first, const hmap *first1, hitlist *out) {
  candset cs = {0}, cs2 = {0};
  sbuf tmp = {0}, tmp2 = {0};
  int rc = 0;
  for (int ui = 0; ui < nu && !rc; ui++) {
    const unit *u = &units[ui];
    if (unit_candidates(v, ps, u, &cs, &tmp)) {
      rc = -1;
      break;
    }
    for (int ci = 0; ci < cs.n && !rc; ci++) {
      const hmap *m = cs.c[ci].c1 ? first1 : first;
      if (!m) continue;
      hslot *s = hm_find(m, cs.c[ci].s);
      for (int pp = s ? s->head : -1; pp >= 0 && !rc; pp = m->post[pp].next) {
        int ti = m->post[pp].val;
        const term *t = &terms[ti];
        int flags = cs.c[ci].flags;
        int p1 = u->p1;
        if (t->nw > 1 && strcmp(t->w[0], cs.c[ci].s) == 0 && u->p1 == u->p0 + 1 && !cs.c[ci].c1) {
          /* multi-word: following pieces, across whitespace or intra-word separators */
          int ok = 1;
          for (int k = 1; k < t->nw && ok; k++) {
            int p = u->p0 + k;
            if (p >= np || ps[p].gap > 2) {
              ok = 0;
              break;
            }
            int r = piece_matches(v, ps, p, t->w[k], &cs2, &tmp2, &flags);
            if (r < 0) rc = -1;
            ok = r == 1;
          }
          if (!ok) continue;
          p1 = u->p0 + t->nw;
        } else if (t->nw > 1) {
          /* only the joined form ("selfharm") of a multi-word term matches here */
          const char *c = cs.c[ci].s;
          int ok = !cs.c[ci].c1;
          for (int k = 0; k < t->nw && ok; k++) {
            size_t l = strlen(t->w[k]);
            ok = strncmp(c, t->w[k], l) == 0;
            c += l;
          }
          if (!ok || *c) continue;
        }
        if (hl_add(out, ti, u->p0, p1, flags)) rc = -1;
      }
    }
  }
  cs_clear(&cs);
  cs_clear(&cs2);
  free(cs.c);
  free(cs2.c);
  free(tmp.p);
  free(tmp2.p);
  return rc;
}

/* Split into pieces and build the lookup units (pieces + joined groups). */
static int segment(const ncp *v, int n, piece **ps_out, int *np_out, unit **u_out, int *nu_out) {
  piece *ps = malloc(((size_t)n + 1) * sizeof *ps);
  unit *us = malloc(((size_t)n * 3 + 1) * sizeof *us);
  if (!ps || !us) {
    free(ps);
    free(us);
    return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  int np = 0, gap = 3, gap_len = 0;
  for (int i = 0; i < n;) {
    int c = v[i].cls;
    if (c == CL_LETTER || c == CL_DIGIT || c == CL_LEET) {
      int j = i, alnum = 0, na = 0;
      while (j < n && (v[j].cls == CL_LETTER || v[j].cls == CL_DIGIT || v[j].cls == CL_LEET)) {
        alnum |= v[j].cls != CL_LEET;
        na |= v[j].nonascii && v[j].cls == CL_LETTER;
        j++;
      }
      /* a lone symbol run ("!!!", "$") is punctuation, unless it leads into letters */
      if (alnum || (j - i == 1 && v[i].cls == CL_LEET && gap_len == 1)) {
        ps[np++] = (piece){i, j, gap_len > 3 ? 3 : gap, na};
        gap = 0;
        gap_len = 0;
      } else {
        gap = 3;
        gap_len++;
      }
      i = j;
      continue;
    }
    int g = c == CL_INTRA ? 1 : c == CL_SPACE ? 2 : 3;
    if (g > gap) gap = g;
    gap_len++;
    i++;
  }
  int nu = 0;
  for (int p = 0; p < np; p++) us[nu++] = (unit){p, p + 1, 0};
  /* parts joined by intra-word separators only: "b.l.o.o.d", "self-harm", "bl--ood" */
  for (int p = 0; p < np;) {
    int q = p + 1;
    while (q < np && ps[q].gap == 1) q++;
    if (q - p >= 2) us[nu++] = (unit){p, q, 1};
    p = q;
  }
  /* >= 3 single characters separated by whitespace or separators: "b l o o d" */
  for (int p = 0; p < np;) {
    if (ps[p].b - ps[p].a != 1) {
      p++;
      continue;
    }
    int q = p + 1;
    while (q < np && ps[q].b - ps[q].a == 1 && ps[q].gap <= 2) q++;
    if (q - p >= 3) {
      int dup = 0;
      for (int k = np; k < nu; k++) dup |= us[k].p0 == p && us[k].p1 == q;
      if (!dup) us[nu++] = (unit){p, q, 1};
    }
    p = q;
  }
  *ps_out = ps;
  *np_out = np;
  *u_out = us;
  *nu_out = nu;
  return SD_OK;
}

int sd_lexical_normalize(const char *text, char **out) {
  if (!text || !out) return sd_fail(SD_E_ARG, "sd_lexical_normalize: NULL argument");
  *out = NULL;
  ncp *v;
  int n;
  int rc = normalize_cps(text, &v, &n);
  if (rc) return rc;
  piece *ps;
  unit *us;
  int np, nu;
  if ((rc = segment(v, n, &ps, &np, &us, &nu))) {
    free(v);
    return rc;
  }
  /* pieces covered by a joined group print as the group */
  sbuf b = {0}, t = {0};
  sb_puts(&b, "");
  int p = 0;
  while (p < np) {
    unit u = {p, p + 1, 0};
    for (int k = np; k < nu; k++)
      if (us[k].p0 == p && us[k].p1 > u.p1) u = us[k];
    int has_letter = 0;
    for (int q = u.p0; q < u.p1; q++)
      for (int i = ps[q].a; i < ps[q].b; i++) has_letter |= v[i].cls == CL_LETTER;
    unit_text(v, ps, &u, has_letter ? 1 : 0, &t);
    if (b.n) sb_putc(&b, ' ');
    sb_puts(&b, t.p);
    p = u.p1;
  }
  free(t.p);
  free(v);
  free(ps);
  free(us);
  if (!b.p) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  *out = b.p;
  return SD_OK;
}

static int lex_detect(sd_detector *d, const char *prompt, const void *encoder, float threshold, sd_detection *out) {
  (void)encoder;
  lexical *L = d->impl;
  ncp *v;
  int n;
  int rc = normalize_cps(prompt, &v, &n);
  if (rc) return rc;
  piece *ps = NULL;
  unit *us = NULL;
  int np = 0, nu = 0;
  hitlist safe = {0}, hits = {0};
  uint32_t *mask = NULL;
  if ((rc = segment(v, n, &ps, &np, &us, &nu))) goto done;
  mask = calloc((size_t)np + 1, sizeof *mask);
  if (!mask) {
    rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    goto done;
  }
  if (match_all(v, ps, np, us, nu, L->safe, &L->safe_first, NULL, &safe) ||
      match_all(v, ps, np, us, nu, L->terms, &L->first, &L->first1, &hits)) {
    rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    goto done;
  }
  for (int i = 0; i < safe.n; i++)
    for (int p = safe.h[i].p0; p < safe.h[i].p1; p++) mask[p] = ~0u; /* a safe phrase masks every category */
  int ncat = L->bank->n_cats;
  int counted[SD_BANK_MAX_CATEGORIES] = {0};
  int *seen = calloc((size_t)L->n_terms + 1, sizeof *seen);
  out->ev = calloc((size_t)hits.n + 1, sizeof *out->ev);
  if (!seen || !out->ev) {
    free(seen);
    rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    goto done;
  }
  for (int i = 0; i < hits.n; i++) {
    const hit *h = &hits.h[i];
    const term *t = &L->terms[h->term];
    uint32_t bit = 1u << t->cat;
    int masked = 1;
    for (int p = h->p0; p < h->p1; p++) masked &= (mask[p] & bit) != 0;
    if (masked) continue;
    if (!seen[h->term]) {
      seen[h->term] = 1;
      counted[t->cat]++;
    }
    sd_evidence *e = &out->ev[out->n_ev++];
    e->category = t->cat;
    e->start = v[ps[h->p0].a].s0;
    e->end = v[ps[h->p1 - 1].b - 1].s1;
    e->matched = malloc(e->end - e->start + 1);
    if (e->matched) {
      memcpy(e->matched, prompt + e->start, e->end - e->start);
      e->matched[e->end - e->start] = 0;
    }
    e->term = xstrdup(t->display);
    sbuf via = {0};
    int f = h->flags;
    static const struct {
      int bit;
      const char *name;
    } names[] = {{VIA_LEET, "leetspeak"},   {VIA_SEP, "separators"},   {VIA_REPEAT, "repeats"},
                 {VIA_DIACRITIC, "unicode"}, {VIA_INFL, "inflection"}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      if (f & names[k].bit) {
        if (via.n) sb_putc(&via, ',');
        sb_puts(&via, names[k].name);
      }
    if (t->src) {
      if (via.n) sb_putc(&via, ',');
      sb_puts(&via, t->src);
    }
    if (!via.n) sb_puts(&via, "exact");
    e->via = via.p;
    if (!e->matched || !e->term || !e->via) {
      free(seen);
      rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
      goto done;
    }
  }
  free(seen);
  out->score = 0;
  for (int c = 0; c < ncat; c++) {
    out->cat_score[c] = (float)counted[c];
    if (out->cat_score[c] > out->score) out->score = out->cat_score[c];
    if (counted[c] > 0 && out->cat_score[c] >= threshold) out->categories |= 1u << c;
  }
  out->fired = out->categories != 0;
done:
  free(v);
  free(ps);
  free(us);
  free(mask);
  free(safe.h);
  free(hits.h);
  return rc;
}

static void lex_destroy(sd_detector *d) {
  lexical *L = d->impl;
  if (L) {
    for (int i = 0; i < L->n_terms; i++) term_free(&L->terms[i]);
    for (int i = 0; i < L->n_safe; i++) term_free(&L->safe[i]);
    free(L->terms);
    free(L->safe);
    hm_free(&L->first);
    hm_free(&L->first1);
    hm_free(&L->safe_first);
    free(L);
  }
  free(d);
}

static const sd_detector_vtable lex_vt = {"lexical", lex_detect, lex_destroy};

int sd_lexical_create(const sd_bank *bank, const sd_lexical_options *opts, sd_detector **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_lexical_create: out is NULL");
  *out = NULL;
  if (!bank) return sd_fail(SD_E_ARG, "sd_lexical_create: bank is NULL");
  sd_detector *d = calloc(1, sizeof *d);
  lexical *L = calloc(1, sizeof *L);
  if (!d || !L) {
    free(d);
    free(L);
    return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  }
  d->vt = &lex_vt;
  d->enabled = 1;
  d->threshold = 1.0f;
  d->impl = L;
  L->bank = bank;
  int rc = SD_OK;
  for (int c = 0; c < bank->n_cats && !rc; c++) {
    const sd_bank_category *k = &bank->cats[c];
    for (int i = 0; i < k->terms.n && !rc; i++) rc = add_term(L, 0, c, k->terms.items[i], NULL);
    for (int i = 0; i < k->safe.n && !rc; i++) rc = add_term(L, 1, c, k->safe.items[i], NULL);
  }
  if (!rc && (!opts || opts->wordnet)) rc = wordnet_expand(L, opts);
  if (rc) {
    lex_destroy(d);
    return rc;
  }
  *out = d;
  return SD_OK;
}

int sd_lexical_n_terms(const sd_detector *d) {
  return d && d->vt == &lex_vt ? ((const lexical *)d->impl)->n_terms : 0;
}

const char *sd_lexical_wordnet_status(const sd_detector *d) {
  return d && d->vt == &lex_vt ? ((const lexical *)d->impl)->wn_status : "not a lexical detector";
}

int sd_lexical_has_term(const sd_detector *d, int cat, const char *word) {
  if (!d || d->vt != &lex_vt || !word) return 0;
  const lexical *L = d->impl;
  char **w;
  int nw;
  if (term_words(word, &w, &nw)) return 0;
  int found = 0;
  for (int i = 0; i < L->n_terms && !found; i++) {
    const term *t = &L->terms[i];
    if (t->cat != cat || t->nw != nw) continue;
    int same = 1;
    for (int k = 0; k < nw && same; k++) same = strcmp(t->w[k], w[k]) == 0;
    found = same;
  }
  for (int i = 0; i < nw; i++) free(w[i]);
  free(w);
  return found;
}

char *sd_detection_summary(const sd_bank *bank, const sd_detection *d) {
  sbuf b = {0};
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s: score %g (threshold %g)", d->detector ? d->detector : "?", (double)d->score,
           (double)d->threshold);
  sb_puts(&b, tmp);
  if (!d->fired) sb_puts(&b, ", not fired");
  for (int i = 0; i < d->n_ev; i++) {
    const sd_evidence *e = &d->ev[i];
    sb_puts(&b, i ? "; " : ": ");
    sb_puts(&b, bank && e->category < bank->n_cats ? bank->cats[e->category].name : "?");
    sb_puts(&b, ": \"");
    sb_puts(&b, e->matched);
    sb_puts(&b, "\" matched \"");
    sb_puts(&b, e->term);
    sb_puts(&b, "\" (");
    sb_puts(&b, e->via);
    sb_puts(&b, ")");
  }
  return b.p;
}
