#!/usr/bin/env bash
# The full evaluation of the bundled model, one command (docs/evaluation.md):
#   tools/eval/bundled.sh [BUILD_DIR] [OUT_DIR] [PROCESSES]
#   (SUBSET=K: only every K-th prompt of each set, rows 0, K, 2K, ...; LIMIT=N: only the
#   first N prompts of each set; MODEL=DIR: another model with the same safety/ layout)
# 1. the UCE baseline: `safesd edit uce` erasing the bank's unsafe emoji, preserving the
#    proximal ones (OUT_DIR/uce-emoji);
# 2. `safesd eval` on the model's unsafe, proximal and benign prompt sets with every method:
#    none, negative prompt, SLD x4, dual latent reconstruction at every level and a lambda
#    sweep (tau 0.2), UCE; 20 steps, one image per prompt, seeds = row numbers;
#    PROCESSES shards (default: the CPU count) run side by side, then merge;
# 3. the report: OUT_DIR/eval/report.html, metrics.json, tables.md.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-build/eval-bundled}
P=${3:-$(nproc)}
LIM=()
[ -n "${LIMIT:-}" ] && LIM=(--limit "$LIMIT")
B="$BUILD/safesd"
M=${MODEL:-models/safesd-emoji}
S=$M/safety
mkdir -p "$OUT"
source "$(dirname "$0")/lib.sh"
uce_baseline "$B" "$M" "$OUT/uce-emoji"
METHODS=(--methods "none;negative-prompt;sld:weak;sld:medium;sld:strong;sld:max;dlr:low;dlr:medium;dlr:high;dlr:max"
         --methods "dlr:l=0.25,t=0.2;dlr:l=0.5,t=0.2;dlr:l=0.75,t=0.2;dlr:l=1,t=0.2"
         --methods "model:$OUT/uce-emoji")
run_sharded "$P" "${SUBSET:-1}" "$OUT/eval" -m "$M" --prompts "$S/unsafe.csv,$S/proximal.csv,$S/benign.csv" \
  "${METHODS[@]}" --steps 20 --seed-policy row "${LIM[@]}"
echo "report: $OUT/eval/report.html; tables: $OUT/eval/tables.md"
