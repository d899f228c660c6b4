/* The lexical detector's matching (lexicon.h): the readings of each unit of a normalised
 * prompt (plain, leetspeak, confusables, repeats collapsed, masked letters), looked up in
 * every language written in its script; words the CLIP tokenizer splits; CJK substrings;
 * emoji. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "safety/funcwords.h"
#include "safety/lexicon.h"
#include "safety/lexicon_internal.h"
#include "text/tokenizer.h"

/* ------------------------------------------------------------------------------------- */
/* candidates: the readings of a unit                                                      */

typedef sd_lex_cand cand;
typedef sd_lex_candset candset;
typedef sd_lex_mctx mctx;

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
  if (!(cs->c[cs->n].s = strdup(s))) return -1;
  cs->c[cs->n].flags = flags;
  cs->c[cs->n].c1 = c1;
  cs->n++;
  return 0;
}

static void cs_free(candset *cs) {
  for (int i = 0; i < cs->n; i++) free(cs->c[i].s);
  free(cs->c);
  memset(cs, 0, sizeof *cs);
}

/* Plain text, leetspeak (1 -> i, 1 -> l) where letters and digits/symbols mix, each also as
 * the confusable reading where a letter folds; a run of >= 3 repeated letters collapsed. */
static int unit_cands(const sd_norm *nm, const sd_unit *u, candset *cs) {
  for (int i = 0; i < cs->n; i++) free(cs->c[i].s);
  cs->n = 0;
  int has_letter = 0, has_leet = 0, has_one = 0, nonascii = 0, folds = 0;
  for (int p = u->p0; p < u->p1; p++) {
    nonascii |= nm->ps[p].nonascii;
    folds |= nm->ps[p].folds;
    for (int i = nm->ps[p].a; i < nm->ps[p].b; i++) {
      has_letter |= nm->v[i].cls == SD_CL_LETTER;
      has_leet |= nm->v[i].cls == SD_CL_DIGIT || nm->v[i].cls == SD_CL_LEET;
      has_one |= nm->v[i].cp == '1';
    }
    if (p > u->p0)
      for (int i = nm->ps[p - 1].b; i < nm->ps[p].a; i++) has_leet |= nm->v[i].cp == '|';
  }
  int masked = 0; /* a '*' between joined parts: "n*ked" */
  for (int p = u->p0 + 1; u->joined && p < u->p1; p++)
    for (int i = nm->ps[p - 1].b; i < nm->ps[p].a; i++) masked |= nm->v[i].cp == '*';
  int base = (u->joined ? SD_VIA_SEP : 0) | (nonascii ? SD_VIA_UNICODE : 0);
  int nmodes = (has_letter && has_leet) ? (has_one ? 3 : 2) : 1;
  sd_sbuf t = {0};
  char *c = NULL;
  int rc = 0;
  for (int f = 0; f <= folds && !rc; f++)
    for (int mode = 0; mode < nmodes && !rc; mode++) {
      if (sd_norm_unit_text(nm, u, mode | (f ? SD_TEXT_FOLD : 0), &t)) {
        rc = -1;
        break;
      }
      int fl = base | (mode ? SD_VIA_LEET : 0) | (f ? SD_VIA_CONFUSABLE : 0);
      if (cs_add(cs, t.p, fl, 0)) rc = -1;
      if (!rc && masked) {
        if (sd_norm_unit_text(nm, u, mode | (f ? SD_TEXT_FOLD : 0) | SD_TEXT_MASK, &t) ||
            cs_add(cs, t.p, (fl & ~SD_VIA_SEP) | SD_VIA_MASK, 2)) {
          rc = -1;
          break;
        }
        if (sd_norm_unit_text(nm, u, mode | (f ? SD_TEXT_FOLD : 0), &t)) {
          rc = -1;
          break;
        }
      }
      if (!rc && sd_lex_has_run3(t.p)) {
        char *nc = realloc(c, t.n + 1);
        if (!nc) {
          rc = -1;
          break;
        }
        c = nc;
        sd_lex_collapse(t.p, 2, c);
        rc |= cs_add(cs, c, fl | SD_VIA_REPEAT, 0);
        sd_lex_collapse(t.p, 1, c);
        rc |= cs_add(cs, c, fl | SD_VIA_REPEAT, 1);
      }
    }
  free(c);
  free(t.p);
  return rc;
}

/* ------------------------------------------------------------------------------------- */
/* lookup                                                                                  */

int sd_lex_hits_add(sd_lex_hits *l, sd_lex_hit h) {
  for (int i = 0; i < l->n; i++)
    if (l->h[i].term == h.term && l->h[i].a == h.a && l->h[i].b == h.b && l->h[i].emoji_name == h.emoji_name) {
      l->h[i].flags |= h.flags;
      l->h[i].neg &= h.neg;
      return 0;
    }
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 16;
    sd_lex_hit *n = realloc(l->h, (size_t)nc * sizeof *n);
    if (!n) return -1;
    l->h = n;
    l->cap = nc;
  }
  l->h[l->n++] = h;
  return 0;
}

static int hits_add(sd_lex_hits *l, sd_lex_hit h) { return sd_lex_hits_add(l, h); }

