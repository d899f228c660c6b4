/* The learned detector's words and features: the C transcription of
 * tools/learned/features.py (which is the definition; the two agree bit for bit, checked by
 * tests/conformance/test_learned.sh and tests/unit/test_learned.c). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/learned_internal.h"

#define FNV32_OFFSET 2166136261u
#define FNV32_PRIME 16777619u

uint32_t sd_learned_hash(char kind, const char *bytes, size_t len) {
  uint32_t h = FNV32_OFFSET;
  h = (h ^ (uint8_t)kind) * FNV32_PRIME;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)bytes[i]) * FNV32_PRIME;
  return h;
}

static uint32_t fnv_cp(uint32_t h, uint32_t cp) {
  char b[4];
  size_t n = sd_learned_utf8(&cp, 1, b);
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)b[i]) * FNV32_PRIME;
  return h;
}

size_t sd_learned_utf8(const uint32_t *cp, int n, char *out) {
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    uint32_t c = cp[i];
    if (c < 0x80) {
      out[o++] = (char)c;
    } else if (c < 0x800) {
      out[o++] = (char)(0xC0 | (c >> 6));
      out[o++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out[o++] = (char)(0xE0 | (c >> 12));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (c & 0x3F));
    } else {
      out[o++] = (char)(0xF0 | (c >> 18));
      out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (c & 0x3F));
    }
  }
  return o;
}

/* Strict UTF-8: one code point at s[*i] (advancing *i); an invalid byte is U+FFFD of one byte. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *i) {
  unsigned c = s[*i];
  if (c < 0x80) {
    (*i)++;
    return c;
  }
  int len;
  uint32_t cp;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    (*i)++;
    return 0xFFFD;
  }
  if (*i + (size_t)len > n) {
    (*i)++;
    return 0xFFFD;
  }
  for (int k = 1; k < len; k++) {
    unsigned x = s[*i + (size_t)k];
    if (x < (k == 1 ? lo : 0x80) || x > (k == 1 ? hi : 0xBF)) {
      (*i)++;
      return 0xFFFD;
    }
    cp = (cp << 6) | (x & 0x3F);
  }
  *i += (size_t)len;
  return cp;
}

/* Index of the last a[k] <= v (a sorted ascending, a[0] <= v), or -1. */
static int last_le(const int32_t *a, int n, uint32_t v) {
  int lo = 0, hi = n - 1, r = -1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if ((uint32_t)a[mid] <= v) r = mid, lo = mid + 1;
    else hi = mid - 1;
  }
  return r;
}

static int cls(const struct sd_learned_model *m, uint32_t cp) {
  if (cp < 128) return m->ascii_class[cp];
  int k = last_le(m->class_start, m->n_class, cp);
  return k < 0 ? SD_LCLASS_SEP : m->class_kind[k];
}

static int is_leet_symbol(uint32_t c) { return c == '@' || c == '$' || c == '!'; }
/* The scripts written without spaces (tools/learned/features.py, CJK_RANGES): with extension cjk
 * each of these code points is a word of its own and never part of a spelled run. */
static int is_cjk(uint32_t c) {
  return (c >= 0x3005 && c <= 0x3007) || (c >= 0x3040 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) ||
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0x20000 && c <= 0x2FFFF);
}
/* A one-code-point raw word that may join a spelled run ("n u d e"). */
static int spellable(const struct sd_learned_model *m, uint32_t c) {
  return cls(m, c) == SD_LCLASS_WORD && !(m->cjk && is_cjk(c));
}
static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_spell_gap(uint32_t c) {
  return c == ' ' || c == '.' || c == '-' || c == '_' || c == '*' || c == '~';
}
static int is_letter(const struct sd_learned_model *m, uint32_t c) {
  return cls(m, c) == SD_LCLASS_WORD && !is_digit(c) && !is_leet_symbol(c);
}
static uint32_t leet(uint32_t c) {
  switch (c) {
    case '0': return 'o';
    case '1': return 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    case '@': return 'a';
    case '$': return 's';
    case '!': return 'i';
    default: return 0;
  }
}
static int conf_index(const struct sd_learned_model *m, uint32_t c) {
  int k = last_le(m->conf_from, m->n_conf, c);
  return k >= 0 && (uint32_t)m->conf_from[k] == c ? k : -1;
}

