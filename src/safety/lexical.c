/* The lexical detector: normalisation (normalize.c), the lexicon and its matching
 * (lexicon.c), WordNet terms (wordnet.c), emoji names (emoji.c); here the detector itself:
 * which matches count (negation, safe phrases, overlaps), the score and the evidence. See
 * lexical.h and docs/safety-detectors.md. */
#include "safety/lexical.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/lexical_gate.h"
#include "safety/lexicon.h"
#include "safety/normalize.h"
#include "safety/wordnet.h"
#include "text/tokenizer.h"

typedef struct {
  const sd_bank *bank;
  sd_lexicon terms, safe;
  const sd_emoji_table *em;
  const sd_tokenizer *tok; /* given in the options, else the bundled one on first need */
  const sd_wn_dict *dict;
  sd_strmap excl[SD_BANK_MAX_CATEGORIES]; /* each category's `exclude`, normalised */
  sd_strmap homographs;                   /* every category's `homographs`, lower-case */
  char wn_status[256];
  char status[768];
} lexical;

/* ------------------------------------------------------------------------------------- */
/* the bundled CLIP tokenizer, loaded once per process when a compound first needs it      */

static pthread_once_t tok_once = PTHREAD_ONCE_INIT;
static sd_tokenizer *tok_default;

static void tok_load(void) {
  if (sd_tokenizer_load_default(&tok_default)) {
    tok_default = NULL;
    sd_clear_error();
  }
}

static const sd_tokenizer *get_tok(void *ctx) {
  const lexical *L = ctx;
  if (L->tok) return L->tok;
  pthread_once(&tok_once, tok_load);
  return tok_default;
}

/* ------------------------------------------------------------------------------------- */
/* which matches count                                                                     */

typedef struct {
  sd_norm nm;
  sd_lex_hits hits;
} found;

static void found_free(found *f) {
  sd_norm_free(&f->nm);
  free(f->hits.h);
  memset(f, 0, sizeof *f);
}

static int covers(const sd_lex_hit *o, const sd_lex_hit *h) { return o->a <= h->a && h->b <= o->b; }

static int hit_push(sd_lex_hits *l, sd_lex_hit h) {
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 16;
    sd_lex_hit *nh = realloc(l->h, (size_t)nc * sizeof *nh);
    if (!nh) return -1;
    l->h = nh;
    l->cap = nc;
  }
  l->h[l->n++] = h;
  return 0;
}

static uint32_t gate_term_cats(const void *ctx, const char *word, size_t n) {
  return sd_lex_single_cats(&((const lexical *)ctx)->terms, word, n);
}

/* The matches of the bank's terms in text that count: not negated, not inside a safe phrase
 * of the same category, not dropped by a context gate (lexical_gate.h), not inside a
 * longer match of the same category; emoji through their names when `emoji_names`;
 * compounds when `compounds`. */
