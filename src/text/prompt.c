/* Prompt syntax: AUTOMATIC1111's emphasis parser and 75-token chunks (text/prompt.h,
 * docs/prompts.md). Written from the behaviour of A1111's parse_prompt_attention and
 * tokenize_line; the PyTorch-side reference is tools/ref/prompt_case.py. */
#include "text/prompt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "core/error.h"
#include "io/json_util.h"

int sd_prompt_syntax_parse(const char *name, sd_prompt_syntax *out) {
  if (!name || !strcmp(name, "a1111")) *out = SD_SYNTAX_A1111;
  else if (!strcmp(name, "plain")) *out = SD_SYNTAX_PLAIN;
  else return sd_fail(SD_E_ARG, "unknown prompt syntax '%.64s' (a1111, plain)", name);
  return SD_OK;
}

const char *sd_prompt_syntax_name(sd_prompt_syntax s) {
  return s == SD_SYNTAX_PLAIN ? "plain" : s == SD_SYNTAX_CHUNKED ? "chunked" : "a1111";
}

/* ---- parsing ------------------------------------------------------------------------- */

typedef struct {
  char *s;
  size_t n;
  double w;
} entry;

typedef struct {
  entry *e;
  int n, cap;
  int *round, nr, *square, ns; /* open brackets: the entry index each opened at */
  int64_t work;                 /* weight multiplications so far (bounded) */
} parser;

/* Bound on the weight multiplications of one prompt: brackets nested thousands deep over
 * thousands of segments would otherwise cost quadratic time. Real prompts need a few
 * thousand. */
#define PROMPT_MAX_WORK ((int64_t)1 << 24)

static int push(parser *p, const char *s, size_t n, double w) {
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 16;
    entry *e = realloc(p->e, (size_t)cap * sizeof *e);
    if (!e) return sd_fail(SD_E_NOMEM, "prompt: out of memory");
    p->e = e;
    p->cap = cap;
  }
  char *c = malloc(n + 1);
  if (!c) return sd_fail(SD_E_NOMEM, "prompt: out of memory");
  memcpy(c, s, n);
  c[n] = 0;
  p->e[p->n++] = (entry){c, n, w};
  return SD_OK;
}

static int multiply_range(parser *p, int from, double m) {
  p->work += p->n - from;
  if (p->work > PROMPT_MAX_WORK)
    return sd_fail(SD_E_ARG, "the prompt's brackets nest too deeply (over %lld weight multiplications)",
                   (long long)PROMPT_MAX_WORK);
  for (int i = from; i < p->n; i++) p->e[i].w *= m;
  return SD_OK;
}

/* The code point at s[i] (of n bytes) and its length; an invalid byte is itself (length 1). */
static uint32_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
  utf8proc_int32_t c;
  utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
  if (k <= 0) {
    *len = 1;
    return (unsigned char)s[i];
  }
  *len = (size_t)k;
  return (uint32_t)c;
}

/* The code point that ends just before s[i] (i > 0) and where it starts. */
static uint32_t cp_before(const char *s, size_t n, size_t i, size_t *start) {
  size_t j = i - 1;
  while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
  size_t len;
  uint32_t c = cp_at(s, n, j, &len);
  if (j + len != i) { /* not a whole code point: the byte alone */
    *start = i - 1;
    return (unsigned char)s[i - 1];
  }
  *start = j;
  return c;
}

/* Python's \w on str: alphanumeric (categories L*, N*) or '_'. */
static int is_word(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return 1;
    default: return 0;
  }
}

/* A piece of plain text, split at BREAK as A1111 splits it (re.split(r"\s*\bBREAK\b\s*")):
 * word boundaries and whitespace in Python's Unicode sense, the piece's ends counting as
 * boundaries. Each BREAK becomes an entry ("BREAK", -1) between the parts. */
