/* The lexical detector's lexicon (lexicon.h): languages, match keys, terms. The matching of a
 * prompt is in lexicon_match.c. */
#include "safety/lexicon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "safety/lexicon_internal.h"

/* ------------------------------------------------------------------------------------- */
/* languages                                                                               */

static int in_list(const char *const *list, const char *code) {
  for (int i = 0; list[i]; i++)
    if (!strcmp(code, list[i])) return 1;
  return 0;
}

/* Languages written in an Indic script (Devanagari, Bengali, Gurmukhi, Gujarati, Oriya, Tamil,
 * Telugu, Kannada, Malayalam, Sinhala): normalisation strips their vowel signs (marks). */
static const char *const k_indic[] = {"hi", "mr", "ne", "sa", "bn", "as", "pa", "gu", "or", "ta", "te", "kn", "ml", "si", NULL};

static int script_of_lang(const char *code) {
  if (!strcmp(code, "ru") || !strcmp(code, "uk") || !strcmp(code, "bg") || !strcmp(code, "sr")) return SD_SCRIPT_CYRILLIC;
  if (!strcmp(code, "ar") || !strcmp(code, "fa")) return SD_SCRIPT_ARABIC;
  if (!strcmp(code, "el")) return SD_SCRIPT_GREEK;
  if (!strcmp(code, "zh") || !strcmp(code, "ja") || !strcmp(code, "ko")) return SD_SCRIPT_OTHER;
  /* the other scripts (sd_script_of: SD_SCRIPT_OTHER): the Indic ones, Thai, Lao, Khmer,
   * Myanmar, Hebrew, Armenian, Georgian, Ethiopic, Tibetan; Thai, Lao, Khmer and Myanmar terms
   * match as substrings, like CJK (normalize.c) */
  static const char *const other[] = {"th", "lo", "km", "my", "he", "yi", "hy", "ka", "am", "ti", "bo", "dz", NULL};
  if (in_list(k_indic, code) || in_list(other, code)) return SD_SCRIPT_OTHER;
  return SD_SCRIPT_LATIN;
}

static int lang_index(const sd_lexicon *L, const char *code) {
  for (int k = 0; k < L->n_lang; k++)
    if (!strcmp(L->lang[k].code, code)) return k;
  return -1;
}

int sd_lex_lang_add(sd_lexicon *L, const char *code) {
  if (!code) code = "en";
  if (lang_index(L, code) >= 0) return SD_OK;
  if (L->n_lang == SD_STEM_MAX_LANGS) return sd_fail(SD_E_ARG, "lexical: more than %d term languages", SD_STEM_MAX_LANGS);
  sd_lex_lang *g = &L->lang[L->n_lang++];
  memset(g, 0, sizeof *g);
  snprintf(g->code, sizeof g->code, "%s", code);
  g->script = script_of_lang(code);
  /* Arabic and Indonesian stemmers strip prefixes (al-; me-, di-, pe-, ber-, ter-: "ditembak"
   * -> "tembak"), so the first letters of a word say nothing about its key */
  g->prefilter = g->script != SD_SCRIPT_ARABIC && strcmp(code, "id") != 0;
  return SD_OK;
}

int sd_lex_finish_langs(sd_lexicon *L) {
  int rc = sd_lex_lang_add(L, "en");
  if (rc) return rc;
  L->en = lang_index(L, "en");
  const char *codes[SD_STEM_MAX_LANGS];
  /* Indic scripts lose their vowel signs and viramas to normalisation (marks stripped), and a
   * stemmer written for the marked text misreads the rest: Hindi "लश्कर" (an army) read as
   * "लशकर" lost "कर" and became "लाश" (a corpse). Their terms are matched unstemmed (the
   * stripped marks already cover most inflections). */
  for (int k = 0; k < L->n_lang; k++)
    codes[k] = L->surface || in_list(k_indic, L->lang[k].code) ? "-" : L->lang[k].code;
  return sd_stem_pool_create(codes, L->n_lang, &L->stems);
}

/* ------------------------------------------------------------------------------------- */
/* keys                                                                                    */

