# Shared by the conformance tests. Sourced; the CTest environment sets SAFESD_* variables.
set -euo pipefail
PYTHON=${SAFESD_PYTHON:-/usr/bin/python3}
BUILD=${SAFESD_BUILD_DIR:?run through ctest}
SRC=${SAFESD_SOURCE_DIR:?run through ctest}
SHARED=${SAFESD_SHARED_DIR:-$SRC/../shared}
TMP=${SAFESD_TEST_TMP:-$BUILD/test-tmp}
mkdir -p "$TMP"
# PyTorch reference cases (random weights and their outputs): made once and shared by a
# conformance script and its variants (conformance.NAME.fallback, .avx2, .winograd), which only
# change what the C side runs; tools/ref reads no SAFESD_* or oneDNN variable.
CASES=${SAFESD_CASE_DIR:-$TMP}
mkdir -p "$CASES"
# Activation buffers handed out NaN-filled (src/core/arena.h): an op that reads activation
# memory nobody wrote fails here on every machine, not only where the block held a NaN.
export SAFESD_ARENA_POISON=${SAFESD_ARENA_POISON:-1}

need_torch() {
  if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "FAIL: $PYTHON cannot import torch and numpy (install python3-torch python3-numpy; see README)"
    exit 1
  fi
}

# need_pipeline_model FAMILY: the small random text-to-image model of tools/ref/pipeline_case.py
# (with its PyTorch reference runs) in $TMP/pipeline_FAMILY, made once; a lock keeps tests
# running in parallel from making it twice at the same time.
need_pipeline_model() {
  local fam=$1 dir="$TMP/pipeline_$1" gen="$SRC/tools/ref/pipeline_case.py"
  (
    flock 9
    if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ]; then
      rm -rf "$dir"
      "$PYTHON" "$gen" "$dir" --safesd "$SAFESD_BIN" --family "$fam" >/dev/null
      touch "$dir/.done"
    fi
  ) 9>"$TMP/pipeline_$fam.lock"
}

# need_ref_case DIR GENERATOR FAMILY [DEP...]: the reference runs of a tools/ref case generator
# (`GENERATOR DIR --safesd BIN --family FAMILY`) in DIR, made again when the generator or a
# DEP is newer than them; a lock keeps tests running in parallel from making them twice.
need_ref_case() {
  local dir=$1 gen=$2 fam=$3; shift 3
  (
    flock 9
    local stale=0 dep
    [ -f "$dir/.done" ] || stale=1
    for dep in "$gen" "$@"; do [ "$dep" -nt "$dir/.done" ] && stale=1; done
    if [ "$stale" = 1 ]; then
      rm -rf "$dir"
      "$PYTHON" "$gen" "$dir" --safesd "$SAFESD_BIN" --family "$fam" >/dev/null
      touch "$dir/.done"
    fi
  ) 9>"$dir.lock"
}

need_shared() { # need_shared REL: skip (77) with the reason when ../shared lacks REL
  if [ ! -e "$SHARED/$1" ]; then
    echo "SKIP: $SHARED/$1 is absent (the shared test-data folder is not beside the checkout)"
    exit 77
  fi
}

# ref_case DIR GENERATOR ARGS...: run the PyTorch reference generator (`GENERATOR DIR ARGS...`)
# unless DIR is newer than it and sdref.py; a lock keeps tests running in parallel (a script
# and its variants share $CASES) from making the same case twice at the same time.
ref_case() {
  local dir=$1 gen=$2; shift 2
  (
    flock 9
    if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref.py" -nt "$dir/.done" ]; then
      rm -rf "$dir"
      "$PYTHON" "$gen" "$dir" "$@" || exit 1
      touch "$dir/.done"
    fi
  ) 9>"$dir.lock"
}
# make_case DIR ARGS...: a text-encoder case of tools/ref/clip_text_case.py.
make_case() { local dir=$1; shift; ref_case "$dir" "$SRC/tools/ref/clip_text_case.py" "$@"; }

# ---- helpers for the CLI tests: counters, exit-status and error-message checks ----------
fails=0; pass=0
ok()  { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_rc RC DESCRIPTION CMD...: run CMD, check its exit status; stdout in $OUT, stderr in $ERR
expect_rc() {
  local want=$1 what=$2; shift 2
  local errf="$TMP/expect_rc.$$.err"   # per test process: ctest runs tests in parallel
  set +e; OUT=$("$@" 2>"$errf"); local rc=$?; set -e
  ERR=$(cat "$errf")
  if [ "$rc" = "$want" ]; then ok; else bad "$what: exit $rc, expected $want (stderr: $ERR)"; fi
}
# one_line_error TEXT WHAT: stderr of the last expect_rc is one line that mentions TEXT
one_line_error() {
  if [ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] && grep -q -- "$1" <<<"$ERR"; then ok; else bad "error message for $2: '$ERR'"; fi
}
# summary: the closing line, and the exit status
summary() { echo "$pass passed, $fails failed"; [ "$fails" = 0 ]; }

# compare_npy GOT REF TOL LABEL: max abs difference of two .npy arrays <= TOL
compare_npy() {
  "$PYTHON" - "$@" <<'PY'
import sys, numpy as np
got, ref, tol, label = np.load(sys.argv[1]), np.load(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
err = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
print(f"{label}: max abs error {err:.3g} (tolerance {tol:g}, values up to {float(np.abs(ref).max()):.3g})")
sys.exit(0 if err <= tol else 1)
PY
}
