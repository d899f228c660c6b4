/* Helpers shared by the cmocka unit tests. Include after <cmocka.h>'s prerequisites. */
#ifndef SD_TESTUTIL_H
#define SD_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "safety/bank.h"
#include "safety/detector.h"

/* Path of a file under ../shared (SAFESD_SHARED_DIR), written into a static buffer; NULL
 * (after printing "SKIP: <why>" to stdout) when it does not exist. Tests then call
 * cmocka's skip(), so an absent ../shared shows as SKIPPED, never as a silent pass. */
const char *sd_test_shared(const char *rel);
/* Path under the source tree / a per-test scratch directory (created on demand). */
const char *sd_test_src(const char *rel);
const char *sd_test_tmp(const char *rel);
/* Read a whole file (malloc'ed, NUL-terminated); NULL on failure. */
char *sd_test_read_file(const char *path, size_t *len);

/* Every string of the NULL-terminated list ap is in msg (cmocka assertions; a missing one is
 * printed first). */
void sd_test_msg_has_all(const char *msg, va_list ap);

/* Bit of bank category `cat` (the category must exist). */
uint32_t sd_test_cat_bit(const sd_bank *b, const char *cat);
/* Run detector d on prompt p; fail with its summary unless the fired categories include
 * `want` (0: it must not fire at all). */
void sd_test_expect_fired(sd_detector *d, const sd_bank *b, const char *p, uint32_t want);

/* The default bank and a lexical detector over it with WordNet on, its dictionary cache at
 * sd_test_tmp(cache_name) (removed first when fresh: the test then builds it); 0, or -1
 * after printing the error (a cmocka setup returns it). */
int sd_test_default_lexical(const char *cache_name, int fresh, sd_bank **bank, sd_detector **det);
/* The lexical detector (WordNet off) of a bank given as text; the sd_lexical_create return
 * code (the bank must parse). */
int sd_test_text_lexical(const char *bank_text, sd_bank **bank, sd_detector **det);

/* mkdir -p. */
void sd_test_mkdirs(const char *path);

/* A list of tensors to write into a small safetensors file (loader tests). */
#define SD_TEST_MAX_TENSORS 64
typedef struct sd_test_tensor {
  char name[128];
  sd_dtype dtype;
  int ndim;
  int64_t shape[4];
  const float *values; /* NULL: the writer's filler */
} sd_test_tensor;
typedef struct sd_test_tensors {
  sd_test_tensor t[SD_TEST_MAX_TENSORS];
  int n;
} sd_test_tensors;
/* Append a float32 tensor of the given shape (ndim of d0..d3); the list must have room. */
sd_test_tensor *sd_test_tensor_add(sd_test_tensors *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                                   int64_t d3);
/* The tensor called name, or NULL. */
sd_test_tensor *sd_test_tensor_find(sd_test_tensors *l, const char *name);
/* Write l to path (sd_st_write); element k of tensor i is values[k], else fill(t, i, k).
 * Returns the writer's status. */
int sd_test_tensors_write(const char *path, const sd_test_tensors *l, float (*fill)(const sd_test_tensor *t, int i, int64_t k));

#endif