/* ---- growing arrays ------------------------------------------------------------------ */

typedef struct {
  uint32_t cp;
  size_t s, e;
} span_cp;

/* Make room for `need` elements of `size` bytes in the array *p of capacity *cap (doubling,
 * from `first`). */
static int grow(void **p, int *cap, int need, size_t size, int first) {
  if (need <= *cap) return SD_OK;
  int nc = *cap ? *cap : first;
  while (nc < need) nc *= 2;
  void *np = realloc(*p, (size_t)nc * size);
  if (!np) return sd_fail(SD_E_NOMEM, "learned detector: out of memory");
  *p = np;
  *cap = nc;
  return SD_OK;
}

typedef struct {
  span_cp *a;
  int n, cap;
} cp_list;

static int cp_push(cp_list *l, uint32_t cp, size_t s, size_t e) {
  int rc = grow((void **)&l->a, &l->cap, l->n + 1, sizeof *l->a, 64);
  if (!rc) l->a[l->n++] = (span_cp){cp, s, e};
  return rc;
}

/* A raw word (step 4): its code points (in a cp_list range), its span and its gap. */
typedef struct {
  int off, len;
  size_t s, e;
  int gap_len, gap_ok; /* separator code points before it (capped at 4); all in the spell-gap set */
} raw_word;

typedef struct {
  raw_word *a;
  int n, cap;
} raw_list;

static int raw_push(raw_list *l, raw_word w) {
  int rc = grow((void **)&l->a, &l->cap, l->n + 1, sizeof *l->a, 32);
  if (!rc) l->a[l->n++] = w;
  return rc;
}

static int out_word(sd_lwords *o, const uint32_t *cp, int n, size_t s, size_t e) {
  int rc;
  if ((rc = grow((void **)&o->w, &o->cap, o->n + 1, sizeof *o->w, 32)) ||
      (rc = grow((void **)&o->cp, &o->cap_cp, o->ncp + n, sizeof *o->cp, 256)))
    return rc;
  memcpy(o->cp + o->ncp, cp, (size_t)n * sizeof *cp);
  o->w[o->n++] = (sd_lword){o->ncp, n, s, e};
  o->ncp += n;
  return SD_OK;
}

void sd_lwords_free(sd_lwords *w) {
  if (!w) return;
  free(w->cp);
  free(w->w);
  memset(w, 0, sizeof *w);
}

/* Step 6 on word chars c[0..n) (modified in place; n updated), then appended to o unless dropped. */
static int finish_word(const struct sd_learned_model *m, uint32_t *c, int n, size_t s, size_t e, sd_lwords *o) {
  /* runs of >= 3 identical code points collapse to one, unless the run is the whole word */
  int k = 0, w = 0;
  while (k < n) {
    int r = k;
    while (r < n && c[r] == c[k]) r++;
    if (r - k < 3 || r - k == n)
      for (int i = k; i < r; i++) c[w++] = c[i];
    else
      c[w++] = c[k];
    k = r;
  }
  n = w;
  /* confusables */
  int any_conf = 0, has_ascii = 0, all_conf = 1;
  for (int i = 0; i < n; i++) {
    if (conf_index(m, c[i]) >= 0) any_conf = 1;
    if (c[i] >= 'a' && c[i] <= 'z') has_ascii = 1;
    if (is_letter(m, c[i]) && conf_index(m, c[i]) < 0) all_conf = 0;
  }
  if (any_conf && (has_ascii || all_conf))
    for (int i = 0; i < n; i++) {
      int ci = conf_index(m, c[i]);
      if (ci >= 0) c[i] = (uint32_t)m->conf_to[ci];
    }
  /* leetspeak, when a leet character follows a letter */
  int first = -1, after = 0;
  for (int i = 0; i < n; i++) {
    if (first < 0 && is_letter(m, c[i])) first = i;
    else if (first >= 0 && leet(c[i])) after = 1;
  }
  if (after)
    for (int i = 0; i < n; i++)
      if (leet(c[i])) c[i] = leet(c[i]);
  int digits = 1;
  for (int i = 0; i < n && digits; i++) digits = is_digit(c[i]);
  if (digits) return SD_OK;
  return out_word(o, c, n > SD_LEARNED_MAX_WORD ? SD_LEARNED_MAX_WORD : n, s, e);
}

