/* Safety-context text construction (strategy.h). */
#include "safety/strategy.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

int sd_strategy_parse(const char *name) {
  if (!name) return -1;
  if (!strcmp(name, "append")) return SD_STRATEGY_APPEND;
  if (!strcmp(name, "substitute")) return SD_STRATEGY_SUBSTITUTE;
  if (!strcmp(name, "substitute+append") || !strcmp(name, "substitute_append")) return SD_STRATEGY_SUBSTITUTE_APPEND;
  if (!strcmp(name, "project")) return SD_STRATEGY_PROJECT;
  return -1;
}

const char *sd_strategy_name(sd_strategy s) {
  switch (s) {
    case SD_STRATEGY_APPEND: return "append";
    case SD_STRATEGY_SUBSTITUTE: return "substitute";
    case SD_STRATEGY_SUBSTITUTE_APPEND: return "substitute+append";
    case SD_STRATEGY_PROJECT: return "project";
  }
  return "?";
}

typedef struct {
  size_t a, b;
  const char *to; /* NULL/"" = drop */
} span;

static int span_cmp(const void *x, const void *y) {
  const span *p = x, *q = y;
  if (p->a != q->a) return p->a < q->a ? -1 : 1;
  if (p->b != q->b) return p->b > q->b ? -1 : 1; /* longer first */
  /* the same span flagged in several categories: a replacement beats a drop */
  int pe = p->to && *p->to, qe = q->to && *q->to;
  if (pe != qe) return pe ? -1 : 1;
  return p->to && q->to ? strcmp(p->to, q->to) : 0;
}

/* Tidy after drops: collapse runs of spaces, remove spaces before ',' and empty comma
 * items (", ,"), trim leading/trailing spaces and commas. In place. */
static void tidy(char *s) {
  size_t o = 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    if (c == ' ' && (o == 0 || s[o - 1] == ' ')) continue;
    if (c == ',') {
      while (o > 0 && s[o - 1] == ' ') o--;
      if (o == 0 || s[o - 1] == ',') continue;
    }
    s[o++] = c;
  }
  while (o > 0 && (s[o - 1] == ' ' || s[o - 1] == ',')) o--;
  s[o] = 0;
}

/* Number of tokens of text[0, len). */
static int count_tokens(const sd_tokenizer *tok, const char *text, size_t len, size_t *n) {
  int32_t *ids = NULL;
  int rc = sd_tokenize(tok, text, len, &ids, n);
  free(ids);
  return rc;
}

/* Word boundaries of text[0, len): every position just after an ASCII space or punctuation
 * byte, and len itself. Ascending, malloc'ed. */
static size_t *word_cuts(const char *text, size_t len, size_t *n) {
  size_t *c = malloc((len + 1) * sizeof *c), k = 0;
  if (!c) return NULL;
  for (size_t i = 1; i < len; i++) {
    unsigned char b = (unsigned char)text[i - 1];
    if (b < 0x80 && !isalnum(b)) c[k++] = i;
  }
  c[k++] = len;
  *n = k;
  return c;
}

int sd_window_cut(const sd_tokenizer *tok, const char *text, int room, size_t *cut, size_t *ntok) {
  if (!tok || !text || !cut || room < 1) return sd_fail(SD_E_ARG, "sd_window_cut: bad argument");
  size_t len = strlen(text), total = 0, nc = 0;
  int rc = count_tokens(tok, text, len, &total);
  if (rc) return rc;
  if (ntok) *ntok = total;
  *cut = len;
  if (total <= (size_t)room) return SD_OK;
  size_t *c = word_cuts(text, len, &nc);
  if (!c) return sd_fail(SD_E_NOMEM, "safety: out of memory");
  size_t lo = 0, hi = nc - 1; /* the first cut whose prefix has >= room tokens; the last has */
  while (lo < hi && !rc) {
    size_t mid = lo + (hi - lo) / 2, k = 0;
    if ((rc = count_tokens(tok, text, c[mid], &k))) break;
    if (k >= (size_t)room) hi = mid;
    else lo = mid + 1;
  }
  if (!rc) *cut = c[lo];
  free(c);
  return rc;
}