/* lexicon_lang.c's dictionary tests, by their short names */
static int dict_has(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s) {
  return sd_lex_dict_has(dict, ss, en, s);
}
static int common_english(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s) {
  return sd_lex_common_english(dict, ss, en, s);
}

/* The language of the prompt's other words (lexicon_lang.c). */
int sd_lex_english_text_m(mctx *m, int p0, int p1) {
  sd_lex_text x = {m->L, m->env, m->nm, m->ss, m->wlang};
  int r = sd_lex_english_text(&x, p0, p1);
  m->wlang = x.wlang;
  return r;
}
static int english_text(mctx *m, int p0, int p1) { return sd_lex_english_text_m(m, p0, p1); }

/* The inflection check of an English stem match. Snowball's stems also merge derived words
 * (organ/organic/organization, execution/executive, severed/several), which are other
 * words: a prompt word whose base forms include a dictionary lemma matches a term's word
 * only when one of those lemmas is a base form of the term's word as written (or of a form
 * merged into it). base(x): x, and x less an inflection: -s, -es, -ies (+y), -ied (+y), -ed,
 * -d, -ing (also +e, and with a doubled consonant undone). */
#define BASES 10
static int bases(const char *x, char out[BASES][KEY_MAX]) {
  size_t n = strlen(x);
  int k = 0;
  if (n >= KEY_MAX - 2) return 0;
#define ADD(len, suf)                                                  \
  do {                                                                 \
    if ((len) >= 2 && k < BASES) {                                     \
      memcpy(out[k], x, (len));                                        \
      strcpy(out[k] + (len), (suf));                                   \
      k++;                                                             \
    }                                                                  \
  } while (0)
#define ENDS(s) (n > strlen(s) && !strcmp(x + n - strlen(s), (s)))
  ADD(n, "");
  if (ENDS("ies") || ENDS("ied")) ADD(n - 3, "y");
  if (ENDS("es")) ADD(n - 2, "");
  if (ENDS("s") && !ENDS("ss")) ADD(n - 1, "");
  if (ENDS("ed")) {
    ADD(n - 2, "");
    ADD(n - 1, "");
    if (n >= 5 && x[n - 3] == x[n - 4]) ADD(n - 3, "");
  }
  if (ENDS("ing")) {
    ADD(n - 3, "");
    ADD(n - 3, "e");
    if (n >= 6 && x[n - 4] == x[n - 5]) ADD(n - 4, "");
  }
#undef ADD
#undef ENDS
  return k;
}

static int infl_related(const sd_wn_dict *dict, const char *word, const char *forms, int k) {
  char bw[BASES][KEY_MAX], bf[BASES][KEY_MAX];
  int nw = bases(word, bw), any_lemma = 0;
  for (int i = 0; i < nw; i++) {
    if (!sd_wn_dict_has(dict, SD_WN_LEMMAS, bw[i])) continue;
    any_lemma = 1;
    for (const char *f = forms; f; f = strchr(f, '|') ? strchr(f, '|') + 1 : NULL) {
      const char *w = f; /* word k of this form */
      for (int j = 0; j < k && w; j++) {
        w = strpbrk(w, " |");
        w = w && *w == ' ' ? w + 1 : NULL;
      }
      if (!w) continue;
      char one[KEY_MAX];
      size_t l = strcspn(w, " |");
      if (l >= sizeof one) continue;
      memcpy(one, w, l);
      one[l] = 0;
      int nf = bases(one, bf);
      for (int a = 0; a < nf; a++)
        if (!strcmp(bw[i], bf[a])) return 1;
    }
  }
  return !any_lemma;
}

/* Whether any key of language g could match s (its first 1-3 bytes are a key's prefix). */
static int pre_ok(const sd_lex_lang *g, const char *s) {
  if (!g->prefilter) return 1;
  size_t n = strlen(s);
  for (size_t m = 1; m <= 3 && m <= n; m++)
    if (sd_strmap_findn(&g->pre, s, m)) return 1;
  return 0;
}


/* Whether word k of one of the term's forms ("a b|c d") is w. */
static int word_is(const char *surface, int k, const char *w) {
  for (const char *f = surface; f; f = strchr(f, '|') ? strchr(f, '|') + 1 : NULL) {
    const char *p = f;
    for (int i = 0; i < k && p; i++) {
      p = strpbrk(p, " |");
      p = p && *p == ' ' ? p + 1 : NULL;
    }
    if (!p) continue;
    size_t n = strcspn(p, " |");
    if (strlen(w) == n && !strncmp(p, w, n)) return 1;
  }
  return 0;
}

/* Whether the text s read for term t is one of its forms (one word, or all words joined). */
static int surface_is(const sd_term *t, const char *s) {
  for (const char *f = t->surface; f; f = strchr(f, '|') ? strchr(f, '|') + 1 : NULL) {
    const char *p = f, *q = s;
    for (; *p && *p != '|'; p++) {
      if (*p == ' ') continue;
      if (*p != *q) break;
      q++;
    }
    if ((!*p || *p == '|') && !*q) return 1;
  }
  return 0;
}

