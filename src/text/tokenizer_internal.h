/* The tokenizer's internals, shared by tokenizer.c (the tables and tokenizing) and
 * tokenizer_load.c (reading vocab.json + merges.txt and OpenAI's bpe_simple_vocab_16e6.txt.gz).
 * Not for other modules: they use text/tokenizer.h. */
#ifndef SD_TEXT_TOKENIZER_INTERNAL_H
#define SD_TEXT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/tokenizer.h"

/* ---- limits (the files are untrusted input) ---- */

#define TOK_MAX_JSON_BYTES (64u << 20)       /* vocab.json */
#define TOK_MAX_MERGES_BYTES (64u << 20)     /* merges.txt */
#define TOK_MAX_LINE 4096                    /* one line of the gz file */
#define TOK_MAX_VOCAB (1 << 22)              /* entries in a vocabulary */
#define TOK_MAX_TOKEN_BYTES 1024             /* bytes in one vocabulary entry */
#define TOK_MAX_TEXT_BYTES ((size_t)1 << 20) /* one text passed to sd_tokenize */

/* CLIP uses merges[1 : 49152 - 256 - 2 + 1] of its merges file: 48,894 merges. */
#define CLIP_N_MERGES (49152 - 256 - 2)
#define CLIP_VOCAB (256 * 2 + CLIP_N_MERGES + 2)

static const char SOT[] = "<|startoftext|>";
static const char EOT[] = "<|endoftext|>";
#define SOT_LEN (sizeof SOT - 1)
#define EOT_LEN (sizeof EOT - 1)

struct merge_slot {
  uint64_t key; /* left id << 32 | right id; UINT64_MAX = empty */
  int32_t rank, res;
};

struct sd_tokenizer {
  int32_t n_vocab;
  char *pool; /* all token strings, each NUL-terminated */
  size_t pool_len, pool_cap;
  uint32_t *tok_off; /* id -> offset into pool (UINT32_MAX: unset) */
  uint32_t *tok_len; /* id -> length in bytes */
  int32_t *vslot;    /* string -> id hash table; -1 = empty */
  uint32_t vmask;

  struct merge_slot *mslot; /* (left << 32 | right) -> rank, merged id */
  uint32_t mmask;
  int32_t n_merges;

  int32_t byte_id[256];     /* byte -> id of its bytes_to_unicode symbol */
  int32_t byte_end_id[256]; /* byte -> id of symbol + "</w>" */
  int32_t bos, eos;
  pcre2_code *re;
};

/* UTF-8: the length of the valid prefix of s[0..len); one code point written to o (1-4 bytes) */
size_t sd_tok_utf8_check(const char *s, size_t len);
size_t sd_tok_utf8_put(uint32_t cp, char *o);
/* GPT-2's bytes_to_unicode: byte order and the symbol of each byte */
void sd_tok_bytes_to_unicode(uint8_t order[256], uint32_t sym[256]);
/* the tables (tokenizer.c): vocabulary and merges, filled by the loaders, then finished */
int sd_tok_merge_add(sd_tokenizer *t, int32_t a, int32_t b, int32_t res, int32_t *rank_old);
int sd_tok_merges_init(sd_tokenizer *t, int32_t n);
int sd_tok_tok_finish(sd_tokenizer *t, const char *what);
int32_t sd_tok_vocab_find(const sd_tokenizer *t, const char *s, size_t n);
int sd_tok_vocab_init(sd_tokenizer *t, int32_t n);
int sd_tok_vocab_set(sd_tokenizer *t, int32_t id, const char *s, size_t n, int32_t *other);

#endif
