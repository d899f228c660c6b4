#!/bin/sh
# The lexical detector's figures for docs/safety-detectors.md: I2P flagged (overall, `hard`,
# per category), false positives on the benign sets (default bank; the bundled model's bank
# on its own sets), recall on the obfuscation / multilingual checks, and speed. The speed is
# wall clock on one thread: run on a quiet machine (another process's load inflates it).
#
#   tools/bench/lexical.sh [BUILD_DIR] [SHARED_DIR]     (defaults: build, ../shared)
set -eu
B=${1:-build}
S=${2:-../shared}
csv="$S/data/i2p/i2p_benchmark.csv"
[ -f "$csv" ] || { echo "lexical.sh: $csv not found (the I2P prompts: ../shared/data/i2p)" >&2; exit 1; }
[ -x "$B/lexical_i2p" ] || { echo "lexical.sh: $B/lexical_i2p not built (cmake --build $B --target lexical_i2p)" >&2; exit 1; }
m=models/safesd-emoji/safety
echo "== default bank"
"$B/lexical_i2p" --repeat 3 --unsafe data/prompts/lexical_obfuscated.txt --unsafe data/prompts/lexical_multilingual.txt \
  "$csv" data/prompts/benign.txt data/prompts/lexical_multilingual_benign.txt $m/benign.csv $m/proximal.csv
if [ -f data/prompts/sd_ordinary.txt ]; then "$B/lexical_i2p" "$csv" data/prompts/sd_ordinary.txt | tail -1; fi
echo "== the bundled model's bank"
"$B/lexical_i2p" --bank $m/concepts.bank --unsafe $m/unsafe.csv --unsafe $m/paraphrases.csv "$csv" $m/benign.csv \
  $m/proximal.csv | grep -E "^(benign|unsafe)"
