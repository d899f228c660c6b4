/* The lexical detector's reading of a prompt's language (lexicon_internal.h): whether a
 * word is English, whether the prompt's other words are English text or show another
 * language, which English readings are words of another language, and whether a
 * Vietnamese word's tones are the term's. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "safety/funcwords.h"
#include "safety/lexicon_internal.h"
#include "safety/stem.h"
#include "safety/wordnet.h"

/* Whether s is an English word: a WordNet lemma, or stemmed like one ("soaked"). */
int sd_lex_dict_has(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s) {
  if (!dict) return 0;
  if (sd_wn_dict_has(dict, SD_WN_LEMMAS, s)) return 1;
  char st[KEY_MAX];
  sd_stem(ss, en, s, strlen(s), st, sizeof st);
  return sd_wn_dict_has(dict, SD_WN_STEMS, st);
}

/* Whether s is everyday English (stems like a lemma seen in WordNet's tagged corpus): such a
 * word is read as English, not as a term of another language ("arm" is not Spanish "arma"). */
int sd_lex_common_english(const sd_wn_dict *dict, sd_stemset *ss, int en, const char *s) {
  if (!dict) return 0;
  char st[KEY_MAX];
  sd_stem(ss, en, s, strlen(s), st, sizeof st);
  /* a word that is its own stem is English only as a lemma: "debil" (Polish) is the stem of
   * "debility", not a word of its own */
  if (!strcmp(st, s) && !sd_wn_dict_has(dict, SD_WN_LEMMAS, s)) return 0;
  return sd_wn_dict_has(dict, SD_WN_COMMON, st);
}

/* Whether the prompt's other words (outside pieces [p0, p1)) are English text: at least half
 * of those of ASCII letters are English function words or everyday English, the others being
 * words of other languages (their function words included); a word that is a function word
 * of both ("a", "in", "no") does not count, and a prompt with no other word counts as
 * English. Split words and typos are read in English text only, so that words of another
 * language next to each other ("voy a tirar": Spanish, not Portuguese "atirar") or one swap
 * away from a term ("el poder", "va a llover", "der Greif") are left alone. */
int sd_lex_english_text(sd_lex_text *m, int p0, int p1) {
  const sd_norm *nm = m->nm;
  if (!m->wlang) {
    if (!(m->wlang = calloc((size_t)nm->np + 1, 1))) return 0;
    sd_sbuf t = {0};
    for (int q = 0; q < nm->np; q++) {
      if (nm->ps[q].kind == SD_PIECE_WORD && nm->ps[q].accented) { /* "bóng", "Trận": not English */
        m->wlang[q] = 2;
        continue;
      }
      if (nm->ps[q].kind != SD_PIECE_WORD || nm->ps[q].nonascii) continue;
      sd_unit u = {q, q + 1, 0};
      if (sd_norm_unit_text(nm, &u, 0, &t) || !t.n) continue;
      int en = sd_en_function_word(t.p, t.n), other = sd_other_function_word(t.p, t.n);
      if (en && other) continue;
      m->wlang[q] = en || (!other && sd_lex_common_english(m->env->dict, m->ss, m->L->en, t.p)) ? 1 : 2;
    }
    free(t.p);
  }
  int n = 0, en = 0;
  for (int q = 0; q < nm->np; q++)
    if (m->wlang[q] && (q < p0 || q >= p1)) {
      n++;
      en += m->wlang[q] == 1;
    }
  return n == 0 || 2 * en >= n;
}


/* Whether `word` is `form` or a regular English inflection of it: -s; -es after s, x, z, ch,
 * sh or o; y -> -ies, -ied; -ed, -d after e; -ing, e dropped; the final consonant doubled. */
static int en_inflection(const char *word, const char *form, size_t fl) {
  size_t wl = strlen(word);
  if (wl < fl || strncmp(word, form, fl)) {
    /* y -> ies/ied, e dropped before ing: the stem is one letter shorter */
    if (fl >= 3 && wl == fl + 2 && !strncmp(word, form, fl - 1) && form[fl - 1] == 'y' &&
        (!strcmp(word + fl - 1, "ies") || !strcmp(word + fl - 1, "ied")))
      return 1;
    return fl >= 3 && wl == fl + 2 && !strncmp(word, form, fl - 1) && form[fl - 1] == 'e' &&
           !strcmp(word + fl - 1, "ing");
  }
  const char *x = word + fl;
  char last = form[fl - 1];
  int sib = strchr("sxzo", last) || (fl >= 2 && (!strncmp(form + fl - 2, "ch", 2) || !strncmp(form + fl - 2, "sh", 2)));
  if (!*x || !strcmp(x, "s") || !strcmp(x, "ing") || !strcmp(x, "ed")) return 1;
  if (!strcmp(x, "es")) return sib;
  if (!strcmp(x, "d")) return last == 'e';
  return x[0] == last && !strchr("aeiouy", last) && (!strcmp(x + 1, "ed") || !strcmp(x + 1, "ing"));
}