static int find(const lexical *L, const char *text, int emoji_names, int compounds, found *f) {
  memset(f, 0, sizeof *f);
  sd_lex_hits safe = {0};
  sd_lex_env env = {L->em, compounds ? get_tok : NULL, (void *)L, L->dict, &L->homographs};
  sd_lex_env senv = {L->em, NULL, NULL, NULL, NULL};
  int rc = sd_norm_text(text, L->em, &f->nm);
  if (rc) return rc;
  sd_norm_negation(&f->nm);
  if ((rc = sd_lex_match(&L->terms, &env, &f->nm, &f->hits)) || (rc = sd_lex_match(&L->safe, &senv, &f->nm, &safe)))
    goto done;
  /* emoji: the label, and the tags, each read as a text of its own; the tags count for a
   * category only when two of them or more name terms of it (one tag alone is too loose:
   * 😀's "teeth", 🐛's "insect"; 🔫's gun, handgun, pistol, revolver, weapon are not) */
  for (int p = 0; emoji_names && L->em && p < f->nm.np && !rc; p++) {
    if (f->nm.ps[p].kind != SD_PIECE_EMOJI) continue;
    int e = f->nm.v[f->nm.ps[p].a].emoji;
    int first_tag[SD_BANK_MAX_CATEGORIES], n_tags[SD_BANK_MAX_CATEGORIES] = {0}, tag_term[SD_BANK_MAX_CATEGORIES];
    for (int k = 0; sd_emoji_name(L->em, e, k) && !rc; k++) {
      found sub;
      if ((rc = find(L, sd_emoji_name(L->em, e, k), 0, 0, &sub))) break;
      uint32_t seen = 0;
      for (int i = 0; i < sub.hits.n && !rc; i++) {
        int cat = L->terms.t[sub.hits.h[i].term].cat;
        if (k > 0) { /* a tag: the second tag of a category adds the match */
          if (seen >> cat & 1) continue;
          seen |= 1u << cat;
          if (++n_tags[cat] == 1) {
            first_tag[cat] = k;
            tag_term[cat] = sub.hits.h[i].term;
          }
          if (n_tags[cat] != 2) continue;
        }
        sd_lex_hit h = {k ? tag_term[cat] : sub.hits.h[i].term, f->nm.ps[p].a, f->nm.ps[p].b, p, p + 1,
                        SD_VIA_EMOJI, f->nm.ps[p].neg, k ? first_tag[cat] : 0};
        if (hit_push(&f->hits, h)) rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
      }
      found_free(&sub);
    }
  }
  if (rc) goto done;
  /* 1. negated or inside a safe phrase of its category: out; 2. inside a longer match of its
   * category: out; 3. a span counts once per category (an emoji's several tags) */
  int nh = f->hits.n, n = 0;
  char *keep = malloc((size_t)nh + 1);
  if (!keep) {
    rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    goto done;
  }
  for (int i = 0; i < nh; i++) {
    const sd_lex_hit *h = &f->hits.h[i];
    int cat = L->terms.t[h->term].cat;
    keep[i] = !h->neg;
    for (int j = 0; j < safe.n && keep[i]; j++) keep[i] = !(L->safe.t[safe.h[j].term].cat == cat && covers(&safe.h[j], h));
    if (keep[i] && L->terms.t[h->term].lang == L->terms.en &&
        sd_lex_gate(&f->nm, text, h, L->bank->cats[cat].name, L->terms.t[h->term].act, L->dict, gate_term_cats, L))
      keep[i] = 0;
  }
  for (int i = 0; i < nh; i++) {
    const sd_lex_hit *h = &f->hits.h[i];
    int cat = L->terms.t[h->term].cat;
    for (int j = 0; j < nh && keep[i]; j++) {
      const sd_lex_hit *o = &f->hits.h[j];
      if (j == i || keep[j] != 1 || L->terms.t[o->term].cat != cat || !covers(o, h)) continue;
      if (o->b - o->a > h->b - h->a || (o->a == h->a && o->b == h->b && j < i)) keep[i] = 2; /* out, but still covers */
    }
  }
  for (int i = 0; i < nh; i++)
    if (keep[i] == 1) f->hits.h[n++] = f->hits.h[i];
  free(keep);
  f->hits.n = n;
done:
  free(safe.h);
  if (rc) found_free(f);
  return rc;
}

/* ------------------------------------------------------------------------------------- */
/* WordNet hooks                                                                           */

static int hook_add(void *ctx, int cat, const char *lemma, const char *src) {
  lexical *L = ctx;
  return sd_lex_add(&L->terms, cat, "en", lemma, src, &L->excl[cat]);
}

static uint32_t hook_term_cats(void *ctx, const char *word, size_t n) {
  const lexical *L = ctx;
  return sd_lex_single_cats(&L->terms, word, n);
}

static int hook_judge(void *ctx, int cat, const char *text, const char *word) {
  const lexical *L = ctx;
  found f;
  if (find(L, text, 0, 0, &f)) {
    sd_clear_error();
    return 0;
  }
  int yes = 0;
  for (int i = 0; i < f.hits.n && !yes; i++) {
    const sd_term *t = &L->terms.t[f.hits.h[i].term];
    yes = t->cat == cat && !sd_lex_same(&L->terms, t, word);
  }
  found_free(&f);
  return yes;
}

/* ------------------------------------------------------------------------------------- */
/* the detector                                                                            */

