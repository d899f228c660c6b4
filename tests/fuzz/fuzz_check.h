/* Shared by the libFuzzer targets: an invariant that aborts (a crash libFuzzer reports). */
#ifndef SD_FUZZ_CHECK_H
#define SD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                                \
    }                                                                         \
  } while (0)

#endif
