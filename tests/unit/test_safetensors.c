/* safetensors reader/writer: the regression corpus (tests/corpus/safetensors), the valid
 * edge cases, truncation at every length, write/read round trips and write failures. */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "testutil.h"

#define CORPUS "tests/corpus/safetensors"

static char *xdup(const char *s) {
  char *d = strdup(s);
  assert_non_null(d);
  return d;
}

/* Fail with the message when it does not contain want. */
static void assert_msg_has(const char *what, const char *want) {
  const char *msg = sd_errmsg();
  if (!strstr(msg, want)) {
    print_error("%s: error message\n  %s\ndoes not contain\n  %s\n", what, msg, want);
    fail();
  }
}

/* A malloc'ed copy of exactly len bytes, so that ASan catches any read past the end. */
static void *exact_copy(const void *src, size_t len) {
  void *p = malloc(len ? len : 1);
  assert_non_null(p);
  if (len) memcpy(p, src, len);
  return p;
}

/* ---- the malformed corpus --------------------------------------------------------- */

static void test_corpus_bad(void **state) {
  (void)state;
  char *tsv = sd_test_read_file(sd_test_src(CORPUS "/EXPECTED.tsv"), NULL);
  assert_non_null(tsv);
  int count = 0;
  char *save = NULL;
  for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#' || line[0] == 0) continue;
    char *tab = strchr(line, '\t');
    assert_non_null(tab);
    *tab = 0;
    const char *file = line, *want = tab + 1;
    char rel[512];
    snprintf(rel, sizeof rel, CORPUS "/%s", file);
    char *path = xdup(sd_test_src(rel));

    /* From the file (mmap path). */
    sd_safetensors *st = (sd_safetensors *)1;
    int rc = sd_st_open(path, &st);
    if (rc != SD_E_FORMAT) print_error("%s: rc %d (%s)\n", file, rc, sd_errmsg());
    assert_int_equal(rc, SD_E_FORMAT);
    assert_null(st);
    assert_msg_has(file, want);
    assert_msg_has(file, path); /* names the file */

    /* From memory (exact-size buffer). */
    size_t len = 0;
    char *buf = sd_test_read_file(path, &len);
    assert_non_null(buf);
    void *copy = exact_copy(buf, len);
    st = (sd_safetensors *)1;
    rc = sd_st_open_memory(copy, len, "mem.safetensors", &st);
    assert_int_equal(rc, SD_E_FORMAT);
    assert_null(st);
    assert_msg_has(file, want);
    assert_true(strncmp(sd_errmsg(), "mem.safetensors: ", 17) == 0);
    /* One line, no raw control characters, whatever the file held. */
    for (const unsigned char *m = (const unsigned char *)sd_errmsg(); *m; m++)
      assert_true(*m >= 0x20 && *m != 0x7f);
    free(copy);
    free(buf);
    free(path);
    count++;
  }
  free(tsv);
  assert_true(count >= 25);
}

/* Every bad_* file is listed in EXPECTED.tsv (none escapes the test). */
static void test_corpus_complete(void **state) {
  (void)state;
  char *tsv = sd_test_read_file(sd_test_src(CORPUS "/EXPECTED.tsv"), NULL);
  assert_non_null(tsv);
  DIR *d = opendir(sd_test_src(CORPUS));
  assert_non_null(d);
  struct dirent *de;
  int bad = 0, valid = 0;
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    size_t l = strlen(n);
    if (l < 12 || strcmp(n + l - 12, ".safetensors") != 0) continue;
    if (strncmp(n, "valid_", 6) == 0) { valid++; continue; }
    assert_true(strncmp(n, "bad_", 4) == 0);
    char key[300];
    snprintf(key, sizeof key, "\n%s\t", n);
    if (!strstr(tsv, key)) { print_error("%s is not listed in EXPECTED.tsv\n", n); fail(); }
    bad++;
  }
  closedir(d);
  free(tsv);
  assert_true(bad >= 25);
  assert_true(valid >= 5);
}

/* ---- the valid corpus ------------------------------------------------------------- */

static sd_safetensors *open_valid(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, CORPUS "/%s.safetensors", name);
  sd_safetensors *st = NULL;
  int rc = sd_st_open(sd_test_src(rel), &st);
  if (rc) print_error("%s: %s\n", name, sd_errmsg());
  assert_int_equal(rc, SD_OK);
  assert_non_null(st);
  assert_int_equal(st->mapped, 1);
  return st;
}