void sd_lex_key_of(const sd_lexicon *L, sd_stemset *ss, int k, const char *w, size_t n, char *buf) {
  if (L->surface) {
    size_t m = n < KEY_MAX - 1 ? n : KEY_MAX - 1;
    memcpy(buf, w, m);
    buf[m] = 0;
    return;
  }
  sd_stem(ss, k, w, n, buf, KEY_MAX);
}

size_t sd_lex_collapse(const char *s, int keep, char *dst) {
  size_t o = 0;
  for (size_t i = 0; s[i];) {
    size_t j = i;
    while (s[j] == s[i]) j++;
    size_t run = j - i;
    size_t k = ((unsigned char)s[i] < 0x80 && run > (size_t)keep) ? (size_t)keep : run;
    for (size_t t = 0; t < k; t++) dst[o++] = s[i];
    i = j;
  }
  dst[o] = 0;
  return o;
}

int sd_lex_has_run3(const char *s) {
  for (size_t i = 0; s[i] && s[i + 1] && s[i + 2]; i++)
    if ((unsigned char)s[i] < 0x80 && s[i] == s[i + 1] && s[i] == s[i + 2]) return 1;
  return 0;
}

/* ------------------------------------------------------------------------------------- */
/* terms                                                                                   */

typedef struct {
  char **w;
  int nw, kind;
  int mixed; /* kind 0 with a piece matched as a substring (CJK, Thai...): can never match */
} words;

static void words_free(words *x) {
  for (int i = 0; i < x->nw; i++) free(x->w[i]);
  free(x->w);
  x->w = NULL;
  x->nw = 0;
}

/* A bank term into its normalised words; all-CJK text is one CJK key, a lone emoji its key. */
static int term_words(const sd_emoji_table *em, const char *text, words *out) {
  memset(out, 0, sizeof *out);
  sd_norm nm;
  int rc = sd_norm_text(text, em, &nm);
  if (rc) return rc;
  int all_cjk = nm.np > 0;
  for (int p = 0; p < nm.np; p++) all_cjk &= nm.ps[p].kind == SD_PIECE_CJK;
  sd_sbuf b = {0};
  if (nm.np == 1 && nm.ps[0].kind == SD_PIECE_EMOJI && em) {
    out->kind = 2;
    if (sd_sb_puts(&b, sd_emoji_key(em, nm.v[nm.ps[0].a].emoji))) goto oom;
  } else if (all_cjk) {
    out->kind = 1;
  } else {
    for (int p = 0; p < nm.np; p++) out->mixed |= nm.ps[p].kind == SD_PIECE_CJK;
  }
  if (out->kind == 1) {
    sd_sbuf t = {0};
    for (int p = 0; p < nm.np; p++) { /* words written apart (Korean) keep one space between */
      sd_unit u = {p, p + 1, 0};
      if ((p && sd_sb_puts(&b, " ")) || sd_norm_unit_text(&nm, &u, 0, &t) || sd_sb_puts(&b, t.p)) {
        free(t.p);
        goto oom;
      }
    }
    free(t.p);
  }
  if (out->kind) {
    if (!(out->w = malloc(sizeof *out->w))) goto oom;
    out->w[0] = b.p;
    out->nw = 1;
    sd_norm_free(&nm);
    return SD_OK;
  }
  for (int p = 0; p < nm.np; p++) {
    sd_unit u = {p, p + 1, 0};
    if (sd_norm_unit_text(&nm, &u, 0, &b)) goto oom;
    if (!b.n) continue;
    char **nw = realloc(out->w, (size_t)(out->nw + 1) * sizeof *nw);
    if (!nw) goto oom;
    out->w = nw;
    if (!(out->w[out->nw] = strdup(b.p))) goto oom;
    out->nw++;
  }
  free(b.p);
  sd_norm_free(&nm);
  return SD_OK;
oom:
  free(b.p);
  sd_norm_free(&nm);
  words_free(out);
  return sd_fail(SD_E_NOMEM, "lexical: out of memory");
}

