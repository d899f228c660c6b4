/* Named safety levels measured for a model: the `[levels]` section of its concept bank
 * (docs/safety.md, "Levels"; written by `safesd eval levels --write-bank`).
 *
 *   [levels]
 *   # comments are kept out of the bank's hash, like the whole section
 *   low    = weight 0.5, context 0.3
 *   medium = weight 0.7, context 0.2, strategy substitute+append
 *   high   = weight 0.9, context 0.1, strategy substitute+append, blend step
 *   max    = weight 1, context 0
 *
 * Keys are the level names low, medium, high, max (off is never a key: it runs no detector);
 * each at most once. The value is ','-separated "NAME VALUE" items: `weight` (λ, 0..1) and
 * `context` (τ_gc, 0..1) are required, `strategy` (append, substitute, substitute+append,
 * project) and `blend` (step, final) are optional (absent: the gate's default, or the
 * user's explicit option). A level the section does not name keeps the built-in provisional
 * value (src/api/safety.c). Errors name the file and line.
 */
#ifndef SD_SAFETY_LEVELS_H
#define SD_SAFETY_LEVELS_H

#define SD_LEVEL_COUNT 4 /* low, medium, high, max: gate levels 1..4 */

typedef struct sd_level {
  int set;            /* the section names this level */
  float weight, context;
  char strategy[24];  /* "" = not given */
  char blend[8];      /* "" = not given */
  int line;
} sd_level;

typedef struct sd_levels {
  sd_level l[SD_LEVEL_COUNT];
} sd_levels;

/* "low", "medium", "high", "max" for 0..3; NULL otherwise. */
const char *sd_level_name(int i);
/* 0..3 for those names, -1 otherwise. */
int sd_level_index(const char *name);
/* Parse `key = value` of the section (file:line in errors). */
int sd_levels_set(sd_levels *L, const char *key, const char *value, const char *file, int line);
/* The section's text: "[levels]\n", the comment lines (each prefixed "# "; may be NULL),
 * one line per level set, a blank line. NULL when out of memory or a level is invalid. */
char *sd_levels_section(const sd_levels *L, const char *comment);

#endif