/* The English article right before position p of text (n bytes, with one spare byte) agrees
 * with the word after p, which a replacement or a drop put there: "an unclothed woman" ->
 * "a clothed woman", "a nude-ish" dropped before "elegant" -> "an elegant". Only a whole
 * word "a"/"an" (any case) before a word that begins with an ASCII letter is changed (vowel
 * letter: "an"); returns the new length. */
static size_t fix_article(char *text, size_t n, size_t p) {
  size_t q = p, e = p;
  while (q < n && text[q] == ' ') q++;
  while (e > 0 && text[e - 1] == ' ') e--;
  if (q >= n || !isalpha((unsigned char)text[q]) || e == 0 || e == p) return n;
  size_t b = e;
  while (b > 0 && isalpha((unsigned char)text[b - 1])) b--;
  if (b > 0 && (isalnum((unsigned char)text[b - 1]) || (unsigned char)text[b - 1] >= 0x80)) return n;
  size_t wl = e - b;
  int is_a = wl == 1 && (text[b] == 'a' || text[b] == 'A');
  int is_an = wl == 2 && (text[b] == 'a' || text[b] == 'A') && (text[b + 1] == 'n' || text[b + 1] == 'N');
  if (!is_a && !is_an) return n;
  int vowel = strchr("aeiouAEIOU", text[q]) != NULL;
  if (vowel && is_a) {
    memmove(text + e + 1, text + e, n - e + 1);
    /* "A" before a word in capitals ("A UNCLOTHED") -> "AN"; otherwise "An"/"an" */
    text[e] = text[b] == 'A' && q + 1 < n && isupper((unsigned char)text[q]) && isupper((unsigned char)text[q + 1]) ? 'N' : 'n';
    return n + 1;
  }
  if (!vowel && is_an) {
    memmove(text + e - 1, text + e, n - e + 1);
    return n - 1;
  }
  return n;
}

/* Whether evidence e is localised: a non-empty span inside the prompt. */
static int localised(const sd_evidence *e, size_t plen) { return e->start < e->end && e->end <= plen; }

/* How much of substitute `to` to insert before `rest` (the prompt after the span): all of it,
 * unless its last word is the word `rest` starts with ("by zdzislaw beksinski painting" ->
 * "by surrealist painting", not "... painting painting"; "pinup portrait" -> "portrait"):
 * then up to that word, so the prompt's own word stays and is not doubled. */
static size_t repeat_cut(const char *to, const char *rest) {
  size_t l = strlen(to), w = l;
  while (w > 0 && to[w - 1] != ' ') w--; /* the last word: to[w, l) */
  while (*rest == ' ') rest++;
  const size_t n = l - w;
  if (n == 0 || strncasecmp(to + w, rest, n) != 0 || isalnum((unsigned char)rest[n])) return l;
  while (w > 0 && to[w - 1] == ' ') w--;
  return w;
}

/* How much of to[0, l) to skip: nothing, unless its first word is the last word of the text
 * written so far, text[0, o) ("basic illustration meme" -> "basic illustration", not
 * "... illustration illustration"; two neighbouring terms with one substitute, "loser moron"
 * -> "person"): then that word and the spaces after it. */
static size_t repeat_skip(const char *to, size_t l, const char *text, size_t o) {
  size_t n = 0;
  while (n < l && to[n] != ' ') n++; /* the first word: to[0, n) */
  size_t e = o;
  while (e > 0 && text[e - 1] == ' ') e--;
  if (n == 0 || e < n || strncasecmp(text + e - n, to, n) != 0 || (e > n && isalnum((unsigned char)text[e - n - 1])))
    return 0;
  while (n < l && to[n] == ' ') n++;
  return n;
}

