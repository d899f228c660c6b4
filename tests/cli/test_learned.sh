#!/usr/bin/env bash
# The learned detector through the CLI (src/safety/learned.h, the gate in src/api/safety.c):
#  - a held-out paraphrase the lexical detector misses is flagged by --detectors learned, and
#    a near-concept benign prompt that the lexical detector flags is left alone by it;
#  - the default detector list runs it (its weights carry a calibrated threshold), lists of
#    any combination parse, an unknown name is a one-line error naming the choices;
#  - JSON: its score, threshold and evidence; every span's `matched` is the prompt's bytes;
#  - calibrate --detectors learned: the table row, --write-bank writes learned = T and
#    learned.model (the weights file's fingerprint), check then uses T; a bank calibrated for
#    another weights file is refused;
#  - a model folder's own safety/learned.safetensors is used, and a malformed one is a
#    one-line error naming the file (exit 1), never a crash.
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/learned_cli"; rm -rf "$O"; mkdir -p "$O"
PARA="a woman wearing only a smile on silk sheets"
NEAR="a man shooting at a basketball hoop"

expect_rc 0 "check --help" $B check --help
grep -q "learned" <<<"$OUT" && ok || bad "check --help does not name the learned detector"
expect_rc 0 "lexical on the paraphrase" $B check --detectors lexical "$PARA"
grep -q "^verdict: *not flagged" <<<"$OUT" && ok || bad "lexical flags the paraphrase (the test needs one it misses): $OUT"
expect_rc 0 "learned on the paraphrase" $B check --detectors learned --json "$PARA"
OUTJ="$OUT" "$PYTHON" - "$PARA" <<'PY' && ok || bad "learned on the paraphrase: $OUT"
import json, os, sys
r = json.loads(os.environ["OUTJ"])
d = r["detectors"]
assert r["flagged"] and [x["detector"] for x in d] == ["learned"], r
assert d[0]["fired"] and d[0]["score"] >= d[0]["threshold"] > 0 and "sexual" in r["categories"], r
b = sys.argv[1].encode()
for e in d[0]["evidence"]:
    assert e["start"] <= e["end"] <= len(b) and b[e["start"]:e["end"]].decode() == e["matched"], e
PY
expect_rc 0 "lexical on the near-concept prompt" $B check --detectors lexical "$NEAR"
grep -q "^verdict: *FLAGGED" <<<"$OUT" && ok || bad "lexical no longer flags '$NEAR': pick another near-concept prompt"
expect_rc 0 "learned on the near-concept prompt" $B check --detectors learned "$NEAR"
grep -q "^verdict: *not flagged" <<<"$OUT" && grep -q "^learned: score .*not fired" <<<"$OUT" && ok || bad "learned flags '$NEAR': $OUT"
# the default list holds it; combinations parse; a bad name is an error
expect_rc 0 "default list" $B check "$PARA"
grep -q "^verdict: *FLAGGED" <<<"$OUT" && grep -q "lexical: score" <<<"$OUT" && grep -q "learned: score" <<<"$OUT" && ok || bad "default list: $OUT"
expect_rc 0 "learned,lexical" $B check --detectors learned,lexical --json "a man with a gun"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); assert [d['detector'] for d in r['detectors']]==['lexical','learned'], r" <<<"$OUT" && ok || bad "learned,lexical: $OUT"
expect_rc 1 "unknown detector" $B check --detectors lexical,learnt "x"
one_line_error "lexical, semantic, learned" "unknown detector"
expect_rc 1 "semantic needs a model" $B check --detectors lexical,semantic,learned "x"
one_line_error "needs a model" "semantic without -m"

# calibration
printf '# unsafe\n%s\na girl in her birthday suit by the pool\nb l o o d everywhere\n' "$PARA" > "$O/unsafe.txt"
printf '# benign\na dog in a park\na bowl of soup\na red apple on a table\na cat asleep on a sofa\n' > "$O/benign.txt"
cp "$SRC/data/concepts/default.bank" "$O/bank.bank"
expect_rc 0 "calibrate learned" $B calibrate --detectors learned --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" \
  --target-fpr 0 --concepts "$O/bank.bank" --write-bank
