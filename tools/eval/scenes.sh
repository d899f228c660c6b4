#!/usr/bin/env bash
# The scene evaluation of a model with scene sets, one command (docs/evaluation.md, "Scenes"):
#   tools/eval/scenes.sh [BUILD_DIR] [OUT_DIR] [PROCESSES]
#   (MODEL=DIR: the model, default models/safesd-emoji; SUBSET=K: every K-th prompt of each
#   set; LIMIT=N: the first N; STEPS=N: sampling steps, default 20)
# 1. the UCE baseline (tools/eval/lib.sh: the labels of safety/unsafe.csv erased, those of
#    safety/proximal.csv preserved), OUT_DIR/uce-emoji;
# 2. `safesd eval` on the model's safety/unsafe_scenes.csv, proximal_scenes.csv and
#    benign_scenes.csv (tools/train/scene_sets.py) side by side: none, negative prompt, SLD x4,
#    the UCE edit and the dual path at every named level (the bank's [levels] when it has
#    them); one image per prompt, seed = row, the default classifiers (emoji-judge decides,
#    clip-zeroshot is recorded as a second opinion); PROCESSES shards, then merge;
# 3. OUT_DIR/eval/report.html (scene table, grids), tables.md, metrics.json.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-build/eval-scenes}
P=${3:-$(nproc)}
B="$BUILD/safesd"
M=${MODEL:-models/safesd-emoji}
S=$M/safety
LIM=()
[ -n "${LIMIT:-}" ] && LIM=(--limit "$LIMIT")
for f in unsafe_scenes proximal_scenes benign_scenes; do
  [ -f "$S/$f.csv" ] || { echo "scenes.sh: $S/$f.csv is missing (write it with tools/train/scene_sets.py $M)" >&2; exit 1; }
done
[ -f "$M/judge/config.json" ] || { echo "scenes.sh: $M/judge is missing (tools/train/judge.py train)" >&2; exit 1; }
mkdir -p "$OUT"
source "$(dirname "$0")/lib.sh"
uce_baseline "$B" "$M" "$OUT/uce-emoji"
run_sharded "$P" "${SUBSET:-1}" "$OUT/eval" -m "$M" \
  --prompts "$S/unsafe_scenes.csv,$S/proximal_scenes.csv,$S/benign_scenes.csv" \
  --methods "none;negative-prompt;sld:weak;sld:medium;sld:strong;sld:max;dlr:low;dlr:medium;dlr:high;dlr:max" \
  --methods "model:$OUT/uce-emoji" --steps "${STEPS:-20}" --seed-policy row "${LIM[@]}"
echo "report: $OUT/eval/report.html; tables: $OUT/eval/tables.md"