static int n_cps(const char *s) {
  int n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static int add_pre(sd_lex_lang *g, const char *key, int id) {
  size_t n = strlen(key);
  char p[4];
  size_t m = n < 3 ? n : 3;
  memcpy(p, key, m);
  p[m] = 0;
  return sd_strmap_add(&g->pre, p, id);
}

static int same_words(const words *a, char **b, int nb) {
  if (a->nw != nb) return 0;
  for (int i = 0; i < nb; i++)
    if (strcmp(a->w[i], b[i])) return 0;
  return 1;
}

static char *join_words(const words *w) {
  sd_sbuf b = {0};
  if (sd_sb_puts(&b, "")) return NULL;
  for (int i = 0; i < w->nw; i++)
    if ((i && sd_sb_puts(&b, " ")) || sd_sb_puts(&b, w->w[i])) {
      free(b.p);
      return NULL;
    }
  return b.p;
}

char *sd_lex_words_key(const sd_lexicon *L, const char *text) {
  words w;
  if (term_words(L->em, text, &w)) return NULL;
  char *k = join_words(&w);
  words_free(&w);
  return k;
}

/* The script of the first letter of normalised word w (SD_SCRIPT_*), or -1 when it has none. */
static int letter_script(const char *w) {
  utf8proc_int32_t c;
  for (const char *s = w; *s;) {
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &c);
    if (k <= 0) return -1;
    s += k;
    utf8proc_category_t g = utf8proc_category(c);
    if (g < UTF8PROC_CATEGORY_LU || g > UTF8PROC_CATEGORY_LO) continue;
    char one[8] = {0};
    utf8proc_encode_char(c, (utf8proc_uint8_t *)one);
    return sd_script_of(one);
  }
  return -1;
}

static const char *script_name(int s) {
  return s == SD_SCRIPT_LATIN ? "Latin" : s == SD_SCRIPT_CYRILLIC ? "Cyrillic" : s == SD_SCRIPT_ARABIC ? "Arabic"
       : s == SD_SCRIPT_GREEK ? "Greek" : "another script";
}

/* The term's consonants (a word of a-z only, three consonants or more, a vowel or more left
 * out) into L->skel. */
static int add_skeleton(sd_lexicon *L, const char *w, int id) {
  char sk[KEY_MAX];
  size_t n = 0, len = strlen(w);
  if (len >= KEY_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    if (w[i] < 'a' || w[i] > 'z') return 0;
    if (!strchr("aeiou", w[i])) sk[n++] = w[i];
  }
  sk[n] = 0;
  return n >= 3 && n < len ? sd_strmap_add(&L->skel, sk, id) : 0;
}