/* Whether one-piece English hit h is a word of another language that only a reading made
 * for English gives: in text that is not English (english_text, the hit's own words left
 * out) that shows another language (foreign_evidence), a word written with accented Latin
 * letters ("gün" is Turkish, not "gun"), a compound
 * reading ("gunaydin"), a stem match whose word is no regular English inflection of the term
 * ("dickes" is German, not "dick" + -es), or one of the bank's `homographs` (French "pain",
 * Indonesian and German "gang"). English words in such text (a loanword, "nude" in a
 * Spanish prompt) still match as written or inflected. */
/* Whether the prompt's other words (outside pieces [p0, p1)) show another language: a word
 * written with accented Latin letters, or a function word of another Latin-script bank
 * language that is neither an English function word nor everyday English ("un", "et",
 * "mit", "di", "och"). Names and rare English words show nothing ("Peloponnesian War"). */
static int foreign_evidence(sd_lex_text *m, int p0, int p1) {
  const sd_norm *nm = m->nm;
  sd_sbuf t = {0};
  int found = 0;
  for (int q = 0; q < nm->np && !found; q++) {
    if ((q >= p0 && q < p1) || nm->ps[q].kind != SD_PIECE_WORD) continue;
    if (nm->ps[q].accented) {
      found = 1;
      continue;
    }
    sd_unit u = {q, q + 1, 0};
    if (nm->ps[q].nonascii || sd_norm_unit_text(nm, &u, 0, &t) || !t.n) continue;
    found = sd_foreign_function_word(t.p, t.n) && !sd_en_function_word(t.p, t.n) &&
            !sd_lex_common_english(m->env->dict, m->ss, m->L->en, t.p);
  }
  free(t.p);
  return found;
}

int sd_lex_foreign_reading(sd_lex_text *m, const sd_lex_hit *h) {
  const sd_lexicon *L = m->L;
  const sd_term *t = &L->t[h->term];
  if (L->surface || t->lang != L->en || t->nw != 1 || h->p1 != h->p0 + 1) return 0;
  const sd_piece *p = &m->nm->ps[h->p0];
  if (p->kind != SD_PIECE_WORD) return 0;
  int homo = m->env->homographs && m->env->homographs->used;
  if (!homo && !p->accented && !(h->flags & (SD_VIA_COMPOUND | SD_VIA_STEM))) return 0;
  if (sd_lex_english_text(m, h->p0, h->p1) || !foreign_evidence(m, h->p0, h->p1)) return 0;
  if (p->accented || (h->flags & SD_VIA_COMPOUND)) return 1;
  sd_sbuf w = {0};
  sd_unit u = {h->p0, h->p1, 0};
  int foreign = 0;
  if (!sd_norm_unit_text(m->nm, &u, 0, &w) && w.n) {
    if (homo && sd_strmap_findn(m->env->homographs, w.p, w.n)) {
      foreign = 1;
    } else if (h->flags & SD_VIA_STEM) {
      foreign = 1;
      for (const char *f = t->surface; f && foreign; f = strchr(f, '|') ? strchr(f, '|') + 1 : NULL)
        foreign = !en_inflection(w.p, f, strcspn(f, "|"));
    }
  }
  free(w.p);
  return foreign;
}


/* The letters of UTF-8 text s (n bytes; -1: NUL-terminated), composed (NFC) and case-folded
 * with utf8proc as the normaliser and the tokenizer use it, into out (at most cap); their
 * count, or -1 (bad text, too many letters). */
static int nfc_letters(const char *s, utf8proc_ssize_t n, int32_t *out, int cap) {
  utf8proc_uint8_t *m = NULL;
  if (n < 0) n = (utf8proc_ssize_t)strlen(s);
  utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, n, &m,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
  int k = len < 0 ? -1 : 0;
  for (utf8proc_ssize_t i = 0; k >= 0 && i < len;) {
    utf8proc_int32_t c;
    utf8proc_ssize_t step = utf8proc_iterate(m + i, len - i, &c);
    if (step <= 0) break;
    i += step;
    utf8proc_category_t cat = utf8proc_category(c);
    if (cat < UTF8PROC_CATEGORY_LU || cat > UTF8PROC_CATEGORY_LO) continue;
    if (k == cap) k = -1;
    else out[k++] = c;
  }
  free(m);
  return k;
}

int sd_lex_tone_mismatch(const sd_lex_text *x, const sd_lex_hit *h) {
  const sd_lexicon *L = x->L;
  const sd_term *t = &L->t[h->term];
  const sd_norm *nm = x->nm;
  if (L->surface || t->kind != 0 || strcmp(L->lang[t->lang].code, "vi") || !nm->src || h->b <= h->a) return 0;
  size_t s0 = nm->v[h->a].s0, s1 = nm->v[h->b - 1].s1;
  int32_t a[128], b[128];
  int na = nfc_letters(nm->src + s0, (utf8proc_ssize_t)(s1 - s0), a, 128), accented = 0;
  for (int i = 0; i < na; i++) accented |= a[i] >= 0x80;
  if (!accented) return 0; /* typed without diacritics: folding decides */
  int nb = nfc_letters(t->display, -1, b, 128);
  if (na < 0 || na != nb) return 0; /* not letter for letter (leetspeak, a stem): no judgement */
  for (int i = 0; i < na; i++)
    if (a[i] >= 0x80 && a[i] != b[i]) return 1;
  return 0;
}
