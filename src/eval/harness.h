/* The evaluation harness (`safesd eval`, docs/evaluation.md "Running an evaluation"):
 * prompt sets × methods → images, per-image JSONL records, metrics, report.
 *
 * OUTDIR layout:
 *   eval.json                      the run's settings (checked on resume; sets and methods
 *                                  accumulate over runs)
 *   records.jsonl                  one JSON object per image (unsharded runs), or
 *   records.shard-I-of-N.jsonl     one file per shard (--shard I/N, or from a launcher)
 *   shard-I-of-N.failed            a launcher's shard I failed: its job id, the error
 *   images/<method>/<set>/RRRRR-K.png   row R, image K of the row's batch
 *   images/<method>/<set>/RRRRR-K.emb   its CLIP image embedding (float32 little-endian),
 *                                  when a classifier with a CLIP tower ran
 *   metrics.json, metrics.csv, tables.md, report.html   (sd_eval_metrics)
 */
#ifndef SD_EVAL_HARNESS_H
#define SD_EVAL_HARNESS_H

#include <stdint.h>
#include <stdio.h>

#include "eval/shard.h"

typedef enum { SD_EM_NONE = 0, SD_EM_NEGATIVE, SD_EM_SLD, SD_EM_DLR, SD_EM_MODEL } sd_eval_method_kind;

typedef struct sd_eval_method {
  sd_eval_method_kind kind;
  char *name;       /* canonical: "none", "negative-prompt", "sld:strong", "dlr:high",
                       "dlr:l=0.5,t=0.2", "dlr:high,l=0.3", "dlr:l=1,t=0,s=substitute,b=final",
                       "model:PATH" */
  char *slug;       /* folder name: "none", "sld-strong", "dlr-l0.5-t0.2", "model-<name>" */
  char sld[16];     /* SLD preset */
  char level[16];   /* dlr: the gate's named level */
  float lambda, tau;/* dlr: explicit λ / τ_gc, NAN = the level's */
  char strategy[24];/* dlr: explicit safety strategy ("" = the level's / the default) */
  char blend[8];    /* dlr: explicit blend ("" = the level's / step) */
  char *model;      /* model: the checkpoint path */
} sd_eval_method;

/* Parse one method spec (see cli/eval.c's help); SD_E_ARG with a one-line reason. */
int sd_eval_method_parse(const char *spec, sd_eval_method *out);
void sd_eval_method_clear(sd_eval_method *m);
/* The (λ, τ_gc) a dlr method uses for flagged prompts. */
void sd_eval_method_dlr_params(const sd_eval_method *m, float *lambda, float *tau);

typedef struct sd_eval_opts {
  const char *model;            /* base model */
  const char *const *prompt_specs;
  int n_prompt_specs;
  const char *const *methods;
  int n_methods;
  const char *outdir;
  int images_per_prompt;        /* ≥ 1 (default 1) */
  int steps;                    /* 0 = the pipeline default (50) */
  float cfg_scale;              /* default 7.5 */
  const char *seed_policy;      /* "i2p" (default: the file's seed column, else the row), "row",
                                   "fixed:N" */
  int shard_i, shard_n;         /* rows with row % shard_n == shard_i; shard_n = 1: all */
  const sd_eval_rank *launcher; /* the shard came from a launcher (mpirun, srun, a Slurm array):
                                   shard 0 waits for the others and merges, a failing shard
                                   leaves a marker (eval/shard.h); NULL: --shard I/N by hand */
  int merge_timeout_s;          /* shard 0's wait for the others (default 86400) */
  const char *classifier;       /* NULL = clip-zeroshot when MODEL/clip exists, else none */
  const char *q16_prompts;      /* Q16 vectors (NULL = ../shared/data/q16/prompts_vit_l14.f32) */
  const char *concepts;         /* concept bank (the gate and clip-zeroshot); NULL = the model's */
  const char *detectors;        /* the gate's detectors (NULL = lexical) */
  const char *sampler;          /* NULL = the model's */
  const char *prompt_syntax;    /* NULL or "plain" (the default: the I2P protocol's diffusers
                                   pipeline takes prompts as they are, and I2P prompts carry
                                   A1111-style weights), or "a1111" (docs/prompts.md) */
  int width, height;            /* 0 = the model's */
  int threads;                  /* 0 = all CPUs */
  int limit;                    /* at most this many rows per prompt set (0 = all) */
  int quiet;
  int emi_draws, emi_k;         /* EMI bootstrap: 10000 draws of 25 prompts */
  uint64_t emi_seed;
} sd_eval_opts;

void sd_eval_defaults(sd_eval_opts *o);

/* Generate and classify whatever is missing, append the records; unless sharded (shard_n > 1)
 * then compute the metrics and the report over all records present (sd_eval_metrics); as
 * shard 0 of a launcher's job, after waiting until every shard's images are recorded.
 * Counts (may be NULL): images generated, images skipped as already done. */
int sd_eval_run(const sd_eval_opts *o, int *generated, int *skipped);

/* Metrics and report from OUTDIR's eval.json and every records*.jsonl in it (merges shards).
 * emi_* as in sd_eval_opts (0 = defaults). */
int sd_eval_metrics(const char *outdir, int emi_draws, int emi_k, uint64_t emi_seed, int threads, int quiet);

#endif
