/* Concept bank loader (format in bank.h and docs/safety-detectors.md). */
#include "safety/bank.h"
#include "io/fileio.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "core/error.h"

uint64_t sd_fnv1a64(const void *data, size_t len, uint64_t h) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static char *dupn(const char *s, size_t n) {
  char *r = malloc(n + 1);
  if (!r) return NULL;
  memcpy(r, s, n);
  r[n] = 0;
  return r;
}

static int list_push(sd_strlist *l, const char *s, size_t n) {
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 8;
    char **ni = realloc(l->items, (size_t)nc * sizeof *ni);
    if (!ni) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    l->items = ni;
    l->cap = nc;
  }
  if (!(l->items[l->n] = dupn(s, n))) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  l->n++;
  return SD_OK;
}

static void list_free(sd_strlist *l) {
  for (int i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
}

void sd_bank_free(sd_bank *b) {
  if (!b) return;
  for (int c = 0; c < b->n_cats; c++) {
    sd_bank_category *k = &b->cats[c];
    free(k->name);
    list_free(&k->terms);
    list_free(&k->term_lang);
    list_free(&k->descriptions);
    list_free(&k->anchors);
    list_free(&k->expand);
    list_free(&k->exclude);
    list_free(&k->safe);
    list_free(&k->homographs);
    list_free(&k->acts);
    free(k->context);
    for (int i = 0; i < k->n_subst; i++) {
      free(k->subst[i].from);
      free(k->subst[i].to);
    }
    free(k->subst);
  }
  free(b->cats);
  free(b->path);
  free(b->sources);
  sd_calib_file_free(&b->thresholds);
  free(b);
}

int sd_bank_find(const sd_bank *b, const char *name) {
  if (!b || !name) return -1;
  for (int c = 0; c < b->n_cats; c++)
    if (strcmp(b->cats[c].name, name) == 0) return c;
  return -1;
}

static int ascii_ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return *a == *b;
}

const char *sd_bank_substitute(const sd_bank *b, int cat, const char *term) {
  if (!b || cat < 0 || cat >= b->n_cats || !term) return NULL;
  const sd_bank_category *k = &b->cats[cat];
  for (int i = 0; i < k->n_subst; i++)
    if (ascii_ieq(k->subst[i].from, term)) return k->subst[i].to;
  return NULL;
}

