/* Safety-context text construction (strategy.h). */
#include "safety/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int sd_strategy_parse(const char *name) {
  if (!name) return -1;
  if (!strcmp(name, "append")) return SD_STRATEGY_APPEND;
  if (!strcmp(name, "substitute")) return SD_STRATEGY_SUBSTITUTE;
  if (!strcmp(name, "substitute+append") || !strcmp(name, "substitute_append")) return SD_STRATEGY_SUBSTITUTE_APPEND;
  return -1;
}

const char *sd_strategy_name(sd_strategy s) {
  switch (s) {
    case SD_STRATEGY_APPEND: return "append";
    case SD_STRATEGY_SUBSTITUTE: return "substitute";
    case SD_STRATEGY_SUBSTITUTE_APPEND: return "substitute+append";
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
  if (st != SD_STRATEGY_APPEND && st != SD_STRATEGY_SUBSTITUTE && st != SD_STRATEGY_SUBSTITUTE_APPEND)
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
