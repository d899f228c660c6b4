#!/usr/bin/env bash
# `safesd serve` end to end on the bundled model, all on 127.0.0.1 with ports from --port 0:
# every route with valid and invalid requests (400 naming the field, 401, 404, 405, 413),
# per-request safety (unflagged prompts give the CLI's PNG bytes at every level, flagged ones
# change with the level and equal the CLI's at that level), the --min-safety floor, 429 with
# Retry-After under a full queue, cancellation when the clients go away, SIGTERM mid-request
# (the running request finishes whole, a queued one gets 503; past the grace period the
# running one is cancelled with a whole 503), the access log, curl as a client.
# The checks are in serve_check.py (Python's standard library).
source "$(dirname "$0")/../conformance/lib.sh"
command -v curl >/dev/null || { echo "FAIL: curl is not installed (tools/install-deps.sh)"; exit 1; }
unset SAFESD_API_KEY
T="$TMP/serve"; rm -rf "$T"; mkdir -p "$T"
"$PYTHON" "$SRC/tests/cli/serve_check.py" "$SAFESD_BIN" "$T/routes" routes || fails=$((fails + 1))
"$PYTHON" "$SRC/tests/cli/serve_check.py" "$SAFESD_BIN" "$T/shutdown" shutdown || fails=$((fails + 1))

# curl against a server without an API key; killed on exit whatever happens
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
"$SAFESD_BIN" serve -q --port 0 --port-file "$T/curl.port" --access-log off 2>"$T/curl.err" &
PIDS+=($!)
for _ in $(seq 300); do [ -s "$T/curl.port" ] && break; sleep 0.1; done
PORT=$(cat "$T/curl.port")
U="http://127.0.0.1:$PORT"
code=$(curl -s -o "$T/h.json" -w '%{http_code}' "$U/health")
[ "$code" = 200 ] && grep -q '"status":"ok"' "$T/h.json" && ok || bad "curl /health: $code $(cat "$T/h.json")"
code=$(curl -s -o "$T/a.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"prompt": "cat face, noto emoji", "steps": 6, "seed": 5, "cfg_scale": 7.5}' "$U/sdapi/v1/txt2img")
[ "$code" = 200 ] && ok || bad "curl txt2img: $code $(head -c 300 "$T/a.json")"
"$PYTHON" -c 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' \
  "$T/a.json" "$T/a.png"
"$SAFESD_BIN" generate -q -p "cat face, noto emoji" --steps 6 -s 5 -o "$T/cli.png" >/dev/null
cmp -s "$T/a.png" "$T/cli.png" && ok || bad "curl's image differs from the CLI's PNG bytes"
code=$(curl -s -o "$T/e.json" -w '%{http_code}' -d '{"prompt": "x", "n": 99}' "$U/v1/images/generations")
[ "$code" = 400 ] && grep -q '"param":"n"' "$T/e.json" && ok || bad "curl OpenAI error: $code $(cat "$T/e.json")"
kill -TERM "${PIDS[0]}"
set +e; wait "${PIDS[0]}"; rc=$?; set -e
[ "$rc" = 0 ] && ok || bad "curl server exit status $rc"

# command-line errors, before the model loads: strict numbers (exit 2), --port-file and
# --api-key-file that cannot be used (exit 1, naming the file); nothing is created
for a in "--port 1e3" "--port 80x" "--queue -1" "--timeout inf" "--max-body 1Q" "--mem-budget 3T" "--max-side 64.0"; do
  set +e; timeout 30 "$SAFESD_BIN" serve $a >/dev/null 2>"$T/arg.err"; rc=$?; set -e
  [ "$rc" = 2 ] && grep -q "^safesd serve: --" "$T/arg.err" && ok || bad "serve $a: exit $rc, $(cat "$T/arg.err")"
done
mkdir -p "$T/adir"
set +e; timeout 30 "$SAFESD_BIN" serve --port 0 --port-file "$T/adir" 2>"$T/pf.err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "port-file.*directory" "$T/pf.err" && ok || bad "--port-file DIR: exit $rc, $(cat "$T/pf.err")"
set +e; timeout 30 "$SAFESD_BIN" serve --port 0 --api-key-file /dev/null 2>"$T/kf.err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "api-key-file.*character device" "$T/kf.err" && ok || bad "--api-key-file /dev/null: exit $rc, $(cat "$T/kf.err")"
summary
