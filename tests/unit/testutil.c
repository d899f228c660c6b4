#include "testutil.h"

#include "io/safetensors.h"
#include "core/error.h"
#include "safety/lexical.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

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

void sd_test_mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *q = buf + 1; *q; q++)
    if (*q == '/') {
      *q = 0;
      mkdir(buf, 0755);
      *q = '/';
    }
  mkdir(buf, 0755);
}

sd_test_tensor *sd_test_tensor_add(sd_test_tensors *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                                   int64_t d3) {
  if (l->n >= SD_TEST_MAX_TENSORS) return NULL;
  sd_test_tensor *t = &l->t[l->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dtype = SD_F32;
  t->ndim = ndim;
  int64_t d[4] = {d0, d1, d2, d3};
  memcpy(t->shape, d, sizeof d);
  return t;
}

sd_test_tensor *sd_test_tensor_find(sd_test_tensors *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->t[i].name, name) == 0) return &l->t[i];
  return NULL;
}

int sd_test_tensors_write(const char *path, const sd_test_tensors *l, float (*fill)(const sd_test_tensor *t, int i, int64_t k)) {
  const char *names[SD_TEST_MAX_TENSORS];
  sd_tensor ts[SD_TEST_MAX_TENSORS];
  void *bufs[SD_TEST_MAX_TENSORS] = {0};
  int rc = 0;
  for (int i = 0; i < l->n && !rc; i++) {
    const sd_test_tensor *t = &l->t[i];
    sd_tensor h = sd_tensor_make(t->dtype, t->ndim, t->shape, NULL);
    int64_t n = sd_numel(&h);
    bufs[i] = calloc((size_t)(n ? n : 1), sd_dtype_size(t->dtype));
    float *f = sd_dtype_is_float(t->dtype) ? malloc((size_t)(n ? n : 1) * sizeof(float)) : NULL;
    if (!bufs[i] || (sd_dtype_is_float(t->dtype) && !f)) rc = -1;
    for (int64_t k = 0; f && k < n; k++) f[k] = t->values ? t->values[k] : fill(t, i, k);
    if (f) sd_from_f32(bufs[i], t->dtype, f, (size_t)n);
    free(f);
    h.data = bufs[i];
    names[i] = t->name;
    ts[i] = h;
  }
  if (!rc) rc = sd_st_write(path, (size_t)l->n, names, ts);
  for (int i = 0; i < l->n; i++) free(bufs[i]);
  return rc;
}

void sd_test_msg_has_all(const char *msg, va_list ap) {
  for (const char *s; (s = va_arg(ap, const char *));) {
    if (!strstr(msg, s)) print_message("missing '%s' in the message\n", s);
    assert_non_null(strstr(msg, s));
  }
}

uint32_t sd_test_cat_bit(const sd_bank *b, const char *cat) {
  int c = sd_bank_find(b, cat);
  assert_true(c >= 0);
  return 1u << c;
}

int sd_test_default_lexical(const char *cache_name, int fresh, sd_bank **bank, sd_detector **det) {
  const char *cache = sd_test_tmp(cache_name);
  if (fresh) remove(cache);
  sd_lexical_options o = {.wordnet = 1, .cache_path = cache};
  if (sd_bank_load_default(bank) || sd_lexical_create(*bank, &o, det)) {
    fprintf(stderr, "%s\n", sd_errmsg());
    return -1;
  }
  return 0;
}

int sd_test_text_lexical(const char *bank_text, sd_bank **bank, sd_detector **det) {
  sd_lexical_options o = {.wordnet = 0, .cache_path = ""};
  *det = NULL;
  assert_int_equal(sd_bank_parse(bank_text, strlen(bank_text), "test bank", bank), SD_OK);
  return sd_lexical_create(*bank, &o, det);
}

void sd_test_expect_fired(sd_detector *d, const sd_bank *b, const char *p, uint32_t want) {
  sd_detection r;
  assert_int_equal(sd_detector_run(d, p, NULL, &r), SD_OK);
  char *s = sd_detection_summary(b, &r);
  if (want ? (r.categories & want) != want : r.fired) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s: want %s, got %s", p, want ? "flagged" : "not flagged", s);
    free(s);
    sd_detection_free(&r);
    fail_msg("%s", msg);
  }
  free(s);
  sd_detection_free(&r);
}
