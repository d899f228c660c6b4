#!/usr/bin/env bash
# `safesd eval` across processes started by a launcher, on the bundled model (4 steps):
# under `mpirun -np 2` each rank takes its shard from OMPI_COMM_WORLD_RANK/SIZE and rank 0
# merges: the metrics equal the single-process run's (timing aside) and the images are the
# same bytes. A Slurm job array (its environment variables, tasks run one after the other),
# a shard that fails (rank 0 stops waiting and names it), rank 0 running out of time, and
# bad launcher variables. The mpirun part is skipped (exit 77) where mpirun is absent
# (Debian: openmpi-bin); the rest runs anywhere.
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
M="$SRC/models/safesd-emoji"
[ -f "$M/model_index.json" ] || { echo "FAIL: $M is missing (the bundled model)"; exit 1; }
O="$TMP/eval_mpi"; rm -rf "$O"; mkdir -p "$O"
S="$M/safety"
{ head -1 "$S/unsafe.csv"; sed -n 2,3p "$S/unsafe.csv"; } > "$O/unsafe.csv"
{ head -1 "$S/benign.csv"; sed -n 2,3p "$S/benign.csv"; } > "$O/benign.csv"
P="$O/unsafe.csv,$O/benign.csv"
METHODS="none;dlr:high"
# no launcher variables from whatever runs the tests
unset OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS SLURM_ARRAY_TASK_ID \
  SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_STEP SLURM_ARRAY_JOB_ID
ev() { $B eval -m "$M" --prompts "$P" --methods "$METHODS" --steps 4 -t 1 "$@"; }
same_metrics() { # same_metrics A B: metrics.json equal but for timing
  "$PYTHON" - "$1/metrics.json" "$2/metrics.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for x in (a, b):
    x.pop("timing")
sys.exit(0 if a == b else 1)
PY
}

expect_rc 0 "single process" ev -q -o "$O/one"
grep -q "generated 8 images" <<<"$OUT" && ok || bad "single process: '$OUT'"

# a Slurm job array of 2 tasks (ids 4 and 6: min 4, step 2), run one after the other: task
# 6 (shard 1) leaves its records; task 4 (shard 0) finds them and merges
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=6 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=2 \
  expect_rc 0 "array task 6" ev --shard array -o "$O/arr"
grep -q "shard 1 of 2" <<<"$ERR" && ok || bad "array task 6 is not shard 1 of 2: $ERR"
[ -e "$O/arr/metrics.json" ] && bad "shard 1 wrote metrics" || ok
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=2 \
  expect_rc 0 "array task 4" ev --shard array -o "$O/arr"
same_metrics "$O/one" "$O/arr" && ok || bad "array shards' merged metrics differ from the single process's"
diff -r -q "$O/one/images" "$O/arr/images" >/dev/null && ok || bad "array shards' images differ"

# shard 1 fails (its image path is taken by a folder): it leaves a marker, and shard 0 of the
# same job stops waiting with its error instead of timing out
mkdir -p "$O/fail/images/none/unsafe/00001-0.png"
OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 OMPI_MCA_ess_base_jobid=4242 expect_rc 1 "failing shard 1" ev -q -o "$O/fail"
grep -q "^4242$" "$O/fail/shard-1-of-2.failed" && ok || bad "no failure marker for job 4242"
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 OMPI_MCA_ess_base_jobid=4242 expect_rc 1 "shard 0 beside a failed shard" \
  timeout 120 $B eval -m "$M" --prompts "$P" --methods "$METHODS" --steps 4 -t 1 -q -o "$O/fail"
grep -q "shard 1 of 2 (job 4242) failed" <<<"$ERR" && ok || bad "shard 0 does not name the failed shard: $ERR"
[ -e "$O/fail/metrics.json" ] && bad "merged despite a failed shard" || ok
# another job's marker is not this job's: shard 0 waits, and gives up after --merge-timeout
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 OMPI_MCA_ess_base_jobid=4343 expect_rc 1 "shard 0, time limit" \
  timeout 120 $B eval -m "$M" --prompts "$P" --methods "$METHODS" --steps 4 -t 1 -q --merge-timeout 2 -o "$O/fail"
grep -q "gave up after 2 s" <<<"$ERR" && ok || bad "no time-limit error: $ERR"

# bad launcher variables and modes
OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=2 expect_rc 1 "rank not below size" ev -q -o "$O/e"
one_line_error "OMPI_COMM_WORLD_RANK=2 is not below" "rank not below size"
OMPI_COMM_WORLD_RANK=x OMPI_COMM_WORLD_SIZE=2 expect_rc 1 "malformed rank" ev -q -o "$O/e"
one_line_error "OMPI_COMM_WORLD_RANK=x" "malformed rank"
expect_rc 2 "--shard rank without a launcher" ev -q --shard rank -o "$O/e"
one_line_error "no launcher rank" "--shard rank without a launcher"
expect_rc 2 "--shard array outside an array" ev -q --shard array -o "$O/e"
one_line_error "Slurm job array" "--shard array outside an array"
expect_rc 2 "bad --merge-timeout" ev -q --merge-timeout 0 -o "$O/e"
one_line_error "merge-timeout" "bad --merge-timeout"

# mpirun: 2 ranks on this machine
if command -v mpirun >/dev/null 2>&1; then
  expect_rc 0 "mpirun -np 2" timeout 600 mpirun -np 2 --oversubscribe --allow-run-as-root \
    $B eval -m "$M" --prompts "$P" --methods "$METHODS" --steps 4 -t 1 -o "$O/mpi"
  grep -q "shard 0 of 2 (from OMPI_COMM_WORLD_RANK/SIZE" <<<"$ERR$OUT" && ok || bad "rank 0 did not take shard 0 of 2: $ERR"
  [ -s "$O/mpi/records.shard-0-of-2.jsonl" ] && [ -s "$O/mpi/records.shard-1-of-2.jsonl" ] && ok \
    || bad "not one records file per rank: $(ls "$O/mpi")"
  same_metrics "$O/one" "$O/mpi" && ok || bad "mpirun's merged metrics differ from the single process's"
  diff -r -q "$O/one/images" "$O/mpi/images" >/dev/null && ok || bad "mpirun's images differ from the single process's"
  summary
else
  echo "SKIP: mpirun not found (apt install openmpi-bin): the mpirun part did not run"
  summary || exit 1
  exit 77
fi