/* How a match was made: "leetspeak,stem", "emoji:water pistol", "lang:fr", "wordnet:gun#1". */
static void via_string(const lexical *L, const sd_lex_hit *h, const char *emoji_name, sd_sbuf *via) {
  const sd_term *t = &L->terms.t[h->term];
  static const struct {
    int bit;
    const char *name;
  } names[] = {{SD_VIA_LEET, "leetspeak"},   {SD_VIA_SEP, "separators"},      {SD_VIA_REPEAT, "repeats"},
               {SD_VIA_UNICODE, "unicode"},  {SD_VIA_CONFUSABLE, "confusable"}, {SD_VIA_STEM, "stem"},
               {SD_VIA_COMPOUND, "compound"}, {SD_VIA_MASK, "masked"},
               {SD_VIA_SPLIT, "split"},     {SD_VIA_TYPO, "typo"},
               {SD_VIA_REVERSED, "reversed"}, {SD_VIA_ROT13, "rot13"},
               {SD_VIA_PIGLATIN, "pig latin"}, {SD_VIA_VOWELS, "vowels dropped"}, {SD_VIA_NATO, "nato"}};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (h->flags & names[k].bit) {
      if (via->n) sd_sb_puts(via, ",");
      sd_sb_puts(via, names[k].name);
    }
  if (emoji_name) {
    if (via->n) sd_sb_puts(via, ",");
    sd_sb_puts(via, "emoji:");
    sd_sb_puts(via, emoji_name);
  }
  if (strcmp(L->terms.lang[t->lang].code, "en")) {
    if (via->n) sd_sb_puts(via, ",");
    sd_sb_puts(via, "lang:");
    sd_sb_puts(via, L->terms.lang[t->lang].code);
  }
  if (t->src) {
    if (via->n) sd_sb_puts(via, ",");
    sd_sb_puts(via, t->src);
  }
  if (!via->n) sd_sb_puts(via, "exact");
}

static int lex_detect(sd_detector *d, const char *prompt, const void *encoder, float threshold, sd_detection *out) {
  (void)encoder;
  const lexical *L = d->impl;
  found f;
  int rc = find(L, prompt, 1, 1, &f);
  if (rc) return rc;
  int counted[SD_BANK_MAX_CATEGORIES] = {0};
  int *seen = calloc((size_t)L->terms.n + 1, sizeof *seen);
  out->ev = calloc((size_t)f.hits.n + 1, sizeof *out->ev);
  if (!seen || !out->ev) {
    rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    goto done;
  }
  for (int i = 0; i < f.hits.n; i++) {
    const sd_lex_hit *h = &f.hits.h[i];
    const sd_term *t = &L->terms.t[h->term];
    if (!seen[h->term]) {
      seen[h->term] = 1;
      counted[t->cat]++;
    }
    sd_evidence *e = &out->ev[out->n_ev++];
    e->category = t->cat;
    e->start = f.nm.v[h->a].s0;
    e->end = f.nm.v[h->b - 1].s1;
    e->matched = strndup(prompt + e->start, e->end - e->start);
    e->term = strdup(t->display);
    sd_sbuf via = {0};
    via_string(L, h, h->emoji_name >= 0 ? sd_emoji_name(L->em, f.nm.v[h->a].emoji, h->emoji_name) : NULL, &via);
    e->via = via.p;
    if (!e->matched || !e->term || !e->via) {
      rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
      goto done;
    }
  }
  out->score = 0;
  for (int c = 0; c < L->bank->n_cats; c++) {
    out->cat_score[c] = (float)counted[c];
    if (out->cat_score[c] > out->score) out->score = out->cat_score[c];
    if (counted[c] > 0 && out->cat_score[c] >= threshold) out->categories |= 1u << c;
  }
  out->fired = out->categories != 0;
done:
  free(seen);
  found_free(&f);
  return rc;
}

static void lex_destroy(sd_detector *d) {
  lexical *L = d->impl;
  if (L) {
    sd_lex_free(&L->terms);
    sd_lex_free(&L->safe);
    for (int c = 0; c < SD_BANK_MAX_CATEGORIES; c++) sd_strmap_free(&L->excl[c]);
    sd_strmap_free(&L->homographs);
    free(L);
  }
  free(d);
}