/* The substitute for evidence e: the one listed for its words as written ("slapping ->
 * patting", "making fun of -> cheering for") before the one of the bank term they matched
 * ("slap -> pat": every inflection of a stem matches its first listed form), so that an
 * inflected word keeps its grammar in the safe text; NULL (the words are dropped) when
 * neither is listed. */
static const char *span_substitute(const sd_bank *bank, const char *prompt, const sd_evidence *e) {
  char written[128];
  const size_t n = e->end - e->start;
  if (n < sizeof written) {
    memcpy(written, prompt + e->start, n);
    written[n] = 0;
    const char *to = sd_bank_substitute(bank, e->category, written);
    if (to) return to;
  }
  return sd_bank_substitute(bank, e->category, e->term);
}

/* The prompt with its localised spans of fired categories replaced or dropped, tidied. */
static int substitute_spans(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det,
                            char **out) {
  size_t plen = strlen(prompt);
  int nev = 0;
  for (int i = 0; i < n_det; i++) nev += det[i].n_ev;
  span *sp = calloc((size_t)nev + 1, sizeof *sp);
  if (!sp) return sd_fail(SD_E_NOMEM, "safety text: out of memory");
  int ns = 0;
  for (int i = 0; i < n_det; i++)
    for (int k = 0; k < det[i].n_ev; k++) {
      const sd_evidence *e = &det[i].ev[k];
      if (!((det[i].categories >> e->category) & 1) || !localised(e, plen)) continue;
      sp[ns++] = (span){e->start, e->end, span_substitute(bank, prompt, e)};
    }
  qsort(sp, (size_t)ns, sizeof *sp, span_cmp);
  size_t cap = plen + 1 + (size_t)ns; /* + an article's 'n' per edit */
  for (int i = 0; i < ns; i++) cap += sp[i].to ? strlen(sp[i].to) + 2 : 0;
  char *text = malloc(cap);
  size_t *edit = malloc(((size_t)ns + 1) * sizeof *edit); /* where each edit begins in text */
  if (!text || !edit) {
    free(text);
    free(edit);
    free(sp);
    return sd_fail(SD_E_NOMEM, "safety text: out of memory");
  }
  size_t o = 0, at = 0;
  int ne = 0;
  for (int i = 0; i < ns; i++) {
    if (sp[i].a < at) continue; /* overlaps an earlier (longer) span */
    memcpy(text + o, prompt + at, sp[i].a - at);
    o += sp[i].a - at;
    edit[ne++] = o;
    if (sp[i].to && *sp[i].to) {
      size_t l = repeat_cut(sp[i].to, prompt + sp[i].b);
      size_t f = repeat_skip(sp[i].to, l, text, o);
      memcpy(text + o, sp[i].to + f, l - f);
      o += l - f;
    }
    at = sp[i].b;
  }
  memcpy(text + o, prompt + at, plen - at);
  o += plen - at;
  text[o] = 0;
  for (int i = ne - 1; i >= 0; i--) o = fix_article(text, o, edit[i]); /* last first: offsets hold */
  free(edit);
  free(sp);
  tidy(text);
  *out = text;
  return SD_OK;
}

/* Append the comma-separated items of `items` to the ", "-joined list `to` (room for all of
 * them assumed), each item once: two fired categories with the same or overlapping contexts
 * add each phrase once. */
static void append_items(char *to, const char *items) {
  for (const char *p = items; *p;) {
    while (*p == ' ' || *p == ',') p++;
    size_t n = strcspn(p, ",");
    while (n && p[n - 1] == ' ') n--;
    if (n) {
      int have = 0;
      for (const char *q = to; *q && !have;) {
        size_t m = strcspn(q, ",");
        have = m == n && !memcmp(q, p, n);
        q += m;
        while (*q == ',' || *q == ' ') q++;
      }
      if (!have) {
        if (*to) strcat(to, ", ");
        strncat(to, p, n);
      }
    }
    p += strcspn(p, ",");
  }
}