int sd_lex_add(sd_lexicon *L, int cat, const char *lang, const char *text, const char *src, const sd_strmap *excl) {
  int k = lang_index(L, lang ? lang : "en");
  if (k < 0) return sd_fail(SD_E_ARG, "lexical: term language '%s' was not registered", lang);
  int exact = text[0] == '=' && !L->surface; /* "=stoned": as written, not stemmed */
  words w;
  int rc = term_words(L->em, text + exact, &w);
  if (rc) return rc;
  if (w.nw == 0) return SD_OK;
  /* a term no prompt can match is an error, not a silent no-op: one that mixes characters
   * matched as substrings (CJK, Thai...) with other letters ("卖b"), or whose letters are in a
   * script its language's terms are not looked up in (Devanagari under terms.en) */
  if (!L->surface && !exact && w.kind == 0) {
    int bad = w.mixed ? -2 : -1;
    for (int i = 0; i < w.nw && bad == -1; i++) {
      int s = letter_script(w.w[i]);
      if (s >= 0 && s != L->lang[k].script) bad = s;
    }
    if (bad != -1) {
      words_free(&w);
      if (bad == -2)
        return sd_fail(SD_E_FORMAT, "lexical: term '%s' (language %s) can never match: it mixes Chinese, Japanese, Korean "
                       "or Thai characters with other letters; write it in one script", text, L->lang[k].code);
      return sd_fail(SD_E_FORMAT, "lexical: term '%s' (language %s) can never match: its letters are %s, and %s terms are "
                     "looked up in %s words only; give it under its own language (terms.LANG)", text, L->lang[k].code,
                     script_name(bad), L->lang[k].code, script_name(L->lang[k].script));
    }
  }
  if (excl && excl->used) { /* the category's exclude list, compared as written */
    char *j = join_words(&w);
    int out = j && sd_strmap_find(excl, j);
    free(j);
    if (out) {
      words_free(&w);
      return SD_OK;
    }
  }
  sd_stemset *ss = L->surface ? NULL : sd_stem_acquire(L->stems);
  char key[KEY_MAX];
  words keys = {0};
  sd_sbuf sf = {0};
  if (!(keys.w = calloc((size_t)w.nw, sizeof *keys.w))) goto oom;
  keys.nw = w.nw;
  keys.kind = w.kind;
  for (int i = 0; i < w.nw; i++) {
    if (w.kind || exact) snprintf(key, sizeof key, "%s", w.w[i]);
    else sd_lex_key_of(L, ss, k, w.w[i], strlen(w.w[i]), key);
    if (!(keys.w[i] = strdup(key))) goto oom;
  }
  for (int i = 0; i < w.nw; i++)
    if ((i && sd_sb_puts(&sf, " ")) || sd_sb_puts(&sf, w.w[i])) goto oom;
  /* the same term (same keys, category, language) is added once; its forms are kept */
  sd_strmap *m = w.kind == 1 ? &L->cjk : w.kind == 2 ? &L->emoji : exact ? &L->exact : &L->lang[k].first;
  const sd_strmap_slot *s = sd_strmap_find(m, keys.w[0]);
  for (int p = s ? s->head : -1; p >= 0; p = m->post[p].next) {
    sd_term *t = &L->t[m->post[p].val];
    if (t->cat == cat && t->lang == k && t->exact == exact && same_words(&keys, t->w, t->nw)) {
      size_t a = strlen(t->surface);
      char *ns = realloc(t->surface, a + sf.n + 2);
      if (ns) {
        ns[a] = '|';
        memcpy(ns + a + 1, sf.p, sf.n + 1);
        t->surface = ns;
      }
      free(sf.p);
      sd_stem_release(L->stems, ss);
      words_free(&w);
      words_free(&keys);
      return ns ? SD_OK : sd_fail(SD_E_NOMEM, "lexical: out of memory");
    }
  }
  if (L->n == L->cap) {
    int nc = L->cap ? 2 * L->cap : 256;
    sd_term *nt = realloc(L->t, (size_t)nc * sizeof *nt);
    if (!nt) goto oom;
    L->t = nt;
    L->cap = nc;
  }
  int id = L->n;
  sd_term *t = &L->t[id];
  *t = (sd_term){keys.w, sf.p, exact, keys.nw, cat, k, w.kind, strdup(text + exact), src ? strdup(src) : NULL, 0};
  sf.p = NULL;
  keys.w = NULL;
  L->n++;
  if (!t->display || !t->surface || (src && !t->src)) goto oom;
  int bad = 0;
  if (w.kind == 1) {
    /* as written ("손목을 긋": across the space between two words) and joined ("손목을긋") */
    bad = sd_strmap_add(&L->cjk, t->w[0], id);
    if (n_cps(t->w[0]) > L->cjk_max) L->cjk_max = n_cps(t->w[0]);
    if (!bad && strchr(t->w[0], ' ')) {
      char *j = strdup(t->w[0]), *o = j;
      if (!j) goto oom;
      for (const char *c = t->w[0]; *c; c++)
        if (*c != ' ') *o++ = *c;
      *o = 0;
      bad = sd_strmap_add(&L->cjk, j, id);
      free(j);
    }
  } else if (w.kind == 2) {
    bad = sd_strmap_add(&L->emoji, t->w[0], id);
  } else if (exact) {
    bad = sd_strmap_add(&L->exact, t->w[0], id);
    if (w.nw > 1) {
      sd_sbuf j = {0};
      for (int i = 0; i < w.nw && !bad; i++) bad = sd_sb_puts(&j, w.w[i]);
      bad = bad || sd_strmap_add(&L->exact, j.p, id);
      free(j.p);
    }
  } else {
    sd_lex_lang *g = &L->lang[k];
    bad = sd_strmap_add(&g->first, t->w[0], id) || add_pre(g, t->w[0], id);
    if (w.nw > 1) { /* the joined form: "selfharm" */
      sd_sbuf j = {0};
      for (int i = 0; i < w.nw && !bad; i++) bad = sd_sb_puts(&j, w.w[i]);
      if (!bad) {
        sd_lex_key_of(L, ss, k, j.p, j.n, key);
        bad = sd_strmap_add(&g->first, key, id) || add_pre(g, key, id);
      }
      free(j.p);
    } else {
      char c1[KEY_MAX];
      if (strlen(w.w[0]) < KEY_MAX) {
        sd_lex_collapse(w.w[0], 1, c1);
        bad = (!L->surface && sd_strmap_add(&L->first1, c1, id)) || sd_strmap_add(&L->single, w.w[0], id) ||
              (!L->surface && k == L->en && add_skeleton(L, w.w[0], id));
      }
    }
  }
  sd_stem_release(L->stems, ss);
  words_free(&w);
  if (bad) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  return SD_OK;
oom:
  free(sf.p);
  sd_stem_release(L->stems, ss);
  words_free(&w);
  words_free(&keys);
  return sd_fail(SD_E_NOMEM, "lexical: out of memory");
}