static const sd_detector_vtable lex_vt = {"lexical", lex_detect, lex_destroy};

int sd_lexical_default_cache(const sd_bank *bank, char *buf, size_t cap) { return sd_wn_default_cache(bank, buf, cap); }

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
  L->tok = opts ? opts->tok : NULL;
  int wordnet = !opts || opts->wordnet;
  const char *why_em = "", *why_dict = "";
  L->em = sd_emoji_default(&why_em);
  if (wordnet) L->dict = sd_wn_dictionary(&why_dict);
  L->terms.em = L->safe.em = L->em;
  L->safe.surface = 1;
  int rc = SD_OK;
  for (int c = 0; c < bank->n_cats && !rc; c++)
    for (int i = 0; i < bank->cats[c].term_lang.n && !rc; i++) rc = sd_lex_lang_add(&L->terms, bank->cats[c].term_lang.items[i]);
  if (!rc) rc = sd_lex_finish_langs(&L->terms);
  if (!rc) rc = sd_lex_finish_langs(&L->safe);
  for (int c = 0; c < bank->n_cats && !rc; c++) {
    const sd_bank_category *k = &bank->cats[c];
    for (int i = 0; i < k->exclude.n && !rc; i++) {
      char *key = sd_lex_words_key(&L->terms, k->exclude.items[i]);
      if (!key || sd_strmap_add(&L->excl[c], key, 0)) rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
      free(key);
    }
    for (int i = 0; i < k->homographs.n && !rc; i++) {
      char w[64];
      size_t n = strlen(k->homographs.items[i]);
      if (n >= sizeof w) continue; /* longer than any word it could be */
      for (size_t j = 0; j <= n; j++) w[j] = (char)tolower((unsigned char)k->homographs.items[i][j]);
      if (!sd_strmap_findn(&L->homographs, w, n) && sd_strmap_add(&L->homographs, w, 0))
        rc = sd_fail(SD_E_NOMEM, "lexical: out of memory");
    }
    for (int i = 0; i < k->terms.n && !rc; i++)
      rc = sd_lex_add(&L->terms, c, k->term_lang.items[i], k->terms.items[i], NULL, &L->excl[c]);
    for (int i = 0; i < k->safe.n && !rc; i++) rc = sd_lex_add(&L->safe, c, "en", k->safe.items[i], NULL, NULL);
    for (int i = 0; i < k->acts.n && !rc; i++)
      if (!sd_lex_mark_act(&L->terms, c, k->acts.items[i]))
        rc = sd_fail(SD_E_FORMAT, "acts: '%s' is not one of the category's terms (or it is excluded)", k->acts.items[i]);
    if (rc == SD_E_FORMAT) /* a term no prompt could match: say which bank and section */
      rc = sd_fail_prefix(rc, "%s, [%s]: ", bank->sources ? bank->sources : bank->path ? bank->path : "bank", k->name);
  }
  if (!rc && wordnet) {
    sd_wn_hooks h = {L, hook_add, hook_term_cats, hook_judge};
    rc = sd_wn_resolve(bank, opts ? opts->cache_path : NULL, &h, L->wn_status, sizeof L->wn_status);
  } else if (!wordnet) {
    snprintf(L->wn_status, sizeof L->wn_status, "WordNet turned off");
  }
  if (rc) {
    lex_destroy(d);
    return rc;
  }
  char langs[256] = "";
  for (int k = 0; k < L->terms.n_lang; k++) {
    size_t n = strlen(langs);
    snprintf(langs + n, sizeof langs - n, "%s%s", k ? " " : "", L->terms.lang[k].code);
  }
  snprintf(L->status, sizeof L->status, "%d terms (%s); emoji names: %s; compounds and dictionary: %s; WordNet: %s",
           L->terms.n, langs, L->em ? "on" : why_em, L->dict ? "on" : why_dict[0] ? why_dict : "off",
           L->wn_status[0] ? L->wn_status : "on");
  *out = d;
  return SD_OK;
}

int sd_lexical_n_terms(const sd_detector *d) { return d && d->vt == &lex_vt ? ((const lexical *)d->impl)->terms.n : 0; }

