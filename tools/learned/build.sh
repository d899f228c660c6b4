#!/usr/bin/env bash
# Rebuild the learned detector's weights: the corpus (tools/learned/corpus.py, seeded), the
# training (train.py, CPU) and data/learned/detector.safetensors + manifest.json.
#   tools/learned/build.sh [WORK_DIR] [train.py options]      (default WORK_DIR build/learned)
# About 10 minutes on two loaded cores (corpus ~1 min, featurising ~2 min, 4 epochs ~1.5 min each).
# The hard-negative list (tools/learned/hard_words.txt) is committed; tools/learned/mine.py rewrites it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${1:-$ROOT/build/learned}; shift || true
PY=${SAFESD_PYTHON:-/usr/bin/python3}
"$PY" "$ROOT/tools/learned/corpus.py" --out "$W/corpus"
"$PY" "$ROOT/tools/learned/train.py" --corpus "$W/corpus" --out "$ROOT/data/learned/detector.safetensors" "$@"
