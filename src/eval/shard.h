/* Shards of an evaluation from the process launcher (docs/evaluation.md, "Across
 * machines"): `mpirun` (OpenMPI, MPICH), Slurm's `srun` and Slurm job arrays start N copies
 * of one command and tell each its rank in environment variables; no MPI library is
 * linked. Rank I evaluates the rows with row % N == I; rank 0 then waits until every
 * shard's records are in the shared output folder and computes the metrics (the merge). A
 * rank that fails leaves a marker naming the job and the error, so that rank 0 stops
 * waiting with that error instead of running into its time limit.
 */
#ifndef SD_EVAL_SHARD_H
#define SD_EVAL_SHARD_H

typedef struct sd_eval_rank {
  int i, n;          /* this process is shard i of n */
  char job[128];     /* the launcher's job id ("" if it gives none): names failure markers */
  const char *from;  /* the variables it came from, for messages */
} sd_eval_rank;

/* Read the rank from the environment. mode "auto": MPI launchers only (OpenMPI's
 * OMPI_COMM_WORLD_RANK/SIZE, MPICH's PMI_RANK/PMI_SIZE), and only when the size is above 1;
 * "rank": those, else Slurm's SLURM_PROCID/SLURM_NTASKS (a task of `srun`); "array": a Slurm
 * job array (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT). Returns 1 with r set, 0 when no
 * launcher says anything (an error for "rank" and "array"), or SD_E_ARG when the variables
 * are malformed (naming them). */
int sd_eval_rank_from_env(const char *mode, sd_eval_rank *r);

/* Leave OUTDIR/shard-I-of-N.failed: the job id on the first line, then msg (atomic). */
void sd_eval_shard_mark_failed(const char *outdir, const sd_eval_rank *r, const char *msg);
/* Remove this shard's failure marker (at the start of a run). */
void sd_eval_shard_clear_failed(const char *outdir, const sd_eval_rank *r);

/* Rank 0: wait until missing(ctx, &n_missing) reports 0 images missing over all shards,
 * polling every second or two; fail at once when another shard of the same job left a
 * failure marker, and after timeout_s seconds otherwise (both errors name what is
 * missing). quiet: no progress note. */
int sd_eval_shard_wait(const char *outdir, const sd_eval_rank *r, int timeout_s, int quiet,
                       int (*missing)(void *ctx, int *n_missing), void *ctx);

#endif
