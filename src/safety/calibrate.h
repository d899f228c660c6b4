/* Threshold calibration for any detector (method.md §2.1: "thresholds are calibrated, not
 * guessed"), and the calibration file that carries the chosen thresholds.
 *
 * Selection. A detector fires when score >= t. Given the per-prompt max scores of a
 * labelled set (unsafe and benign prompts) and a target false-positive rate r, let
 * k = floor(r * n_benign) (the benign prompts allowed to fire) and b(1) >= b(2) >= ... the
 * benign scores sorted descending. The chosen threshold is the smallest float t with
 * #{benign >= t} <= k:
 *   - k >= n_benign: t = the smallest score of either set (everything fires);
 *   - otherwise: t = nextafterf(b(k+1), +inf), just above the (k+1)-th highest benign score.
 * Ties cannot be split: when b(k) == b(k+1) all of them stay below t, so the realised FPR
 * may be under the target. recall = #{unsafe >= t} / n_unsafe (0 when n_unsafe is 0).
 *
 * Calibration file (text, UTF-8, human-editable; written atomically):
 *
 *   # safesd calibration v1       comment lines start with '#' or ';'
 *   [semantic]                    one section per detector name (sd_detector_vtable.name)
 *   threshold  = 0.123456791      required; the detector's threshold
 *   target_fpr = 0.05             optional metadata, as written by sd_calib_write
 *   fpr        = 0.0466          (realised benign FPR)
 *   recall     = 0.81
 *   n_unsafe   = 1831
 *   n_benign   = 313
 *   bank       = 0123456789abcdef  optional: bank hash (16 hex) the scores came from
 *   model      = 0123456789abcdef  optional: model fingerprint (semantic.h)
 *
 * Errors name the file and line ("thresholds.txt:4: unknown key 'treshold'"): unknown keys,
 * a key outside a section, duplicate sections or keys, a missing threshold, bad numbers
 * (non-finite, trailing text), fractions outside [0, 1], lines over 1024 bytes.
 *
 * The same entries can live in a concept bank's [thresholds] section (bank.h), one key per
 * line: `DETECTOR = threshold`, `DETECTOR.KEY = value` for the other keys above
 * (sd_calib_set parses them, sd_calib_bank_section writes them).
 *
 * Labelled prompt files (sd_prompt_file_load): UTF-8 text, one prompt per line; blank lines
 * and lines whose first non-blank character is '#' are skipped; surrounding blanks and a
 * CR before the newline are dropped. Invalid UTF-8 or a NUL byte is an error naming the
 * file and line; so is a file with no prompt.
 */
#ifndef SD_SAFETY_CALIBRATE_H
#define SD_SAFETY_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "safety/detector.h"

typedef struct {
  float threshold;
  double target_fpr;
  double fpr;    /* realised on the benign set */
  double recall; /* realised on the unsafe set */
  int n_unsafe, n_benign;
  int n_fp, n_tp; /* benign / unsafe prompts at or above the threshold */
} sd_calibration;

/* Choose the threshold (rule above). Scores must be finite; n_benign >= 1, n_unsafe >= 0;
 * target_fpr in [0, 1]. SD_E_ARG otherwise. */
int sd_calibrate(const float *unsafe, int n_unsafe, const float *benign, int n_benign, double target_fpr,
                 sd_calibration *out);

/* Run detector d (enabled for the duration) on each prompt and collect its max score
 * (sd_detection.score) into scores[i]. */
int sd_detector_scores(sd_detector *d, const void *encoder, const char *const *prompts, int n, float *scores);

#define SD_CALIB_NAME_MAX 64

typedef struct {
  char name[SD_CALIB_NAME_MAX]; /* detector name */
  float threshold;
  int has_meta;                 /* target_fpr..n_benign present */
  double target_fpr, fpr, recall;
  int n_unsafe, n_benign;
  uint64_t bank, model;         /* 0 = not recorded */
  int line;                     /* section header line when parsed */
  unsigned keys;                /* sd_calib_set: bit per key already given (duplicates) */
} sd_calib_entry;

typedef struct {
  sd_calib_entry *e;
  int n;
} sd_calib_file;

/* An entry from a calibration result. */
sd_calib_entry sd_calib_entry_make(const char *detector, const sd_calibration *c, uint64_t bank, uint64_t model);

int sd_calib_parse(const char *text, size_t len, const char *name, sd_calib_file *out);
int sd_calib_load(const char *path, sd_calib_file *out);
void sd_calib_file_free(sd_calib_file *f);
const sd_calib_entry *sd_calib_find(const sd_calib_file *f, const char *detector);
/* Write entries to path atomically (sd_atomic_*). */
int sd_calib_write(const char *path, const sd_calib_entry *e, int n);
/* Replace (or add) one detector's entry in the file at path, keeping the others; a missing
 * file is created. A malformed existing file is an error (it is not overwritten). */
int sd_calib_update(const char *path, const sd_calib_entry *e);

/* Set d's threshold from the entry named d->vt->name. bank / model: when non-zero and the
 * entry records a different value, SD_E_ARG ("calibrated for another bank/model").
 * Returns 1 if applied, 0 if the file has no entry for d, or a negative status. */
int sd_calib_apply(const sd_calib_file *f, sd_detector *d, uint64_t bank, uint64_t model);

/* One `key = value` of a bank's [thresholds] section: `detector` alone sets the threshold,
 * `detector.KEY` one of the other keys (target_fpr, fpr, recall, n_unsafe, n_benign, bank,
 * model). The entry is created on first use. Errors are "name:line: ..." (unknown key, bad
 * detector name, duplicate key, bad value). */
int sd_calib_set(sd_calib_file *f, const char *key, const char *value, const char *name, int line);
/* Every entry of f has a threshold (after a series of sd_calib_set); else "name:line: ...". */
int sd_calib_check(const sd_calib_file *f, const char *name);
/* The text of a bank's [thresholds] section holding e[0..n) (header line first, a blank
 * line last), malloc'ed; NULL when out of memory or a name is invalid. */
char *sd_calib_bank_section(const sd_calib_entry *e, int n);

/* Load a labelled prompt file (rules above): *prompts[*n] malloc'ed (free with
 * sd_prompt_list_free). */
int sd_prompt_file_load(const char *path, char ***prompts, int *n);
void sd_prompt_list_free(char **prompts, int n);

#endif