/* body[0, blen) (tidied when `trimmed`: a cut body may end in a separator) + ", " + ctx
 * (either may be empty), malloc'ed. */
static char *join2(const char *body, size_t blen, const char *ctx, int trimmed) {
  size_t cl = strlen(ctx);
  char *r = malloc(blen + cl + 3);
  if (!r) return NULL;
  memcpy(r, body, blen);
  r[blen] = 0;
  if (trimmed) tidy(r);
  size_t o = strlen(r);
  if (o && cl) {
    memcpy(r + o, ", ", 2);
    o += 2;
  }
  memcpy(r + o, ctx, cl + 1);
  return r;
}

int sd_safety_text_fit(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy st,
                       const sd_tokenizer *tok, int room, char **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_safety_text: out is NULL");
  *out = NULL;
  if (!bank || !prompt || (n_det && !det)) return sd_fail(SD_E_ARG, "sd_safety_text: NULL argument");
  if (st != SD_STRATEGY_APPEND && st != SD_STRATEGY_SUBSTITUTE && st != SD_STRATEGY_SUBSTITUTE_APPEND &&
      st != SD_STRATEGY_PROJECT)
    return sd_fail(SD_E_ARG, "sd_safety_text: unknown strategy %d", (int)st);
  size_t plen = strlen(prompt);
  uint32_t cats = 0, loc = 0;
  for (int i = 0; i < n_det; i++) {
    cats |= det[i].categories;
    for (int k = 0; k < det[i].n_ev; k++)
      if (((det[i].categories >> det[i].ev[k].category) & 1) && localised(&det[i].ev[k], plen))
        loc |= 1u << det[i].ev[k].category;
  }
  int subst = cats && (st == SD_STRATEGY_SUBSTITUTE || st == SD_STRATEGY_SUBSTITUTE_APPEND);
  /* contexts appended: every fired category's under append and substitute+append; under
   * substitute, those of the categories no detector localised (nothing to replace) */
  uint32_t app = st == SD_STRATEGY_APPEND || st == SD_STRATEGY_SUBSTITUTE_APPEND ? cats
                 : st == SD_STRATEGY_SUBSTITUTE                                   ? cats & ~loc
                                                                                  : 0;
  char *body = NULL, *ctx = NULL;
  int rc = SD_OK;
  if (subst) rc = substitute_spans(bank, prompt, det, n_det, &body);
  else if (!(body = malloc(plen + 1))) rc = sd_fail(SD_E_NOMEM, "safety text: out of memory");
  else memcpy(body, prompt, plen + 1);
  if (rc) return rc;
  size_t need = 1;
  for (int c = 0; c < bank->n_cats; c++)
    if (((app >> c) & 1) && bank->cats[c].context) need += strlen(bank->cats[c].context) + 2;
  if (!(ctx = calloc(need, 1))) {
    free(body);
    return sd_fail(SD_E_NOMEM, "safety text: out of memory");
  }
  for (int c = 0; c < bank->n_cats; c++)
    if (((app >> c) & 1) && bank->cats[c].context) append_items(ctx, bank->cats[c].context);
  size_t blen = strlen(body);
  char *text = join2(body, blen, ctx, 0);
  if (!text) rc = sd_fail(SD_E_NOMEM, "safety text: out of memory");
  size_t k = 0;
  if (!rc && tok && room > 0 && !(rc = count_tokens(tok, text, strlen(text), &k)) && k > (size_t)room) {
    /* trim the body's tail: the last word boundary at which body + contexts fit */
    size_t nc = 0, *c = word_cuts(body, blen, &nc);
    if (!c) rc = sd_fail(SD_E_NOMEM, "safety text: out of memory");
    size_t lo = 0, hi = nc; /* cuts[0, lo) fit; answer = lo - 1, or nothing of the body */
    while (!rc && lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      char *t = join2(body, c[mid], ctx, 1);
      if (!t) rc = sd_fail(SD_E_NOMEM, "safety text: out of memory");
      else if (!(rc = count_tokens(tok, t, strlen(t), &k))) {
        if (k <= (size_t)room) lo = mid + 1;
        else hi = mid;
      }
      free(t);
    }
    if (!rc) {
      free(text);
      if (!(text = join2(body, lo ? c[lo - 1] : 0, ctx, 1))) rc = sd_fail(SD_E_NOMEM, "safety text: out of memory");
    }
    free(c);
  }
  free(body);
  free(ctx);
  if (rc) {
    free(text);
    return rc;
  }
  *out = text;
  return SD_OK;
}