static int text_piece(parser *p, const char *s, size_t n) {
  size_t part = 0, from = 0; /* the current part starts at `part`; search from `from` */
  int rc;
  for (size_t b = from; b + 5 <= n; b++) {
    if (memcmp(s + b, "BREAK", 5)) continue;
    size_t st, len;
    if (b > 0 && is_word(cp_before(s, n, b, &st))) continue;
    if (b + 5 < n && is_word(cp_at(s, n, b + 5, &len))) continue;
    size_t ms = b, me = b + 5;
    while (ms > from) { /* the leading \s*: back over whitespace, not past the last match */
      uint32_t c = cp_before(s, n, ms, &st);
      if (!sd_text_isspace(c) || st < from) break;
      ms = st;
    }
    while (me < n) {
      uint32_t c = cp_at(s, n, me, &len);
      if (!sd_text_isspace(c)) break;
      me += len;
    }
    if ((rc = push(p, s + part, ms - part, 1.0)) || (rc = push(p, "BREAK", 5, -1.0))) return rc;
    part = from = me;
    b = me - 1; /* the loop's b++ resumes at me */
  }
  return push(p, s + part, n - part, 1.0);
}

/* At s[i] == ':': A1111's weight token ":\s*([+-]?[.\d]+)\s*\)" (ASCII digits). Returns 1
 * and the token's end and number span when it matches, else 0. */
static int weight_token(const char *s, size_t n, size_t i, size_t *end, size_t *num, size_t *numlen) {
  size_t j = i + 1, len;
  while (j < n && sd_text_isspace(cp_at(s, n, j, &len))) j += len;
  size_t a = j;
  if (j < n && (s[j] == '+' || s[j] == '-')) j++;
  size_t d = j;
  while (j < n && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) j++;
  if (j == d) return 0;
  size_t z = j;
  while (j < n && sd_text_isspace(cp_at(s, n, j, &len))) j += len;
  if (j >= n || s[j] != ')') return 0;
  *end = j + 1;
  *num = a;
  *numlen = z - a;
  return 1;
}

/* Python's float() of "[+-]?[.\d]+": valid with at most one '.' and at least one digit.
 * Converted exactly (digits as an integer mantissa with a decimal exponent, no locale).
 * 1 when malformed. */
static int parse_weight(const char *s, size_t n, double *w) {
  int dots = 0, digits = 0, frac = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '.') dots++;
    else if (s[i] >= '0' && s[i] <= '9') {
      digits++;
      frac += dots;
    }
  }
  if (dots > 1 || digits == 0) return 1;
  char *b = malloc(n + 32);
  if (!b) return sd_fail(SD_E_NOMEM, "prompt: out of memory");
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] != '.') b[o++] = s[i];
  snprintf(b + o, 32, "e-%d", frac);
  *w = strtod(b, NULL);
  free(b);
  return SD_OK;
}

static void parser_free(parser *p) {
  for (int i = 0; i < p->n; i++) free(p->e[i].s);
  free(p->e);
  free(p->round);
  free(p->square);
}