static const sd_st_entry *expect(const sd_safetensors *st, const char *name, sd_dtype dt,
                                 int ndim, const int64_t *shape) {
  const sd_st_entry *e = sd_st_find(st, name);
  if (!e) print_error("tensor %s not found\n", name);
  assert_non_null(e);
  assert_string_equal(e->name, name);
  assert_int_equal(e->dtype, dt);
  assert_int_equal(e->ndim, ndim);
  for (int i = 0; i < ndim; i++) assert_int_equal(e->shape[i], shape[i]);
  sd_tensor t = sd_st_tensor(e);
  assert_int_equal((uint64_t)sd_numel(&t) * sd_dtype_size(dt), e->end - e->begin);
  assert_ptr_equal(t.data, e->data);
  return e;
}

static float f32_at(const sd_st_entry *e, size_t i) {
  float f;
  memcpy(&f, (const char *)e->data + 4 * i, 4);
  return f;
}

static void test_valid_zero_tensors(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_zero_tensors");
  assert_int_equal(st->n, 0);
  assert_int_equal(st->n_meta, 0);
  assert_null(sd_st_find(st, "w"));
  assert_null(sd_st_meta(st, "format"));
  sd_st_close(st);
  st = open_valid("valid_metadata_only");
  assert_int_equal(st->n, 0);
  assert_string_equal(sd_st_meta(st, "format"), "pt");
  sd_st_close(st);
}

static void test_valid_metadata(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_metadata");
  assert_int_equal(st->n, 1);
  assert_int_equal(st->n_meta, 2);
  assert_string_equal(sd_st_meta(st, "format"), "pt");
  assert_string_equal(sd_st_meta(st, "note"), "h\xc3\xa9llo");
  assert_null(sd_st_meta(st, "missing"));
  assert_null(sd_st_meta(st, NULL));
  assert_null(sd_st_find(st, "__metadata__"));
  const sd_st_entry *e = expect(st, "w", SD_F32, 1, (int64_t[]){2});
  assert_true(f32_at(e, 0) == 1.0f && f32_at(e, 1) == -2.5f);
  sd_st_close(st);
}

static void test_valid_empty_tensor(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_empty_tensor");
  assert_int_equal(st->n, 3);
  const sd_st_entry *e = expect(st, "empty", SD_F32, 1, (int64_t[]){0});
  assert_int_equal(e->begin, e->end);
  e = expect(st, "empty2d", SD_F16, 2, (int64_t[]){3, 0});
  assert_int_equal(e->begin, 2);
  e = expect(st, "x", SD_U8, 1, (int64_t[]){2});
  assert_int_equal(((const unsigned char *)e->data)[0], 7);
  assert_int_equal(((const unsigned char *)e->data)[1], 9);
  sd_st_close(st);
}

static void test_valid_dtypes(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_dtypes");
  assert_int_equal(st->n, 6);
  float f[2];
  const sd_st_entry *e = expect(st, "h", SD_F16, 1, (int64_t[]){2});
  sd_to_f32(f, e->data, SD_F16, 2);
  assert_true(f[0] == 1.0f && f[1] == -2.0f);
  e = expect(st, "b", SD_BF16, 1, (int64_t[]){2});
  sd_to_f32(f, e->data, SD_BF16, 2);
  assert_true(f[0] == 1.0f && f[1] == 0.5f);
  e = expect(st, "i", SD_I64, 1, (int64_t[]){2});
  int64_t iv[2];
  memcpy(iv, e->data, 16);
  assert_true(iv[0] == -1 && iv[1] == (int64_t)1 << 40);
  e = expect(st, "s", SD_F32, 0, NULL); /* a scalar: rank 0, one element */
  assert_true(f32_at(e, 0) == 3.5f);
  e = expect(st, "d", SD_F64, 1, (int64_t[]){1});
  sd_to_f32(f, e->data, SD_F64, 1);
  assert_true(f[0] == 0.25f);
  e = expect(st, "m", SD_BOOL, 1, (int64_t[]){3});
  assert_memory_equal(e->data, "\x01\x00\x01", 3);
  sd_st_close(st);
}

