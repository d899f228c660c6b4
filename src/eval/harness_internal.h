/* Shared between the files of the evaluation harness (harness.c, classify.c, report.c). */
#ifndef SD_EVAL_HARNESS_INTERNAL_H
#define SD_EVAL_HARNESS_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

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

/* The K/V cov shift of the checkpoint at method_path against base_path on the prompts
 * (kv_stats.c): *out a JSON object (token_states, k/v_cov_rel, k/v_mean_rel, layers). */
int sd_eval_kv_model(const char *base_path, const char *method_path, char **prompts, int n, json_t **out);

/* Text into an HTML page (<, >, &, " escaped) / a Markdown table cell (| escaped, newlines
 * as spaces). */
void sd_eval_html_escape(FILE *f, const char *s);
void sd_eval_md_cell(FILE *f, const char *s);
/* A table's header row: HTML (<table><tr><th>...) or Markdown (the header and the |---| line;
 * columns after the first right-aligned). */
void sd_eval_table_header(FILE *f, int html, const char *const *hdr, int nh);

#endif
