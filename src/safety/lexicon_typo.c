/* Typos made on purpose and NATO code words: readings of a word that matched nothing, for
 * lexicon_match.c (lexicon_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safety/lexicon.h"
#include "safety/lexicon_internal.h"
#include "text/tokenizer.h"

/* Typos made on purpose, in English text (english_text): a word of 4 to 24 ASCII letters
 * that is neither an English dictionary word nor a word CLIP's vocabulary holds whole, read
 * with two neighbouring letters swapped ("ndue", "nakde", "blodo"), with a doubled letter
 * written once ("nakked", "bloodd") or all of them ("naazzi"), or with one letter written as
 * another that sounds the same (i as y, c/k, s/z, f/ph: "tripophobia", "kocaine", "phuck"),
 * the first letter staying but for those; else backwards ("edun", "doolb"; via "reversed"),
 * in rot13 ("ahqr", "anxrq"; via "rot13"), in pig latin ("ethmay"; via "pig latin"), or, for
 * a word of three letters or more without a vowel, as a term whose consonants it is ("nkd";
 * via "vowels dropped"). A reading matches a one-word English term only as the term is
 * written (no stems), so it cannot wander far. */
#define TYPO_MIN 4
#define TYPO_MAX 24
#define SKEL_MIN 3   /* a word without vowels: three letters or more */
#define SKEL_TERMS 8 /* room for the terms one consonant skeleton reads as */
/* the readings of one word: swaps, doubled letters and sound-alikes (3 x TYPO_MAX at most),
 * backwards, rot13, pig latin (4), skeleton terms */
#define RD_MAX (3 * TYPO_MAX + 6 + SKEL_TERMS)

/* Whether s is a one-word term as written (any language: typo_take keeps the English ones). */
static int single_term(const sd_lexicon *L, const char *s) {
  return sd_strmap_find(&L->single, s) || sd_strmap_find(&L->exact, s);
}

static int typo_take(sd_lex_mctx *m, const sd_unit *u, const char *s, int flags, int via) {
  int terms[CMP_TERMS], nt = sd_lex_term_piece(m, s, terms, 1), added = 0;
  for (int i = 0; i < nt; i++) {
    if (m->L->t[terms[i]].lang != m->L->en) continue; /* English terms only: English text */
    added++;
    sd_lex_hit h = {terms[i], m->nm->ps[u->p0].a, m->nm->ps[u->p1 - 1].b, u->p0, u->p1, flags | via,
                    m->nm->ps[u->p0].neg, -1};
    if (sd_lex_hits_add(m->out, h)) return -1;
  }
  return added;
}

