/* Loading a CLIP tokenizer: Hugging Face's vocab.json + merges.txt, and OpenAI's
 * bpe_simple_vocab_16e6.txt.gz (the bundled default), into the tables of tokenizer.c. Every
 * file is untrusted input: sizes, lines and entries are bounded (tokenizer_internal.h). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* stat, getline */
#endif
#include "text/tokenizer_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"
#include "io/fileio.h"
#include "io/json_util.h"

/* ------------------------------------------------------------------------------------- */
/* loading                                                                                */

/* One merge line: exactly two symbols separated by spaces/tabs (Python's str.split()).
 * Returns 0 and the two spans, or -1. The line holds no '\n'; a trailing '\r' is ignored. */
static int split_merge(const char *line, size_t n, const char **a, size_t *an, const char **b,
                       size_t *bn) {
  const char *f[3];
  size_t fl[3];
  int nf = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\v' ||
                     line[i] == '\f'))
      i++;
    if (i >= n) break;
    size_t s = i;
    while (i < n && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\v' ||
                      line[i] == '\f'))
      i++;
    if (nf == 3) return -1;
    f[nf] = line + s;
    fl[nf] = i - s;
    nf++;
  }
  if (nf != 2) return -1;
  *a = f[0], *an = fl[0], *b = f[1], *bn = fl[1];
  return 0;
}

/* A printable excerpt of a (possibly binary) line for error messages. */
static const char *excerpt(const char *s, size_t n, char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7F) {
      buf[o++] = (char)c;
    } else {
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
    }
  }
  buf[o] = 0;
  return buf;
}

/* Add the merges (left[i], right[i]) in rank order; every piece and every concatenation
 * must be in the vocabulary. `file`/`first_line` let messages name the line. */
typedef struct {
  const char *a, *b;
  size_t an, bn;
  long line;
} merge_src;

static int add_merges(sd_tokenizer *t, const merge_src *m, int32_t n, const char *file) {
  int rc = sd_tok_merges_init(t, n);
  if (rc) return rc;
  char cat[2 * TOK_MAX_TOKEN_BYTES + 1];
  char e1[96], e2[96];
  for (int32_t i = 0; i < n; i++) {
    int32_t ia = sd_tok_vocab_find(t, m[i].a, m[i].an);
    int32_t ib = sd_tok_vocab_find(t, m[i].b, m[i].bn);
    if (ia < 0 || ib < 0) {
      const char *bad = ia < 0 ? m[i].a : m[i].b;
      size_t badn = ia < 0 ? m[i].an : m[i].bn;
      return sd_fail(SD_E_FORMAT, "%s: line %ld: merge piece \"%s\" is not in the vocabulary", file,
                     m[i].line, excerpt(bad, badn, e1, sizeof e1));
    }
    if (m[i].an + m[i].bn > sizeof cat - 1)
      return sd_fail(SD_E_FORMAT, "%s: line %ld: merge too long", file, m[i].line);
    memcpy(cat, m[i].a, m[i].an);
    memcpy(cat + m[i].an, m[i].b, m[i].bn);
    int32_t res = sd_tok_vocab_find(t, cat, m[i].an + m[i].bn);
    if (res < 0)
      return sd_fail(SD_E_FORMAT, "%s: line %ld: merge result \"%s\" is not in the vocabulary",
                     file, m[i].line, excerpt(cat, m[i].an + m[i].bn, e1, sizeof e1));
    int32_t old;
    if (sd_tok_merge_add(t, ia, ib, res, &old) != SD_OK)
      return sd_fail(SD_E_FORMAT, "%s: line %ld: merge \"%s %s\" repeats the merge of rank %d",
                     file, m[i].line, excerpt(m[i].a, m[i].an, e1, sizeof e1),
                     excerpt(m[i].b, m[i].bn, e2, sizeof e2), (int)old);
  }
  return SD_OK;
}

static int file_size(const char *path, size_t max, size_t *size) {
  struct stat st;
  if (stat(path, &st) != 0) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return sd_fail(SD_E_IO, "%s: not a regular file", path);
  if ((unsigned long long)st.st_size > (unsigned long long)max)
    return sd_fail(SD_E_FORMAT, "%s: file too large (%lld bytes, the limit is %zu)", path,
                   (long long)st.st_size, max);
  *size = (size_t)st.st_size;
  return SD_OK;
}