static void trim(const char **s, const char **e) {
  while (*s < *e && isspace((unsigned char)**s)) (*s)++;
  while (*e > *s && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* Comma-separated list into l; an empty item is an error. */
static int push_csv(sd_strlist *l, const char *s, const char *e, const char *name, int line, const char *key) {
  const char *p = s;
  for (;;) {
    const char *q = p;
    while (q < e && *q != ',') q++;
    const char *a = p, *z = q;
    trim(&a, &z);
    if (a == z)
      return sd_fail(SD_E_FORMAT, "%s:%d: empty item in '%s' (two commas, or a leading/trailing comma)",
                     name, line, key);
    int rc = list_push(l, a, (size_t)(z - a));
    if (rc) return rc;
    if (q >= e) break;
    p = q + 1;
  }
  return SD_OK;
}

static int valid_name(const char *s, const char *e) {
  if (s == e) return 0;
  for (const char *p = s; p < e; p++) {
    unsigned char c = (unsigned char)*p;
    if (!(isalnum(c) || c == '-' || c == '_' || c == ' ')) return 0;
  }
  return 1;
}

enum { SECT_NONE = 0, SECT_THRESHOLDS = 1, SECT_LEVELS = 2 };

/* Which reserved section the line [s, e) opens (SECT_THRESHOLDS, SECT_LEVELS), else
 * SECT_NONE; *hdr = 1 when it is any section header. */
static int reserved_header(const char *s, const char *e, int *hdr) {
  trim(&s, &e);
  *hdr = e - s >= 2 && *s == '[' && e[-1] == ']';
  if (!*hdr) return SECT_NONE;
  const char *a = s + 1, *z = e - 1;
  trim(&a, &z);
  if (z - a == 10 && memcmp(a, "thresholds", 10) == 0) return SECT_THRESHOLDS;
  if (z - a == 6 && memcmp(a, "levels", 6) == 0) return SECT_LEVELS;
  return SECT_NONE;
}

/* FNV-1a 64 of the bank text with the lines of the [thresholds] and [levels] sections (each
 * header up to the next section header) left out. With neither: the hash of all the bytes. */
static uint64_t bank_hash(const char *text, size_t len) {
  uint64_t h = SD_FNV1A64_INIT;
  size_t pos = 0;
  int in_thr = 0;
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* a BOM: hashed, not part of a line */
    h = sd_fnv1a64(text, 3, h);
    pos = 3;
  }
  while (pos < len) {
    const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
    const char *e = nl ? nl : text + len;
    size_t next = (size_t)(e - text) + (nl ? 1 : 0);
    int hdr, rs = reserved_header(s, e, &hdr);
    if (hdr) in_thr = rs != SECT_NONE;
    if (!in_thr) h = sd_fnv1a64(s, next - pos, h);
    pos = next;
  }
  return h;
}

/* The length of the longest prefix of s[0, n) of at most max bytes that ends on a character
 * boundary (s is valid UTF-8): what a message may quote without cutting a character. */
static int utf8_prefix(const char *s, size_t n, size_t max) {
  if (n <= max) return (int)n;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return (int)max;
}

int sd_bank_parse(const char *text, size_t len, const char *name, sd_bank **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_bank_parse: out is NULL");
  *out = NULL;
  if (!text && len) return sd_fail(SD_E_ARG, "sd_bank_parse: text is NULL");
  if (!name) name = "<bank>";
  if (len > SD_BANK_MAX_FILE)
    return sd_fail(SD_E_FORMAT, "%s: concept bank is %zu bytes, over the %u-byte limit", name, len,
                   SD_BANK_MAX_FILE);
  sd_bank *b = calloc(1, sizeof *b);
  if (!b) return sd_fail(SD_E_NOMEM, "concept bank: out of memory");
  b->hash = bank_hash(text, len);
  int rc = SD_OK, in_thr = 0, thr_line = 0, in_lev = 0, lev_line = 0, in_meta = 0, meta_line = 0;
  b->base_default = 1; /* no [bank] section: the bank adds to the default bank */
  sd_bank_category *cur = NULL;
  size_t pos = 0;
  int line = 0;
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* a BOM is tolerated */
  while (pos < len) {
    line++;
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', len - pos);
    const char *e = nl ? nl : text + len;
    pos = (size_t)(e - text) + (nl ? 1 : 0);
    if ((size_t)(e - s) > SD_BANK_MAX_LINE) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: line is %zu bytes, over the %d-byte limit", name, line,
                   (size_t)(e - s), SD_BANK_MAX_LINE);
      goto fail;
    }
    /* UTF-8 validity (and no NUL / control characters other than tab and CR). */
    for (const char *p = s; p < e;) {
      utf8proc_int32_t cp;
      utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)p, e - p, &cp);
      if (n <= 0) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: invalid UTF-8 at byte %zu of the line", name, line, (size_t)(p - s) + 1);
        goto fail;
      }
      /* C0 (a tab anywhere, a CR only as a CRLF line end), DEL, C1 */
      if ((cp < 0x20 && cp != '\t' && !(cp == '\r' && p + n == e)) || (cp >= 0x7f && cp <= 0x9f)) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: control character U+%04X", name, line, (unsigned)cp);
        goto fail;
      }
      p += n;
    }
    trim(&s, &e);
    if (s == e || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      if (e[-1] != ']') {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: section header without closing ']'", name, line);
        goto fail;
      }
      const char *a = s + 1, *z = e - 1;
      trim(&a, &z);
      if (z - a == 10 && memcmp(a, "thresholds", 10) == 0) {
        if (thr_line) {
          rc = sd_fail(SD_E_FORMAT, "%s:%d: second [thresholds] section (first at line %d)", name, line, thr_line);
          goto fail;
        }
        thr_line = line;
        in_thr = 1;
        in_lev = in_meta = 0;
        cur = NULL;
        continue;
      }
      if (z - a == 6 && memcmp(a, "levels", 6) == 0) {
        if (lev_line) {
          rc = sd_fail(SD_E_FORMAT, "%s:%d: second [levels] section (first at line %d)", name, line, lev_line);
          goto fail;
        }
        lev_line = line;
        in_lev = 1;
        in_thr = in_meta = 0;
        cur = NULL;
        continue;
      }
      in_thr = in_lev = 0;
      if (z - a == 4 && memcmp(a, "bank", 4) == 0) {
        if (meta_line) {
          rc = sd_fail(SD_E_FORMAT, "%s:%d: second [bank] section (first at line %d)", name, line, meta_line);
          goto fail;
        }
        meta_line = line;
        in_meta = 1;
        cur = NULL;
        continue;
      }
      in_meta = 0;
      if (!valid_name(a, z)) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: bad category name (letters, digits, '-', '_', ' ' only, not empty)",
                     name, line);
        goto fail;
      }
      for (int c = 0; c < b->n_cats; c++)
        if (strlen(b->cats[c].name) == (size_t)(z - a) && memcmp(b->cats[c].name, a, (size_t)(z - a)) == 0) {
          rc = sd_fail(SD_E_FORMAT, "%s:%d: duplicate category [%s] (first at line %d)", name, line,
                       b->cats[c].name, b->cats[c].line);
          goto fail;
        }
      if (b->n_cats == SD_BANK_MAX_CATEGORIES) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: more than %d categories", name, line, SD_BANK_MAX_CATEGORIES);
        goto fail;
      }
      sd_bank_category *nc = realloc(b->cats, (size_t)(b->n_cats + 1) * sizeof *nc);
      if (!nc) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
      b->cats = nc;
      cur = &b->cats[b->n_cats++];
      memset(cur, 0, sizeof *cur);
      cur->line = line;
      if (!(cur->name = dupn(a, (size_t)(z - a)))) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
      continue;
    }
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: expected 'key = value' or '[category]'", name, line);
      goto fail;
    }
    const char *ka = s, *kz = eq, *va = eq + 1, *vz = e;
    trim(&ka, &kz);
    trim(&va, &vz);
    char key[96];
    size_t kl = (size_t)(kz - ka);
    if (kl == 0 || kl >= sizeof key) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: unknown key '%.*s'", name, line, utf8_prefix(ka, kl, 40), ka);
      goto fail;
    }
    memcpy(key, ka, kl);
    key[kl] = 0;
    if (in_thr) {
      char *val = dupn(va, (size_t)(vz - va));
      if (!val) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
      rc = sd_calib_set(&b->thresholds, key, val, name, line);
      free(val);
      if (rc) goto fail;
      continue;
    }
    if (in_lev) {
      char *val = dupn(va, (size_t)(vz - va));
      if (!val) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
      rc = sd_levels_set(&b->levels, key, val, name, line);
      free(val);
      if (rc) goto fail;
      continue;
    }
    if (in_meta) {
      if (strcmp(key, "base")) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: unknown key '%s' in [bank] (known: base)", name, line, key);
        goto fail;
      }
      size_t vl = (size_t)(vz - va);
      if (vl == 7 && !memcmp(va, "default", 7)) b->base_default = 1;
      else if (vl == 4 && !memcmp(va, "none", 4)) b->base_default = 0;
      else {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: [bank] base is '%.*s': 'default' (add to the default bank) or 'none' "
                     "(replace it)", name, line, utf8_prefix(va, vl, 40), va);
        goto fail;
      }
      continue;
    }
    if (!cur) {
      rc = sd_fail(SD_E_FORMAT, "%s:%d: key '%s' before the first [category]", name, line, key);
      goto fail;
    }
    sd_strlist *csv = NULL, *one = NULL;
    if (!strcmp(key, "terms") || !strncmp(key, "terms.", 6)) {
      const char *lang = key[5] ? key + 6 : "en";
      size_t ll = strlen(lang);
      int ok = ll >= 2 && ll <= 3;
      for (size_t i = 0; i < ll && ok; i++) ok = lang[i] >= 'a' && lang[i] <= 'z';
      if (!ok) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: bad language in '%s' (terms.CODE, CODE 2 or 3 lower-case letters: terms.fr)",
                     name, line, key);
        goto fail;
      }
      int before = cur->terms.n;
      if ((rc = push_csv(&cur->terms, va, vz, name, line, key))) goto fail;
      for (int i = before; i < cur->terms.n; i++)
        if ((rc = list_push(&cur->term_lang, lang, ll))) goto fail;
      continue;
    }
    if (!strcmp(key, "expand")) csv = &cur->expand;
    else if (!strcmp(key, "exclude")) csv = &cur->exclude;
    else if (!strcmp(key, "safe")) csv = &cur->safe;
    else if (!strcmp(key, "homographs")) csv = &cur->homographs;
    else if (!strcmp(key, "acts")) csv = &cur->acts;
    else if (!strcmp(key, "descriptions") || !strcmp(key, "description")) one = &cur->descriptions;
    else if (!strcmp(key, "anchors") || !strcmp(key, "anchor")) one = &cur->anchors;
    if (csv) {
      if ((rc = push_csv(csv, va, vz, name, line, key))) goto fail;
    } else if (one) {
      if (va == vz) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: empty value for '%s'", name, line, key);
        goto fail;
      }
      if ((rc = list_push(one, va, (size_t)(vz - va)))) goto fail;
    } else if (!strcmp(key, "context")) {
      if (cur->context) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: second 'context' in [%s]", name, line, cur->name);
        goto fail;
      }
      if (va == vz) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: empty value for 'context'", name, line);
        goto fail;
      }
      if (!(cur->context = dupn(va, (size_t)(vz - va)))) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
    } else if (!strcmp(key, "substitute")) {
      const char *arrow = NULL;
      for (const char *p = va; p + 1 < vz; p++)
        if (p[0] == '-' && p[1] == '>') {
          arrow = p;
          break;
        }
      if (!arrow) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: 'substitute' needs 'word -> replacement' (empty replacement drops the word)",
                     name, line);
        goto fail;
      }
      const char *fa = va, *fz = arrow, *ta = arrow + 2, *tz = vz;
      trim(&fa, &fz);
      trim(&ta, &tz);
      if (fa == fz) {
        rc = sd_fail(SD_E_FORMAT, "%s:%d: empty term before '->'", name, line);
        goto fail;
      }
      if (cur->n_subst == cur->cap_subst) {
        int nc = cur->cap_subst ? 2 * cur->cap_subst : 8;
        sd_bank_subst *ns = realloc(cur->subst, (size_t)nc * sizeof *ns);
        if (!ns) {
          rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
          goto fail;
        }
        cur->subst = ns;
        cur->cap_subst = nc;
      }
      sd_bank_subst *sb = &cur->subst[cur->n_subst];
      sb->from = dupn(fa, (size_t)(fz - fa));
      sb->to = dupn(ta, (size_t)(tz - ta));
      cur->n_subst++;
      if (!sb->from || !sb->to) {
        rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
        goto fail;
      }
    } else {
      rc = sd_fail(SD_E_FORMAT,
                   "%s:%d: unknown key '%s' (known: terms, descriptions, anchors, context, substitute, expand, "
                   "exclude, safe, homographs, acts)",
                   name, line, key);
      goto fail;
    }
  }
  if (b->n_cats == 0) {
    rc = sd_fail(SD_E_FORMAT, "%s: the concept bank has no [category]", name);
    goto fail;
  }
  if ((rc = sd_calib_check(&b->thresholds, name))) goto fail;
  b->n_own = b->n_cats;
  if (!(b->path = dupn(name, strlen(name))) || !(b->sources = dupn(name, strlen(name)))) {
    rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    goto fail;
  }
  *out = b;
  return SD_OK;
