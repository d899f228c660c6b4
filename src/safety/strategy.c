/* Safety-context text construction (strategy.h). */
#include "safety/strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int sd_safety_text(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy st,
                   char **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_safety_text: out is NULL");
  *out = NULL;
  if (!bank || !prompt || (n_det && !det)) return sd_fail(SD_E_ARG, "sd_safety_text: NULL argument");
  if (st != SD_STRATEGY_APPEND && st != SD_STRATEGY_SUBSTITUTE && st != SD_STRATEGY_SUBSTITUTE_APPEND &&
      st != SD_STRATEGY_PROJECT)
    return sd_fail(SD_E_ARG, "sd_safety_text: unknown strategy %d", (int)st);
  size_t plen = strlen(prompt);
  uint32_t cats = 0;
  int nev = 0;
  for (int i = 0; i < n_det; i++) {
    cats |= det[i].categories;
    nev += det[i].n_ev;
  }
  /* 1. substitute */
  char *text = NULL;
  if (cats && (st == SD_STRATEGY_SUBSTITUTE || st == SD_STRATEGY_SUBSTITUTE_APPEND)) {
    span *sp = calloc((size_t)nev + 1, sizeof *sp);
    if (!sp) return sd_fail(SD_E_NOMEM, "safety text: out of memory");
    int ns = 0;
    for (int i = 0; i < n_det; i++)
      for (int k = 0; k < det[i].n_ev; k++) {
        const sd_evidence *e = &det[i].ev[k];
        if (!((det[i].categories >> e->category) & 1) || e->end > plen || e->start >= e->end) continue;
        sp[ns++] = (span){e->start, e->end, sd_bank_substitute(bank, e->category, e->term)};
      }
    qsort(sp, (size_t)ns, sizeof *sp, span_cmp);
    size_t cap = plen + 1;
    for (int i = 0; i < ns; i++) cap += sp[i].to ? strlen(sp[i].to) + 2 : 0;
    text = malloc(cap);
    if (!text) {
      free(sp);
      return sd_fail(SD_E_NOMEM, "safety text: out of memory");
    }
    size_t o = 0, at = 0;
    for (int i = 0; i < ns; i++) {
      if (sp[i].a < at) continue; /* overlaps an earlier (longer) span */
      memcpy(text + o, prompt + at, sp[i].a - at);
      o += sp[i].a - at;
      if (sp[i].to && *sp[i].to) {
        size_t l = strlen(sp[i].to);
        memcpy(text + o, sp[i].to, l);
        o += l;
      }
      at = sp[i].b;
    }
    memcpy(text + o, prompt + at, plen - at);
    o += plen - at;
    text[o] = 0;
    free(sp);
    tidy(text);
  } else {
    text = malloc(plen + 1);
    if (!text) return sd_fail(SD_E_NOMEM, "safety text: out of memory");
    memcpy(text, prompt, plen + 1);
  }
  /* 2. append */
  if (cats && (st == SD_STRATEGY_APPEND || st == SD_STRATEGY_SUBSTITUTE_APPEND)) {
    size_t need = strlen(text) + 1;
    for (int c = 0; c < bank->n_cats; c++)
      if (((cats >> c) & 1) && bank->cats[c].context) need += strlen(bank->cats[c].context) + 2;
    char *r = malloc(need);
    if (!r) {
      free(text);
      return sd_fail(SD_E_NOMEM, "safety text: out of memory");
    }
    strcpy(r, text);
    for (int c = 0; c < bank->n_cats; c++)
      if (((cats >> c) & 1) && bank->cats[c].context) {
        if (*r) strcat(r, ", ");
        strcat(r, bank->cats[c].context);
      }
    free(text);
    text = r;
  }
  *out = text;
  return SD_OK;
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
      if (e->end > plen || e->start >= e->end) continue;
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