void sd_lex_free(sd_lexicon *L) {
  for (int i = 0; i < L->n; i++) {
    for (int k = 0; k < L->t[i].nw; k++) free(L->t[i].w[k]);
    free(L->t[i].w);
    free(L->t[i].surface);
    free(L->t[i].display);
    free(L->t[i].src);
  }
  free(L->t);
  for (int k = 0; k < L->n_lang; k++) {
    sd_strmap_free(&L->lang[k].first);
    sd_strmap_free(&L->lang[k].pre);
  }
  sd_strmap_free(&L->first1);
  sd_strmap_free(&L->exact);
  sd_strmap_free(&L->cjk);
  sd_strmap_free(&L->emoji);
  sd_strmap_free(&L->single);
  sd_strmap_free(&L->skel);
  sd_stem_pool_free(L->stems);
  memset(L, 0, sizeof *L);
}

uint32_t sd_lex_single_cats(const sd_lexicon *L, const char *word, size_t n) {
  const sd_strmap_slot *s = sd_strmap_findn(&L->single, word, n);
  uint32_t c = 0;
  for (int p = s ? s->head : -1; p >= 0; p = L->single.post[p].next)
    if (L->t[L->single.post[p].val].lang == L->en) c |= 1u << L->t[L->single.post[p].val].cat;
  return c;
}

/* The index of the term of category cat whose keys are text's (as in the bank), or -1. */
static int term_index(const sd_lexicon *L, int cat, const char *text) {
  words w;
  if (term_words(L->em, text, &w)) return -1;
  sd_stemset *ss = L->surface ? NULL : sd_stem_acquire(L->stems);
  int found = -1;
  char key[KEY_MAX];
  for (int i = 0; i < L->n && found < 0; i++) {
    const sd_term *t = &L->t[i];
    if (t->cat != cat || t->nw != w.nw || t->kind != w.kind) continue;
    int same = 1;
    for (int k = 0; k < w.nw && same; k++) {
      if (w.kind || t->exact) snprintf(key, sizeof key, "%s", w.w[k]);
      else sd_lex_key_of(L, ss, t->lang, w.w[k], strlen(w.w[k]), key);
      same = strcmp(key, t->w[k]) == 0;
    }
    if (same) found = i;
  }
  sd_stem_release(L->stems, ss);
  words_free(&w);
  return found;
}

int sd_lex_has(const sd_lexicon *L, int cat, const char *text) { return term_index(L, cat, text) >= 0; }

int sd_lex_mark_act(sd_lexicon *L, int cat, const char *text) {
  int i = term_index(L, cat, text);
  if (i < 0) return 0;
  L->t[i].act = 1;
  return 1;
}

int sd_lex_same(const sd_lexicon *L, const sd_term *t, const char *text) {
  if (t->nw != 1 || t->kind) return 0;
  char key[KEY_MAX];
  sd_stemset *ss = L->surface ? NULL : sd_stem_acquire(L->stems);
  if (t->exact) snprintf(key, sizeof key, "%s", text);
  else sd_lex_key_of(L, ss, t->lang, text, strlen(text), key);
  sd_stem_release(L->stems, ss);
  return strcmp(key, t->w[0]) == 0;
}

