/* The CLIP BPE tokenizer, exact to Hugging Face's slow CLIPTokenizer on its no-ftfy path
 * (the path diffusers uses when ftfy is not installed). The rules, in order, are written out
 * in ../shared/data/clip-tokenizer/README.md; each step below names the rule it implements.
 *
 * A loaded tokenizer is immutable: tokenizing only reads it (every call allocates its own
 * scratch memory and PCRE2 match data), so one tokenizer can be shared by many threads.
 *
 * Data layout:
 *   - the vocabulary: id -> string (one NUL-terminated string pool) and string -> id (an
 *     open-addressing hash table of ids);
 *   - the merges: (left id, right id) -> (rank, merged id), an open-addressing hash table
 *     keyed by the two ids packed into 64 bits, one 16-byte slot per entry. Every merge piece
 *     and every merge result must be in the vocabulary (checked at load), so BPE runs on ids
 *     and never builds strings;
 *   - the 256 byte symbols of GPT-2's bytes_to_unicode, as ids, without and with "</w>".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* stat, getline, clock_gettime, setenv */
#endif
#include "text/tokenizer_internal.h"
#include "io/fileio.h"
#include "io/json_util.h"

#include "core/error.h"

#include <jansson.h>
#include <pcre2.h>
#include <utf8proc.h>
#include <zlib.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The CLIP pre-tokenizer regex (HF: regex.compile(..., regex.IGNORECASE)). One deviation in
 * spelling, none in behaviour: U+0345 COMBINING GREEK YPOGEGRAMMENI is excluded from the
 * last class. Python's `regex` module, under IGNORECASE, tests a class against every case
 * variant of a character; U+0345's variants include U+03B9 (a letter), so the negated class
 * fails on it, while [\p{L}] does not match it either: `regex` drops U+0345 between pieces.
 * PCRE2's caseless mode does not apply to \p{..}, so without the exclusion PCRE2 would
 * match U+0345 as punctuation. It is the only character (Unicode 14) where the two differ. */
