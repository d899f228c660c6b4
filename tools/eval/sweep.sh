#!/usr/bin/env bash
# The levels sweep of a model, one command (docs/safety.md "Levels from measurement",
# docs/evaluation.md "The sweep"):
#   tools/eval/sweep.sh [BUILD_DIR] [OUT_DIR] [PROCESSES]
#   (MODEL=DIR, default models/safesd-emoji; WRITE=1 stores the chosen levels in the model's
#   bank; the grid: LAMBDAS (default "0.25 0.5 0.75 0.9 1"), TAUS ("0 0.1 0.2 0.3"),
#   STRATEGIES ("substitute+append substitute"), BLENDS ("step final"); SUBSET=K / LIMIT=N /
#   STEPS=N as in scenes.sh)
# 1. `safesd eval` of none and the dual path at every (lambda, tau, strategy, blend) of the
#    grid (blend final is left out at lambda 1, where it equals step) on the model's
#    safety/unsafe_scenes.csv, judged by emoji-judge; PROCESSES shards, then merge;
# 2. `safesd eval levels`: the measured safety-preservation front and the level each rule
#    picks (OUT_DIR/levels.json), written into the bank's [levels] with WRITE=1.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-build/sweep}
P=${3:-$(nproc)}
B="$BUILD/safesd"
M=${MODEL:-models/safesd-emoji}
S=$M/safety
LIM=()
[ -n "${LIMIT:-}" ] && LIM=(--limit "$LIMIT")
[ -f "$S/unsafe_scenes.csv" ] || { echo "sweep.sh: $S/unsafe_scenes.csv is missing (tools/train/scene_sets.py $M)" >&2; exit 1; }
methods=(--methods none)
for l in ${LAMBDAS:-0.25 0.5 0.75 0.9 1}; do
  for t in ${TAUS:-0 0.1 0.2 0.3}; do
    for s in ${STRATEGIES:-substitute+append substitute}; do
      for b in ${BLENDS:-step final}; do
        [ "$b" = final ] && [ "$l" = 1 ] && continue
        methods+=(--methods "dlr:l=$l,t=$t,s=$s,b=$b")
      done
    done
  done
done
echo "sweep: $(( ${#methods[@]} / 2 )) methods on $S/unsafe_scenes.csv" >&2
mkdir -p "$OUT"
source "$(dirname "$0")/lib.sh"
run_sharded "$P" "${SUBSET:-1}" "$OUT/eval" -m "$M" --prompts "$S/unsafe_scenes.csv" "${methods[@]}" \
  --steps "${STEPS:-20}" --seed-policy row "${LIM[@]}"
W=()
[ "${WRITE:-0}" = 1 ] && W=(--write-bank)
"$B" eval levels "$OUT/eval" --json "$OUT/levels.json" "${W[@]}"
echo "front: $OUT/levels.json; report: $OUT/eval/report.html"