static void test_valid_unaligned(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_unaligned");
  const sd_st_entry *e = expect(st, "f", SD_F32, 1, (int64_t[]){2});
  assert_int_equal(e->begin, 3);
  assert_true(f32_at(e, 0) == 1.5f && f32_at(e, 1) == -0.25f);
  e = expect(st, "s", SD_I16, 1, (int64_t[]){1});
  int16_t s;
  memcpy(&s, e->data, 2);
  assert_int_equal(s, -7);
  expect(st, "bytes", SD_U8, 1, (int64_t[]){3});
  sd_st_close(st);

  st = open_valid("valid_unpadded_header");
  e = expect(st, "f", SD_F32, 1, (int64_t[]){1});
  assert_true(((uintptr_t)e->data - (uintptr_t)st->base) % 4 != 0);
  assert_true(f32_at(e, 0) == 2.0f);
  sd_st_close(st);
}

static void test_valid_misc(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_unsorted");
  assert_int_equal(st->n, 3);
  assert_string_equal(st->entries[0].name, "a"); /* sorted by name */
  assert_string_equal(st->entries[1].name, "m");
  assert_string_equal(st->entries[2].name, "z");
  assert_true(f32_at(sd_st_find(st, "z"), 0) == 26.0f);
  assert_true(f32_at(sd_st_find(st, "a"), 0) == 1.0f);
  assert_true(f32_at(sd_st_find(st, "m"), 0) == 13.0f);
  sd_st_close(st);

  st = open_valid("valid_rank8");
  expect(st, "r", SD_F32, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1});
  sd_st_close(st);

  st = open_valid("valid_whitespace");
  assert_true(f32_at(expect(st, "w", SD_F32, 1, (int64_t[]){1}), 0) == -1.0f);
  sd_st_close(st);
}

/* ---- truncation ------------------------------------------------------------------- */

static const char *const k_valid[] = {
  "valid_zero_tensors", "valid_metadata", "valid_metadata_only", "valid_empty_tensor",
  "valid_dtypes", "valid_unaligned", "valid_unpadded_header", "valid_unsorted", "valid_rank8",
  "valid_whitespace",
};

static void test_truncation(void **state) {
  (void)state;
  for (size_t f = 0; f < sizeof k_valid / sizeof *k_valid; f++) {
    char rel[256];
    snprintf(rel, sizeof rel, CORPUS "/%s.safetensors", k_valid[f]);
    size_t len = 0;
    char *buf = sd_test_read_file(sd_test_src(rel), &len);
    assert_non_null(buf);
    sd_safetensors *st = NULL;
    void *whole = exact_copy(buf, len);
    assert_int_equal(sd_st_open_memory(whole, len, k_valid[f], &st), SD_OK);
    sd_st_close(st);
    free(whole);
    for (size_t cut = 0; cut < len; cut++) {
      void *copy = exact_copy(buf, cut);
      st = (sd_safetensors *)1;
      int rc = sd_st_open_memory(copy, cut, "truncated", &st);
      if (rc != SD_E_FORMAT) print_error("%s cut at %zu: rc %d\n", k_valid[f], cut, rc);
      assert_int_equal(rc, SD_E_FORMAT);
      assert_null(st);
      assert_true(strncmp(sd_errmsg(), "truncated: ", 11) == 0);
      free(copy);
    }
    /* And through the file path (mmap) for every length of one file. */
    if (strcmp(k_valid[f], "valid_dtypes") == 0) {
      const char *tmp = sd_test_tmp("truncated.safetensors");
      for (size_t cut = 0; cut < len; cut++) {
        FILE *o = fopen(tmp, "wb");
        assert_non_null(o);
        assert_int_equal(fwrite(buf, 1, cut, o), cut);
        assert_int_equal(fclose(o), 0);
        st = NULL;
        assert_int_equal(sd_st_open(tmp, &st), SD_E_FORMAT);
        assert_null(st);
        assert_msg_has("truncated file", tmp);
      }
      unlink(tmp);
    }
    free(buf);
  }
}

/* ---- open errors ------------------------------------------------------------------ */

