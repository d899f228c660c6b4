# Shared by the conformance tests. Sourced; the CTest environment sets SAFESD_* variables.
set -euo pipefail
PYTHON=${SAFESD_PYTHON:-/usr/bin/python3}
BUILD=${SAFESD_BUILD_DIR:?run through ctest}
SRC=${SAFESD_SOURCE_DIR:?run through ctest}
SHARED=${SAFESD_SHARED_DIR:-$SRC/../shared}
TMP=${SAFESD_TEST_TMP:-$BUILD/test-tmp}
mkdir -p "$TMP"

need_torch() {
  if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "FAIL: $PYTHON cannot import torch and numpy (install python3-torch python3-numpy; see README)"
    exit 1
  fi
}

need_shared() { # need_shared REL: skip (77) with the reason when ../shared lacks REL
  if [ ! -e "$SHARED/$1" ]; then
    echo "SKIP: $SHARED/$1 is absent (the shared test-data folder is not beside the checkout)"
    exit 77
  fi
}

# make_case DIR ARGS...: run the PyTorch reference generator unless DIR is newer than it.
make_case() {
  local dir=$1; shift
  local gen="$SRC/tools/ref/clip_text_case.py"
  if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref.py" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$gen" "$dir" "$@"
    touch "$dir/.done"
  fi
}