/* A stem match of word k of term t by text w (not one of the term's written forms): an
 * English one is kept when w is an inflection (infl_related); in another Latin-script
 * language, whose stemmer strips more ("matisse" -> "mat", as "matar"), when w is no
 * English dictionary word at all (names included: Matisse, Seine), has >= 5 letters and its
 * stem >= 4. */
static int stem_ok(const mctx *m, const sd_term *t, int k, const char *w) {
  const sd_lexicon *L = m->L;
  if (!m->env->dict || L->surface) return 1;
  if (t->lang == L->en) return infl_related(m->env->dict, w, t->surface, k);
  if (L->lang[t->lang].script != SD_SCRIPT_LATIN) return 1;
  if (sd_wn_dict_has(m->env->dict, SD_WN_LEMMAS, w) || strlen(w) < 5) return 0;
  return strlen(t->w[k]) >= 4;
}

/* Determiners and possessives, one for another inside an English multi-word term: "rope
 * around his neck" is also "rope around the neck" and "... her neck". */
static int determiner(const char *w) {
  static const char *const d[] = {"a", "an", "the", "his", "her", "their", "its", "my", "your", "our", NULL};
  for (int i = 0; d[i]; i++)
    if (!strcmp(w, d[i])) return 1;
  return 0;
}

/* Does piece q match word k of term t (as the term's k-th word)? */
static int piece_is(mctx *m, int q, const sd_term *t, int k, int *flags) {
  sd_unit u = {q, q + 1, 0};
  if (unit_cands(m->nm, &u, &m->cs2)) return -1;
  char key[KEY_MAX];
  for (int i = 0; i < m->cs2.n; i++) {
    const cand *c = &m->cs2.c[i];
    if (c->c1) continue;
    size_t n = strlen(c->s);
    if (t->exact) snprintf(key, sizeof key, "%s", c->s);
    else sd_lex_key_of(m->L, m->ss, t->lang, c->s, n, key);
    int ok = strcmp(key, t->w[k]) == 0, as_written = word_is(t->surface, k, c->s);
    if (!ok && k > 0 && k < t->nw - 1 && t->lang == m->L->en && determiner(c->s)) {
      /* a determiner of the term's inner words stands for any other ("his" for "the") */
      char wk[KEY_MAX];
      size_t l = 0;
      for (const char *f = t->surface; f && !ok; f = strchr(f, '|') ? strchr(f, '|') + 1 : NULL) {
        const char *w = f;
        for (int j = 0; j < k && w; j++) {
          w = strpbrk(w, " |");
          w = w && *w == ' ' ? w + 1 : NULL;
        }
        if (!w || (l = strcspn(w, " |")) >= sizeof wk) continue;
        memcpy(wk, w, l);
        wk[l] = 0;
        if (determiner(wk)) ok = as_written = 1;
      }
    }
    if (!ok && m->L->surface && k == t->nw - 1) { /* a plural on the last word of a safe phrase */
      size_t wl = strlen(t->w[k]);
      ok = n > wl && !strncmp(c->s, t->w[k], wl) && (!strcmp(c->s + wl, "s") || !strcmp(c->s + wl, "es"));
    }
    if (ok && !as_written) ok = stem_ok(m, t, k, c->s);
    if (ok) {
      *flags |= c->flags | (as_written ? 0 : SD_VIA_STEM);
      return 1;
    }
  }
  return 0;
}

/* take()'s flag, never a hit's: multi-word terms only (the unit is an English word, which
 * alone is read as English, but may begin a phrase of another language: "faire l'amour",
 * "sin ropa") */
#define TAKE_MULTI_ONLY (1 << 24)

/* Terms whose key (language k) is `key`, read from unit u: complete matches, and multi-word
 * terms continued over the following pieces. Returns the number of hits added. */
static int take(mctx *m, const sd_unit *u, const sd_strmap *mp, const char *key, const char *text, int flags) {
  const sd_lexicon *L = m->L;
  const sd_norm *nm = m->nm;
  const sd_strmap_slot *s = sd_strmap_find(mp, key);
  int added = 0, multi_only = flags & TAKE_MULTI_ONLY;
  flags &= ~TAKE_MULTI_ONLY;
  for (int p = s ? s->head : -1; p >= 0; p = mp->post[p].next) {
    int ti = mp->post[p].val;
    const sd_term *t = &L->t[ti];
    if (multi_only && t->nw < 2) continue;
    int fl = flags, p1 = u->p1;
    /* a reading undone from leetspeak or joined over separators matches a term of another
     * language only as written: "1-inch" is not Spanish "linchado" through its stem */
    int written_only = (flags & (SD_VIA_LEET | SD_VIA_SEP)) && t->lang != L->en;
    if (t->nw > 1 && !strcmp(t->w[0], key)) { /* continued over the pieces after the unit */
      if (!word_is(t->surface, 0, text)) {
        if (written_only || !stem_ok(m, t, 0, text)) continue;
        fl |= SD_VIA_STEM;
      }
      int ok = 1;
      for (int j = 1; j < t->nw && ok; j++) {
        int q = u->p1 + j - 1;
        if (q >= nm->np || nm->ps[q].gap > 2 || nm->ps[q].kind == SD_PIECE_EMOJI) ok = 0;
        else {
          int r = piece_is(m, q, t, j, &fl);
          if (r < 0) return -1;
          ok = r == 1;
        }
      }
      if (!ok) continue;
      p1 = u->p1 + t->nw - 1;
    } else if (!surface_is(t, text)) {
      if (written_only || (t->nw == 1 && !stem_ok(m, t, 0, text))) continue;
      fl |= SD_VIA_STEM;
    }
    sd_lex_hit h = {ti, nm->ps[u->p0].a, nm->ps[p1 - 1].b, u->p0, p1, fl, 1, -1};
    for (int q = u->p0; q < p1; q++) h.neg &= nm->ps[q].neg;
    if (hits_add(m->out, h)) return -1;
    added++;
  }
  return added;
}

