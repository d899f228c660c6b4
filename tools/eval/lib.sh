# Shared by the evaluation scripts of tools/eval/ (sourced).

# uce_baseline SAFESD MODEL OUT: the UCE editing baseline of a model with the bundled model's
# safety/ layout: `safesd edit uce` erasing the labels of safety/unsafe.csv and preserving
# those of safety/proximal.csv (the label column, read with Python's csv module for the
# quoting), written to OUT unless OUT exists.
uce_baseline() {
  local B=$1 M=$2 OUT=$3 S=$2/safety
  [ -e "$OUT" ] && return 0
  local erase keep args=()
  mapfile -t erase < <(/usr/bin/python3 -c "import csv,sys; print('\n'.join(sorted({r['label'] for r in csv.DictReader(open(sys.argv[1]))})))" "$S/unsafe.csv")
  mapfile -t keep < <(/usr/bin/python3 -c "import csv,sys; print('\n'.join(sorted({r['label'] for r in csv.DictReader(open(sys.argv[1]))})))" "$S/proximal.csv")
  for e in "${erase[@]}"; do args+=(--erase "$e"); done
  for k in "${keep[@]}"; do args+=(--preserve "$k"); done
  "$B" edit uce -m "$M" "${args[@]}" -o "$OUT"
}

# run_sharded PROCESSES SUBSET OUTDIR ARGS...: `safesd eval ARGS... -o OUTDIR` in PROCESSES
# shards side by side (one thread each), every SUBSET-th row only (1: all rows), then merge.
run_sharded() {
  local P=$1 K=$2 O=$3 pids=() i
  shift 3
  for i in $(seq 0 $((P - 1))); do
    # shard i*K of K*P: with K = 1 the P shards cover every row; with K > 1 they cover every
    # K-th row (rows = 0 mod K), spread evenly over the set
    "$B" eval "$@" -t 1 --shard "$((i * K))/$((K * P))" -q -o "$O" &
    pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || { echo "an evaluation shard failed" >&2; return 1; }
  "$B" eval merge "$O"
}
