/* Helpers shared by the cmocka unit tests. Include after <cmocka.h>'s prerequisites. */
#ifndef SD_TESTUTIL_H
#define SD_TESTUTIL_H

#include <stddef.h>

/* Path of a file under ../shared (SAFESD_SHARED_DIR), written into a static buffer; NULL
 * (after printing "SKIP: <why>" to stdout) when it does not exist. Tests then call
 * cmocka's skip(), so an absent ../shared shows as SKIPPED, never as a silent pass. */
const char *sd_test_shared(const char *rel);
/* Path under the source tree / a per-test scratch directory (created on demand). */
const char *sd_test_src(const char *rel);
const char *sd_test_tmp(const char *rel);
/* Read a whole file (malloc'ed, NUL-terminated); NULL on failure. */
char *sd_test_read_file(const char *path, size_t *len);

#endif