/* Whether every letter of unit u is Cyrillic or Greek. */
static int cyrillic_greek(const sd_norm *nm, const sd_unit *u) {
  for (int p = u->p0; p < u->p1; p++)
    for (int i = nm->ps[p].a; i < nm->ps[p].b; i++) {
      int32_t c = nm->v[i].cp;
      if (nm->v[i].cls == SD_CL_LETTER && !(c >= 0x370 && c <= 0x52F)) return 0;
    }
  return 1;
}

/* Look candidate s up in every language written in its script (safe phrases: whatever
 * their script). A word written wholly in Cyrillic or Greek and read through its look-alike
 * letters ("вокер" as "bokep") is looked up in English only: such a word is a word of its
 * own script (a Ukrainian name, "сірка"), and the look-alike attack is made on English
 * words. */
static int lookup(mctx *m, const sd_unit *u, const char *s, int flags) {
  const sd_lexicon *L = m->L;
  int script = sd_script_of(s), added = 0, english = -1;
  int folded_only = (flags & SD_VIA_CONFUSABLE) && cyrillic_greek(m->nm, u);
  char key[KEY_MAX];
  for (int k = 0; k < L->n_lang; k++) {
    const sd_lex_lang *g = &L->lang[k];
    /* safe phrases (the surface lexicon) are one list of any script: "кровавая луна" */
    if ((g->script != script && !L->surface) || !g->first.used || !pre_ok(g, s)) continue;
    if (folded_only && k != L->en && !L->surface) continue;
    int multi_only = 0;
    if (!L->surface && k != L->en && script == SD_SCRIPT_LATIN) { /* an English word is read as English */
      if (english < 0) english = common_english(m->env->dict, m->ss, L->en, s);
      multi_only = english; /* unless it begins a longer term of the language */
    }
    sd_lex_key_of(L, m->ss, k, s, strlen(s), key);
    int r = take(m, u, &g->first, key, s, flags | (multi_only ? TAKE_MULTI_ONLY : 0));
    if (r < 0) return -1;
    added += r;
    if (L->surface && k == L->en) { /* plural of a one-word safe phrase */
      size_t n = strlen(s);
      for (int cut = 1; cut <= 2 && !added; cut++)
        if (n > (size_t)cut + 2 && !strcmp(s + n - cut, cut == 1 ? "s" : "es")) {
          memcpy(key, s, n - cut);
          key[n - cut] = 0;
          r = take(m, u, &g->first, key, s, flags);
          if (r < 0) return -1;
          added += r;
        }
    }
  }
  if (L->exact.used) { /* "=word" terms, as written */
    int r = take(m, u, &L->exact, s, s, flags);
    if (r < 0) return -1;
    added += r;
  }
  return added;
}

/* A word with letters masked by '*' (pattern p: '?' for each, "n?ked", "f??king"): filled
 * from every one-word term written to fit the start of the pattern with all its '?' inside
 * the term ("naked"; "fuck" + "ing"), the rest of the pattern (at most 4 letters: an
 * inflection) kept as written, and the filled word looked up like any other (stems,
 * inflections, every language). The filled part needs >= 2 known letters and no fewer known
 * letters than masked ones, so "f**k" is read and "**k" or "a*" are not. The longest filled
 * part that matches wins, and among fills of one length those that hide the most vowels
 * (people mask vowels): "b??bs" is "boobs", not "bombs" or "bomb" + s. */
#define MASK_SUFFIX 4
#define MASK_FILLS 32

static int is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

/* The fills of p (n bytes, nq '?') whose filled part is wl bytes, from the keys of mp, with
 * the vowels they put under the mask. */
static int mask_fills(const sd_strmap *mp, const char *p, size_t n, size_t wl, int nq, char (*fill)[KEY_MAX],
                      int *vowels, int nf) {
  for (size_t si = 0; si < mp->cap && nf < MASK_FILLS; si++) {
    const char *w = mp->slots[si].key;
    if (!w || strlen(w) != wl) continue;
    int known = 0, v = 0, ok = 1;
    for (size_t i = 0; i < wl && ok; i++) {
      if (p[i] == '?') {
        ok = w[i] >= 'a' && w[i] <= 'z';
        v += is_vowel(w[i]);
      } else if (p[i] != w[i]) {
        ok = 0;
      } else {
        known++;
      }
    }
    if (!ok || known < 2 || known < nq) continue;
    memcpy(fill[nf], w, wl);
    memcpy(fill[nf] + wl, p + wl, n - wl);
    fill[nf][n] = 0;
    int dup = 0;
    for (int k = 0; k < nf && !dup; k++) dup = !strcmp(fill[k], fill[nf]);
    if (!dup) vowels[nf++] = v;
  }
  return nf;
}

