/* Activation memory: one fixed-capacity, 64-byte-aligned block per forward pass.
 *
 * A model computes the capacity it needs from the input shapes before it runs (the sum of
 * the buffers alive at its widest point), allocates it once, and carves buffers from it
 * with mark/reset around each layer. Peak memory is therefore known before the first op
 * and never grows during a run; running out is a bug (SD_E_INTERNAL), not a silent
 * reallocation.
 */
#ifndef SD_CORE_ARENA_H
#define SD_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define SD_ARENA_ALIGN 64

typedef struct sd_arena {
  unsigned char *base;
  size_t cap, used, peak;
} sd_arena;

/* Round a byte count up to the arena alignment (use it when computing capacities). */
static inline size_t sd_arena_round(size_t bytes) {
  return (bytes + SD_ARENA_ALIGN - 1) & ~(size_t)(SD_ARENA_ALIGN - 1);
}
/* Bytes an arena needs for n float32 values. */
static inline size_t sd_arena_f32_bytes(int64_t n) { return sd_arena_round((size_t)n * 4); }

int sd_arena_init(sd_arena *a, size_t cap);
void sd_arena_free(sd_arena *a);
/* n float32 values, aligned; NULL (with SD_E_INTERNAL recorded) if the capacity is exceeded. */
float *sd_arena_f32(sd_arena *a, int64_t n);
static inline size_t sd_arena_mark(const sd_arena *a) { return a->used; }
static inline void sd_arena_reset(sd_arena *a, size_t mark) { a->used = mark; }

#endif