static int load_vocab_json(sd_tokenizer *t, const char *path) {
  size_t size;
  int rc = file_size(path, TOK_MAX_JSON_BYTES, &size);
  if (rc) return rc;
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return sd_fail(SD_E_FORMAT, "%s: not valid JSON: line %d column %d: %s", path, jerr.line,
                   jerr.column, jerr.text);
  if (!json_is_object(root)) {
    json_decref(root);
    return sd_fail(SD_E_FORMAT, "%s: expected a JSON object of token -> id", path);
  }
  size_t n = json_object_size(root);
  if (n == 0 || n > TOK_MAX_VOCAB) {
    json_decref(root);
    return sd_fail(SD_E_FORMAT, "%s: %zu vocabulary entries (expected 1..%d)", path, n,
                   TOK_MAX_VOCAB);
  }
  rc = sd_tok_vocab_init(t, (int32_t)n);
  const char *key;
  json_t *val;
  char e1[96];
  json_object_foreach(root, key, val) {
    if (rc) break;
    size_t kn = strlen(key);
    if (kn == 0 || kn > TOK_MAX_TOKEN_BYTES) {
      rc = sd_fail(SD_E_FORMAT, "%s: token \"%s\" has %zu bytes (expected 1..%d)", path,
                   excerpt(key, kn, e1, sizeof e1), kn, TOK_MAX_TOKEN_BYTES);
      break;
    }
    if (!json_is_integer(val)) {
      rc = sd_fail(SD_E_FORMAT, "%s: the id of token \"%s\" is not an integer", path,
                   excerpt(key, kn, e1, sizeof e1));
      break;
    }
    json_int_t id = json_integer_value(val);
    if (id < 0 || (json_int_t)n <= id) {
      rc = sd_fail(SD_E_FORMAT, "%s: the id of token \"%s\" is %lld, outside 0..%zu", path,
                   excerpt(key, kn, e1, sizeof e1), (long long)id, n - 1);
      break;
    }
    int32_t other = -1;
    int r = sd_tok_vocab_set(t, (int32_t)id, key, kn, &other);
    if (r == 1) {
      rc = sd_fail(SD_E_FORMAT, "%s: id %lld is used by more than one token (one is \"%s\")", path,
                   (long long)id, excerpt(key, kn, e1, sizeof e1));
    } else if (r != SD_OK) {
      rc = r < 0 ? r
                 : sd_fail(SD_E_FORMAT, "%s: token \"%s\" appears twice", path,
                           excerpt(key, kn, e1, sizeof e1));
    }
  }
  json_decref(root);
  /* n distinct ids in 0..n-1: every id is set. */
  return rc;
}