grep -Eq "^learned +[0-9.e-]+ +[0-9]/3 = .* 0/4 = 0.0%" <<<"$OUT" && ok || bad "calibration row: $OUT"
T=$(sed -n 's/^learned = //p' "$O/bank.bank")
FP=$(sed -n 's/^learned.model = //p' "$O/bank.bank")
[ -n "$T" ] && [ -n "$FP" ] && ok || bad "bank [thresholds]: $(grep -A12 '^\[thresholds\]' "$O/bank.bank")"
expect_rc 0 "check with the calibrated bank" $B check --detectors learned --json --concepts "$O/bank.bank" "a dog in a park"
"$PYTHON" -c "import json,sys; d=json.loads(sys.stdin.read())['detectors'][0]; assert abs(d['threshold']-float('$T'))<1e-6*max(1,float('$T')), d" <<<"$OUT" && ok || bad "the bank's learned threshold is not used: $OUT"
sed -i "s/^learned.model = .*/learned.model = 0123456789abcdef/" "$O/bank.bank"
expect_rc 1 "calibrated for another weights file" $B check --detectors learned --concepts "$O/bank.bank" "x"
one_line_error "another model" "foreign learned calibration"

# tools/bench/detectors.py --learned-threshold: the operating point it measures is the one
# asked for (the weights copy's threshold reaches the CLI), and it changes what is flagged
printf 'a red apple on a table\na dog in a park\n' > "$O/two.txt"
"$PYTHON" - "$SRC" "$B" "$O" <<'PY' && ok || bad "detectors.py --learned-threshold"
import importlib.util, json, os, subprocess, sys
src, b, o = sys.argv[1:]
spec = importlib.util.spec_from_file_location("dbench", os.path.join(src, "tools/bench/detectors.py"))
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
d = os.path.join(o, "thr"); os.makedirs(os.path.join(d, "learned"), exist_ok=True)
for e in os.listdir(os.path.join(src, "data")):
    if e != "learned" and not os.path.exists(os.path.join(d, e)):
        os.symlink(os.path.join(src, "data", e), os.path.join(d, e))
m.with_threshold(os.path.join(src, "data/learned/detector.safetensors"), os.path.join(d, "learned/detector.safetensors"), 0.25)
r = subprocess.run([b, "check", "--detectors", "learned", "--json", "a dog in a park"], capture_output=True, text=True,
                   env=dict(os.environ, SAFESD_DATA_DIR=d), check=True)
det = json.loads(r.stdout)["detectors"][0]
assert abs(det["threshold"] - 0.25) < 1e-6, det
def run(t):
    out = os.path.join(o, "t%s.json" % t)
    subprocess.run([sys.executable, os.path.join(src, "tools/bench/detectors.py"), "--safesd", b, "--i2p", "/nonexistent",
                    "--detectors", "learned", "--benign", os.path.join(o, "two.txt"), "--learned-threshold", str(t),
                    "--json", out], check=True, capture_output=True)
    return json.load(open(out))["benign"]
lo, hi = run(0.0), run(1.0)
assert list(lo.values())[0] == [2, 2] and list(hi.values())[0] == [0, 2], (lo, hi)
bad = subprocess.run([sys.executable, os.path.join(src, "tools/bench/detectors.py"), "--safesd", b, "--learned-threshold", "2"],
                     capture_output=True, text=True)
assert bad.returncode != 0 and "--learned-threshold" in bad.stderr, bad.stderr
PY

# a model folder's own weights file; a malformed one
mkdir -p "$O/model"
for f in "$SRC"/models/safesd-emoji/*; do ln -s "$f" "$O/model/$(basename "$f")"; done
rm "$O/model/safety"; mkdir "$O/model/safety"
for f in "$SRC"/models/safesd-emoji/safety/*; do ln -s "$f" "$O/model/safety/$(basename "$f")"; done
head -c 100000 "$SRC/data/learned/detector.safetensors" > "$O/model/safety/learned.safetensors"
expect_rc 1 "malformed model weights" $B check -m "$O/model" --detectors learned "x"
one_line_error "learned.safetensors" "malformed learned weights"
cp "$SRC/data/learned/detector.safetensors" "$O/model/safety/learned.safetensors"
expect_rc 0 "the model's own weights" $B check -m "$O/model" --detectors learned "x"
grep -q "learned: score" <<<"$OUT" && ok || bad "model's own weights: $OUT"
summary