static int mask_lookup(mctx *m, const sd_unit *u, const char *p, int flags) {
  size_t n = strlen(p), last = 0;
  int nq = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] == '?') {
      nq++;
      last = i;
    } else if ((unsigned char)p[i] >= 0x80) {
      return 0; /* ASCII words only */
    }
  if (!nq || n < 3 || n >= KEY_MAX) return 0;
  char(*fill)[KEY_MAX] = malloc(MASK_FILLS * sizeof *fill);
  if (!fill) return -1;
  int vowels[MASK_FILLS], added = 0;
  /* pass 0: the one-word terms; pass 1: the first words of English multi-word terms (their
   * keys), which the following pieces must continue ("d*ad body") */
  for (int pass = 0; pass < 2 && !added; pass++) {
    for (size_t wl = n; wl >= 3 && wl > last && n - wl <= MASK_SUFFIX && !added; wl--) {
      int nf = 0;
      if (pass == 0) {
        nf = mask_fills(&m->L->single, p, n, wl, nq, fill, vowels, 0);
        nf = mask_fills(&m->L->exact, p, n, wl, nq, fill, vowels, nf);
      } else if (!m->L->surface) {
        nf = mask_fills(&m->L->lang[m->L->en].first, p, n, wl, nq, fill, vowels, 0);
      }
      for (int v = nq; v >= 0 && !added; v--)
        for (int k = 0; k < nf; k++) {
          if (vowels[k] != v) continue;
          int r = lookup(m, u, fill[k], flags);
          if (r < 0) {
            free(fill);
            return -1;
          }
          added += r;
        }
    }
  }
  free(fill);
  return added;
}

/* ------------------------------------------------------------------------------------- */
/* compounds: the way the CLIP tokenizer splits a word                                      */

/* lexicon_internal.h */
int sd_lex_term_piece(mctx *m, const char *s, int *terms, int as_written) {
  const sd_lexicon *L = m->L;
  char key[KEY_MAX];
  int n = 0;
  for (int k = 0; k < L->n_lang; k++) {
    const sd_lex_lang *g = &L->lang[k];
    if (g->script != SD_SCRIPT_LATIN || !g->first.used || !pre_ok(g, s)) continue;
    if (k != L->en && common_english(m->env->dict, m->ss, L->en, s)) continue;
    sd_lex_key_of(L, m->ss, k, s, strlen(s), key);
    const sd_strmap_slot *sl = sd_strmap_find(&g->first, key);
    for (int p = sl ? sl->head : -1; p >= 0 && n < CMP_TERMS; p = g->first.post[p].next) {
      const sd_term *t = &L->t[g->first.post[p].val];
      if (t->nw == 1 && (surface_is(t, s) || (!as_written && stem_ok(m, t, 0, s))))
        terms[n++] = g->first.post[p].val;
    }
  }
  const sd_strmap_slot *sl = sd_strmap_find(&L->exact, s);
  for (int p = sl ? sl->head : -1; p >= 0 && n < CMP_TERMS; p = L->exact.post[p].next)
    if (L->t[L->exact.post[p].val].nw == 1) terms[n++] = L->exact.post[p].val;
  return n;
}

#define CMP_MAX 16
static const char *const neg_prefix[] = {"non", "no", "not", "anti", "un", NULL};

/* A function word glued to an English term, a space lost: "tomurder", "anaked", "thecorpse"
 * (CLIP splits them elsewhere: "tom" + "urder"). "no" glued negates ("nonude"). Called only
 * for a word that is no dictionary word and no CLIP word ("therapist" stays whole), in English
 * text. */
static const char *const glue_words[] = {"a",   "an", "the", "to", "of", "and",  "with", "my",
                                         "his", "her", "their", "your", "for", "no", "in", "on", NULL};

static int glued(mctx *m, const sd_unit *u, const char *s, int flags) {
  size_t n = strlen(s);
  /* in English text only, as the typo readings ("anal" of another language is left alone);
   * safe phrases always, so that "thekiller whale" stays one */
  if (m->nm->ps[u->p0].nonascii || (!m->L->surface && !english_text(m, u->p0, u->p1))) return 0;
  for (const char *const *g = glue_words; *g; g++) {
    size_t l = strlen(*g);
    if (n < l + 4 || strncmp(s, *g, l)) continue;
    /* the rest read as a word of its own: multi-word terms and safe phrases continue over
     * the next words ("thekiller whale") */
    int first = m->out->n, k = first;
    if (lookup(m, u, s + l, flags | SD_VIA_COMPOUND) < 0) return -1;
    for (int i = first; i < m->out->n; i++) {
      sd_lex_hit h = m->out->h[i];
      if (!m->L->surface && m->L->t[h.term].lang != m->L->en) continue; /* English terms only */
      if (!strcmp(*g, "no")) h.neg = 1;
      m->out->h[k++] = h;
    }
    m->out->n = k;
    if (k > first) return k - first;
  }
  return 0;
}

