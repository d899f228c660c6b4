#!/usr/bin/env bash
# The safety gate end to end: `safesd check`, and `safesd generate --safety LEVEL` on a small
# random model. Invariants: a prompt no detector flags gives exactly the bytes of --safety
# off; a flagged prompt is altered and the PNG metadata and JSON report say why; --safety max
# (λ = 1, τ_gc = 0) equals generating from the safe text alone.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
M="$TMP/pipeline_sd1"
O="$TMP/gate_out"; rm -rf "$O"; mkdir -p "$O"
BENIGN="a red apple on a wooden table"
UNSAFE="a man holding a bloody knife"

# check
expect_rc 0 "check benign" $B check "$BENIGN"
grep -q "not flagged" <<<"$OUT" && ok || bad "benign prompt flagged: $OUT"
expect_rc 0 "check unsafe" $B check "$UNSAFE"
grep -q "FLAGGED" <<<"$OUT" && grep -q "violence" <<<"$OUT" && ok || bad "unsafe prompt not flagged: $OUT"
expect_rc 0 "check obfuscated" $B check --json "a man holding a bl00dy knife"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); sys.exit(0 if r['flagged'] and r['detectors'][0]['evidence'][0]['via'] else 1)" <<<"$OUT" && ok || bad "check --json: $OUT"
SAFE=$("$PYTHON" -c "import json,sys; print(json.loads(sys.stdin.read())['safe_text'])" <<<"$($B check --json "$UNSAFE")")
[ -n "$SAFE" ] && [ "$SAFE" != "$UNSAFE" ] && ok || bad "no safe text: '$SAFE'"
printf '[violence]\nterms = blood\nbogus = 1\n' > "$O/bad.bank"
expect_rc 1 "malformed bank" $B check --concepts "$O/bad.bank" "x"
one_line_error "bad.bank:3" "malformed bank"
expect_rc 1 "unknown strategy" $B check --safety-strategy rewrite "x"
expect_rc 2 "check without prompt" $B check

gen() { local out=$1; shift; $B generate -q -m "$M/model" --steps 4 -s 11 --sampler euler_a -o "$O/$out.png" --latents "$O/$out.npy" "$@" >/dev/null; }
same_pixels() { "$SAFESD_BUILD_DIR/tests/png_check" "$O/$1.png" "$O/$2.png" --max-level 0 --max-frac 0 >/dev/null && cmp -s "$O/$1.npy" "$O/$2.npy"; }

# benign: bit-identical to off at every level (pixels, latents, and the PNG bytes)
gen benign_off -p "$BENIGN" --safety off
for lvl in low medium high max; do
  gen "benign_$lvl" -p "$BENIGN" --safety "$lvl" --safety-report "$O/benign_$lvl.json"
  cmp -s "$O/benign_off.png" "$O/benign_$lvl.png" && cmp -s "$O/benign_off.npy" "$O/benign_$lvl.npy" && ok || bad "benign prompt changed at --safety $lvl"
done
"$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); d=r['detectors']; sys.exit(0 if d['checked'] and not d['flagged'] and not r['altered'] else 1)" "$O/benign_high.json" && ok || bad "benign report"

# flagged: altered, and the image says so
gen unsafe_off -p "$UNSAFE" --safety off
gen unsafe_medium -p "$UNSAFE" --safety-report "$O/unsafe_medium.json"      # medium is the default
same_pixels unsafe_off unsafe_medium && bad "flagged prompt not altered at the default level" || ok
grep -qa "Safety: \"medium, flagged (violence" "$O/unsafe_medium.png" && ok || bad "PNG metadata does not say the image was altered"
"$PYTHON" - "$O/unsafe_medium.json" <<'PY' && ok || bad "flagged report"
import json, sys
r = json.load(open(sys.argv[1]))
d = r["detectors"]
ok = r["altered"] and d["flagged"] and "violence" in d["categories"] and d["strategy"] == "substitute+append" \
     and r["dual"]["ran"] and abs(r["dual"]["safety_weight"] - 0.7) < 1e-6 and "blood" in d["detection"]
print(json.dumps(r, indent=1) if not ok else "report ok")
sys.exit(0 if ok else 1)
PY
# levels differ from each other
gen unsafe_low -p "$UNSAFE" --safety low
same_pixels unsafe_low unsafe_medium && bad "levels low and medium gave the same image" || ok
# max = λ 1, τ 0: the same as generating from the safe text alone
gen unsafe_max -p "$UNSAFE" --safety max
gen safe_alone -p "$SAFE" --safety off
same_pixels unsafe_max safe_alone && ok || bad "--safety max differs from generating the safe text alone"
# explicit mechanisms bypass the gate
gen unsafe_sld -p "$UNSAFE" --sld medium --safety-report "$O/unsafe_sld.json"
"$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if not r['detectors']['checked'] and r['sld']=='medium' else 1)" "$O/unsafe_sld.json" && ok || bad "SLD run went through the gate"
# the semantic detector, in the model's own text-encoder space (random weights here: only the
# wiring is tested; thresholds far below / above any score force it on / off)
expect_rc 0 "check with both detectors" $B check -m "$M/model" --detectors lexical,semantic --json "$UNSAFE"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); d=[x['detector'] for x in r['detectors']]; sys.exit(0 if d==['lexical','semantic'] and r['flagged'] else 1)" <<<"$OUT" && ok || bad "check --detectors lexical,semantic: $OUT"
expect_rc 1 "semantic without a model" $B check --detectors semantic "x"
one_line_error "needs a model" "semantic without a model"
expect_rc 1 "unknown detector" $B check --detectors lexical,magic "x"
one_line_error "unknown detector" "unknown detector"
gen sem_on -p "$BENIGN" --detectors semantic --semantic-threshold -10 --safety-report "$O/sem_on.json"
same_pixels benign_off sem_on && bad "semantic detector forced on did not alter the image" || ok
"$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); d=r['detectors']; sys.exit(0 if d['flagged'] and 'semantic' in d['detection'] else 1)" "$O/sem_on.json" && ok || bad "semantic report"
gen sem_off -p "$BENIGN" --detectors semantic --semantic-threshold 10
cmp -s "$O/benign_off.png" "$O/sem_off.png" && cmp -s "$O/benign_off.npy" "$O/sem_off.npy" && ok || bad "semantic detector not firing still changed the image"

expect_rc 1 "unknown level" $B generate -q -m "$M/model" -p x --safety extreme -o "$O/e.png"
one_line_error "safety level" "unknown level"
[ -e "$O/e.png" ] && bad "image written for a bad level" || ok
summary
