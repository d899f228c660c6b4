/* The CLIP BPE tokenizer, exact to Hugging Face's (slow) CLIPTokenizer on the path
 * diffusers uses (no ftfy): see ../shared/data/clip-tokenizer/README.md for the rules.
 *
 * Pipeline: special-token split (<|startoftext|>, <|endoftext|>) → clean (drop control,
 * format, unassigned, private-use chars; whitespace → ' ') → spaces around CJK ideographs
 * → NFC → split on whitespace, full lowercase (İ → i̇, final sigma), join → CLIP regex
 * (PCRE2, UTF + UCP, caseless) → bytes_to_unicode → BPE with </w> → ids → frame.
 */
#ifndef SD_TEXT_TOKENIZER_H
#define SD_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sd_tokenizer sd_tokenizer;

#define SD_CLIP_CONTEXT 77

/* Load from a diffusers tokenizer folder's vocab.json + merges.txt. Like HF: a first line
 * starting with '#' is the header, and at most 48,894 merges are read (the rest is ignored).
 * The files are untrusted: ids must be distinct integers 0..n-1, every merge line two
 * symbols, every merge piece and result in the vocabulary, no merge twice; the 512 byte
 * symbols and both special tokens must exist; files over 64 MiB are refused (SD_E_FORMAT;
 * SD_E_IO for a missing file). */
int sd_tokenizer_load_hf(const char *vocab_json, const char *merges_txt, sd_tokenizer **out);
/* Load from OpenAI's bpe_simple_vocab_16e6.txt.gz (first 48,894 merges; vocab derived). */
int sd_tokenizer_load_openai_gz(const char *path, sd_tokenizer **out);
/* Load the copy bundled with safesd (data/clip/bpe_simple_vocab_16e6.txt.gz): looked up in
 * $SAFESD_DATA_DIR, then the source tree, then the install prefix. */
int sd_tokenizer_load_default(sd_tokenizer **out);
void sd_tokenizer_free(sd_tokenizer *tok);

int32_t sd_tokenizer_vocab_size(const sd_tokenizer *tok);
int32_t sd_tokenizer_bos(const sd_tokenizer *tok);
int32_t sd_tokenizer_eos(const sd_tokenizer *tok);
/* Token string for an id ("cat</w>"), NULL if out of range. */
const char *sd_tokenizer_token(const sd_tokenizer *tok, int32_t id);

/* Id of a token string ("cat</w>", "<|endoftext|>"), -1 if absent. */
int32_t sd_tokenizer_lookup(const sd_tokenizer *tok, const char *token);

/* Tokenize text (UTF-8, len bytes, at most 1 MiB) to BPE ids without BOS/EOS or truncation.
 * Invalid UTF-8 is an SD_E_ARG error naming the byte offset. *ids is malloc'ed (also when
 * *n is 0), caller frees. */
int sd_tokenize(const sd_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n);
/* The same, appending to a caller-owned growable array (*ids: malloc'ed or NULL, *n used,
 * *cap allocated entries). For a prompt parser that tokenizes weighted segments one by one:
 * each span goes through the whole pipeline on its own. On error *n is left unchanged. The
 * tokenizer is only read: any number of threads may tokenize with it at once. */
int sd_tokenize_append(const sd_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                       size_t *n, size_t *cap);

/* Frame as the SD text encoder expects: BOS + first (ctx-2) ids + EOS, padded to ctx with
 * pad_id. out has ctx entries. Returns the real length (BOS..EOS inclusive). */
int sd_tokenizer_frame(const sd_tokenizer *tok, const int32_t *ids, size_t n, int32_t pad_id,
                       int ctx, int32_t *out);

/* SD_OK when text (NUL-terminated, may be NULL) is valid UTF-8; else SD_E_ARG "WHAT is not
 * valid UTF-8: byte 0xFF at byte offset N ("...")", the text quoted with its raw bytes
 * escaped (never echoed). */
int sd_text_check_utf8(const char *what, const char *text);

/* Python's str.isspace() for one code point (what the tokenizer splits words on, and the
 * \s of the prompt syntax's patterns). */
int sd_text_isspace(uint32_t c);

/* tokenize + frame in one call (ctx = SD_CLIP_CONTEXT typically). Returns real length (>0)
 * or a negative sd_status. */
int sd_tokenize_prompt(const sd_tokenizer *tok, const char *text, int32_t pad_id, int ctx,
                       int32_t *out);

#endif