int sd_safety_text(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy st,
                   char **out) {
  return sd_safety_text_fit(bank, prompt, det, n_det, st, NULL, 0, out);
}

/* ------------------------------------------------------------------------------------- */
/* project                                                                                 */

int sd_orthonormal_basis(const float *dirs, int n, int D, float tol, float *q, int *rank) {
  if (!rank) return sd_fail(SD_E_ARG, "sd_orthonormal_basis: rank is NULL");
  *rank = 0;
  if (n < 0 || D < 1 || (n > 0 && (!dirs || !q)) || !(tol >= 0))
    return sd_fail(SD_E_ARG, "sd_orthonormal_basis: bad argument (n %d, D %d)", n, D);
  for (size_t i = 0; i < (size_t)n * (size_t)D; i++)
    if (!isfinite(dirs[i]))
      return sd_fail(SD_E_ARG, "concept direction %zu has a non-finite value", i / (size_t)D);
  double *w = malloc((size_t)D * sizeof *w);
  if (!w) return sd_fail(SD_E_NOMEM, "projection: out of memory");
  int r = 0;
  for (int i = 0; i < n; i++) {
    const float *v = dirs + (size_t)i * D;
    double n0 = 0;
    for (int k = 0; k < D; k++) {
      w[k] = v[k];
      n0 += w[k] * w[k];
    }
    n0 = sqrt(n0);
    if (n0 == 0) continue; /* a zero direction spans nothing */
    for (int pass = 0; pass < 2; pass++)
      for (int j = 0; j < r; j++) {
        const float *qj = q + (size_t)j * D;
        double c = 0;
        for (int k = 0; k < D; k++) c += w[k] * qj[k];
        for (int k = 0; k < D; k++) w[k] -= c * qj[k];
      }
    double nw = 0;
    for (int k = 0; k < D; k++) nw += w[k] * w[k];
    nw = sqrt(nw);
    if (!(nw > (double)tol * n0)) continue; /* (nearly) in the span already */
    float *qr = q + (size_t)r * D;
    for (int k = 0; k < D; k++) qr[k] = (float)(w[k] / nw);
    r++;
  }
  free(w);
  *rank = r;
  return SD_OK;
}

void sd_project_out(float *h, int D, const float *q, int rank) {
  if (!h || (rank > 0 && !q)) return;
  for (int j = 0; j < rank; j++) {
    const float *qj = q + (size_t)j * D;
    double c = 0;
    for (int k = 0; k < D; k++) c += (double)h[k] * qj[k];
    for (int k = 0; k < D; k++) h[k] = (float)((double)h[k] - c * qj[k]);
  }
}

int sd_project_tokens(float *states, int seq, int D, const int *pos, int npos, const float *q, int rank) {
  if (!states || (npos > 0 && !pos) || (rank > 0 && !q) || seq < 0 || D < 1 || npos < 0 || rank < 0)
    return sd_fail(SD_E_ARG, "sd_project_tokens: bad argument");
  for (int i = 0; i < npos; i++)
    if (pos[i] < 0 || pos[i] >= seq)
      return sd_fail(SD_E_ARG, "sd_project_tokens: position %d outside 0..%d", pos[i], seq - 1);
  for (int i = 0; i < npos; i++) sd_project_out(states + (size_t)pos[i] * D, D, q, rank);
  return SD_OK;
}