static int compound(mctx *m, const sd_unit *u, const char *s, int flags) {
  const sd_lex_env *env = m->env;
  size_t n = strlen(s);
  if (!env->tok || !env->dict || n < 5 || n > 48) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 'a' || s[i] > 'z') return 0;
  int any = 0; /* some one-word term is inside */
  for (size_t i = 0; i + 3 <= n && !any; i++)
    for (size_t l = 3; i + l <= n && l <= 24 && !any; l++) any = sd_strmap_findn(&m->L->single, s + i, l) != NULL;
  int glue = 0; /* or it may begin with a glued function word ("theirwhite power") */
  for (const char *const *g = glue_words; *g && !any && !glue; g++) glue = !strncmp(s, *g, strlen(*g));
  if ((!any && !glue) || dict_has(env->dict, m->ss, m->L->en, s)) return 0; /* a dictionary word stays whole */
  const sd_tokenizer *tk = env->tok(env->tok_ctx);
  if (!tk) return 0;
  char tok[64];
  snprintf(tok, sizeof tok, "%s</w>", s);
  if (sd_tokenizer_lookup(tk, tok) >= 0) return 0; /* CLIP reads it as one word */
  if (!any) return glued(m, u, s, flags);
  int32_t *ids = NULL;
  size_t ni = 0;
  if (sd_tokenize(tk, s, n, &ids, &ni)) return -1;
  if (ni < 2 || ni > CMP_MAX) {
    free(ids);
    return glued(m, u, s, flags);
  }
  size_t off[CMP_MAX + 1];
  off[0] = 0;
  for (size_t i = 0; i < ni; i++) {
    const char *t = sd_tokenizer_token(tk, ids[i]);
    size_t l = t ? strlen(t) : 0;
    if (l >= 4 && !strcmp(t + l - 4, "</w>")) l -= 4;
    off[i + 1] = off[i] + l;
  }
  free(ids);
  if (off[ni] != n) return glued(m, u, s, flags);
  /* segments of pieces [i, j): a one-piece term, or a dictionary word; the best split has
   * the most terms */
  int best[CMP_MAX + 1], from[CMP_MAX + 1], term_at[CMP_MAX + 1][CMP_TERMS], nterm_at[CMP_MAX + 1];
  for (size_t j = 0; j <= ni; j++) best[j] = -1;
  best[0] = 0;
  char seg[64];
  for (size_t j = 1; j <= ni; j++)
    for (size_t i = 0; i < j; i++) {
      if (best[i] < 0 || off[j] - off[i] >= sizeof seg) continue;
      memcpy(seg, s + off[i], off[j] - off[i]);
      seg[off[j] - off[i]] = 0;
      int terms[CMP_TERMS], nt = j == i + 1 ? sd_lex_term_piece(m, seg, terms, 0) : 0, score;
      if (nt) score = best[i] + 1;
      else if (off[j] - off[i] >= 2 && dict_has(env->dict, m->ss, m->L->en, seg) &&
               (off[j] - off[i] > 3 || common_english(env->dict, m->ss, m->L->en, seg)) &&
               (off[j] - off[i] > 2 || sd_en_function_word(seg, 2)))
        score = best[i];
      else continue;
      if (score > best[j]) {
        best[j] = score;
        from[j] = (int)i;
        nterm_at[j] = nt;
        memcpy(term_at[j], terms, (size_t)nt * sizeof *terms);
      }
    }
  if (best[ni] < 1) return glued(m, u, s, flags);
  int added = 0, neg = 0;
  for (int j = (int)ni; j > 0; j = from[j]) {
    if (from[j] == 0) {
      memcpy(seg, s, off[j]);
      seg[off[j]] = 0;
      for (const char *const *c = neg_prefix; *c && !neg; c++) neg = !strcmp(seg, *c); /* "nonviolent" */
    }
  }
  for (int j = (int)ni; j > 0; j = from[j])
    for (int k = 0; k < nterm_at[j]; k++) {
      sd_lex_hit h = {term_at[j][k], m->nm->ps[u->p0].a, m->nm->ps[u->p1 - 1].b, u->p0, u->p1,
                      flags | SD_VIA_COMPOUND, neg || m->nm->ps[u->p0].neg, -1};
      if (hits_add(m->out, h)) return -1;
      added++;
    }
  return added;
}

/* ------------------------------------------------------------------------------------- */
/* words broken or misspelled on purpose                                                   */


/* Split words: two or three neighbouring word pieces, separated by whitespace only, each of
 * 1 to SPLIT_PIECE letters (leetspeak allowed) and at least one of them neither everyday
 * English nor a function word of a bank language (funcwords.h), read joined ("nu de", "na
 * ked", "co caine", "blo od y"). Everyday words next to each other are never joined ("pen
 * is", "the rapist", "hero in", "de mon", "se nos"), nor are single letters alone (runs of
 * those are units already: "n u d e"). In English text only (english_text); needs the
 * English dictionary. */
#define SPLIT_PIECE 6
#define SPLIT_MAX 3