static const char CLIP_PATTERN[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|"
    "[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}\\x{345}]+";


/* ------------------------------------------------------------------------------------- */
/* UTF-8                                                                                  */

/* Decode one code point at s[*i] (strict: no overlongs, surrogates or > U+10FFFF).
 * Returns 0 and advances *i, or -1 leaving *i at the offending lead byte. */
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp) {
  size_t p = *i;
  unsigned c = s[p];
  if (c < 0x80) {
    *cp = c;
    *i = p + 1;
    return 0;
  }
  int n;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 1, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 2, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 3, v = c & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (len - p - 1 < (size_t)n) return -1;
  for (int k = 1; k <= n; k++) {
    unsigned d = s[p + (size_t)k];
    if ((d & 0xC0) != 0x80) return -1;
    v = (v << 6) | (d & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return -1;
  *cp = v;
  *i = p + 1 + (size_t)n;
  return 0;
}

size_t sd_tok_utf8_put(uint32_t cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Offset of the first invalid byte, or len when s is valid UTF-8. */
size_t sd_tok_utf8_check(const char *s, size_t len) {
  size_t i = 0;
  uint32_t cp;
  while (i < len) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    if (utf8_next((const unsigned char *)s, len, &i, &cp) != 0) return i;
  }
  return len;
}

/* ------------------------------------------------------------------------------------- */
/* bytes_to_unicode (GPT-2 / CLIP)                                                        */

/* order[k] = the byte whose symbol has vocabulary id k (and 256 + k with "</w>");
 * sym[b] = the code point byte b is written as. */
void sd_tok_bytes_to_unicode(uint8_t order[256], uint32_t sym[256]) {
  int in[256] = {0};
  int k = 0;
  for (int b = '!'; b <= '~'; b++) in[b] = 1, order[k++] = (uint8_t)b, sym[b] = (uint32_t)b;
  for (int b = 0xA1; b <= 0xAC; b++) in[b] = 1, order[k++] = (uint8_t)b, sym[b] = (uint32_t)b;
  for (int b = 0xAE; b <= 0xFF; b++) in[b] = 1, order[k++] = (uint8_t)b, sym[b] = (uint32_t)b;
  uint32_t extra = 0;
  for (int b = 0; b < 256; b++) {
    if (in[b]) continue;
    order[k++] = (uint8_t)b;
    sym[b] = 256 + extra++;
  }
}

/* ------------------------------------------------------------------------------------- */
/* vocabulary and merge tables                                                            */

static uint32_t hash_str(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h ^ (h >> 15);
}

static uint32_t hash_pair(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return (uint32_t)k;
}

static uint32_t pow2_at_least(uint32_t n) {
  uint32_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

int sd_tok_vocab_init(sd_tokenizer *t, int32_t n) {
  t->n_vocab = n;
  t->tok_off = malloc((size_t)n * sizeof *t->tok_off);
  t->tok_len = malloc((size_t)n * sizeof *t->tok_len);
  uint32_t cap = pow2_at_least((uint32_t)n * 2u);
  t->vslot = malloc((size_t)cap * sizeof *t->vslot);
  t->pool_cap = (size_t)n * 8 + 64;
  t->pool = malloc(t->pool_cap);
  if (!t->tok_off || !t->tok_len || !t->vslot || !t->pool)
    return sd_fail(SD_E_NOMEM, "tokenizer: out of memory for a %d-entry vocabulary", (int)n);
  memset(t->tok_off, 0xFF, (size_t)n * sizeof *t->tok_off);
  memset(t->tok_len, 0, (size_t)n * sizeof *t->tok_len);
  memset(t->vslot, 0xFF, (size_t)cap * sizeof *t->vslot);
  t->vmask = cap - 1;
  return SD_OK;
}

int32_t sd_tok_vocab_find(const sd_tokenizer *t, const char *s, size_t n) {
  uint32_t h = hash_str(s, n) & t->vmask;
  for (;;) {
    int32_t id = t->vslot[h];
    if (id < 0) return -1;
    if (t->tok_len[id] == n && memcmp(t->pool + t->tok_off[id], s, n) == 0) return id;
    h = (h + 1) & t->vmask;
  }
}

/* Add token s (n bytes) with this id. Returns SD_OK, or 1 when the id is already set, or 2
 * when the string is already in the vocabulary (*other = its id); errors are negative. */
int sd_tok_vocab_set(sd_tokenizer *t, int32_t id, const char *s, size_t n, int32_t *other) {
  if (t->tok_off[id] != UINT32_MAX) return 1;
  uint32_t h = hash_str(s, n) & t->vmask;
  for (;;) {
    int32_t o = t->vslot[h];
    if (o < 0) break;
    if (t->tok_len[o] == n && memcmp(t->pool + t->tok_off[o], s, n) == 0) {
      *other = o;
      return 2;
    }
    h = (h + 1) & t->vmask;
  }
  if (t->pool_len + n + 1 > t->pool_cap) {
    size_t cap = t->pool_cap * 2 + n + 1;
    if (cap > UINT32_MAX) return sd_fail(SD_E_NOMEM, "tokenizer: vocabulary strings too large");
    char *p = realloc(t->pool, cap);
    if (!p) return sd_fail(SD_E_NOMEM, "tokenizer: out of memory for vocabulary strings");
    t->pool = p;
    t->pool_cap = cap;
  }
  memcpy(t->pool + t->pool_len, s, n);
  t->pool[t->pool_len + n] = 0;
  t->tok_off[id] = (uint32_t)t->pool_len;
  t->tok_len[id] = (uint32_t)n;
  t->pool_len += n + 1;
  t->vslot[h] = id;
  return SD_OK;
}

int sd_tok_merges_init(sd_tokenizer *t, int32_t n) {
  uint32_t cap = pow2_at_least((uint32_t)n * 2u + 2u);
  t->mslot = malloc((size_t)cap * sizeof *t->mslot);
  if (!t->mslot) return sd_fail(SD_E_NOMEM, "tokenizer: out of memory for %d merges", (int)n);
  for (uint32_t i = 0; i < cap; i++) t->mslot[i].key = UINT64_MAX;
  t->mmask = cap - 1;
  t->n_merges = 0;
  return SD_OK;
}

static inline uint64_t pair_key(int32_t a, int32_t b) {
  return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* Returns SD_OK, or 1 when the pair is already present (*rank_old = its rank). */
int sd_tok_merge_add(sd_tokenizer *t, int32_t a, int32_t b, int32_t res, int32_t *rank_old) {
  uint64_t k = pair_key(a, b);
  uint32_t h = hash_pair(k) & t->mmask;
  while (t->mslot[h].key != UINT64_MAX) {
    if (t->mslot[h].key == k) {
      *rank_old = t->mslot[h].rank;
      return 1;
    }
    h = (h + 1) & t->mmask;
  }
  t->mslot[h].key = k;
  t->mslot[h].rank = t->n_merges++;
  t->mslot[h].res = res;
  return SD_OK;
}

/* Rank of the merge (a, b) or -1; *res gets the merged id. */
static inline int32_t merge_find(const sd_tokenizer *t, int32_t a, int32_t b, int32_t *res) {
  uint64_t k = pair_key(a, b);
  uint32_t h = hash_pair(k) & t->mmask;
  for (;;) {
    const struct merge_slot *e = &t->mslot[h];
    if (e->key == k) {
      *res = e->res;
      return e->rank;
    }
    if (e->key == UINT64_MAX) return -1;
    h = (h + 1) & t->mmask;
  }
}

void sd_tokenizer_free(sd_tokenizer *t) {
  if (!t) return;
  free(t->pool);
  free(t->tok_off);
  free(t->tok_len);
  free(t->vslot);
  free(t->mslot);
  if (t->re) pcre2_code_free(t->re);
  free(t);
}

/* Resolve the byte symbols and special tokens, and compile the regex. `what` names the
 * source for messages. */
int sd_tok_tok_finish(sd_tokenizer *t, const char *what) {
  uint8_t order[256];
  uint32_t sym[256];
  sd_tok_bytes_to_unicode(order, sym);
  for (int b = 0; b < 256; b++) {
    char s[16];
    size_t n = sd_tok_utf8_put(sym[b], s);
    int32_t id = sd_tok_vocab_find(t, s, n);
    memcpy(s + n, "</w>", 4);
    int32_t id_end = sd_tok_vocab_find(t, s, n + 4);
    if (id < 0 || id_end < 0)
      return sd_fail(SD_E_FORMAT,
                     "%s: the vocabulary lacks the symbol for byte 0x%02X (\"%.*s%s\")", what, b,
                     (int)n, s, id < 0 ? "" : "</w>");
    t->byte_id[b] = id;
    t->byte_end_id[b] = id_end;
  }
  t->bos = sd_tok_vocab_find(t, SOT, SOT_LEN);
  t->eos = sd_tok_vocab_find(t, EOT, EOT_LEN);
  if (t->bos < 0) return sd_fail(SD_E_FORMAT, "%s: the vocabulary lacks %s", what, SOT);
  if (t->eos < 0) return sd_fail(SD_E_FORMAT, "%s: the vocabulary lacks %s", what, EOT);

  int err;
  PCRE2_SIZE erroff;
  t->re = pcre2_compile((PCRE2_SPTR)CLIP_PATTERN, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &err, &erroff, NULL);
  if (!t->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return sd_fail(SD_E_INTERNAL, "tokenizer: the CLIP regex does not compile at %zu: %s",
                   (size_t)erroff, (const char *)msg);
  }
  (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional; the interpreter is exact too */
  return SD_OK;
}

/* ------------------------------------------------------------------------------------- */
/* accessors                                                                              */

int32_t sd_tokenizer_vocab_size(const sd_tokenizer *t) {
  return t ? t->n_vocab : 0;
}
int32_t sd_tokenizer_bos(const sd_tokenizer *t) {
  return t ? t->bos : -1;
}
int32_t sd_tokenizer_eos(const sd_tokenizer *t) {
  return t ? t->eos : -1;
}

const char *sd_tokenizer_token(const sd_tokenizer *t, int32_t id) {
  if (!t || id < 0 || id >= t->n_vocab) return NULL;
  return t->pool + t->tok_off[id];
}

int32_t sd_tokenizer_lookup(const sd_tokenizer *t, const char *token) {
  if (!t || !token) return -1;
  return sd_tok_vocab_find(t, token, strlen(token));
}

/* ------------------------------------------------------------------------------------- */
/* text normalisation (README steps 2-5)                                                  */

/* Python str.isspace(): bidi class WS/B/S or category Zs. */
static int py_isspace(uint32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c < 0x85) return 0;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int sd_text_isspace(uint32_t c) { return py_isspace(c); }

/* The CJK ideograph blocks BERT's BasicTokenizer pads with spaces. */
static int is_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode Case_Ignorable (as Python's final-sigma rule reads it): Mn, Me, Cf, Lm, Sk, plus
 * Word_Break MidLetter / MidNumLet / Single_Quote. Checked against CPython 3.11 on every
 * code point assigned in Unicode 14. */
static int case_ignorable(uint32_t c) {
  static const uint32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                 0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
    if (c == mid[i]) return 1;
  if (c < 0x80) return c == '^' || c == '`'; /* Sk */
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
         k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

/* Unicode Cased: Lu, Ll, Lt, Other_Lowercase, Other_Uppercase (those not Case_Ignorable). */
static int is_cased(uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  if (c == 0xAA || c == 0xBA || (c >= 0x2160 && c <= 0x217F) || (c >= 0x24B6 && c <= 0x24E9) ||
      (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return 1;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

/* Python's lowercase of U+03A3 at w[i]: final sigma when preceded by a cased letter and not
 * followed by one (case-ignorable characters skipped both ways). */
static uint32_t lower_sigma(const uint32_t *w, size_t n, size_t i) {
  size_t j = i;
  uint32_t c = 0;
  int final = 0;
  while (j > 0) {
    c = w[--j];
    if (!case_ignorable(c)) {
      final = is_cased(c);
      break;
    }
  }
  if (final) {
    size_t k = i + 1;
    while (k < n && case_ignorable(w[k])) k++;
    final = k == n || !is_cased(w[k]);
  }
  return final ? 0x3C2 : 0x3C3;
}

/* ------------------------------------------------------------------------------------- */
/* BPE                                                                                    */

typedef struct {
  int32_t rank, pos, left, right, res;
} heap_ent;

typedef struct {
  int32_t *v;
  size_t n, cap;
} idvec;

typedef struct {
  /* BPE scratch, grown to the longest piece */
  int32_t *sym, *next, *prev, *pend;
  heap_ent *heap;
  size_t cap, heap_cap;
  /* text scratch */
  uint32_t *cp_a, *cp_b;
  char *u8;
  size_t cp_cap, u8_cap;
  pcre2_match_data *md;
} scratch;

static int vec_push(idvec *v, int32_t id) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    int32_t *p = realloc(v->v, cap * sizeof *p);
    if (!p) return sd_fail(SD_E_NOMEM, "tokenize: out of memory");
    v->v = p;
    v->cap = cap;
  }
  v->v[v->n++] = id;
  return SD_OK;
}

static inline int heap_less(const heap_ent *a, const heap_ent *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(&e, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
  heap_ent top = h[0];
  heap_ent last = h[--(*n)];
  size_t i = 0, m = *n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
    if (!heap_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (m > 0) h[i] = last;
  return top;
}

static int scratch_bpe_reserve(scratch *s, size_t n) {
  if (n <= s->cap) return SD_OK;
  size_t cap = n < 64 ? 64 : n;
  int32_t *a = realloc(s->sym, cap * sizeof *a);
  if (a) s->sym = a;
  int32_t *b = realloc(s->next, cap * sizeof *b);
  if (b) s->next = b;
  int32_t *c = realloc(s->prev, cap * sizeof *c);
  if (c) s->prev = c;
  int32_t *d = realloc(s->pend, cap * sizeof *d);
  if (d) s->pend = d;
  /* at most n-1 initial pairs plus 2 per merge (n-1 merges) */
  heap_ent *h = realloc(s->heap, 3 * cap * sizeof *h);
  if (h) s->heap = h;
  if (!a || !b || !c || !d || !h) return sd_fail(SD_E_NOMEM, "tokenize: out of memory");
  s->cap = cap;
  s->heap_cap = 3 * cap;
  return SD_OK;
}

static inline void push_pair(const sd_tokenizer *t, scratch *s, size_t *hn, int32_t pos) {
  int32_t q = s->next[pos];
  if (q < 0) return;
  int32_t res;
  int32_t r = merge_find(t, s->sym[pos], s->sym[q], &res);
  if (r < 0) return;
  heap_ent e = {r, pos, s->sym[pos], s->sym[q], res};
  heap_push(s->heap, hn, e);
}

/* BPE one pre-tokenized piece (its raw UTF-8 bytes) and append the ids.
 *
 * HF's loop: find the adjacent pair with the lowest merge rank; merge every occurrence of
 * it left to right, non-overlapping; repeat until no pair has a rank. Here: a heap of
 * (rank, position) entries, checked against the current symbols when popped. All pairs of
 * one rank present at the start of a round are in the heap; the pairs a merge creates are
 * queued and only added once that rank is exhausted, so a malformed merges list whose
 * later merges rank lower cannot reorder anything: the result equals HF's in every case. */
static int bpe_piece(const sd_tokenizer *t, scratch *s, const unsigned char *p, size_t n,
                     idvec *out) {
  if (n == SOT_LEN && memcmp(p, SOT, SOT_LEN) == 0) return vec_push(out, t->bos);
  if (n == EOT_LEN && memcmp(p, EOT, EOT_LEN) == 0) return vec_push(out, t->eos);
  if (n == 1) return vec_push(out, t->byte_end_id[p[0]]);
  if (n > INT32_MAX / 4) return sd_fail(SD_E_ARG, "tokenize: word too long");
  int rc = scratch_bpe_reserve(s, n);
  if (rc) return rc;
  int32_t *sym = s->sym, *next = s->next, *prev = s->prev;
  for (size_t i = 0; i < n; i++) {
    sym[i] = i + 1 < n ? t->byte_id[p[i]] : t->byte_end_id[p[i]];
    next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    prev[i] = (int32_t)i - 1;
  }
  size_t hn = 0, np = 0;
  for (size_t i = 0; i + 1 < n; i++) push_pair(t, s, &hn, (int32_t)i);
  int32_t cur = -1;
  for (;;) {
    if (np > 0 && (hn == 0 || s->heap[0].rank != cur)) {
      for (size_t k = 0; k < np; k++) {
        int32_t q = s->pend[k];
        if (sym[q] < 0) continue;
        if (prev[q] >= 0) push_pair(t, s, &hn, prev[q]);
        push_pair(t, s, &hn, q);
      }
      np = 0;
      continue;
    }
    if (hn == 0) break;
    heap_ent e = heap_pop(s->heap, &hn);
    int32_t q = next[e.pos];
    if (sym[e.pos] != e.left || q < 0 || sym[q] != e.right) continue; /* stale */
    cur = e.rank;
    sym[e.pos] = e.res;
    sym[q] = -1;
    next[e.pos] = next[q];
    if (next[q] >= 0) prev[next[q]] = e.pos;
    s->pend[np++] = e.pos;
  }
  for (int32_t i = 0; i >= 0; i = next[i]) {
    rc = vec_push(out, sym[i]);
    if (rc) return rc;
  }
  return SD_OK;
}

/* ------------------------------------------------------------------------------------- */
/* one segment between special tokens: clean, CJK, NFC, split/lower/join, regex, BPE      */

static int scratch_text_reserve(scratch *s, size_t ncp, size_t nu8) {
  if (ncp > s->cp_cap) {
    uint32_t *a = realloc(s->cp_a, ncp * sizeof *a);
    if (a) s->cp_a = a;
    uint32_t *b = realloc(s->cp_b, ncp * sizeof *b);
    if (b) s->cp_b = b;
    if (!a || !b) return sd_fail(SD_E_NOMEM, "tokenize: out of memory");
    s->cp_cap = ncp;
  }
  if (nu8 > s->u8_cap) {
    char *u = realloc(s->u8, nu8);
    if (!u) return sd_fail(SD_E_NOMEM, "tokenize: out of memory");
    s->u8 = u;
    s->u8_cap = nu8;
  }
  return SD_OK;
}

static int tokenize_segment(const sd_tokenizer *t, scratch *s, const char *text, size_t len,
                            idvec *out) {
  if (len == 0) return SD_OK;
  /* Bounds: cleaning + CJK spacing give at most one code point per input byte (" c " comes
   * from 3+ bytes); NFC at most triples that; lowercasing (İ -> i + U+0307) keeps one UTF-8
   * sequence of at most 4 bytes per code point, 3 bytes for İ. */
  int rc = scratch_text_reserve(s, 3 * len + 1, 12 * len + 4);
  if (rc) return rc;
  const unsigned char *u = (const unsigned char *)text;

  /* 2. clean + 3. CJK spacing */
  uint32_t *a = s->cp_a;
  size_t na = 0, i = 0;
  int need_nfc = 0;
  while (i < len) {
    uint32_t c;
    if (u[i] < 0x80) {
      c = u[i++];
      if (c >= 0x20 && c != 0x7F) {
        a[na++] = c;
      } else if (c == '\t' || c == '\n' || c == '\r') {
        a[na++] = ' ';
      } /* else: NUL and other Cc are dropped */
      continue;
    }
    if (utf8_next(u, len, &i, &c) != 0) return sd_fail(SD_E_INTERNAL, "tokenize: bad UTF-8");
    if (c == 0xFFFD) continue;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CN ||
        k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS)
      continue;
    if (k == UTF8PROC_CATEGORY_ZS) {
      a[na++] = ' ';
    } else if (is_cjk(c)) {
      a[na++] = ' ';
      a[na++] = c;
      a[na++] = ' ';
    } else {
      a[na++] = c;
    }
    if (c >= 0x300) need_nfc = 1; /* below U+0300 text is NFC already and nothing composes */
  }

  /* 4. NFC */
  uint32_t *b = a;
  size_t nb = na;
  if (need_nfc) {
    size_t o = 0;
    for (size_t k = 0; k < na; k++) o += sd_tok_utf8_put(a[k], s->u8 + o);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s->u8, (utf8proc_ssize_t)o, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) {
      free(nfc);
      return sd_fail(r == UTF8PROC_ERROR_NOMEM ? SD_E_NOMEM : SD_E_INTERNAL,
                     "tokenize: NFC normalisation failed: %s", utf8proc_errmsg(r));
    }
    /* NFC never lengthens text by more than 3x in code points; guard anyway */
    b = s->cp_b;
    nb = 0;
    size_t j = 0, rn = (size_t)r;
    while (j < rn) {
      uint32_t c;
      if (utf8_next(nfc, rn, &j, &c) != 0 || nb >= s->cp_cap) {
        free(nfc);
        return sd_fail(SD_E_INTERNAL, "tokenize: unexpected NFC output");
      }
      b[nb++] = c;
    }
    free(nfc);
  }

  /* 5. split on str.isspace() and join with one space (in place) */
  size_t nw = 0;
  int gap = 0;
  for (size_t k = 0; k < nb; k++) {
    uint32_t c = b[k];
    if (py_isspace(c)) {
      gap = nw > 0;
      continue;
    }
    if (gap) b[nw++] = ' ', gap = 0;
    b[nw++] = c;
  }
  if (nw == 0) return SD_OK;

  /* 5. full lowercase (Python str.lower) to UTF-8 */
  char *w = s->u8;
  size_t wn = 0;
  for (size_t k = 0; k < nw; k++) {
    uint32_t c = b[k];
    if (c < 0x80) {
      w[wn++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) { /* SpecialCasing: İ -> i + COMBINING DOT ABOVE */
      w[wn++] = 'i';
      wn += sd_tok_utf8_put(0x307, w + wn);
    } else if (c == 0x3A3) {
      wn += sd_tok_utf8_put(lower_sigma(b, nw, k), w + wn);
    } else {
      wn += sd_tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), w + wn);
    }
  }

  /* 6. pre-tokenize with the CLIP regex, then BPE each piece */
  size_t off = 0;
  while (off < wn) {
    int m = pcre2_match(t->re, (PCRE2_SPTR)w, wn, off, PCRE2_NO_UTF_CHECK, s->md, NULL);
    if (m == PCRE2_ERROR_NOMATCH) break;
    if (m < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(m, msg, sizeof msg);
      return sd_fail(SD_E_INTERNAL, "tokenize: regex match failed: %s", (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    if (ov[1] <= ov[0]) return sd_fail(SD_E_INTERNAL, "tokenize: empty regex match");
    rc = bpe_piece(t, s, (const unsigned char *)w + ov[0], ov[1] - ov[0], out);
    if (rc) return rc;
    off = ov[1];
  }
  return SD_OK;
}

static void scratch_free(scratch *s) {
  free(s->sym);
  free(s->next);
  free(s->prev);
  free(s->pend);
  free(s->heap);
  free(s->cp_a);
  free(s->cp_b);
  free(s->u8);
  if (s->md) pcre2_match_data_free(s->md);
}

/* SD_OK, or an SD_E_ARG naming the first invalid byte and quoting the text escaped. */
static int utf8_text_check(const char *what, const char *text, size_t len) {
  size_t bad = sd_tok_utf8_check(text, len);
  if (bad == len) return SD_OK;
  char q[96];
  return sd_fail(SD_E_ARG, "%s is not valid UTF-8: byte 0x%02X at byte offset %zu (\"%s\")", what,
                 (unsigned char)text[bad], bad, sd_msg_quote(text, q, sizeof q));
}

int sd_text_check_utf8(const char *what, const char *text) {
  return text ? utf8_text_check(what, text, strlen(text)) : SD_OK;
}

/* 1. split out the literal special tokens, tokenize what lies between */
static int tokenize_into(const sd_tokenizer *t, const char *text, size_t len, idvec *out) {
  if (!t) return sd_fail(SD_E_ARG, "tokenize: tokenizer is NULL");
  if (!text && len) return sd_fail(SD_E_ARG, "tokenize: text is NULL");
  if (len > TOK_MAX_TEXT_BYTES)
    return sd_fail(SD_E_ARG, "tokenize: text of %zu bytes is over the %zu-byte limit", len,
                   TOK_MAX_TEXT_BYTES);
  int rc0 = utf8_text_check("tokenize: text", text, len);
  if (rc0) return rc0;
  scratch s = {0};
  s.md = pcre2_match_data_create_from_pattern(t->re, NULL);
  if (!s.md) return sd_fail(SD_E_NOMEM, "tokenize: out of memory");
  int rc = SD_OK;
  size_t start = 0, i = 0;
  while (i < len && !rc) {
    const char *lt = memchr(text + i, '<', len - i);
    if (!lt) break;
    i = (size_t)(lt - text);
    int32_t special = -1;
    size_t sl = 0;
    if (len - i >= SOT_LEN && memcmp(lt, SOT, SOT_LEN) == 0) {
      special = t->bos, sl = SOT_LEN;
    } else if (len - i >= EOT_LEN && memcmp(lt, EOT, EOT_LEN) == 0) {
      special = t->eos, sl = EOT_LEN;
    }
    if (special < 0) {
      i++;
      continue;
    }
    rc = tokenize_segment(t, &s, text + start, i - start, out);
    if (!rc) rc = vec_push(out, special);
    i += sl;
    start = i;
  }
  if (!rc) rc = tokenize_segment(t, &s, text + start, len - start, out);
  scratch_free(&s);
  return rc;
}

int sd_tokenize_append(const sd_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                       size_t *n, size_t *cap) {
  if (!ids || !n || !cap) return sd_fail(SD_E_ARG, "sd_tokenize_append: NULL output");
  idvec v = {*ids, *n, *cap};
  int rc = tokenize_into(tok, text, len, &v);
  *ids = v.v;
  *cap = v.cap;
  if (!rc) *n = v.n; /* on error the array keeps its old contents */
  return rc;
}

int sd_tokenize(const sd_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n) {
  if (!ids || !n) return sd_fail(SD_E_ARG, "sd_tokenize: NULL output");
  *ids = NULL;
  *n = 0;
  idvec v = {0};
  int rc = tokenize_into(tok, text, len, &v);
  if (!rc && !v.v) {
    v.v = malloc(sizeof *v.v);
    if (!v.v) rc = sd_fail(SD_E_NOMEM, "tokenize: out of memory");
  }
  if (rc) {
    free(v.v);
    return rc;
  }
  *ids = v.v;
  *n = v.n;
  return SD_OK;
}

/* ------------------------------------------------------------------------------------- */
/* framing                                                                                */

int sd_tokenizer_frame(const sd_tokenizer *tok, const int32_t *ids, size_t n, int32_t pad_id,
                       int ctx, int32_t *out) {
  if (!tok || !out || (n && !ids)) return sd_fail(SD_E_ARG, "sd_tokenizer_frame: NULL argument");
  if (ctx < 2) return sd_fail(SD_E_ARG, "sd_tokenizer_frame: context length %d is below 2", ctx);
  size_t keep = n < (size_t)ctx - 2 ? n : (size_t)ctx - 2;
  out[0] = tok->bos;
  if (keep) memcpy(out + 1, ids, keep * sizeof *ids);
  out[keep + 1] = tok->eos;
  for (size_t i = keep + 2; i < (size_t)ctx; i++) out[i] = pad_id;
  return (int)keep + 2;
}

int sd_tokenize_prompt(const sd_tokenizer *tok, const char *text, int32_t pad_id, int ctx,
                       int32_t *out) {
  if (!text) return sd_fail(SD_E_ARG, "sd_tokenize_prompt: text is NULL");
  if (ctx < 2) return sd_fail(SD_E_ARG, "sd_tokenize_prompt: context length %d is below 2", ctx);
  int32_t *ids;
  size_t n;
  int rc = sd_tokenize(tok, text, strlen(text), &ids, &n);
  if (rc) return rc;
  rc = sd_tokenizer_frame(tok, ids, n, pad_id, ctx, out);
  free(ids);
  return rc;
}
