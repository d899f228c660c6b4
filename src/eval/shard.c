#include "eval/shard.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fileio.h"
#include "eval/harness_internal.h"

#define MAX_SHARDS 100000

/* *out = the variable's value as an integer in [lo, hi]: 1; unset: 0; malformed: SD_E_ARG. */
static int env_int(const char *name, long lo, long hi, long *out) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return sd_fail(SD_E_ARG, "environment variable %s=%s is not a number in %ld..%ld", name, s, lo, hi);
  *out = v;
  return 1;
}

static void job_from(sd_eval_rank *r, const char *a, const char *b) {
  const char *x = getenv(a), *y = b ? getenv(b) : NULL;
  snprintf(r->job, sizeof r->job, "%s%s%s", x ? x : "", y ? "." : "", y ? y : "");
}

/* rank and size variables: 1 found (and consistent), 0 unset, < 0 malformed */
static int pair(const char *rank, const char *size, sd_eval_rank *r) {
  long i = 0, n = 0;
  int a = env_int(rank, 0, MAX_SHARDS - 1, &i), b = env_int(size, 1, MAX_SHARDS, &n);
  if (a < 0 || b < 0) return SD_E_ARG;
  if (!a && !b) return 0;
  if (!a || !b) return sd_fail(SD_E_ARG, "environment: %s is set but %s is not", a ? rank : size, a ? size : rank);
  if (i >= n) return sd_fail(SD_E_ARG, "environment: %s=%ld is not below %s=%ld", rank, i, size, n);
  r->i = (int)i;
  r->n = (int)n;
  return 1;
}