/* Whether piece q has the shape of part of a split word: a word piece of 1 to SPLIT_PIECE
 * Latin letters (or their confusables), digits and leet symbols, with a letter. */
static int split_shape(const sd_norm *nm, int q) {
  const sd_piece *ps = &nm->ps[q];
  if (ps->kind != SD_PIECE_WORD || ps->b - ps->a > SPLIT_PIECE) return 0;
  int letters = 0;
  for (int i = ps->a; i < ps->b; i++) {
    const sd_ncp *c = &nm->v[i];
    if (c->cls == SD_CL_LETTER) {
      if (c->cp > 0x7f && !c->nfold) return 0;
      letters++;
    } else if (c->cls != SD_CL_DIGIT && c->cls != SD_CL_LEET) {
      return 0;
    }
  }
  return letters > 0;
}

/* Whether piece q is no everyday word: neither a function word of a bank language nor
 * everyday English. */
static int split_odd(mctx *m, int q, sd_sbuf *t) {
  sd_unit u = {q, q + 1, 0};
  if (sd_norm_unit_text(m->nm, &u, SD_TEXT_FOLD, t)) return -1;
  return t->n && !sd_function_word(t->p, t->n) && !common_english(m->env->dict, m->ss, m->L->en, t->p);
}

/* Whether s begins with a one-word term as written, leaving at most 4 bytes (an inflection):
 * the cheap test before a joined reading is looked up in every language. */
static int single_prefix(const sd_lexicon *L, const char *s) {
  size_t n = strlen(s);
  for (size_t l = n; l >= 3 && n - l <= 4; l--)
    if (sd_strmap_findn(&L->single, s, l)) return 1;
  return 0;
}

static int split_words(mctx *m, candset *cs) {
  const sd_norm *nm = m->nm;
  if (!m->env->dict || m->L->surface) return 0;
  sd_sbuf t = {0};
  int rc = 0;
  signed char *odd = malloc((size_t)nm->np + 1); /* per piece: -2 wrong shape, -1 not known yet, 0/1 */
  if (!odd) return -1;
  for (int q = 0; q < nm->np; q++) odd[q] = (signed char)(split_shape(nm, q) ? -1 : -2);
  for (int p = 0; p < nm->np && !rc; p++) {
    if (odd[p] == -2 || (p > 0 && nm->ps[p].gap < 2)) continue; /* a whole word starts here */
    int longest = 0; /* the longest joined unit that matches wins: "blo od y" is "bloody" */
    for (int k = SPLIT_MAX; k >= 2 && !rc && !longest; k--) {
      if (p + k > nm->np || (p + k < nm->np && nm->ps[p + k].gap < 2)) continue; /* and ends here */
      int all = 1, multi = 0, len = 0;
      for (int q = p; q < p + k && all; q++) {
        all = odd[q] != -2 && (q == p || nm->ps[q].gap == 2);
        multi |= nm->ps[q].b - nm->ps[q].a > 1;
        len += nm->ps[q].b - nm->ps[q].a;
      }
      if (!all || !multi || len < 4) continue;
      sd_unit u = {p, p + k, 1};
      if (unit_cands(nm, &u, cs)) {
        rc = -1;
        break;
      }
      int pre = 0;
      for (int ci = 0; ci < cs->n && !pre; ci++) pre = !cs->c[ci].c1 && single_prefix(m->L, cs->c[ci].s);
      if (!pre || !english_text(m, p, p + k)) continue;
      int any_odd = 0;
      for (int q = p; q < p + k && !rc && !any_odd; q++) {
        if (odd[q] == -1) {
          int r = split_odd(m, q, &t);
          if (r < 0) rc = -1;
          odd[q] = (signed char)(r > 0);
        }
        any_odd = odd[q] == 1;
      }
      for (int ci = 0; ci < cs->n && !rc && any_odd; ci++) {
        const cand *c = &cs->c[ci];
        if (c->c1 || !single_prefix(m->L, c->s)) continue;
        int n = lookup(m, &u, c->s, (c->flags & ~SD_VIA_SEP) | SD_VIA_SPLIT);
        if (n < 0) rc = -1;
        else longest += n;
      }
    }
  }
  free(odd);
  free(t.p);
  return rc;
}

/* ------------------------------------------------------------------------------------- */
/* matching                                                                                */

static int match_cjk(mctx *m, int p) {
  const sd_norm *nm = m->nm;
  const sd_piece *ps = &nm->ps[p];
  char buf[KEY_MAX];
  for (int i = ps->a; i < ps->b; i++) {
    size_t bn = 0;
    int q = p, ncp = 0; /* the piece of code point j; code points read */
    for (int j = i; ncp < m->L->cjk_max && ncp < CJK_MAX_TERM && bn + 5 < sizeof buf; j++, ncp++) {
      if (j == nm->ps[q].b) { /* on into the next CJK word after a space: a term written apart */
        if (q + 1 >= nm->np || nm->ps[q + 1].kind != SD_PIECE_CJK || nm->ps[q + 1].gap != 2) break;
        q++;
        j = nm->ps[q].a;
        buf[bn++] = ' ';
        if (++ncp >= m->L->cjk_max) break;
      }
      bn += (size_t)utf8proc_encode_char(nm->v[j].cp, (utf8proc_uint8_t *)buf + bn);
      const sd_strmap_slot *s = sd_strmap_findn(&m->L->cjk, buf, bn);
      for (int t = s ? s->head : -1; t >= 0; t = m->L->cjk.post[t].next) {
        int neg = ps->neg || sd_norm_cjk_negated(nm, p, i, q == p ? j + 1 : ps->b);
        sd_lex_hit h = {m->L->cjk.post[t].val, i, j + 1, p, q + 1, SD_VIA_UNICODE, neg, -1};
        if (hits_add(m->out, h)) return -1;
      }
    }
  }
  return 0;
}

