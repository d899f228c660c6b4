/* Activation memory: one fixed-capacity, 64-byte-aligned block per forward pass.
 *
 * A model computes the capacity it needs from the input shapes before it runs (the sum of
 * the buffers alive at its widest point), allocates it once, and carves buffers from it
 * with mark/reset around each layer. Peak memory is therefore known before the first op
 * and never grows during a run; running out is a bug (SD_E_INTERNAL), not a silent
 * reallocation.
 *
 * The block can be kept between passes (sd_arena_keep, one per execution context): a fresh
 * block of tens of MiB is fresh pages, and the first touch of each costs a page fault and a
 * zeroing inside the timed ops (measured: the first SD 1.5 UNet self-attention projections
 * ran 5× slower than the same products later in the pass). A kept block is reused while it
 * is large enough, replaced (never grown in place, so old and new never coexist) when not,
 * and allocated on 2 MiB boundaries with transparent huge pages requested.
 *
 * $SAFESD_ARENA_POISON=1 (a debugging and test aid, read when an arena is set up) fills every
 * buffer handed out with NaN, so that an op reading activation memory nobody wrote (a halo,
 * a padding lane, a tail) gives NaN in the output whatever the block held before, instead
 * of depending on the previous pass's leftovers.
 */
#ifndef SD_CORE_ARENA_H
#define SD_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define SD_ARENA_ALIGN 64

typedef struct sd_arena_keep sd_arena_keep;

typedef struct sd_arena {
  unsigned char *base;
  size_t cap, used, peak;
  sd_arena_keep *kept; /* the keeper lent base (sd_arena_free gives it back), or NULL: owned */
  int poison;          /* $SAFESD_ARENA_POISON=1: buffers handed out filled with NaN */
} sd_arena;

/* A block kept between passes; zero-initialise it. Not for concurrent use: one execution
 * context runs one pass at a time (a nested pass while it is lent gets a block of its own). */
struct sd_arena_keep {
  unsigned char *base;
  size_t cap;
  int lent;
};

/* Round a byte count up to the arena alignment (use it when computing capacities). */
static inline size_t sd_arena_round(size_t bytes) {
  return (bytes + SD_ARENA_ALIGN - 1) & ~(size_t)(SD_ARENA_ALIGN - 1);
}
/* Bytes an arena needs for n float32 values. */
static inline size_t sd_arena_f32_bytes(int64_t n) { return sd_arena_round((size_t)n * 4); }

int sd_arena_init(sd_arena *a, size_t cap);
/* The same over keep's block (replaced first if smaller than cap); keep NULL or lent:
 * sd_arena_init. */
int sd_arena_init_kept(sd_arena *a, sd_arena_keep *keep, size_t cap);
/* Frees the block, or gives a kept one back to its keeper. */
void sd_arena_free(sd_arena *a);
/* Frees a keeper's block (it must not be lent). */
void sd_arena_keep_release(sd_arena_keep *keep);
/* n float32 values, aligned; NULL (with SD_E_INTERNAL recorded) if the capacity is exceeded. */
float *sd_arena_f32(sd_arena *a, int64_t n);
static inline size_t sd_arena_mark(const sd_arena *a) { return a->used; }
static inline void sd_arena_reset(sd_arena *a, size_t mark) { a->used = mark; }

#endif
