/* Shared between the files of the evaluation harness (harness.c, classify.c, report.c). */
#ifndef SD_EVAL_HARNESS_INTERNAL_H
#define SD_EVAL_HARNESS_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

int sd_eval_path(char *buf, size_t cap, const char *fmt, ...) SD_PRINTF(3, 4);
/* mkdir -p */
int sd_eval_mkdirs(const char *dir);
/* Atomic whole-file writes. */
int sd_eval_write_file(const char *path, const void *data, size_t n);
int sd_eval_write_json(const char *path, json_t *o);
/* getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux): the process's peak so far. */
long sd_eval_peak_rss_kb(void);
/* OUTDIR/records*.jsonl, sorted by name. */
int sd_eval_record_files(const char *outdir, char ***files, int *n);
/* Call fn on every record of every records file (lines that do not parse as a JSON object,
 * such as a line cut short by an interrupted run, are skipped). */
int sd_eval_for_each_record(const char *outdir, int (*fn)(void *ctx, json_t *rec), void *ctx);

#endif
