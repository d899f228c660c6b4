/* libFuzzer target: the safetensors reader on arbitrary bytes.
 *
 * The input is handed to sd_st_open_memory as is (libFuzzer's buffer has exactly the input's
 * size, so ASan flags any read past it). A rejected input must come with SD_E_FORMAT, a NULL
 * handle and a one-line message that starts with the label. An accepted one must satisfy
 * every promise of safetensors.h, checked here independently of the reader's own code, and
 * every byte of every tensor is read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "fuzz_check.h"

#define LABEL "fuzz.safetensors"


static volatile unsigned char g_sink;

static int cmp_range(const void *a, const void *b) {
  const sd_st_entry *x = *(const sd_st_entry *const *)a, *y = *(const sd_st_entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static void check_handle(const sd_safetensors *st, const uint8_t *data, size_t size) {
  CHECK(st->base == data && st->size == size && !st->mapped);
  CHECK(strcmp(st->path, LABEL) == 0);
  CHECK(size >= 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
  CHECK(hlen <= ((uint64_t)16 << 20) && hlen <= size - 8);
  const uint8_t *section = data + 8 + hlen;
  uint64_t section_size = size - 8 - hlen, covered = 0;
  unsigned char acc = 0;
  for (size_t i = 0; i < st->n; i++) {
    const sd_st_entry *e = &st->entries[i];
    CHECK(e->name != NULL);
    CHECK(strcmp(e->name, "__metadata__") != 0);
    if (i > 0) CHECK(strcmp(st->entries[i - 1].name, e->name) < 0); /* sorted, unique */
    CHECK((unsigned)e->dtype < SD_DTYPE_COUNT);
    CHECK(e->ndim >= 0 && e->ndim <= SD_MAX_DIMS);
    for (int d = 0; d < e->ndim; d++) CHECK(e->shape[d] >= 0);
    CHECK(e->begin <= e->end && e->end <= section_size);
    CHECK((const uint8_t *)e->data == section + e->begin);
    sd_tensor t = sd_st_tensor(e);
    CHECK(t.dtype == e->dtype && t.ndim == e->ndim && t.data == e->data);
    /* The byte size agrees with the shape (and, since the range lies inside the input,
     * numel is small: the multiplication cannot overflow). */
    CHECK((uint64_t)sd_numel(&t) * sd_dtype_size(t.dtype) == e->end - e->begin);
    CHECK(sd_st_find(st, e->name) == e);
    const unsigned char *p = e->data;
    for (uint64_t b = 0; b < e->end - e->begin; b++) acc ^= p[b];
    covered += e->end - e->begin;
  }
  /* The ranges tile the data section: no overlap, no gap, nothing left over. */
  CHECK(covered == section_size);
  if (st->n > 0) {
    const sd_st_entry **by = malloc(st->n * sizeof *by);
    CHECK(by != NULL);
    for (size_t i = 0; i < st->n; i++) by[i] = &st->entries[i];
    qsort(by, st->n, sizeof *by, cmp_range);
    uint64_t cursor = 0;
    for (size_t i = 0; i < st->n; i++) {
      CHECK(by[i]->begin == cursor);
      cursor = by[i]->end;
    }
    CHECK(cursor == section_size);
    free(by);
  }
  for (size_t i = 0; i < st->n_meta; i++) {
    CHECK(st->meta_keys[i] && st->meta_values[i]);
    const char *v = sd_st_meta(st, st->meta_keys[i]);
    CHECK(v != NULL && strcmp(v, st->meta_values[i]) == 0);
  }
  CHECK(sd_st_find(st, "__metadata__") == NULL);
  g_sink = acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sd_safetensors *st = (sd_safetensors *)&st; /* any non-NULL value */
  sd_clear_error();
  int rc = sd_st_open_memory(data, size, LABEL, &st);
  if (rc == SD_OK) {
    CHECK(st != NULL);
    check_handle(st, data, size);
    sd_st_close(st);
    return 0;
  }
  CHECK(rc == SD_E_FORMAT);
  CHECK(st == NULL);
  const char *msg = sd_errmsg();
  CHECK(strncmp(msg, LABEL ": ", sizeof LABEL + 1) == 0);
  for (const unsigned char *m = (const unsigned char *)msg; *m; m++) CHECK(*m >= 0x20 && *m != 0x7f);
  return 0;
}