int sd_learned_split(const struct sd_learned_model *m, const char *prompt, sd_lwords *o) {
  memset(o, 0, sizeof *o);
  const unsigned char *s = (const unsigned char *)prompt;
  size_t n = strlen(prompt), i = 0;
  cp_list cur = {0}, chars = {0};
  raw_list raw = {0};
  int rc = SD_OK, gap_len = 0, gap_ok = 1;
  uint32_t *buf = NULL;
  /* steps 1-4: words as ranges of `chars`; cur collects the word being built */
#define GAP_ADD(c)                             \
  do {                                         \
    if (gap_len < 4) gap_len++;                \
    if (!is_spell_gap(c)) gap_ok = 0;          \
  } while (0)
  while (i < n || cur.n) {
    uint32_t img[32];
    int nimg = 0, end_all = i >= n;
    size_t a = i, b = i;
    if (!end_all) {
      uint32_t cp = decode(s, n, &i);
      b = i;
      int k = cp < 128 ? m->ascii_norm[cp] : cp < SD_LEARNED_CP_LIMIT ? last_le(m->norm_from, m->n_norm, cp) : -1;
      if (k >= 0 && (uint32_t)m->norm_from[k] == cp) {
        for (int t = m->norm_off[k]; t < m->norm_off[k + 1] && nimg < 32; t++) img[nimg++] = (uint32_t)m->norm_to[t];
      } else {
        img[nimg++] = cp;
      }
    }
    for (int t = 0; t < nimg || (end_all && t == 0); t++) {
      int k = end_all ? SD_LCLASS_SEP : cls(m, img[t]);
      if (k == SD_LCLASS_IGNORE) continue;
      int own = k == SD_LCLASS_WORD && m->cjk && is_cjk(img[t]); /* a CJK character: a word of its own */
      if (k == SD_LCLASS_WORD && !own) {
        if ((rc = cp_push(&cur, img[t], a, b))) goto done;
        continue;
      }
      /* flush the current word */
      if (cur.n) {
        int lo = 0, hi = cur.n;
        while (lo < hi && is_leet_symbol(cur.a[lo].cp)) lo++;
        while (hi > lo && is_leet_symbol(cur.a[hi - 1].cp)) hi--;
        if (lo < hi) {
          raw_word w = {chars.n, hi - lo, cur.a[lo].s, cur.a[hi - 1].e, gap_len, gap_ok};
          for (int q = lo; q < hi; q++)
            if ((rc = cp_push(&chars, cur.a[q].cp, cur.a[q].s, cur.a[q].e))) goto done;
          if ((rc = raw_push(&raw, w))) goto done;
          gap_len = 0, gap_ok = 1;
        } else {
          for (int q = 0; q < cur.n; q++) GAP_ADD(cur.a[q].cp);
        }
        cur.n = 0;
      }
      if (end_all) break;
      if (k == SD_LCLASS_SYMBOL || own) {
        raw_word w = {chars.n, 1, a, b, gap_len, gap_ok};
        if ((rc = cp_push(&chars, img[t], a, b)) || (rc = raw_push(&raw, w))) goto done;
        gap_len = 0, gap_ok = 1;
      } else {
        GAP_ADD(img[t]);
      }
    }
    if (end_all) break;
  }
#undef GAP_ADD
  /* step 5: spelled runs; step 6 per word */
  if (!(buf = malloc(((size_t)chars.n + 1) * sizeof *buf))) {
    rc = sd_fail(SD_E_NOMEM, "learned detector: out of memory");
    goto done;
  }
  for (int w = 0; w < raw.n;) {
    int j = w;
    const raw_word *r = &raw.a[w];
    if (r->len == 1 && spellable(m, chars.a[r->off].cp))
      while (j + 1 < raw.n && raw.a[j + 1].len == 1 && spellable(m, chars.a[raw.a[j + 1].off].cp) &&
             raw.a[j + 1].gap_len >= 1 && raw.a[j + 1].gap_len <= 3 && raw.a[j + 1].gap_ok)
        j++;
    int nb = 0;
    if (j - w + 1 >= 3) {
      for (int q = w; q <= j; q++) buf[nb++] = chars.a[raw.a[q].off].cp;
      if ((rc = finish_word(m, buf, nb, r->s, raw.a[j].e, o))) goto done;
      w = j + 1;
    } else {
      for (int q = 0; q < r->len; q++) buf[nb++] = chars.a[r->off + q].cp;
      if ((rc = finish_word(m, buf, nb, r->s, r->e, o))) goto done;
      w++;
    }
  }
done:
  free(cur.a);
  free(chars.a);
  free(raw.a);
  free(buf);
  if (rc) sd_lwords_free(o);
  return rc;
}

