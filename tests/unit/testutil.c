#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *sd_test_shared(const char *rel) {
  static _Thread_local char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", SAFESD_SHARED_DIR, rel);
  struct stat st;
  if (stat(buf, &st) != 0) {
    printf("SKIP: %s is absent (the shared test data folder ../shared is not beside the checkout)\n", buf);
    fflush(stdout);
    return NULL;
  }
  return buf;
}

const char *sd_test_src(const char *rel) {
  static _Thread_local char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", SAFESD_SOURCE_DIR, rel);
  return buf;
}

const char *sd_test_tmp(const char *rel) {
  static _Thread_local char buf[4096];
  mkdir(SAFESD_TEST_TMP, 0755);
  snprintf(buf, sizeof buf, "%s/%s", SAFESD_TEST_TMP, rel);
  return buf;
}

char *sd_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)sz + 1);
  if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) { free(buf); buf = NULL; }
  fclose(f);
  if (buf) { buf[sz] = 0; if (len) *len = (size_t)sz; }
  return buf;
}
