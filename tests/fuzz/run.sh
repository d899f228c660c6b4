#!/usr/bin/env bash
# Build the libFuzzer targets and run each one in turn.
#
#   tests/fuzz/run.sh [seconds]      seconds per target, default 60
#
# For each target fuzz_X (every tests/fuzz/fuzz_*.c):
#   1. replay: run every input of the seed corpus tests/fuzz/corpus/fuzz_X/ and of the
#      regression corpus tests/corpus/X/ (for fuzz_json and fuzz_config also
#      tests/corpus/models/files/) once (these must never crash);
#   2. fuzz for the given time, starting from a working corpus (kept between runs) plus those
#      two folders; new inputs go to the working corpus only, the checked-in ones stay as
#      they are. Crash inputs are written to <build>/fuzz-artifacts/fuzz_X/.
# Exits 1 if any target crashed, leaked, timed out or ran out of memory (never 77, which
# CTest would read as "skipped"), 2 if the fuzzers cannot be built.
#
# Environment:
#   SAFESD_FUZZ_BUILD_DIR  build folder (default <source>/build-fuzz); configured on first use
#   SAFESD_FUZZ_WORK_DIR   working corpora, logs, artifacts (default <build>)
#   SAFESD_FUZZ_TARGETS    space-separated subset, e.g. "fuzz_json"
#   SAFESD_FUZZ_NICE       nice level (default 10)
#   SAFESD_FUZZ_ARGS       extra libFuzzer flags, e.g. "-use_value_profile=1 -jobs=2"
#   CC                     a clang with libFuzzer (default: clang, clang-19 ... clang-14)
set -u
SECS=${1:-60}
case "$SECS" in ''|*[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2;; esac

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${SAFESD_FUZZ_BUILD_DIR:-$SRC/build-fuzz}
WORK=${SAFESD_FUZZ_WORK_DIR:-$BUILD}
NICE=${SAFESD_FUZZ_NICE:-10}
JOBS=$(nproc 2>/dev/null || echo 2)

find_clang() {
  local c
  for c in ${CC:-} clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
    if command -v "$c" >/dev/null 2>&1 && "$c" --version 2>/dev/null | grep -q clang; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

mkdir -p "$BUILD" "$WORK"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  CLANG=$(find_clang) || { echo "run.sh: no clang found (set CC)" >&2; exit 2; }
  echo "== configuring $BUILD with $CLANG"
  CC="$CLANG" cmake -S "$SRC" -B "$BUILD" -DSAFESD_FUZZ=ON -DSAFESD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Debug >"$WORK/fuzz-configure.log" 2>&1 ||
    { cat "$WORK/fuzz-configure.log" >&2; echo "run.sh: configure failed" >&2; exit 2; }
fi
echo "== building fuzzers in $BUILD"
# Re-run cmake so that the fuzz_*.c glob picks up new targets, then build only the fuzzers.
cmake "$BUILD" >/dev/null 2>&1
if ! nice -n "$NICE" cmake --build "$BUILD" --target safesd_fuzzers -j "$JOBS" >"$WORK/fuzz-build.log" 2>&1; then
  tail -n 40 "$WORK/fuzz-build.log" >&2
  echo "run.sh: build failed (full log: $WORK/fuzz-build.log)" >&2
  exit 2
fi

if [ -n "${SAFESD_FUZZ_TARGETS:-}" ]; then
  TARGETS=$SAFESD_FUZZ_TARGETS
else
  TARGETS=$(cd "$SRC/tests/fuzz" && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//')
fi

status=0
summary=""
for t in $TARGETS; do
  bin="$BUILD/tests/fuzz/$t"
  [ -x "$bin" ] || { echo "run.sh: $bin was not built" >&2; status=1; continue; }
  x=${t#fuzz_}
  dirs=()
  [ -d "$SRC/tests/fuzz/corpus/$t" ] && dirs+=("$SRC/tests/fuzz/corpus/$t")
  [ -d "$SRC/tests/corpus/$x" ] && dirs+=("$SRC/tests/corpus/$x")
  # the malformed model files of tests/corpus/models (configs, vocab.json) seed the JSON parsers
  case $t in fuzz_json|fuzz_config) [ -d "$SRC/tests/corpus/models/files" ] && dirs+=("$SRC/tests/corpus/models/files") ;; esac
  dict=()
  [ -f "$SRC/tests/fuzz/$t.dict" ] && dict=(-dict="$SRC/tests/fuzz/$t.dict")
  work="$WORK/fuzz-corpus/$t" art="$WORK/fuzz-artifacts/$t" log="$WORK/fuzz-logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  common=(-timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1
          -artifact_prefix="$art/" -print_final_stats=1)

  echo "== $t: replaying ${dirs[*]:-(no corpus)}"
  if [ ${#dirs[@]} -gt 0 ] && ! "$bin" "${common[@]}" -runs=0 "${dirs[@]}" >"$log.replay" 2>&1; then
    grep -E "ERROR|invariant|SUMMARY|Test unit written" "$log.replay" >&2
    echo "!! $t: a corpus input crashes (log: $log.replay)" >&2
    status=1
    summary+="$t: REPLAY CRASH"$'\n'
    continue
  fi

  echo "== $t: fuzzing for ${SECS}s (log: $log)"
  # shellcheck disable=SC2086
  nice -n "$NICE" "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$SECS" \
    ${SAFESD_FUZZ_ARGS:-} "$work" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  crashes=$(find "$art" -type f | wc -l)
  line="$t: rc=$rc execs=${execs:-?} exec/s=${rate:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} artifacts=$crashes"
  echo "   $line"
  summary+="$line"$'\n'
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|invariant|SUMMARY|Test unit written" "$log" | head -n 20 >&2
    echo "!! $t failed (rc $rc); artifacts in $art" >&2
    status=1
  fi
done

echo "== summary"
printf '%s' "$summary"
exit $status