static int foreign_reading(mctx *m, const sd_lex_hit *h) {
  sd_lex_text x = {m->L, m->env, m->nm, m->ss, m->wlang};
  int r = sd_lex_foreign_reading(&x, h);
  m->wlang = x.wlang;
  return r;
}

int sd_lex_match(const sd_lexicon *L, const sd_lex_env *env, const sd_norm *nm, sd_lex_hits *out) {
  mctx m = {L, env, nm, L->surface ? NULL : sd_stem_acquire(L->stems), {0}, out, NULL};
  if (!L->surface && !m.ss) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  candset cs = {0};
  int rc = 0, first = out->n;
  for (int ui = 0; ui < nm->nu && !rc; ui++) {
    const sd_unit *u = &nm->us[ui];
    const sd_piece *p0 = &nm->ps[u->p0];
    if (p0->kind == SD_PIECE_CJK) {
      if (L->cjk.used) rc = match_cjk(&m, u->p0);
      continue;
    }
    if (p0->kind == SD_PIECE_EMOJI) {
      const char *key = env->emoji ? sd_emoji_key(env->emoji, nm->v[p0->a].emoji) : NULL;
      const sd_strmap_slot *s = key ? sd_strmap_find(&L->emoji, key) : NULL;
      for (int q = s ? s->head : -1; q >= 0 && !rc; q = L->emoji.post[q].next) {
        sd_lex_hit h = {L->emoji.post[q].val, p0->a, p0->b, u->p0, u->p1, SD_VIA_EMOJI, p0->neg, -1};
        rc = hits_add(out, h);
      }
      continue;
    }
    if (unit_cands(nm, u, &cs)) {
      rc = -1;
      break;
    }
    int found = 0;
    for (int ci = 0; ci < cs.n && !rc; ci++) {
      const cand *c = &cs.c[ci];
      if (c->c1 == 2) {
        int r = mask_lookup(&m, u, c->s, c->flags);
        if (r < 0) rc = -1;
        else found += r;
        continue;
      }
      if (c->c1) {
        const sd_strmap_slot *s = sd_strmap_find(&L->first1, c->s);
        for (int q = s ? s->head : -1; q >= 0 && !rc; q = L->first1.post[q].next) {
          sd_lex_hit h = {L->first1.post[q].val, p0->a, nm->ps[u->p1 - 1].b, u->p0, u->p1, c->flags, 1, -1};
          for (int pp = u->p0; pp < u->p1; pp++) h.neg &= nm->ps[pp].neg;
          rc = hits_add(out, h);
          found++;
        }
        continue;
      }
      int r = lookup(&m, u, c->s, c->flags);
      if (r < 0) rc = -1;
      else found += r;
    }
    /* a word that matched nothing: split as CLIP splits it, else read as a typo */
    for (int pass = 0; pass < 2 && !rc && !found && !u->joined && p0->kind == SD_PIECE_WORD; pass++)
      for (int ci = 0; ci < cs.n && !rc && !found; ci++)
        if (!cs.c[ci].c1) {
          int r = (pass ? sd_lex_typo : compound)(&m, u, cs.c[ci].s, cs.c[ci].flags);
          if (r < 0) rc = -1;
          else found += r;
        }
    /* safe phrases have no compound reading (no tokenizer): a glued function word only */
    for (int ci = 0; L->surface && ci < cs.n && !rc && !found && !u->joined && p0->kind == SD_PIECE_WORD; ci++)
      if (!cs.c[ci].c1) {
        int r = glued(&m, u, cs.c[ci].s, cs.c[ci].flags);
        if (r < 0) rc = -1;
        else found += r;
      }
  }
  if (!rc) rc = split_words(&m, &cs);
  if (!rc) rc = sd_lex_nato_words(&m);
  if (!rc) { /* words of another language read as English ones; Vietnamese tones */
    int k = 0;
    sd_lex_text x = {m.L, m.env, m.nm, m.ss, NULL};
    for (int i = first; i < out->n; i++)
      if (!(env->dict && foreign_reading(&m, &out->h[i])) && !sd_lex_tone_mismatch(&x, &out->h[i]))
        out->h[k++ + first] = out->h[i];
    out->n = first + k;
  }
  cs_free(&cs);
  cs_free(&m.cs2);
  free(m.wlang);
  sd_stem_release(L->stems, m.ss);
  return rc ? sd_fail(SD_E_NOMEM, "lexical: out of memory (or a tokenizer error)") : SD_OK;
}