/* The length of the common prefix of two id lists. */
static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  size_t i = 0;
  while (i < na && i < nb && a[i] == b[i]) i++;
  return i;
}

/* Word-token index range [*lo, *hi) (0-based, BOS not counted) that overlaps prompt[s, e). */
static int span_tokens(const sd_tokenizer *tok, const char *prompt, size_t s, size_t e, const int32_t *ids, size_t n,
                       size_t *lo, size_t *hi) {
  int32_t *a = NULL;
  size_t na = 0;
  int rc = sd_tokenize(tok, prompt, s, &a, &na);
  if (rc) return sd_fail_prefix(rc, "projection: locating a flagged span: ");
  *lo = common_prefix(a, na, ids, n); /* the tokens wholly before the span */
  free(a);
  a = NULL;
  if ((rc = sd_tokenize(tok, prompt, e, &a, &na))) return sd_fail_prefix(rc, "projection: locating a flagged span: ");
  size_t c = common_prefix(a, na, ids, n);
  /* up to e the tokens agree with the prompt's; when they part, the span ends inside
   * token c (a piece cut at e), which overlaps the span */
  *hi = c < na && c < n ? c + 1 : c;
  free(a);
  if (*hi < *lo) *hi = *lo;
  return SD_OK;
}

int sd_project_positions(const sd_tokenizer *tok, const char *prompt, const sd_detection *det, int n_det, int ctx,
                         int **pos, int *n) {
  if (!pos || !n) return sd_fail(SD_E_ARG, "sd_project_positions: NULL argument");
  *pos = NULL;
  *n = 0;
  if (!tok || !prompt || (n_det && !det) || n_det < 0 || ctx < 2)
    return sd_fail(SD_E_ARG, "sd_project_positions: bad argument");
  size_t plen = strlen(prompt), nid = 0;
  int32_t *ids = NULL;
  int rc = sd_tokenize(tok, prompt, plen, &ids, &nid);
  if (rc) return sd_fail_prefix(rc, "projection: ");
  size_t words = nid < (size_t)ctx - 2 ? nid : (size_t)ctx - 2; /* word tokens kept by framing */
  int last = (int)words + 1;                                     /* EOS */
  char *mark = calloc((size_t)last + 1, 1);
  if (!mark) {
    free(ids);
    return sd_fail(SD_E_NOMEM, "projection: out of memory");
  }
  for (int i = 0; i < n_det && !rc; i++)
    for (int k = 0; k < det[i].n_ev && !rc; k++) {
      const sd_evidence *e = &det[i].ev[k];
      if (e->category < 0 || e->category >= 32 || !((det[i].categories >> e->category) & 1)) continue;
      if (e->token > 0) {
        if (e->token <= last) mark[e->token] = 1;
        continue;
      }
      if (e->start == e->end) { /* not localised (fired on the prompt as a whole): every word token */
        for (size_t t = 0; t < words; t++) mark[t + 1] = 1;
        continue;
      }
      if (e->end > plen || e->start > e->end) continue;
      size_t lo = 0, hi = 0;
      if ((rc = span_tokens(tok, prompt, e->start, e->end, ids, nid, &lo, &hi))) break;
      for (size_t t = lo; t < hi && t < words; t++) mark[t + 1] = 1;
    }
  free(ids);
  if (rc) {
    free(mark);
    return rc;
  }
  int m = 0;
  for (int p = 1; p <= last; p++) m += mark[p];
  int *out = malloc(((size_t)m + 1) * sizeof *out);
  if (!out) {
    free(mark);
    return sd_fail(SD_E_NOMEM, "projection: out of memory");
  }
  m = 0;
  for (int p = 1; p <= last; p++)
    if (mark[p]) out[m++] = p;
  free(mark);
  *pos = out;
  *n = m;
  return SD_OK;
}