static int parse_a1111(const char *text, parser *p) {
  size_t n = strlen(text), i = 0;
  int rc = SD_OK;
  if (!(p->round = malloc((n + 1) * sizeof *p->round)) || !(p->square = malloc((n + 1) * sizeof *p->square)))
    return sd_fail(SD_E_NOMEM, "prompt: out of memory");
  while (i < n && !rc) {
    const char c = text[i];
    if (c == '\\') {
      if (i + 1 < n && strchr("()[]\\", text[i + 1])) {
        rc = push(p, text + i + 1, 1, 1.0);
        i += 2;
      } else { /* a lone backslash: dropped, as A1111 drops it */
        rc = push(p, "", 0, 1.0);
        i++;
      }
    } else if (c == '(') {
      p->round[p->nr++] = p->n;
      i++;
    } else if (c == '[') {
      p->square[p->ns++] = p->n;
      i++;
    } else if (c == ':') {
      size_t end, num, numlen;
      if (!weight_token(text, n, i, &end, &num, &numlen)) {
        rc = text_piece(p, ":", 1);
        i++;
      } else if (p->nr > 0) {
        double w = 0;
        int k = parse_weight(text + num, numlen, &w);
        if (k < 0) return k;
        if (k == 1) { /* the prompt's bytes are quoted: control characters escaped */
          char nb[48], tb[64], q1[96], q2[128];
          snprintf(nb, sizeof nb, "%.*s", (int)(numlen > 40 ? 40 : numlen), text + num);
          snprintf(tb, sizeof tb, "%.*s", (int)(end - i > 48 ? 48 : end - i), text + i);
          return sd_fail(SD_E_ARG, "malformed emphasis weight '%s' at byte %zu of '(...%s' (a number such as 1.3; "
                         "\\( and \\) are literal brackets)", sd_msg_quote(nb, q1, sizeof q1), num,
                         sd_msg_quote(tb, q2, sizeof q2));
        }
        rc = multiply_range(p, p->round[--p->nr], w);
        i = end;
      } else { /* no '(' open: the token is text */
        rc = text_piece(p, text + i, end - i);
        i = end;
      }
    } else if (c == ')') {
      if (p->nr > 0) rc = multiply_range(p, p->round[--p->nr], 1.1);
      else rc = text_piece(p, ")", 1);
      i++;
    } else if (c == ']') {
      if (p->ns > 0) rc = multiply_range(p, p->square[--p->ns], 1 / 1.1);
      else rc = text_piece(p, "]", 1);
      i++;
    } else {
      size_t j = i;
      while (j < n && !strchr("\\()[]:", text[j])) j++;
      rc = text_piece(p, text + i, j - i);
      i = j;
    }
  }
  if (rc) return rc;
  /* brackets left open apply to the end of the prompt (in the order they were opened) */
  for (int k = 0; k < p->nr && !rc; k++) rc = multiply_range(p, p->round[k], 1.1);
  for (int k = 0; k < p->ns && !rc; k++) rc = multiply_range(p, p->square[k], 1 / 1.1);
  if (rc) return rc;
  if (p->n == 0 && (rc = push(p, "", 0, 1.0))) return rc;
  /* runs of equal weights become one segment (tokenized as one text), each built once */
  int o = 0;
  for (int k = 0; k < p->n;) {
    int j = k + 1;
    size_t len = p->e[k].n;
    while (j < p->n && p->e[j].w == p->e[k].w) len += p->e[j++].n;
    entry e = {p->e[k].s, len, p->e[k].w};
    if (j > k + 1) {
      if (!(e.s = malloc(len + 1))) return sd_fail(SD_E_NOMEM, "prompt: out of memory");
      size_t at = 0;
      for (int q = k; q < j; q++) {
        memcpy(e.s + at, p->e[q].s, p->e[q].n);
        at += p->e[q].n;
        free(p->e[q].s);
        p->e[q].s = NULL;
      }
      e.s[len] = 0;
    } else {
      p->e[k].s = NULL;
    }
    p->e[o++] = e;
    k = j;
  }
  o--;
  p->n = o + 1;
  for (int k = 0; k < p->n; k++)
    if (!(fabs(p->e[k].w) <= FLT_MAX)) {
      char q[96];
      return sd_fail(SD_E_ARG, "emphasis weight of '%s' is out of range (%g)", sd_msg_quote(p->e[k].s, q, 48),
                     p->e[k].w);
    }
  return SD_OK;
}

void sd_prompt_parsed_free(sd_prompt_parsed *p) {
  if (!p) return;
  for (int i = 0; i < p->n; i++) free(p->seg[i].text);
  free(p->seg);
  free(p->visible);
  memset(p, 0, sizeof *p);
}