fail:
  sd_bank_free(b);
  return rc;
}

/* The bank file's bytes: a regular file only (a FIFO or device is an error, never a hang),
 * at most SD_BANK_MAX_FILE of them. */
static int read_bank(const char *path, char **buf_out, size_t *n_out) {
  return sd_read_file(path, SD_BANK_MAX_FILE, "a concept bank", buf_out, n_out);
}

int sd_bank_load(const char *path, sd_bank **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_bank_load: out is NULL");
  *out = NULL;
  if (!path) return sd_fail(SD_E_ARG, "sd_bank_load: path is NULL");
  char *buf;
  size_t n;
  int rc = read_bank(path, &buf, &n);
  if (rc) return rc;
  rc = sd_bank_parse(buf, n, path, out);
  free(buf);
  return rc;
}

/* Replace the reserved section `which` of the bank file at path by `section` (or insert it
 * before the first section header when absent); `section` NULL: computed from the parsed
 * bank by make(old, ctx). The result is parsed and must keep the bank's hash. */
static int write_section(const char *path, int which, char *(*make)(const sd_bank *old, void *ctx), void *ctx) {
  char *buf = NULL, *text = NULL, *section = NULL;
  size_t len;
  sd_bank *old = NULL, *chk = NULL;
  int rc = read_bank(path, &buf, &len);
  if (rc) return rc;
  if ((rc = sd_bank_parse(buf, len, path, &old))) {
    sd_fail_prefix(rc, "not rewriting the concept bank: ");
    goto done;
  }
  if (!(section = make(old, ctx))) {
    rc = sd_fail(SD_E_ARG, which == SECT_LEVELS ? "concept bank: cannot write the levels (a value out of range, or out of memory)"
                                                : "concept bank: cannot write the thresholds (bad detector name or threshold)");
    goto done;
  }
  /* where: the old section (its header up to the next header), else before the first header */
  size_t pos = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0, start = len, end = len, first_hdr = len;
  int found = 0;
  while (pos < len) {
    const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
    const char *le = nl ? nl : buf + len;
    size_t next = (size_t)(le - buf) + (nl ? 1 : 0);
    int hdr, rs = reserved_header(s, le, &hdr);
    if (hdr && first_hdr == len) first_hdr = pos;
    if (found && hdr) {
      end = pos;
      break;
    }
    if (rs == which) {
      found = 1;
      start = pos;
    }
    pos = next;
  }
  if (!found) start = end = first_hdr;
  size_t sl = strlen(section), tl = start + sl + (len - end);
  if (!(text = malloc(tl + 1))) {
    rc = sd_fail(SD_E_NOMEM, "concept bank: out of memory");
    goto done;
  }
  memcpy(text, buf, start);
  memcpy(text + start, section, sl);
  memcpy(text + start + sl, buf + end, len - end);
  text[tl] = 0;
  if ((rc = sd_bank_parse(text, tl, path, &chk))) {
    sd_fail_prefix(rc, "internal error, the rewritten bank does not parse: ");
    goto done;
  }
  if (chk->hash != old->hash) {
    rc = sd_fail(SD_E_INTERNAL, "%s: writing [%s] would change the bank's hash", path,
                 which == SECT_LEVELS ? "levels" : "thresholds");
    goto done;
  }
  sd_atomic_file af;
  if ((rc = sd_atomic_open(&af, path))) goto done;
  if ((rc = sd_atomic_write(&af, text, tl))) {
    sd_atomic_abort(&af);
    goto done;
  }
  rc = sd_atomic_commit(&af);
done:
  free(buf);
  free(text);
  free(section);
  sd_bank_free(old);
  sd_bank_free(chk);
  return rc;
}

