/* Conformance helper: the a1111 prompt parser and chunker (text/prompt.h) against the Python
 * reference of tools/ref/prompt_case.py (AUTOMATIC1111's parse_prompt_attention and
 * tokenize_line).
 *
 *   prompt_check CASES.json
 *
 * For every case: the parsed segments (text equal, weight equal to the last bit: the same
 * multiplications in the same order) and the chunks (ids, float32 weights) with the bundled
 * CLIP vocabulary (the reference models have no tokenizer/ folder either). Exit 0 when all
 * agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

static int check_case(const sd_tokenizer *tok, json_t *c, int k) {
  const char *prompt = json_string_value(json_object_get(c, "prompt"));
  json_t *segs = json_object_get(c, "segments"), *ids = json_object_get(c, "ids"), *ws = json_object_get(c, "weights");
  int32_t pad = (int32_t)json_integer_value(json_object_get(c, "pad"));
  sd_prompt_parsed p;
  if (sd_prompt_parse(prompt, SD_SYNTAX_A1111, &p)) {
    printf("case %d: parse error: %s\n", k, sd_errmsg());
    return 1;
  }
  int bad = 0;
  if ((size_t)p.n != json_array_size(segs)) {
    printf("case %d (%s): %d segments, reference %zu\n", k, prompt, p.n, json_array_size(segs));
    bad = 1;
  }
  for (int i = 0; i < p.n && !bad; i++) {
    json_t *s = json_array_get(segs, (size_t)i);
    const char *t = json_string_value(json_array_get(s, 0));
    double w = json_number_value(json_array_get(s, 1));
    int brk = !strcmp(t, "BREAK") && w == -1.0;
    if (strcmp(t, p.seg[i].text) || (!brk && w != p.seg[i].weight) || brk != p.seg[i].is_break) {
      printf("case %d (%s): segment %d is ('%s', %.17g, break %d), reference ('%s', %.17g, break %d)\n", k, prompt, i,
             p.seg[i].text, p.seg[i].weight, p.seg[i].is_break, t, w, brk);
      bad = 1;
    }
  }
  sd_prompt_chunks ch;
  if (!bad && sd_prompt_chunk(tok, &p, SD_SYNTAX_A1111, pad, SD_PROMPT_MAX_CHUNKS, "the prompt", &ch)) {
    printf("case %d: chunk error: %s\n", k, sd_errmsg());
    bad = 1;
  } else if (!bad) {
    if ((size_t)ch.n != json_array_size(ids)) {
      printf("case %d (%s): %d chunks, reference %zu\n", k, prompt, ch.n, json_array_size(ids));
      bad = 1;
    }
    for (int q = 0; q < ch.n && !bad; q++)
      for (int i = 0; i < SD_CLIP_CONTEXT && !bad; i++) {
        int32_t id = (int32_t)json_integer_value(json_array_get(json_array_get(ids, (size_t)q), (size_t)i));
        float w = (float)json_number_value(json_array_get(json_array_get(ws, (size_t)q), (size_t)i));
        if (id != ch.ids[q * SD_CLIP_CONTEXT + i] || w != ch.weights[q * SD_CLIP_CONTEXT + i]) {
          printf("case %d (%s): chunk %d position %d is (%d, %.9g), reference (%d, %.9g)\n", k, prompt, q, i,
                 ch.ids[q * SD_CLIP_CONTEXT + i], (double)ch.weights[q * SD_CLIP_CONTEXT + i], id, (double)w);
          bad = 1;
        }
      }
    sd_prompt_chunks_free(&ch);
  }
  sd_prompt_parsed_free(&p);
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASES.json\n", argv[0]);
    return 2;
  }
  json_error_t je;
  json_t *root = json_load_file(argv[1], 0, &je);
  sd_tokenizer *tok = NULL;
  if (!root || sd_tokenizer_load_default(&tok)) {
    fprintf(stderr, "error: %s\n", root ? sd_errmsg() : je.text);
    return 1;
  }
  json_t *cases = json_object_get(root, "cases");
  int fails = 0;
  for (size_t k = 0; k < json_array_size(cases); k++) fails += check_case(tok, json_array_get(cases, k), (int)k);
  printf("prompt syntax: %zu cases, %d differ from the reference\n", json_array_size(cases), fails);
  sd_tokenizer_free(tok);
  json_decref(root);
  return fails ? 1 : 0;
}