int sd_prompt_parse(const char *text, sd_prompt_syntax s, sd_prompt_parsed *out) {
  memset(out, 0, sizeof *out);
  if (!text) return sd_fail(SD_E_ARG, "prompt: no text");
  parser p;
  memset(&p, 0, sizeof p);
  int rc = s == SD_SYNTAX_A1111 ? parse_a1111(text, &p) : push(&p, text, strlen(text), 1.0);
  size_t vis = 1;
  for (int i = 0; i < p.n; i++) vis += p.e[i].n + 1;
  if (!rc && (!(out->seg = calloc((size_t)p.n + 1, sizeof *out->seg)) || !(out->visible = malloc(vis))))
    rc = sd_fail(SD_E_NOMEM, "prompt: out of memory");
  if (rc) {
    parser_free(&p);
    sd_prompt_parsed_free(out);
    return rc;
  }
  size_t v = 0;
  for (int i = 0; i < p.n; i++) {
    sd_prompt_seg *g = &out->seg[out->n++];
    g->is_break = s == SD_SYNTAX_A1111 && p.e[i].w == -1.0 && !strcmp(p.e[i].s, "BREAK");
    if (g->is_break) {
      out->breaks++;
      /* the visible text keeps the words apart where a BREAK was */
      size_t st;
      if (v > 0 && !sd_text_isspace(cp_before(out->visible, v, v, &st))) out->visible[v++] = ' ';
      g->text = p.e[i].s;
      g->weight = p.e[i].w;
      g->vis_off = v;
      continue;
    }
    g->text = p.e[i].s;
    g->weight = p.e[i].w;
    g->vis_off = v;
    memcpy(out->visible + v, g->text, p.e[i].n);
    v += p.e[i].n;
    if (g->weight != 1.0) out->weighted = 1;
  }
  out->visible[v] = 0;
  p.n = 0; /* the texts moved to out */
  parser_free(&p);
  return SD_OK;
}

/* ---- chunks -------------------------------------------------------------------------- */

void sd_prompt_chunks_free(sd_prompt_chunks *c) {
  if (!c) return;
  free(c->ids);
  free(c->weights);
  memset(c, 0, sizeof *c);
}

void sd_prompt_empty_chunk(const sd_tokenizer *tok, int32_t pad_id, int32_t ids[SD_CLIP_CONTEXT]) {
  ids[0] = sd_tokenizer_bos(tok);
  ids[1] = sd_tokenizer_eos(tok);
  for (int i = 2; i < SD_CLIP_CONTEXT; i++) ids[i] = pad_id;
}

typedef struct {
  const sd_tokenizer *tok;
  int32_t pad;
  int max;
  sd_prompt_chunks *c;
  int32_t t[SD_PROMPT_CHUNK_TOKENS];
  float w[SD_PROMPT_CHUNK_TOKENS];
  int len, last_comma;
} chunker;

/* A1111's next_chunk: frame the current chunk (BOS, tokens, EOS, padding) and start a new one. */
static int next_chunk(chunker *k) {
  sd_prompt_chunks *c = k->c;
  if (c->n >= k->max) return 1;
  int32_t *ids = c->ids + (size_t)c->n * SD_CLIP_CONTEXT;
  float *w = c->weights + (size_t)c->n * SD_CLIP_CONTEXT;
  ids[0] = sd_tokenizer_bos(k->tok);
  w[0] = 1.0f;
  for (int i = 0; i < k->len; i++) {
    ids[1 + i] = k->t[i];
    w[1 + i] = k->w[i];
    if (k->w[i] != 1.0f) c->weighted = 1;
  }
  ids[1 + k->len] = sd_tokenizer_eos(k->tok);
  w[1 + k->len] = 1.0f;
  for (int i = k->len + 2; i < SD_CLIP_CONTEXT; i++) {
    ids[i] = k->pad;
    w[i] = 1.0f;
  }
  c->n++;
  k->len = 0;
  k->last_comma = -1;
  return 0;
}