const char *sd_lexical_wordnet_status(const sd_detector *d) {
  return d && d->vt == &lex_vt ? ((const lexical *)d->impl)->wn_status : "not a lexical detector";
}

const char *sd_lexical_status(const sd_detector *d) {
  return d && d->vt == &lex_vt ? ((const lexical *)d->impl)->status : "not a lexical detector";
}

int sd_lexical_has_term(const sd_detector *d, int cat, const char *word) {
  if (!d || d->vt != &lex_vt || !word) return 0;
  return sd_lex_has(&((const lexical *)d->impl)->terms, cat, word);
}

int sd_lexical_normalize(const char *text, char **out) {
  if (!text || !out) return sd_fail(SD_E_ARG, "sd_lexical_normalize: NULL argument");
  *out = NULL;
  const sd_emoji_table *em = sd_emoji_default(NULL);
  sd_norm nm;
  int rc = sd_norm_text(text, em, &nm);
  if (rc) return rc;
  /* each piece, or the longest joined group of separated letters starting at it; the
   * confusable reading where it is all ASCII; an emoji as :its label: */
  sd_sbuf b = {0}, t = {0};
  sd_sb_puts(&b, "");
  for (int p = 0; p < nm.np;) {
    sd_unit u = {p, p + 1, 0};
    for (int k = nm.np; k < nm.nu; k++) {
      int short_part = 0; /* separated letters ("b.l.o.o.d", "b|ood"), not two words ("naked|clothed") */
      for (int q = nm.us[k].p0; q < nm.us[k].p1; q++) short_part |= nm.ps[q].b - nm.ps[q].a <= 2;
      if (nm.us[k].p0 == p && nm.us[k].p1 > u.p1 && short_part) u = nm.us[k];
    }
    if (b.n) sd_sb_puts(&b, " ");
    if (nm.ps[p].kind == SD_PIECE_EMOJI) {
      sd_sb_puts(&b, ":");
      sd_sb_puts(&b, sd_emoji_name(em, nm.v[nm.ps[p].a].emoji, 0));
      sd_sb_puts(&b, ":");
      p++;
      continue;
    }
    int has_letter = 0, folds = 0;
    for (int q = u.p0; q < u.p1; q++) {
      folds |= nm.ps[q].folds;
      for (int i = nm.ps[q].a; i < nm.ps[q].b; i++) has_letter |= nm.v[i].cls == SD_CL_LETTER;
    }
    int mode = has_letter ? SD_TEXT_LEET_I : 0;
    if (folds && !sd_norm_unit_text(&nm, &u, mode | SD_TEXT_FOLD, &t)) {
      int ascii = 1;
      for (size_t i = 0; i < t.n; i++) ascii &= (unsigned char)t.p[i] < 0x80;
      if (ascii) mode |= SD_TEXT_FOLD;
    }
    sd_norm_unit_text(&nm, &u, mode, &t);
    sd_sb_puts(&b, t.p ? t.p : "");
    p = u.p1;
  }
  free(t.p);
  sd_norm_free(&nm);
  if (!b.p) return sd_fail(SD_E_NOMEM, "lexical: out of memory");
  *out = b.p;
  return SD_OK;
}

char *sd_detection_summary(const sd_bank *bank, const sd_detection *d) {
  sd_sbuf b = {0};
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s: score %g (threshold %g)", d->detector ? d->detector : "?", (double)d->score,
           (double)d->threshold);
  sd_sb_puts(&b, tmp);
  if (!d->fired) sd_sb_puts(&b, ", not fired");
  for (int i = 0; i < d->n_ev; i++) {
    const sd_evidence *e = &d->ev[i];
    sd_sb_puts(&b, i ? "; " : ": ");
    sd_sb_puts(&b, bank && e->category < bank->n_cats ? bank->cats[e->category].name : "?");
    sd_sb_puts(&b, ": \"");
    sd_sb_puts(&b, e->matched);
    sd_sb_puts(&b, "\" matched \"");
    sd_sb_puts(&b, e->term);
    sd_sb_puts(&b, "\" (");
    sd_sb_puts(&b, e->via);
    sd_sb_puts(&b, ")");
  }
  return b.p;
}
