/* libFuzzer target: the prompt syntax (text/prompt.h) on untrusted prompts.
 *
 * The input, NUL-terminated (inputs holding a NUL byte or invalid UTF-8 are what the API
 * refuses before parsing: skipped), is parsed in the a1111 syntax and cut into chunks with
 * the bundled CLIP vocabulary, and parsed and framed in the plain syntax. Invariants: the
 * parse either succeeds or fails with SD_E_ARG and a printable one-line message; on success
 * every segment's weight is finite and within float32, the visible text is no longer than
 * the prompt plus one space per BREAK, and each segment's text lies in the visible text at
 * its offset; the chunks are 1..8, each starting with BOS and ending with EOS or padding at
 * weight 1, every id in the vocabulary and every weight finite; the chunk error (too many
 * chunks) is SD_E_ARG.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/prompt.h"
#include "text/tokenizer.h"
#include "fuzz_check.h"


static sd_tokenizer *g_tok;

static void check_msg(int rc) {
  CHECK(rc == SD_E_ARG);
  for (const unsigned char *m = (const unsigned char *)sd_errmsg(); *m; m++) CHECK(*m >= 0x20 && *m != 0x7f);
}

static void check_chunks(const sd_prompt_chunks *c, int max) {
  CHECK(c->n >= 1 && c->n <= max);
  for (int k = 0; k < c->n; k++) {
    const int32_t *ids = c->ids + k * SD_CLIP_CONTEXT;
    const float *w = c->weights + k * SD_CLIP_CONTEXT;
    CHECK(ids[0] == sd_tokenizer_bos(g_tok) && w[0] == 1.0f);
    /* the last position is EOS or padding (both 49407 here), weight 1 */
    CHECK(ids[SD_CLIP_CONTEXT - 1] == 49407 && w[SD_CLIP_CONTEXT - 1] == 1.0f);
    for (int i = 0; i < SD_CLIP_CONTEXT; i++) CHECK(isfinite(w[i]) && ids[i] >= 0 && ids[i] < 49408);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_tok && sd_tokenizer_load_default(&g_tok)) abort();
  char *s = fuzz_prompt_text(data, size, 4096);
  if (!s) return 0;
  sd_prompt_parsed p;
  int rc = sd_prompt_parse(s, SD_SYNTAX_A1111, &p);
  if (rc) {
    check_msg(rc);
  } else {
    size_t vl = strlen(p.visible);
    CHECK(vl <= size + (size_t)p.breaks);
    for (int i = 0; i < p.n; i++) {
      CHECK(p.seg[i].text != NULL);
      if (p.seg[i].is_break) continue;
      CHECK(fabs(p.seg[i].weight) <= FLT_MAX);
      size_t tl = strlen(p.seg[i].text);
      CHECK(p.seg[i].vis_off + tl <= vl && !memcmp(p.visible + p.seg[i].vis_off, p.seg[i].text, tl));
    }
    sd_prompt_chunks c;
    rc = sd_prompt_chunk(g_tok, &p, SD_SYNTAX_A1111, 49407, SD_PROMPT_MAX_CHUNKS, "the prompt", &c);
    if (rc) check_msg(rc);
    else check_chunks(&c, SD_PROMPT_MAX_CHUNKS);
    sd_prompt_chunks_free(&c);
    sd_prompt_parsed_free(&p);
  }
  sd_prompt_chunks c;
  CHECK(sd_prompt_tokenize(g_tok, s, SD_SYNTAX_PLAIN, 49407, "the prompt", &c) == SD_OK);
  check_chunks(&c, 1);
  sd_prompt_chunks_free(&c);
  free(s);
  return 0;
}