int sd_prompt_chunk(const sd_tokenizer *tok, const sd_prompt_parsed *parsed, sd_prompt_syntax s, int32_t pad_id,
                    int max_chunks, const char *what, sd_prompt_chunks *out) {
  memset(out, 0, sizeof *out);
  if (!tok || !parsed || max_chunks < 1) return sd_fail(SD_E_ARG, "prompt chunks: bad argument");
  if (!what) what = "the prompt";
  const int cap = s == SD_SYNTAX_PLAIN ? 1 : max_chunks;
  if (!(out->ids = malloc(sizeof *out->ids * SD_CLIP_CONTEXT * (size_t)cap)) ||
      !(out->weights = malloc(sizeof *out->weights * SD_CLIP_CONTEXT * (size_t)cap))) {
    sd_prompt_chunks_free(out);
    return sd_fail(SD_E_NOMEM, "prompt: out of memory");
  }
  int rc;
  if (s == SD_SYNTAX_PLAIN) {
    const char *text = parsed->n ? parsed->seg[0].text : "";
    if ((rc = sd_tokenize_prompt(tok, text, pad_id, SD_CLIP_CONTEXT, out->ids)) < 0) {
      sd_prompt_chunks_free(out);
      return rc;
    }
    for (int i = 0; i < SD_CLIP_CONTEXT; i++) out->weights[i] = 1.0f;
    out->n = 1;
    out->tokens = (size_t)rc - 2;
    return SD_OK;
  }
  chunker k = {.tok = tok, .pad = pad_id, .max = max_chunks, .c = out, .last_comma = -1};
  const int32_t comma = sd_tokenizer_lookup(tok, ",</w>");
  size_t total = 0;
  int over = 0;
  rc = SD_OK;
  for (int g = 0; g < parsed->n && !rc; g++) {
    const sd_prompt_seg *sg = &parsed->seg[g];
    if (sg->is_break) {
      over |= next_chunk(&k);
      continue;
    }
    int32_t *t = NULL;
    size_t nt = 0;
    if ((rc = sd_tokenize(tok, sg->text, strlen(sg->text), &t, &nt))) break;
    total += nt;
    const float w = (float)sg->weight; /* torch.asarray of the multipliers: float32 */
    for (size_t i = 0; i < nt && !over; i++) {
      if (t[i] == comma) {
        k.last_comma = k.len;
      } else if (k.len == SD_PROMPT_CHUNK_TOKENS && k.last_comma != -1 &&
                 k.len - k.last_comma <= SD_PROMPT_COMMA_BACKTRACK) {
        /* cut after the last comma; what follows it starts the next chunk */
        int at = k.last_comma + 1, nr = k.len - at;
        int32_t rt[SD_PROMPT_COMMA_BACKTRACK];
        float rw[SD_PROMPT_COMMA_BACKTRACK];
        memcpy(rt, k.t + at, sizeof *rt * (size_t)nr);
        memcpy(rw, k.w + at, sizeof *rw * (size_t)nr);
        k.len = at;
        if ((over = next_chunk(&k))) break;
        memcpy(k.t, rt, sizeof *rt * (size_t)nr);
        memcpy(k.w, rw, sizeof *rw * (size_t)nr);
        k.len = nr;
      }
      if (k.len == SD_PROMPT_CHUNK_TOKENS && (over = next_chunk(&k))) break;
      k.t[k.len] = t[i];
      k.w[k.len++] = w;
    }
    if (over) { /* count the rest, for the message */
      for (int h = g + 1; h < parsed->n && !rc; h++) {
        size_t m = 0;
        int32_t *u = NULL;
        if (!parsed->seg[h].is_break) rc = sd_tokenize(tok, parsed->seg[h].text, strlen(parsed->seg[h].text), &u, &m);
        free(u);
        total += m;
      }
      free(t);
      break;
    }
    free(t);
  }
  if (!rc && !over && (k.len > 0 || out->n == 0)) over = next_chunk(&k);
  if (!rc && over)
    rc = sd_fail(SD_E_ARG, "%s needs more than %d chunks of %d tokens (it has %zu tokens%s); shorten it, or use "
                 "--prompt-syntax plain to keep only its first %d tokens", what, max_chunks, SD_PROMPT_CHUNK_TOKENS,
                 total, parsed->breaks ? " and BREAKs" : "", SD_PROMPT_CHUNK_TOKENS);
  if (rc) {
    sd_prompt_chunks_free(out);
    return rc;
  }
  out->tokens = total;
  return SD_OK;
}

int sd_prompt_tokenize(const sd_tokenizer *tok, const char *text, sd_prompt_syntax s, int32_t pad_id,
                       const char *what, sd_prompt_chunks *out) {
  sd_prompt_parsed p;
  memset(out, 0, sizeof *out);
  int rc = sd_prompt_parse(text, s, &p);
  if (rc) return what ? sd_fail_prefix(rc, "%s: ", what) : rc;
  rc = sd_prompt_chunk(tok, &p, s, pad_id, SD_PROMPT_MAX_CHUNKS, what, out);
  sd_prompt_parsed_free(&p);
  return rc;
}