static void test_open_errors(void **state) {
  (void)state;
  sd_safetensors *st = (sd_safetensors *)1;
  const char *missing = sd_test_tmp("no-such-file.safetensors");
  assert_int_equal(sd_st_open(missing, &st), SD_E_IO);
  assert_null(st);
  assert_msg_has("missing", missing);
  assert_msg_has("missing", "No such file");

  char *dir = xdup(sd_test_tmp("a-directory.safetensors"));
  mkdir(dir, 0755);
  assert_int_equal(sd_st_open(dir, &st), SD_E_IO);
  assert_msg_has("directory", "is a directory");
  rmdir(dir);
  free(dir);

  /* A FIFO must be refused at once, not block the open. */
  char *fifo = xdup(sd_test_tmp("fifo.safetensors"));
  unlink(fifo);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(sd_st_open(fifo, &st), SD_E_IO);
  assert_msg_has("fifo", "not a regular file");
  unlink(fifo);
  free(fifo);

  const char *empty = sd_test_tmp("empty.safetensors");
  FILE *f = fopen(empty, "wb");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(sd_st_open(empty, &st), SD_E_FORMAT);
  assert_msg_has("empty", "file is empty");
  unlink(empty);

  assert_int_equal(sd_st_open(NULL, &st), SD_E_ARG);
  assert_int_equal(sd_st_open(missing, NULL), SD_E_ARG);
  assert_int_equal(sd_st_open_memory(NULL, 8, "x", &st), SD_E_ARG);
  assert_int_equal(sd_st_open_memory(NULL, 0, NULL, &st), SD_E_FORMAT);
  assert_msg_has("null label", "<memory>: file is empty");
  sd_st_close(NULL);
  assert_null(sd_st_find(NULL, "x"));
  assert_null(sd_st_meta(NULL, "x"));
}

/* ---- writing ---------------------------------------------------------------------- */

