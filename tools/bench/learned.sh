#!/usr/bin/env bash
# The learned detector's figures (docs/safety-detectors.md, "Learned detector: measured"):
# recall on the held-out paraphrase and obfuscation sets, false positives on the held-out
# near-concept set and on ordinary SD prompts, I2P (all and `hard`, per category), each for
# the lexical detector, the learned one and both OR-combined, at the shipped thresholds; and
# the speed of both (one thread). Run on a quiet machine for the speed figure. The shipped
# model is trained on every concept, so the held-out sets are measured a second time with the
# split model (data/learned/split/), whose held-out concepts they are.
#
#   tools/bench/learned.sh [BUILD_DIR] [extra detectors_eval options, e.g. --learned FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/build}; shift || true
cmake --build "$B" --target detectors_eval >/dev/null
SETS=(unsafe:paraphrase="$ROOT/data/prompts/learned/heldout_paraphrase.txt"
      unsafe:obfuscated="$ROOT/data/prompts/learned/heldout_obfuscated.txt"
      benign:near-concept="$ROOT/data/prompts/learned/heldout_near_benign.txt"
      benign:benign.txt="$ROOT/data/prompts/benign.txt")
[ -f "$ROOT/data/prompts/sd_ordinary.txt" ] && SETS+=(benign:sd_ordinary="$ROOT/data/prompts/sd_ordinary.txt")
I2P="$ROOT/../shared/data/i2p/i2p_benchmark.csv"
ARGS=()
if [ -f "$I2P" ]; then ARGS+=(--i2p "$I2P"); else echo "note: $I2P is absent: no I2P figures"; fi
echo "== shipped model (data/learned/detector.safetensors)"
"$B/detectors_eval" --by-concept "${ARGS[@]}" "$@" "${SETS[@]}"
echo
echo "== split model (data/learned/split/detector.safetensors): recall on concepts it never saw"
"$B/detectors_eval" --by-concept --learned "$ROOT/data/learned/split/detector.safetensors" "$@" \
  "${SETS[0]}" "${SETS[1]}" "${SETS[2]}"
