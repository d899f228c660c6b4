#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int sd_arena_init(sd_arena *a, size_t cap) {
  memset(a, 0, sizeof *a);
  cap = sd_arena_round(cap ? cap : SD_ARENA_ALIGN);
  a->base = aligned_alloc(SD_ARENA_ALIGN, cap);
  if (!a->base) return sd_fail(SD_E_NOMEM, "cannot allocate %zu MiB of activation memory", cap >> 20);
  a->cap = cap;
  return SD_OK;
}

void sd_arena_free(sd_arena *a) {
  free(a->base);
  memset(a, 0, sizeof *a);
}

float *sd_arena_f32(sd_arena *a, int64_t n) {
  size_t bytes = sd_arena_f32_bytes(n);
  if (n < 0 || bytes > a->cap - a->used) {
    sd_fail(SD_E_INTERNAL, "activation arena exhausted (%zu of %zu bytes used, %zu more asked)",
            a->used, a->cap, bytes);
    return NULL;
  }
  float *p = (float *)(a->base + a->used);
  a->used += bytes;
  if (a->used > a->peak) a->peak = a->used;
  return p;
}