int sd_lex_typo(sd_lex_mctx *m, const sd_unit *u, const char *s, int flags) {
  const sd_lex_env *env = m->env;
  const sd_lexicon *L = m->L;
  size_t n = strlen(s);
  if (!env->tok || !env->dict || L->surface || n < SKEL_MIN || n > TYPO_MAX) return 0;
  if (m->nm->ps[u->p0].nonascii) return 0; /* written with accents: a word of another language */
  for (size_t i = 0; i < n; i++)
    if (s[i] < 'a' || s[i] > 'z') return 0;
  if (n < TYPO_MIN && strpbrk(s, "aeiou")) return 0; /* three letters: vowels left out only */
  /* the readings that are some one-word term as written (the cheap test first) */
  char rd[RD_MAX][TYPO_MAX + 1];
  int nr = 0, nswap = 0;
  for (size_t i = 1; i + 1 < n; i++) { /* swapped neighbours */
    if (s[i] == s[i + 1]) continue;
    memcpy(rd[nr], s, n + 1);
    rd[nr][i] = s[i + 1];
    rd[nr][i + 1] = s[i];
    if (sd_strmap_find(&L->single, rd[nr]) || sd_strmap_find(&L->exact, rd[nr])) nr++;
  }
  nswap = nr;
  for (size_t i = 1; i < n && n > TYPO_MIN; i++) { /* a letter doubled */
    if (s[i] != s[i - 1] || (i + 1 < n && s[i + 1] == s[i])) continue; /* runs of 3: repeats */
    memcpy(rd[nr], s, i);
    memcpy(rd[nr] + i, s + i + 1, n - i);
    if (sd_strmap_find(&L->single, rd[nr]) || sd_strmap_find(&L->exact, rd[nr])) nr++;
  }
  { /* every doubled letter written once ("naazzi", "nuudde"): two or more doublings */
    size_t k = 0, doubled = 0;
    for (size_t i = 0; i < n; i++) {
      if (i && s[i] == s[i - 1]) {
        doubled++;
        continue;
      }
      rd[nr][k++] = s[i];
    }
    rd[nr][k] = 0;
    if (doubled >= 2 && single_term(L, rd[nr])) nr++;
  }
  /* one letter for another that sounds the same, the first one too ("tripophobia", "kocaine",
   * "phuck", "sexi"): i read as y (not y as i: "van dyck"), c/k, s/z, f/ph */
  static const char *const alike[][2] = {{"i", "y"}, {"c", "k"}, {"k", "c"}, {"s", "z"},
                                         {"z", "s"}, {"ph", "f"}, {"f", "ph"}};
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < sizeof alike / sizeof *alike && nr < 3 * TYPO_MAX - 1; a++) {
      const size_t fl = strlen(alike[a][0]), tl = strlen(alike[a][1]);
      if (i + fl > n || memcmp(s + i, alike[a][0], fl) || n - fl + tl > TYPO_MAX) continue;
      memcpy(rd[nr], s, i);
      memcpy(rd[nr] + i, alike[a][1], tl);
      memcpy(rd[nr] + i + tl, s + i + fl, n - i - fl + 1);
      if (sd_strmap_find(&L->single, rd[nr]) || sd_strmap_find(&L->exact, rd[nr])) nr++;
    }
  int ndouble = nr;
  /* the last group, tried only when no typo reads: backwards, rot13, pig latin, vowels left out */
  int via[RD_MAX];
  for (size_t i = 0; i < n; i++) rd[nr][i] = s[n - 1 - i]; /* written backwards */
  rd[nr][n] = 0;
  if (single_term(L, rd[nr])) via[nr++] = SD_VIA_REVERSED;
  for (size_t i = 0; i < n; i++) rd[nr][i] = (char)('a' + (s[i] - 'a' + 13) % 26); /* rot13 */
  rd[nr][n] = 0;
  if (single_term(L, rd[nr])) via[nr++] = SD_VIA_ROT13;
  /* pig latin: "ethmay" is "meth" (the first one to three consonants moved to the end before
   * "ay"), "udenay" "nude"; "eatway" / "eatyay" are "eat" */
  int pig = n >= 5 && s[n - 2] == 'a' && s[n - 1] == 'y';
  for (size_t k = 1; pig && k <= 3 && k + 1 < n - 2; k++) {
    size_t st = n - 2; /* the stem's length */
    memcpy(rd[nr], s + st - k, k);
    memcpy(rd[nr] + k, s, st - k);
    rd[nr][st] = 0;
    if (single_term(L, rd[nr])) via[nr++] = SD_VIA_PIGLATIN;
  }
  if (pig && strchr("wyh", s[n - 3])) {
    memcpy(rd[nr], s, n - 3);
    rd[nr][n - 3] = 0;
    if (single_term(L, rd[nr])) via[nr++] = SD_VIA_PIGLATIN;
  }
  /* vowels left out: "nkd" is "naked", "prn" "porn" (a term's consonants, three or more, in
   * order; sd_lexicon.skel) */
  const sd_strmap_slot *sk = strpbrk(s, "aeiou") ? NULL : sd_strmap_find(&L->skel, s);
  for (int p = sk ? sk->head : -1; p >= 0 && nr < RD_MAX; p = L->skel.post[p].next) {
    const char *d = L->t[L->skel.post[p].val].display;
    if (strlen(d) > TYPO_MAX) continue;
    strcpy(rd[nr], d);
    via[nr++] = SD_VIA_VOWELS;
  }
  if (!nr) return 0;
  if (sd_lex_dict_has(env->dict, m->ss, L->en, s) || sd_lex_common_english(env->dict, m->ss, L->en, s) ||
      !sd_lex_english_text_m(m, u->p0, u->p1)) return 0;
  const sd_tokenizer *tk = env->tok(env->tok_ctx);
  if (!tk) return 0;
  char w[TYPO_MAX + 8];
  snprintf(w, sizeof w, "%s</w>", s);
  if (sd_tokenizer_lookup(tk, w) >= 0) return 0; /* a word CLIP knows whole: not a typo */
  int added = 0;
  /* doubled letters only when no swap reads, the last group only when neither does */
  for (int i = 0; i < nr && !((i == nswap || i == ndouble) && added); i++) {
    int r = typo_take(m, u, rd[i], flags, i < ndouble ? SD_VIA_TYPO : via[i]);
    if (r < 0) return -1;
    added += r;
  }
  return added;
}

/* Words spelled in the NATO alphabet ("mike echo tango hotel" is "meth"): a run of three or
 * more of its code words, one piece each (spaces, punctuation or hyphens between), whose first
 * letters spell a one-word English term as written (via "nato"). */
static const char *const NATO[] = {"alfa",   "alpha",  "bravo",   "charlie", "delta",  "echo",    "foxtrot",
                                   "golf",   "hotel",  "india",   "juliet",  "juliett", "kilo",   "lima",
                                   "mike",   "november", "oscar", "papa",    "quebec", "romeo",   "sierra",
                                   "tango",  "uniform", "victor", "whiskey", "whisky", "xray",    "yankee",
                                   "zulu",   NULL};
#define NATO_MIN 3

static int nato_letter(const sd_norm *nm, int p, sd_sbuf *t) {
  sd_unit u = {p, p + 1, 0};
  if (nm->ps[p].kind != SD_PIECE_WORD || sd_norm_unit_text(nm, &u, 0, t) || !t->n) return 0;
  for (int i = 0; NATO[i]; i++)
    if (!strcmp(t->p, NATO[i])) return NATO[i][0];
  return 0;
}

int sd_lex_nato_words(sd_lex_mctx *m) {
  const sd_norm *nm = m->nm;
  if (m->L->surface) return 0;
  sd_sbuf t = {0};
  char word[TYPO_MAX + 1];
  int rc = 0;
  for (int p = 0; p < nm->np && !rc;) {
    int q = p, n = 0, c;
    while (q < nm->np && n < TYPO_MAX && (c = nato_letter(nm, q, &t)) && (q == p || nm->ps[q].gap >= 1)) {
      word[n++] = (char)c;
      q++;
    }
    word[n] = 0;
    if (n >= NATO_MIN) {
      sd_unit u = {p, q, 1};
      if (typo_take(m, &u, word, 0, SD_VIA_NATO) < 0) rc = -1;
    }
    p = q > p ? q : p + 1;
  }
  free(t.p);
  return rc;
}