typedef struct {
  const sd_calib_entry *e;
  int n;
} thr_ctx;

/* The entries already there, updated or joined by the new ones. */
static char *thresholds_section(const sd_bank *old, void *vctx) {
  const thr_ctx *c = vctx;
  int na = old->thresholds.n;
  sd_calib_entry *all = malloc(((size_t)na + (size_t)c->n + 1) * sizeof *all);
  if (!all) return NULL;
  if (na) memcpy(all, old->thresholds.e, (size_t)na * sizeof *all);
  for (int i = 0; i < c->n; i++) {
    int j = 0;
    while (j < na && strcmp(all[j].name, c->e[i].name) != 0) j++;
    all[j] = c->e[i];
    if (j == na) na++;
  }
  char *s = sd_calib_bank_section(all, na);
  free(all);
  return s;
}

int sd_bank_write_thresholds(const char *path, const sd_calib_entry *e, int n) {
  if (!path || n < 0 || (n > 0 && !e)) return sd_fail(SD_E_ARG, "sd_bank_write_thresholds: bad argument");
  thr_ctx c = {e, n};
  return write_section(path, SECT_THRESHOLDS, thresholds_section, &c);
}

typedef struct {
  const sd_levels *L;
  const char *comment;
} lev_ctx;

static char *levels_section(const sd_bank *old, void *vctx) {
  (void)old;
  const lev_ctx *c = vctx;
  return sd_levels_section(c->L, c->comment);
}

int sd_bank_write_levels(const char *path, const sd_levels *L, const char *comment) {
  if (!path || !L) return sd_fail(SD_E_ARG, "sd_bank_write_levels: bad argument");
  lev_ctx c = {L, comment};
  return write_section(path, SECT_LEVELS, levels_section, &c);
}

int sd_bank_load_default(sd_bank **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_bank_load_default: out is NULL");
  *out = NULL;
  char path[4096];
  int rc = sd_data_file("concepts/default.bank", path, sizeof path);
  return rc ? rc : sd_bank_load(path, out);
}
