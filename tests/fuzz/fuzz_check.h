/* Shared by the libFuzzer targets: an invariant that aborts (a crash libFuzzer reports). */
#ifndef SD_FUZZ_CHECK_H
#define SD_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* The input as a prompt: NUL-terminated and malloc'd, or NULL for what the API refuses before
 * any parsing (longer than max bytes, a NUL byte, invalid UTF-8: sd_text_check_utf8). */
static inline char *fuzz_prompt_text(const uint8_t *data, size_t size, size_t max) {
  if (size > max || memchr(data, 0, size)) return NULL;
  char *s = malloc(size + 1);
  CHECK(s != NULL);
  memcpy(s, data, size);
  s[size] = 0;
  if (sd_text_check_utf8("fuzz", s)) {
    free(s);
    return NULL;
  }
  return s;
}

#endif
