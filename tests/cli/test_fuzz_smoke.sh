#!/usr/bin/env bash
# Bounded fuzz smoke run (about 20 s of fuzzing in all): builds the libFuzzer targets with
# ASan + UBSan, replays the seed and regression corpora through each, then fuzzes each for a
# few seconds. Skipped (exit 77) when no clang with libFuzzer is installed.
#
# The fuzz build is cached in $SAFESD_BUILD_DIR/fuzz-smoke, so reruns only rebuild what
# changed; the working corpus is fresh each run (under $SAFESD_TEST_TMP), so results do not
# depend on earlier runs. Set SAFESD_FUZZ_SMOKE_SECONDS to change the total time.
set -u
SRC=${SAFESD_SOURCE_DIR:?SAFESD_SOURCE_DIR is not set (run through ctest)}
BUILD=${SAFESD_BUILD_DIR:?SAFESD_BUILD_DIR is not set (run through ctest)}
TMP=${SAFESD_TEST_TMP:-$BUILD/test-tmp}
TOTAL=${SAFESD_FUZZ_SMOKE_SECONDS:-20}

# A clang that can link a libFuzzer + ASan + UBSan program?
CLANG=""
for c in ${CC:-} clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
  if command -v "$c" >/dev/null 2>&1 && "$c" --version 2>/dev/null | grep -q clang; then
    CLANG=$(command -v "$c"); break
  fi
done
if [ -z "$CLANG" ]; then
  echo "SKIP: no clang compiler found; the fuzz smoke run needs clang with libFuzzer"
  exit 77
fi
probe_dir="$TMP/fuzz-smoke-probe"
mkdir -p "$probe_dir"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
  >"$probe_dir/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe_dir/probe.c" -o "$probe_dir/probe" \
     >"$probe_dir/probe.log" 2>&1; then
  echo "SKIP: $CLANG cannot build a libFuzzer program (-fsanitize=fuzzer,address,undefined):"
  head -n 5 "$probe_dir/probe.log"
  exit 77
fi

n=$(ls "$SRC"/tests/fuzz/fuzz_*.c 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then echo "FAIL: no fuzz targets in $SRC/tests/fuzz"; exit 1; fi
per=$(( TOTAL / n ))
[ "$per" -lt 3 ] && per=3

rm -rf "$TMP/fuzz-smoke"
mkdir -p "$TMP/fuzz-smoke"
CC="$CLANG" SAFESD_FUZZ_BUILD_DIR="$BUILD/fuzz-smoke" SAFESD_FUZZ_WORK_DIR="$TMP/fuzz-smoke" \
  SAFESD_FUZZ_NICE=${SAFESD_FUZZ_NICE:-0} bash "$SRC/tests/fuzz/run.sh" "$per"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "FAIL: fuzz smoke run failed (run.sh exit $rc); logs and crash inputs in $TMP/fuzz-smoke"
  exit 1   # never 77: a crash must not read as "skipped"
fi
echo "PASS: $n fuzz targets, ${per}s each, no crashes"
