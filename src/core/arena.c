#include "core/arena.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "core/error.h"

static int poison_wanted(void) {
  const char *e = getenv("SAFESD_ARENA_POISON");
  return e && e[0] == '1' && !e[1];
}

int sd_arena_init(sd_arena *a, size_t cap) {
  memset(a, 0, sizeof *a);
  a->poison = poison_wanted();
  cap = sd_arena_round(cap ? cap : SD_ARENA_ALIGN);
  a->base = aligned_alloc(SD_ARENA_ALIGN, cap);
  if (!a->base) return sd_fail(SD_E_NOMEM, "cannot allocate %zu MiB of activation memory", cap >> 20);
  a->cap = cap;
  return SD_OK;
}

#define KEEP_ALIGN ((size_t)2 << 20) /* a transparent huge page */

int sd_arena_init_kept(sd_arena *a, sd_arena_keep *keep, size_t cap) {
  if (!keep || keep->lent) return sd_arena_init(a, cap);
  memset(a, 0, sizeof *a);
  cap = sd_arena_round(cap ? cap : SD_ARENA_ALIGN);
  if (keep->cap < cap) {
    free(keep->base); /* before the new block: the two never coexist */
    keep->base = NULL, keep->cap = 0;
    const size_t bytes = (cap + KEEP_ALIGN - 1) / KEEP_ALIGN * KEEP_ALIGN;
    unsigned char *b = aligned_alloc(KEEP_ALIGN, bytes);
    if (!b) return sd_fail(SD_E_NOMEM, "cannot allocate %zu MiB of activation memory", bytes >> 20);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(b, bytes, MADV_HUGEPAGE); /* advice only: without it, small pages */
#endif
    keep->base = b, keep->cap = bytes;
  }
  keep->lent = 1;
  a->base = keep->base, a->cap = cap, a->kept = keep;
  a->poison = poison_wanted();
  return SD_OK;
}

void sd_arena_free(sd_arena *a) {
  if (a->kept) a->kept->lent = 0;
  else free(a->base);
  memset(a, 0, sizeof *a);
}

void sd_arena_keep_release(sd_arena_keep *keep) {
  if (!keep) return;
  free(keep->base);
  memset(keep, 0, sizeof *keep);
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
  if (a->poison) memset(p, 0xff, bytes); /* 0xffffffff is a NaN */
  return p;
}
