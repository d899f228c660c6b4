/* Prompt syntax (docs/prompts.md): AUTOMATIC1111's emphasis syntax and 75-token chunks.
 *
 * Two syntaxes:
 *   a1111 (the default): the prompt is parsed as AUTOMATIC1111's parse_prompt_attention does
 *     ("(word)" x1.1, "[word]" /1.1, "(word:1.3)", nesting multiplies, "\(" "\)" "\[" "\]"
 *     "\\" escapes, unbalanced brackets closed at the end, "BREAK" as its own word ends a
 *     chunk), each weighted segment is tokenized on its own, and the tokens are cut into
 *     chunks of 75 (each framed BOS .. EOS and padded to 77) as A1111's tokenize_line does:
 *     a chunk that fills up is cut after its last comma when that comma is among its last 20
 *     tokens, the rest moving to the next chunk. Up to SD_PROMPT_MAX_CHUNKS chunks; a longer
 *     prompt is an error (nothing is truncated silently).
 *   plain: the text as it is, one 77-token window (BOS, the first 75 tokens, EOS, padding),
 *     as diffusers' StableDiffusionPipeline does; text past the window is dropped.
 *
 * The encoder then sees every chunk separately (sd_api_encode_chunks), each token's hidden
 * state multiplied by its weight and the chunk's states rescaled to their original mean.
 *
 * Deviations from A1111, documented in docs/prompts.md: weights are read with ASCII digits
 * only; a malformed weight inside an open '(' ("(a:1.2.3)") is an error here (A1111 stops
 * with a Python ValueError); A1111's prompt editing "[a:b:0.5]" and alternation "[a|b]" are
 * not implemented (their brackets act as emphasis brackets, as in parse_prompt_attention).
 */
#ifndef SD_TEXT_PROMPT_H
#define SD_TEXT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

typedef enum { SD_SYNTAX_A1111 = 0, SD_SYNTAX_PLAIN = 1, SD_SYNTAX_CHUNKED = 2 } sd_prompt_syntax;
/* SD_SYNTAX_CHUNKED (internal): no syntax (the text is one segment of weight 1), cut into
 * chunks like a1111: the safe texts the safety layer builds from a prompt's visible text. */

#define SD_PROMPT_CHUNK_TOKENS 75 /* word tokens of one chunk (77 with BOS and EOS) */
#define SD_PROMPT_MAX_CHUNKS 8    /* 600 tokens */
#define SD_PROMPT_COMMA_BACKTRACK 20

/* "a1111" (also NULL: the default) or "plain" -> syntax; SD_E_ARG with a one-line reason. */
int sd_prompt_syntax_parse(const char *name, sd_prompt_syntax *out);
const char *sd_prompt_syntax_name(sd_prompt_syntax s);

typedef struct sd_prompt_seg {
  char *text;     /* the segment's text (escapes resolved) */
  double weight;  /* its multiplier (a Python float, computed in the same order as A1111) */
  int is_break;   /* a BREAK: ends the current chunk; text and weight are not used */
  size_t vis_off; /* where text starts in the visible text */
} sd_prompt_seg;

typedef struct sd_prompt_parsed {
  sd_prompt_seg *seg;
  int n;
  char *visible;  /* the text without the syntax (weights and brackets stripped, escapes
                     resolved, a BREAK replaced by one space): what the detectors judge */
  int weighted;   /* some segment has a weight other than 1 */
  int breaks;     /* BREAKs that end a chunk */
} sd_prompt_parsed;

/* Parse text (UTF-8, NUL-terminated) in syntax s. plain and chunked: one segment, the text
 * itself. Errors: SD_E_ARG for a malformed weight ("(a:1.2.3)"), SD_E_NOMEM. */
int sd_prompt_parse(const char *text, sd_prompt_syntax s, sd_prompt_parsed *out);
void sd_prompt_parsed_free(sd_prompt_parsed *p);

typedef struct sd_prompt_chunks {
  int n;           /* chunks (>= 1) */
  int32_t *ids;    /* [n, 77]: BOS, up to 75 tokens, EOS, padding */
  float *weights;  /* [n, 77]: each position's multiplier (1 for BOS, EOS, padding) */
  int weighted;    /* some weight is not 1 */
  size_t tokens;   /* word tokens of the prompt (all chunks; a1111's "token count") */
} sd_prompt_chunks;

/* Cut parsed into chunks for an encoder whose padding id is pad_id. plain: one window (text
 * past 75 tokens dropped); a1111 and chunked: A1111's chunks, at most max_chunks (else
 * SD_E_ARG naming the count). what names the text in errors ("the prompt"). */
int sd_prompt_chunk(const sd_tokenizer *tok, const sd_prompt_parsed *parsed, sd_prompt_syntax s, int32_t pad_id,
                    int max_chunks, const char *what, sd_prompt_chunks *out);
void sd_prompt_chunks_free(sd_prompt_chunks *c);

/* parse + chunk in one call. */
int sd_prompt_tokenize(const sd_tokenizer *tok, const char *text, sd_prompt_syntax s, int32_t pad_id,
                       const char *what, sd_prompt_chunks *out);

/* The empty chunk: BOS, EOS, padding (what a shorter conditioning is padded with). */
void sd_prompt_empty_chunk(const sd_tokenizer *tok, int32_t pad_id, int32_t ids[SD_CLIP_CONTEXT]);

#endif