static int load_merges_txt(sd_tokenizer *t, const char *path) {
  size_t size;
  int rc = file_size(path, TOK_MAX_MERGES_BYTES, &size);
  if (rc) return rc;
  FILE *f = fopen(path, "rb");
  if (!f) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = malloc(size + 1);
  if (!buf) {
    fclose(f);
    return sd_fail(SD_E_NOMEM, "%s: out of memory (%zu bytes)", path, size);
  }
  size_t got = fread(buf, 1, size, f);
  int ioerr = ferror(f);
  fclose(f);
  if (ioerr || got != size) {
    free(buf);
    return sd_fail(SD_E_IO, "%s: read error", path);
  }
  buf[size] = 0;
  size_t bad = sd_tok_utf8_check(buf, size);
  if (bad != size) {
    free(buf);
    return sd_fail(SD_E_FORMAT, "%s: not valid UTF-8 (byte offset %zu)", path, bad);
  }
  merge_src *m = malloc((size_t)CLIP_N_MERGES * sizeof *m);
  if (!m) {
    free(buf);
    return sd_fail(SD_E_NOMEM, "%s: out of memory", path);
  }
  /* HF: read().strip().split("\n")[1:48895]: line 1 is the "#version" header. Here the
   * first line is skipped when it starts with '#'; at most 48,894 merges are used, and
   * anything after them is ignored, as HF does. */
  int32_t nm = 0;
  size_t p = 0;
  long line = 0;
  while (p < size && (buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' || buf[p] == '\n')) {
    if (buf[p] == '\n') line++;
    p++;
  }
  int first = 1;
  while (p < size && nm < CLIP_N_MERGES) {
    const char *ls = buf + p;
    const char *nl = memchr(ls, '\n', size - p);
    size_t ln = nl ? (size_t)(nl - ls) : size - p;
    p += ln + (nl ? 1 : 0);
    line++;
    if (first) {
      first = 0;
      if (ln > 0 && ls[0] == '#') continue;
    }
    /* trailing blank lines (HF strips the whole text) */
    int blank = 1;
    for (size_t i = 0; i < ln && blank; i++)
      if (!(ls[i] == ' ' || ls[i] == '\t' || ls[i] == '\r')) blank = 0;
    if (blank) {
      size_t q = p;
      while (q < size && (buf[q] == ' ' || buf[q] == '\t' || buf[q] == '\r' || buf[q] == '\n')) q++;
      if (q >= size) break;
    }
    merge_src *e = &m[nm];
    if (split_merge(ls, ln, &e->a, &e->an, &e->b, &e->bn) != 0) {
      char e1[96];
      rc = sd_fail(SD_E_FORMAT,
                   "%s: line %ld: expected two symbols separated by a space, got \"%s\"", path,
                   line, excerpt(ls, ln, e1, sizeof e1));
      break;
    }
    e->line = line;
    nm++;
  }
  if (!rc && nm == 0) rc = sd_fail(SD_E_FORMAT, "%s: no merges", path);
  if (!rc) rc = add_merges(t, m, nm, path);
  free(m);
  free(buf);
  return rc;
}

int sd_tokenizer_load_hf(const char *vocab_json, const char *merges_txt, sd_tokenizer **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_tokenizer_load_hf: out is NULL");
  *out = NULL;
  if (!vocab_json || !merges_txt) return sd_fail(SD_E_ARG, "sd_tokenizer_load_hf: NULL path");
  sd_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return sd_fail(SD_E_NOMEM, "tokenizer: out of memory");
  int rc = load_vocab_json(t, vocab_json);
  if (!rc) rc = load_merges_txt(t, merges_txt);
  if (!rc) rc = sd_tok_tok_finish(t, vocab_json);
  if (rc) {
    sd_tokenizer_free(t);
    return rc;
  }
  *out = t;
  return SD_OK;
}

int sd_tokenizer_load_openai_gz(const char *path, sd_tokenizer **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_tokenizer_load_openai_gz: out is NULL");
  *out = NULL;
  if (!path) return sd_fail(SD_E_ARG, "sd_tokenizer_load_openai_gz: NULL path");
  struct stat st;
  if (stat(path, &st) != 0) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return sd_fail(SD_E_IO, "%s: not a regular file", path);
  gzFile gz = gzopen(path, "rb");
  if (!gz) return sd_fail(SD_E_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));

  int rc = SD_OK;
  sd_tokenizer *t = calloc(1, sizeof *t);
  merge_src *m = malloc((size_t)CLIP_N_MERGES * sizeof *m);
  size_t text_cap = (size_t)1 << 20, text_len = 0;
  char *text = malloc(text_cap); /* the merge lines, each as "a\0b\0" */
  size_t *offs = malloc((size_t)CLIP_N_MERGES * 2 * sizeof *offs);
  char *line = malloc(TOK_MAX_LINE + 2);
  if (!t || !m || !text || !offs || !line) {
    rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path);
    goto done;
  }

  /* Line 1 is the header ("bpe_simple_vocab_16e6.txt#version: 0.2"); lines 2..48895 are
   * the merges CLIP uses; the rest of the file is not read. */
  int32_t nm = 0;
  for (long ln = 1; nm < CLIP_N_MERGES; ln++) {
    if (!gzgets(gz, line, TOK_MAX_LINE + 2)) {
      int zerr;
      const char *zmsg = gzerror(gz, &zerr);
      if (zerr != Z_OK)
        rc = sd_fail(SD_E_FORMAT, "%s: line %ld: gzip data is truncated or corrupt: %s", path, ln,
                     zmsg);
      else if (ln == 1)
        rc = sd_fail(SD_E_FORMAT, "%s: empty file", path);
      else
        rc = sd_fail(SD_E_FORMAT, "%s: has %d merges, CLIP needs %d (lines 2..%d)", path, (int)nm,
                     CLIP_N_MERGES, CLIP_N_MERGES + 1);
      goto done;
    }
    size_t n = strlen(line);
    int ended = n > 0 && line[n - 1] == '\n';
    if (!ended) {
      int zerr;
      const char *zmsg = gzerror(gz, &zerr);
      if (zerr != Z_OK) {
        rc = sd_fail(SD_E_FORMAT, "%s: line %ld: gzip data is truncated or corrupt: %s", path, ln,
                     zmsg);
        goto done;
      }
    }
    if (!ended && !gzeof(gz)) { /* gzgets stopped early: the buffer filled, or a NUL byte */
      rc = sd_fail(SD_E_FORMAT, "%s: line %ld is longer than %d bytes or holds a NUL byte", path,
                   ln, TOK_MAX_LINE);
      goto done;
    }
    if (ended) n--;
    if (ln == 1) continue;
    size_t bad = sd_tok_utf8_check(line, n);
    if (bad != n) {
      rc = sd_fail(SD_E_FORMAT, "%s: line %ld is not valid UTF-8 (byte %zu)", path, ln, bad);
      goto done;
    }
    const char *a, *b;
    size_t an, bn;
    if (split_merge(line, n, &a, &an, &b, &bn) != 0) {
      char e1[96];
      rc = sd_fail(SD_E_FORMAT,
                   "%s: line %ld: expected two symbols separated by a space, got \"%s\"", path, ln,
                   excerpt(line, n, e1, sizeof e1));
      goto done;
    }
    if (an > TOK_MAX_TOKEN_BYTES / 2 || bn > TOK_MAX_TOKEN_BYTES / 2) {
      rc = sd_fail(SD_E_FORMAT, "%s: line %ld: merge symbol too long", path, ln);
      goto done;
    }
    if (text_len + an + bn + 2 > text_cap) {
      text_cap *= 2;
      char *p2 = realloc(text, text_cap);
      if (!p2) {
        rc = sd_fail(SD_E_NOMEM, "%s: out of memory", path);
        goto done;
      }
      text = p2;
    }
    offs[2 * nm] = text_len;
    memcpy(text + text_len, a, an);
    text[text_len + an] = 0;
    text_len += an + 1;
    offs[2 * nm + 1] = text_len;
    memcpy(text + text_len, b, bn);
    text[text_len + bn] = 0;
    text_len += bn + 1;
    m[nm].an = an;
    m[nm].bn = bn;
    m[nm].line = ln;
    nm++;
  }
  for (int32_t i = 0; i < nm; i++) {
    m[i].a = text + offs[2 * i];
    m[i].b = text + offs[2 * i + 1];
  }

  /* The vocabulary, as clip/simple_tokenizer.py builds it. */
  rc = sd_tok_vocab_init(t, CLIP_VOCAB);
  if (rc) goto done;
  uint8_t order[256];
  uint32_t sym[256];
  sd_tok_bytes_to_unicode(order, sym);
  int32_t other;
  for (int k = 0; k < 256; k++) {
    char s[16];
    size_t n = sd_tok_utf8_put(sym[order[k]], s);
    memcpy(s + n, "</w>", 4);
    if (sd_tok_vocab_set(t, k, s, n, &other) != SD_OK ||
        sd_tok_vocab_set(t, 256 + k, s, n + 4, &other) != SD_OK) {
      rc = sd_fail(SD_E_INTERNAL, "tokenizer: byte symbols collide");
      goto done;
    }
  }
  char cat[TOK_MAX_TOKEN_BYTES + 1];
  for (int32_t i = 0; i < nm; i++) {
    memcpy(cat, m[i].a, m[i].an);
    memcpy(cat + m[i].an, m[i].b, m[i].bn);
    int r = sd_tok_vocab_set(t, 512 + i, cat, m[i].an + m[i].bn, &other);
    if (r < 0) {
      rc = r;
      goto done;
    }
    if (r != SD_OK) {
      char e1[96];
      rc = sd_fail(SD_E_FORMAT, "%s: line %ld: merge result \"%s\" repeats vocabulary entry %d",
                   path, m[i].line, excerpt(cat, m[i].an + m[i].bn, e1, sizeof e1), (int)other);
      goto done;
    }
  }
  if (sd_tok_vocab_set(t, CLIP_VOCAB - 2, SOT, SOT_LEN, &other) != SD_OK ||
      sd_tok_vocab_set(t, CLIP_VOCAB - 1, EOT, EOT_LEN, &other) != SD_OK) {
    rc = sd_fail(SD_E_FORMAT, "%s: a merge produces a special token", path);
    goto done;
  }
  rc = add_merges(t, m, nm, path);
  if (!rc) rc = sd_tok_tok_finish(t, path);

done:
  gzclose(gz);
  free(m);
  free(text);
  free(offs);
  free(line);
  if (rc) {
    sd_tokenizer_free(t);
    return rc;
  }
  *out = t;
  return SD_OK;
}

int sd_tokenizer_load_default(sd_tokenizer **out) {
  if (!out) return sd_fail(SD_E_ARG, "sd_tokenizer_load_default: out is NULL");
  *out = NULL;
  char path[4096];
  int rc = sd_data_file("clip/bpe_simple_vocab_16e6.txt.gz", path, sizeof path);
  return rc ? rc : sd_tokenizer_load_openai_gz(path, out);
}

