/* A bank composed with the default bank it adds to (bank.h: sd_bank_compose). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"

static char *dup0(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *r = malloc(n);
  if (r) memcpy(r, s, n);
  return r;
}

static int push(sd_strlist *to, const char *item) {
  if (to->n == to->cap) {
    int nc = to->cap ? 2 * to->cap : 8;
    char **ni = realloc(to->items, (size_t)nc * sizeof *ni);
    if (!ni) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    to->items = ni;
    to->cap = nc;
  }
  if (!(to->items[to->n] = dup0(item))) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  to->n++;
  return SD_OK;
}

/* Append the items of `from` missing from `to` (exact string compare). */
static int list_unite(sd_strlist *to, const sd_strlist *from) {
  int rc = SD_OK;
  for (int i = 0; i < from->n && !rc; i++) {
    int have = 0;
    for (int k = 0; k < to->n && !have; k++) have = !strcmp(to->items[k], from->items[i]);
    if (!have) rc = push(to, from->items[i]);
  }
  return rc;
}

/* The terms of `from` missing from `to`, each with its language (terms and term_lang are
 * parallel lists: a term is the pair). */
static int terms_unite(sd_bank_category *to, const sd_bank_category *from) {
  int rc = SD_OK;
  for (int i = 0; i < from->terms.n && !rc; i++) {
    const char *lang = i < from->term_lang.n ? from->term_lang.items[i] : "en";
    int have = 0;
    for (int k = 0; k < to->terms.n && !have; k++)
      have = !strcmp(to->terms.items[k], from->terms.items[i]) && !strcmp(to->term_lang.items[k], lang);
    if (!have && !(rc = push(&to->terms, from->terms.items[i]))) rc = push(&to->term_lang, lang);
  }
  return rc;
}

/* Substitutes of `from` for terms `to` has none for (ASCII case-insensitive, as looked up). */
static int subst_unite(sd_bank_category *to, const sd_bank_category *from) {
  for (int i = 0; i < from->n_subst; i++) {
    int have = 0;
    for (int k = 0; k < to->n_subst && !have; k++) have = !strcasecmp(to->subst[k].from, from->subst[i].from);
    if (have) continue;
    if (to->n_subst == to->cap_subst) {
      int nc = to->cap_subst ? 2 * to->cap_subst : 8;
      sd_bank_subst *ns = realloc(to->subst, (size_t)nc * sizeof *ns);
      if (!ns) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
      to->subst = ns;
      to->cap_subst = nc;
    }
    sd_bank_subst *s = &to->subst[to->n_subst];
    s->from = dup0(from->subst[i].from);
    s->to = dup0(from->subst[i].to);
    to->n_subst++;
    if (!s->from || !s->to) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  }
  return SD_OK;
}

/* Merge category `from` into `to` (to's context kept when it has one). */
static int cat_unite(sd_bank_category *to, const sd_bank_category *from) {
  int rc;
  if ((rc = terms_unite(to, from)) || (rc = list_unite(&to->descriptions, &from->descriptions)) ||
      (rc = list_unite(&to->anchors, &from->anchors)) || (rc = list_unite(&to->expand, &from->expand)) ||
      (rc = list_unite(&to->exclude, &from->exclude)) || (rc = list_unite(&to->safe, &from->safe)) ||
      (rc = list_unite(&to->homographs, &from->homographs)) || (rc = list_unite(&to->acts, &from->acts)) ||
      (rc = subst_unite(to, from)))
    return rc;
  if (!to->context && from->context && !(to->context = dup0(from->context)))
    return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  return SD_OK;
}

int sd_bank_compose(const sd_bank *own, const sd_bank *base, sd_bank **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_bank_compose: out is NULL");
  *out = NULL;
  if (!own || !base) return sd_fail(SD_E_ARG, "sd_bank_compose: NULL bank");
  int n = own->n_cats;
  for (int c = 0; c < base->n_cats; c++)
    if (sd_bank_find(own, base->cats[c].name) < 0) n++;
  if (n > SD_BANK_MAX_CATEGORIES)
    return sd_fail(SD_E_FORMAT, "%s + %s: %d categories together, over the limit of %d", own->path, base->path, n,
                   SD_BANK_MAX_CATEGORIES);
  sd_bank *b = calloc(1, sizeof *b);
  int rc = SD_OK;
  if (!b || !(b->cats = calloc((size_t)n, sizeof *b->cats))) {
    free(b);
    return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  }
  /* own's categories (copied by uniting into empty ones), then base's new ones */
  for (int c = 0; c < own->n_cats && !rc; c++) {
    sd_bank_category *k = &b->cats[b->n_cats++];
    k->line = own->cats[c].line;
    if (!(k->name = dup0(own->cats[c].name))) rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    else rc = cat_unite(k, &own->cats[c]);
  }
  for (int c = 0; c < base->n_cats && !rc; c++) {
    int i = sd_bank_find(own, base->cats[c].name);
    if (i >= 0) {
      rc = cat_unite(&b->cats[i], &base->cats[c]);
      continue;
    }
    sd_bank_category *k = &b->cats[b->n_cats++];
    k->line = base->cats[c].line;
    if (!(k->name = dup0(base->cats[c].name))) rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    else rc = cat_unite(k, &base->cats[c]);
    for (int o = 0; o < own->n_cats && !rc; o++) rc = list_unite(&k->safe, &own->cats[o].safe);
  }
  b->n_own = own->n_cats;
  b->levels = own->levels; /* the levels measured for own's model */
  b->base_default = 0;
  b->hash = sd_fnv1a64(&base->hash, sizeof base->hash, own->hash);
  size_t sl = strlen(own->sources ? own->sources : own->path) + strlen(base->sources ? base->sources : base->path) + 4;
  if (!rc && (!(b->path = dup0(own->path)) || !(b->sources = malloc(sl))))
    rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  if (!rc) {
    snprintf(b->sources, sl, "%s + %s", own->sources ? own->sources : own->path,
             base->sources ? base->sources : base->path);
    if (own->thresholds.n) {
      if (!(b->thresholds.e = malloc((size_t)own->thresholds.n * sizeof *b->thresholds.e)))
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
      else {
        memcpy(b->thresholds.e, own->thresholds.e, (size_t)own->thresholds.n * sizeof *b->thresholds.e);
        b->thresholds.n = own->thresholds.n;
      }
    }
  }
  if (rc) {
    sd_bank_free(b);
    return rc;
  }
  *out = b;
  return SD_OK;
}
