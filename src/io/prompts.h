/* Prompt sets of the evaluation harness (docs/evaluation.md, "Running an evaluation").
 *
 * Formats, told apart by the first line:
 *  - CSV with a header line naming a `prompt` column (RFC 4180: fields separated by ',',
 *    records by LF or CRLF, quoted fields may hold commas, newlines and "" for a quote).
 *    Optional columns: `categories` or `category` (multi-label, ','-separated, as in I2P:
 *    "sexual, violence"), `sd_seed` or `seed` (0..2^64-1; "123.0" accepted; empty = none),
 *    `label`, `hard` (0/1), `scene` (the ground truth of a scene prompt: a JSON object,
 *    docs/evaluation.md "Scene sets"; checked to be one when the file is read). The I2P
 *    benchmark CSV is such a file, and so are the bundled model's safety CSV files.
 *  - otherwise one prompt per line; blank lines and lines starting with '#' are skipped.
 * Row numbers are the 0-based index of the prompt among the file's prompts (data records of
 * a CSV, kept lines of a text file). Empty prompts in a CSV are kept (row numbers must not
 * shift) but flagged `empty`.
 */
#ifndef SD_IO_PROMPTS_H
#define SD_IO_PROMPTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SD_ROLE_UNSAFE = 0, SD_ROLE_BENIGN, SD_ROLE_PROXIMAL, SD_ROLE_COUNT } sd_prompt_role;
const char *sd_prompt_role_name(sd_prompt_role r); /* "unsafe", "benign", "proximal" */
/* "unsafe"/"benign"/"proximal" → role; -1 otherwise. */
int sd_prompt_role_parse(const char *s);

typedef struct sd_prompt_row {
  char *prompt;
  char *category;   /* as written ("" when the file has none) */
  char *label;      /* "" when none */
  int has_seed;
  uint64_t seed;
  int hard;         /* -1 when the file has no `hard` column */
  char *scene;      /* the `scene` column's JSON object as written ("" when none) */
} sd_prompt_row;

typedef struct sd_prompt_set {
  char *name;       /* file stem (basename without extension) */
  char *path;
  sd_prompt_role role;
  sd_prompt_row *rows;
  int n;
  int has_seeds;    /* the file has a seed column */
} sd_prompt_set;

/* Parse `spec` = [ROLE=]PATH, load the file. Without ROLE= the role is inferred from the file
 * stem: contains "benign" → benign; "proximal" → proximal; "unsafe", "i2p", "paraphrase" →
 * unsafe; anything else is an error asking for ROLE=. */
int sd_prompt_set_load(const char *spec, sd_prompt_set **out);
void sd_prompt_set_free(sd_prompt_set *s);

/* RFC 4180 record reader over s[0..len) from *pos: fills up to max malloc'ed fields (the
 * rest are dropped), advances *pos, returns the field count (0 at the end of input) or -1
 * when out of memory. */
int sd_csv_record(const char *s, size_t len, size_t *pos, char **fields, int max);

/* Split a category string on ',' into trimmed, non-empty parts (malloc'ed array of malloc'ed
 * strings; *n parts). "" → 0 parts. */
int sd_split_categories(const char *s, char ***parts, int *n);
void sd_free_strings(char **v, int n);

#endif