static int tmp_leftovers(const char *dirpath, const char *prefix) {
  DIR *d = opendir(dirpath);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && strstr(de->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

static void test_roundtrip(void **state) {
  (void)state;
  float a[6] = {1, -2, 3.5f, 0, 1e-3f, -1e6f};
  uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  uint16_t bf[1] = {0x3f80};
  int64_t iv[2] = {INT64_MIN, INT64_MAX};
  unsigned char u8[3] = {1, 2, 255};
  float sc = 42.0f;
  sd_tensor t[7] = {
    sd_tensor_make(SD_U8, 1, (int64_t[]){3}, u8), /* odd size: everything after is unaligned */
    sd_tensor_make(SD_F32, 2, (int64_t[]){2, 3}, a),
    sd_tensor_make(SD_F16, 1, (int64_t[]){4}, h),
    sd_tensor_make(SD_BF16, 3, (int64_t[]){1, 1, 1}, bf),
    sd_tensor_make(SD_F32, 2, (int64_t[]){0, 5}, NULL), /* empty, no data */
    sd_tensor_make(SD_I64, 1, (int64_t[]){2}, iv),
    sd_tensor_make(SD_F32, 0, NULL, &sc), /* scalar */
  };
  const char *names[7] = {"u8", "layer.0.weight", "half", "model.bf16", "empty", "ints", "scalar"};
  char *path = xdup(sd_test_tmp("roundtrip.safetensors"));
  unlink(path);
  for (int pass = 0; pass < 2; pass++) { /* the second pass overwrites the first file */
    int rc = sd_st_write(path, 7, names, t);
    if (rc) print_error("%s\n", sd_errmsg());
    assert_int_equal(rc, SD_OK);
    sd_safetensors *st = NULL;
    rc = sd_st_open(path, &st);
    if (rc) print_error("%s\n", sd_errmsg());
    assert_int_equal(rc, SD_OK);
    assert_int_equal(st->n, 7);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->base[i];
    assert_int_equal(hlen % 8, 0);       /* padded like the reference writer */
    assert_int_equal(st->base[8], '{');
    for (int i = 0; i < 7; i++) {
      const sd_st_entry *e = expect(st, names[i], t[i].dtype, t[i].ndim, t[i].shape);
      size_t nb = (size_t)(e->end - e->begin);
      if (nb) assert_memory_equal(e->data, t[i].data, nb);
    }
    /* Data in the given order. */
    assert_true(sd_st_find(st, "u8")->begin == 0);
    assert_true(sd_st_find(st, "layer.0.weight")->begin == 3);
    assert_true(sd_st_find(st, "scalar")->end == st->size - 8 - hlen);
    sd_st_close(st);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
  }
  assert_int_equal(tmp_leftovers(sd_test_tmp(""), "roundtrip.safetensors"), 0);

  /* Zero tensors. */
  assert_int_equal(sd_st_write(path, 0, NULL, NULL), SD_OK);
  sd_safetensors *st = NULL;
  assert_int_equal(sd_st_open(path, &st), SD_OK);
  assert_int_equal(st->n, 0);
  assert_int_equal(st->size, 16);
  sd_st_close(st);
  unlink(path);
  free(path);
}

static long resident_pages(void) {
  long size = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
  fclose(f);
  return res;
}

/* sd_st_release drops a mapped tensor's pages (resident memory falls, values read back the
 * same) and never touches memory outside the file's mapping (a caller buffer stays intact). */
static void test_release(void **state) {
  (void)state;
  const int64_t n = 4 << 20; /* 16 MiB of float32 */
  float *a = malloc((size_t)n * sizeof(float));
  assert_non_null(a);
  for (int64_t i = 0; i < n; i++) a[i] = (float)(i % 1000) * 0.5f;
  sd_tensor t = sd_tensor_make(SD_F32, 1, (int64_t[]){n}, a);
  const char *name = "big";
  char *path = xdup(sd_test_tmp("release.safetensors"));
  assert_int_equal(sd_st_write(path, 1, &name, &t), SD_OK);
  sd_safetensors *st = NULL;
  assert_int_equal(sd_st_open(path, &st), SD_OK);
  const sd_st_entry *e = sd_st_find(st, "big");
  assert_non_null(e);
  size_t nb = (size_t)(e->end - e->begin);
  assert_memory_equal(e->data, a, nb); /* every page now resident */
  long before = resident_pages();
  sd_st_release(st, e->data, nb);
  long after = resident_pages();
  long page = sysconf(_SC_PAGESIZE);
  if (before > 0 && after > 0)
    assert_true((before - after) * page > (long)(12u << 20)); /* most of the 16 MiB left memory */
  assert_memory_equal(e->data, a, nb);                       /* and reads back the same */
  /* outside the mapping: nothing happens (a malloc'ed buffer keeps its contents) */
  sd_st_release(st, a, nb);
  for (int64_t i = 0; i < n; i += 4099) assert_true(a[i] == (float)(i % 1000) * 0.5f);
  sd_st_close(st);
  /* a caller-owned buffer handle is never released either */
  sd_safetensors *mem = NULL;
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  unsigned char *buf = malloc(nb + 4096);
  assert_non_null(buf);
  size_t got = fread(buf, 1, nb + 4096, f);
  fclose(f);
  assert_int_equal(sd_st_open_memory(buf, got, "mem", &mem), SD_OK);
  e = sd_st_find(mem, "big");
  sd_st_release(mem, e->data, nb);
  assert_memory_equal(e->data, a, nb);
  sd_st_close(mem);
  free(buf);
  unlink(path);
  free(path);
  free(a);
}

/* A round trip through a file read back from the mmap'ed original (a copy tool). */
static void test_rewrite_from_mapping(void **state) {
  (void)state;
  sd_safetensors *st = open_valid("valid_dtypes");
  const char *names[8];
  sd_tensor ts[8];
  for (size_t i = 0; i < st->n; i++) {
    names[i] = st->entries[i].name;
    ts[i] = sd_st_tensor(&st->entries[i]);
  }
  char *path = xdup(sd_test_tmp("rewrite.safetensors"));
  assert_int_equal(sd_st_write(path, st->n, names, ts), SD_OK);
  sd_safetensors *st2 = NULL;
  assert_int_equal(sd_st_open(path, &st2), SD_OK);
  assert_int_equal(st2->n, st->n);
  for (size_t i = 0; i < st->n; i++) {
    const sd_st_entry *a = &st->entries[i], *b = sd_st_find(st2, a->name);
    assert_non_null(b);
    assert_int_equal(a->end - a->begin, b->end - b->begin);
    assert_memory_equal(a->data, b->data, (size_t)(a->end - a->begin));
  }
  sd_st_close(st2);
  sd_st_close(st);
  unlink(path);
  free(path);
}

static void test_write_errors(void **state) {
  (void)state;
  float x[2] = {1, 2};
  sd_tensor t[2] = {sd_tensor_make(SD_F32, 1, (int64_t[]){2}, x),
                    sd_tensor_make(SD_F32, 1, (int64_t[]){2}, x)};
  char *path = xdup(sd_test_tmp("werr.safetensors"));

  /* A directory that does not exist. */
  char *bad = xdup(sd_test_tmp("no-such-dir/out.safetensors"));
  assert_int_equal(sd_st_write(bad, 1, (const char *[]){"a"}, t), SD_E_IO);
  assert_msg_has("no dir", bad);
  assert_msg_has("no dir", "No such file");
  free(bad);

  /* Bad arguments. */
  assert_int_equal(sd_st_write(path, 2, (const char *[]){"a", "a"}, t), SD_E_ARG);
  assert_msg_has("duplicate", "duplicate name");
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"__metadata__"}, t), SD_E_ARG);
  assert_int_equal(sd_st_write(path, 1, (const char *[]){NULL}, t), SD_E_ARG);
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"bad\xff"}, t), SD_E_ARG);
  assert_msg_has("utf8", "not valid UTF-8");
  sd_tensor u = t[0];
  u.dtype = SD_DTYPE_COUNT;
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"a"}, &u), SD_E_ARG);
  u = t[0];
  u.shape[0] = -1;
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"a"}, &u), SD_E_ARG);
  u = t[0];
  u.ndim = SD_MAX_DIMS + 1;
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"a"}, &u), SD_E_ARG);
  u = t[0];
  u.data = NULL;
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"a"}, &u), SD_E_ARG);
  u = sd_tensor_make(SD_F32, 2, (int64_t[]){INT64_MAX, 4}, x);
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"a"}, &u), SD_E_ARG);
  assert_int_equal(sd_st_write(NULL, 1, (const char *[]){"a"}, t), SD_E_ARG);
  assert_int_equal(sd_st_write(path, 1, NULL, t), SD_E_ARG);
  assert_int_equal(access(path, F_OK), -1); /* nothing was created */

  /* "Disk full": a file size limit makes write() fail with EFBIG part-way. The old file
   * must survive untouched and no temporary file may remain. */
  assert_int_equal(sd_st_write(path, 1, (const char *[]){"old"}, t), SD_OK);
  size_t old_len = 0;
  char *old = sd_test_read_file(path, &old_len);
  assert_non_null(old);
  static float big[1 << 16];
  sd_tensor bt = sd_tensor_make(SD_F32, 1, (int64_t[]){1 << 16}, big);
  struct rlimit saved, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  lim = saved;
  lim.rlim_cur = 4096;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = sd_st_write(path, 1, (const char *[]){"big"}, &bt);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, SD_E_IO);
  assert_msg_has("disk full", path);
  assert_msg_has("disk full", "write failed");
  size_t now_len = 0;
  char *now = sd_test_read_file(path, &now_len);
  assert_non_null(now);
  assert_int_equal(now_len, old_len);
  assert_memory_equal(now, old, old_len);
  assert_int_equal(tmp_leftovers(sd_test_tmp(""), "werr.safetensors"), 0);
  free(now);
  free(old);
  unlink(path);
  free(path);
}