int sd_eval_rank_from_env(const char *mode, sd_eval_rank *r) {
  memset(r, 0, sizeof *r);
  int rc;
  if (!strcmp(mode, "array")) {
    long id = 0, mn = 0, step = 1, count = 0;
    int a = env_int("SLURM_ARRAY_TASK_ID", 0, LONG_MAX / 2, &id), b = env_int("SLURM_ARRAY_TASK_MIN", 0, LONG_MAX / 2, &mn);
    int c = env_int("SLURM_ARRAY_TASK_COUNT", 1, MAX_SHARDS, &count);
    int d = env_int("SLURM_ARRAY_TASK_STEP", 1, LONG_MAX / 2, &step);
    if (a < 0 || b < 0 || c < 0 || d < 0) return SD_E_ARG;
    if (!a || !b || !c)
      return sd_fail(SD_E_ARG, "--shard array: not a task of a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN and _COUNT "
                               "are not all set)");
    if (id < mn || (id - mn) % step || (id - mn) / step >= count)
      return sd_fail(SD_E_ARG, "--shard array: task %ld is not one of %ld tasks from %ld in steps of %ld", id, count, mn,
                     step);
    r->i = (int)((id - mn) / step);
    r->n = (int)count;
    job_from(r, "SLURM_ARRAY_JOB_ID", NULL);
    r->from = "SLURM_ARRAY_TASK_*";
    return 1;
  }
  if (strcmp(mode, "auto") && strcmp(mode, "rank")) return sd_fail(SD_E_ARG, "shard mode %s (auto, rank, array)", mode);
  if ((rc = pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", r))) {
    if (rc < 0) return rc;
    job_from(r, getenv("OMPI_MCA_ess_base_jobid") ? "OMPI_MCA_ess_base_jobid" : "PMIX_NAMESPACE", NULL);
    r->from = "OMPI_COMM_WORLD_RANK/SIZE";
  } else if ((rc = pair("PMI_RANK", "PMI_SIZE", r))) {
    if (rc < 0) return rc;
    job_from(r, "PMI_JOBID", NULL);
    r->from = "PMI_RANK/SIZE";
  } else if (!strcmp(mode, "rank") && (rc = pair("SLURM_PROCID", "SLURM_NTASKS", r))) {
    if (rc < 0) return rc;
    job_from(r, "SLURM_JOB_ID", "SLURM_STEP_ID");
    r->from = "SLURM_PROCID/NTASKS";
  }
  if (rc == 1 && (strcmp(mode, "auto") || r->n > 1)) return 1;
  if (!strcmp(mode, "rank"))
    return sd_fail(SD_E_ARG, "--shard rank: no launcher rank in the environment (OMPI_COMM_WORLD_RANK, PMI_RANK or "
                             "SLURM_PROCID): run under mpirun or srun");
  memset(r, 0, sizeof *r);
  return 0;
}

static int marker_path(char *buf, size_t cap, const char *outdir, int i, int n) {
  return sd_eval_path(buf, cap, "%s/shard-%d-of-%d.failed", outdir, i, n);
}

void sd_eval_shard_mark_failed(const char *outdir, const sd_eval_rank *r, const char *msg) {
  char p[PATH_MAX], text[1024];
  if (!r->job[0] || marker_path(p, sizeof p, outdir, r->i, r->n)) return;
  int n = snprintf(text, sizeof text, "%s\n%s\n", r->job, msg);
  if (n > 0) (void)sd_eval_write_file(p, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

void sd_eval_shard_clear_failed(const char *outdir, const sd_eval_rank *r) {
  char p[PATH_MAX];
  if (!marker_path(p, sizeof p, outdir, r->i, r->n)) (void)unlink(p);
}

/* Shard j's failure message for this job into msg, or 0 when it left none. The marker is
 * read as untrusted input (io/fileio.h: a regular file, bounded; anything else there is
 * not a marker). */
static int failed_shard(const char *outdir, const sd_eval_rank *r, int j, char *msg, size_t cap) {
  char p[PATH_MAX];
  if (!r->job[0] || marker_path(p, sizeof p, outdir, j, r->n)) return 0;
  char *buf = NULL;
  size_t len = 0;
  const char *what = "a shard's failure marker";
  if (sd_probe_file(p, what) != 1 || sd_read_file(p, 64 * 1024, what, &buf, &len)) return 0;
  char *nl = strchr(buf, '\n');
  int hit = nl && (*nl = 0, !strcmp(buf, r->job));
  if (hit) {
    char *m = nl + 1;
    m[strcspn(m, "\n")] = 0;
    snprintf(msg, cap, "%s", *m ? m : "(no message)");
  }
  free(buf);
  return hit;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int sd_eval_shard_wait(const char *outdir, const sd_eval_rank *r, int timeout_s, int quiet,
                       int (*missing)(void *ctx, int *n_missing), void *ctx) {
  const double t0 = mono_s();
  int said = 0;
  for (int round = 0;; round++) {
    int n_missing = 0, rc = missing(ctx, &n_missing);
    if (rc) return rc;
    if (n_missing == 0) return SD_OK;
    char msg[512];
    for (int j = 1; j < r->n; j++)
      if (failed_shard(outdir, r, j, msg, sizeof msg))
        return sd_fail(SD_E_IO, "shard %d of %d (job %s) failed: %s; %d image%s missing: run it again to resume", j,
                       r->n, r->job, msg, n_missing, n_missing == 1 ? "" : "s");
    if (mono_s() - t0 >= timeout_s)
      return sd_fail(SD_E_IO, "gave up after %d s waiting for the other %d shard%s: %d image%s still missing (rerun the "
                     "missing shards, then 'safesd eval merge %s')", timeout_s, r->n - 1, r->n == 2 ? "" : "s",
                     n_missing, n_missing == 1 ? "" : "s", outdir);
    if (!quiet && !said) {
      fprintf(stderr, "eval: shard 0 of %d: waiting for the other shards (%d image%s to go), then merging\n", r->n,
              n_missing, n_missing == 1 ? "" : "s");
      said = 1;
    }
    usleep(round < 10 ? 200000 : 2000000); /* quick at first (a test's shards), then every 2 s */
  }
}
