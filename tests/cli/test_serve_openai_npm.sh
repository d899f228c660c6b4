#!/usr/bin/env bash
# The official openai npm client's images.generate against `safesd serve`'s OpenAI route
# (tests/node: package.json + package-lock.json, installed by tools/install-deps.sh with
# `npm ci`). Skipped (77) when tests/node/node_modules is absent.
source "$(dirname "$0")/../conformance/lib.sh"
NODE_DIR="$SRC/tests/node"
if [ ! -d "$NODE_DIR/node_modules/openai" ]; then
  echo "SKIP: $NODE_DIR/node_modules is absent (run tools/install-deps.sh, which runs npm ci there)"
  exit 77
fi
command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
T="$TMP/serve_npm"; rm -rf "$T"; mkdir -p "$T"
PID=""
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true' EXIT
"$SAFESD_BIN" serve -q --port 0 --port-file "$T/port" --api-key npm-key --access-log "$T/log" 2>"$T/err" &
PID=$!
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { echo "FAIL: the server did not start: $(cat "$T/err")"; exit 1; }
expect_rc 0 "openai client" node "$NODE_DIR/openai_client.js" "http://127.0.0.1:$(cat "$T/port")/v1" npm-key
echo "$OUT"
grep -q '"POST /v1/images/generations" 200' "$T/log" && ok || bad "no 200 in the access log: $(cat "$T/log")"
kill -TERM "$PID"
set +e; wait "$PID"; rc=$?; set -e
[ "$rc" = 0 ] && ok || bad "server exit status $rc"
summary