static void test_find(void **state) {
  (void)state;
  float v[5] = {0, 1, 2, 3, 4};
  const char *names[5] = {"b", "a.weight", "a", "c", "a.bias"};
  sd_tensor t[5];
  for (int i = 0; i < 5; i++) t[i] = sd_tensor_make(SD_F32, 1, (int64_t[]){1}, &v[i]);
  char *path = xdup(sd_test_tmp("find.safetensors"));
  assert_int_equal(sd_st_write(path, 5, names, t), SD_OK);
  sd_safetensors *st = NULL;
  assert_int_equal(sd_st_open(path, &st), SD_OK);
  for (size_t i = 1; i < st->n; i++) assert_true(strcmp(st->entries[i - 1].name, st->entries[i].name) < 0);
  for (int i = 0; i < 5; i++) {
    const sd_st_entry *e = sd_st_find(st, names[i]);
    assert_non_null(e);
    assert_true(f32_at(e, 0) == v[i]);
  }
  assert_null(sd_st_find(st, "a."));
  assert_null(sd_st_find(st, ""));
  assert_null(sd_st_find(st, "d"));
  assert_null(sd_st_find(st, NULL));
  sd_st_close(st);
  unlink(path);
  free(path);
}

/* sd_st_write_meta: the __metadata__ object round-trips; duplicate, NULL or non-UTF-8
 * metadata is refused (and leaves no file) */
