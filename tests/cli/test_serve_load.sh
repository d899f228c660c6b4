#!/usr/bin/env bash
# A bounded load test of `safesd serve` on the bundled model (127.0.0.1 only): 8 concurrent
# clients x 12 requests, a mix of valid A1111/OpenAI requests (4 steps) and invalid ones,
# against --queue 3. Prints latency percentiles and RSS over time; fails unless every request
# got 200, 400 or 429, and unless RSS stayed within 64 MiB of its early level.
source "$(dirname "$0")/../conformance/lib.sh"
unset SAFESD_API_KEY
T="$TMP/serve_load"; rm -rf "$T"; mkdir -p "$T"
"$PYTHON" "$SRC/tests/cli/serve_check.py" "$SAFESD_BIN" "$T" load