int sd_learned_word_features(const struct sd_learned_model *m, const sd_lwords *w, int j, uint32_t *out) {
  const uint32_t *c = w->cp + w->w[j].off;
  int L = w->w[j].len, ns = L + 2, k = 0;
  /* the UTF-8 bytes of '<' word '>' and where each code point starts */
  char b[4 * (SD_LEARNED_MAX_WORD + 2)];
  int at[SD_LEARNED_MAX_WORD + 3];
  size_t o = 0;
  b[o++] = '<';
  for (int q = 0; q < L; q++) at[q + 1] = (int)o, o += sd_learned_utf8(c + q, 1, b + o);
  at[0] = 0;
  at[L + 1] = (int)o;
  b[o++] = '>';
  at[ns] = (int)o;
  for (int n = m->nmin; n <= m->nmax; n++)
    for (int i = 0; i + n <= ns; i++) {
      uint32_t h = (FNV32_OFFSET ^ (uint8_t)'c') * FNV32_PRIME;
      for (int q = at[i]; q < at[i + n]; q++) h = (h ^ (uint8_t)b[q]) * FNV32_PRIME;
      out[k++] = h & m->mask;
    }
  uint32_t h = (FNV32_OFFSET ^ (uint8_t)'w') * FNV32_PRIME;
  for (int q = at[1]; q < at[L + 1]; q++) h = (h ^ (uint8_t)b[q]) * FNV32_PRIME;
  out[k++] = h & m->mask;
  k += sd_learned_glove_feature(m, c, L, out + k);
  return k + sd_learned_sense_features(m, c, L, out + k);
}

uint32_t sd_learned_bigram(const struct sd_learned_model *m, const sd_lwords *w, int j) {
  uint32_t h = (FNV32_OFFSET ^ (uint8_t)'b') * FNV32_PRIME;
  const sd_lword *p = &w->w[j - 1], *q = &w->w[j];
  for (int i = 0; i < p->len; i++) h = fnv_cp(h, w->cp[p->off + i]);
  h = fnv_cp(h, ' ');
  for (int i = 0; i < q->len; i++) h = fnv_cp(h, w->cp[q->off + i]);
  return h & m->mask;
}