static void test_write_metadata(void **state) {
  (void)state;
  float v[2] = {1, 2};
  sd_tensor t = sd_tensor_make(SD_F32, 1, (int64_t[]){2}, v);
  char *path = xdup(sd_test_tmp("meta.safetensors"));
  const char *keys[] = {"format", "note"}, *vals[] = {"pt", "{\"a\": [1, 2]}"};
  assert_int_equal(sd_st_write_meta(path, 1, (const char *[]){"w"}, &t, 2, keys, vals), SD_OK);
  sd_safetensors *st = NULL;
  assert_int_equal(sd_st_open(path, &st), SD_OK);
  assert_int_equal(st->n_meta, 2);
  assert_string_equal(sd_st_meta(st, "format"), "pt");
  assert_string_equal(sd_st_meta(st, "note"), vals[1]);
  assert_true(f32_at(sd_st_find(st, "w"), 1) == 2);
  sd_st_close(st);
  unlink(path);
  assert_int_equal(sd_st_write_meta(path, 1, (const char *[]){"w"}, &t, 2, (const char *[]){"k", "k"}, vals), SD_E_ARG);
  assert_int_equal(sd_st_write_meta(path, 1, (const char *[]){"w"}, &t, 1, (const char *[]){"k"}, (const char *[]){NULL}),
                   SD_E_ARG);
  assert_int_equal(sd_st_write_meta(path, 1, (const char *[]){"w"}, &t, 1, (const char *[]){"k"},
                                    (const char *[]){"bad\xff"}),
                   SD_E_ARG);
  assert_int_equal(access(path, F_OK), -1);
  free(path);
}

/* The bounds checked before parsing: entries and JSON values (an in-memory header: the
 * real-size files are made by tests/cli/test_corpus.sh). A header right at the entry limit
 * still loads. */
static size_t header_file(unsigned char **out, int entries, int shape_len) {
  size_t cap = (size_t)entries * 64 + (size_t)shape_len * 2 + 256, n = 8;
  unsigned char *b = malloc(cap);
  assert_non_null(b);
  b[n++] = '{';
  for (int i = 0; i < entries; i++)
    n += (size_t)snprintf((char *)b + n, cap - n, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                          i ? "," : "", i);
  if (shape_len) {
    n += (size_t)snprintf((char *)b + n, cap - n, "%s\"w\":{\"dtype\":\"F32\",\"shape\":[", entries ? "," : "");
    for (int i = 0; i < shape_len; i++) { b[n++] = '1'; b[n++] = i + 1 < shape_len ? ',' : ']'; }
    n += (size_t)snprintf((char *)b + n, cap - n, ",\"data_offsets\":[0,0]}");
  }
  b[n++] = '}';
  uint64_t h = n - 8;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
  *out = b;
  return n;
}

static void test_header_bounds(void **state) {
  (void)state;
  unsigned char *b;
  sd_safetensors *st = NULL;
  size_t n = header_file(&b, 65536, 0);
  assert_int_equal(sd_st_open_memory(b, n, "at_limit", &st), SD_OK);
  assert_int_equal((int)st->n, 65536);
  sd_st_close(st);
  free(b);
  n = header_file(&b, 65537, 0);
  assert_int_equal(sd_st_open_memory(b, n, "over_limit", &st), SD_E_FORMAT);
  assert_msg_has("over_limit", "65537 entries");
  free(b);
  n = header_file(&b, 0, 1100000);
  assert_int_equal(sd_st_open_memory(b, n, "values", &st), SD_E_FORMAT);
  assert_msg_has("values", "JSON values");
  free(b);
  /* braces and commas inside strings are not structure */
  const char txt[] = "{\"a{,[,{\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  unsigned char *t = malloc(8 + sizeof txt - 1);
  for (int i = 0; i < 8; i++) t[i] = (unsigned char)((uint64_t)(sizeof txt - 1) >> (8 * i));
  memcpy(t + 8, txt, sizeof txt - 1);
  assert_int_equal(sd_st_open_memory(t, 8 + sizeof txt - 1, "strings", &st), SD_OK);
  sd_st_close(st);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_corpus_bad),
    cmocka_unit_test(test_corpus_complete),
    cmocka_unit_test(test_valid_zero_tensors),
    cmocka_unit_test(test_valid_metadata),
    cmocka_unit_test(test_valid_empty_tensor),
    cmocka_unit_test(test_valid_dtypes),
    cmocka_unit_test(test_valid_unaligned),
    cmocka_unit_test(test_valid_misc),
    cmocka_unit_test(test_truncation),
    cmocka_unit_test(test_open_errors),
    cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_rewrite_from_mapping),
    cmocka_unit_test(test_write_errors),
    cmocka_unit_test(test_find),
    cmocka_unit_test(test_write_metadata),
    cmocka_unit_test(test_release),
    cmocka_unit_test(test_header_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
