#!/usr/bin/env bash
# The `project` safety-context strategy end to end (method.md §2.3): e_s = E(prompt) with the
# flagged token positions projected off the fired categories' concept directions. On the
# small random model of tools/ref/pipeline_case.py: a flagged prompt is altered and the PNG
# metadata and JSON report name the projected positions and concepts; a prompt nothing flags
# gives exactly the bytes of --safety off; `safesd check` reports the plan; a bank whose
# fired category has no concept description is a clear error.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
M="$TMP/pipeline_sd1"
O="$TMP/project_out"; rm -rf "$O"; mkdir -p "$O"
BENIGN="a red apple on a wooden table"
UNSAFE="a man holding a bloody knife"   # <start> a man holding a bloody knife: 'bloody' 5, 'knife' 6
# The lexical detector alone, so that the positions are its span ("bloody knife") whatever the
# learned detector's release: since the seventh, its score on this prompt is not localised to
# words ("knife" alone is under its threshold), and an entry without a span projects every word
# token (docs/safety-detectors.md, "Positions"; unit.project covers that rule).
D="--detectors lexical"

# check: the plan (positions from the bundled tokenizer; directions need the model)
expect_rc 0 "check project" $B check $D --safety-strategy project --json "$UNSAFE"
"$PYTHON" - "$UNSAFE" "$OUT" <<'PY' && ok || bad "check --safety-strategy project: $OUT"
import json, sys
r = json.loads(sys.argv[2])
p = r["projection"]
ok = r["flagged"] and r["strategy"] == "project" and r["safe_text"] == sys.argv[1] \
     and p["positions"] == [5, 6] and p["tokens"] == ["bloody</w>", "knife</w>"] and p["rank"] is None \
     and "violence" in p["categories"] and len(p["descriptions"]) >= 1
sys.exit(0 if ok else 1)
PY
expect_rc 0 "check project with a model" $B check $D -m "$M/model" --safety-strategy project --json "$UNSAFE"
"$PYTHON" -c "import json,sys; p=json.loads(sys.stdin.read())['projection']; sys.exit(0 if p['positions']==[5,6] and 1 <= p['rank'] <= len(p['descriptions']) else 1)" <<<"$OUT" && ok || bad "check project -m: $OUT"
expect_rc 0 "check project, text" $B check $D --safety-strategy project "$UNSAFE"
grep -q "^projection: projected tokens 5 'bloody</w>', 6 'knife</w>' against" <<<"$OUT" && ok || bad "check text: $OUT"
expect_rc 0 "check project, benign" $B check $D --safety-strategy project --json "$BENIGN"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); sys.exit(0 if not r['flagged'] and r['projection'] is None else 1)" <<<"$OUT" && ok || bad "benign check: $OUT"
expect_rc 1 "unknown strategy" $B check --safety-strategy rewrite "x"
one_line_error "project" "unknown strategy lists project"

gen() { local out=$1; shift; $B generate -q -m "$M/model" $D --steps 4 -s 11 --sampler euler_a -o "$O/$out.png" --latents "$O/$out.npy" "$@" >/dev/null; }
same_pixels() { "$SAFESD_BUILD_DIR/tests/png_check" "$O/$1.png" "$O/$2.png" --max-level 0 --max-frac 0 >/dev/null && cmp -s "$O/$1.npy" "$O/$2.npy"; }

# a prompt nothing flags: bit-identical to --safety off (pixels, latents, the PNG file)
gen benign_off -p "$BENIGN" --safety off
for lvl in medium max; do
  gen "benign_$lvl" -p "$BENIGN" --safety "$lvl" --safety-strategy project --safety-report "$O/benign_$lvl.json"
  cmp -s "$O/benign_off.png" "$O/benign_$lvl.png" && cmp -s "$O/benign_off.npy" "$O/benign_$lvl.npy" && ok || bad "benign prompt changed with project at $lvl"
done
"$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); d=r['detectors']; sys.exit(0 if d['checked'] and not d['flagged'] and not r['altered'] and d['projection'] is None else 1)" "$O/benign_medium.json" && ok || bad "benign report"

# a flagged prompt: altered, and the image and the report say how
gen unsafe_off -p "$UNSAFE" --safety off
gen unsafe_proj -p "$UNSAFE" --safety-strategy project --safety-report "$O/unsafe_proj.json"
same_pixels unsafe_off unsafe_proj && bad "flagged prompt not altered by project" || ok
grep -qa "Safety: \"medium, flagged (violence), projected tokens 5 6 (rank [0-9]*), dual" "$O/unsafe_proj.png" && ok || bad "PNG metadata: $(grep -ao 'Safety:[^\x00]*' "$O/unsafe_proj.png" | head -1)"
"$PYTHON" - "$O/unsafe_proj.json" "$UNSAFE" <<'PY' && ok || bad "project report"
import json, sys
r = json.load(open(sys.argv[1]))
d, p = r["detectors"], r["detectors"]["projection"]
ok = r["altered"] and d["flagged"] and d["strategy"] == "project" and r["dual"]["ran"] \
     and r["dual"]["safety_text"] == sys.argv[2] and p["positions"] == [5, 6] \
     and p["tokens"] == ["bloody</w>", "knife</w>"] and 1 <= p["rank"] <= len(p["descriptions"]) \
     and "violence" in p["categories"] and "projected tokens 5" in p["summary"]
print(json.dumps(r, indent=1) if not ok else "report ok")
sys.exit(0 if ok else 1)
PY
# another strategy gives another image; so does another level
gen unsafe_sa -p "$UNSAFE"
same_pixels unsafe_sa unsafe_proj && bad "project gave the substitute+append image" || ok
gen unsafe_proj_max -p "$UNSAFE" --safety max --safety-strategy project
same_pixels unsafe_proj unsafe_proj_max && bad "project: levels medium and max gave the same image" || ok
same_pixels unsafe_off unsafe_proj_max && bad "project at max not altered" || ok
# deterministic
gen unsafe_proj2 -p "$UNSAFE" --safety-strategy project
cmp -s "$O/unsafe_proj.png" "$O/unsafe_proj2.png" && cmp -s "$O/unsafe_proj.npy" "$O/unsafe_proj2.npy" && ok || bad "project is not deterministic"
# blend=final and no CFG go through the same e_s
gen unsafe_proj_final -p "$UNSAFE" --safety-strategy project --safety-blend final
same_pixels unsafe_off unsafe_proj_final && bad "project, blend=final not altered" || ok
gen unsafe_off_nocfg -p "$UNSAFE" --safety off --cfg-scale 1
gen unsafe_proj_nocfg -p "$UNSAFE" --safety-strategy project --cfg-scale 1
same_pixels unsafe_off_nocfg unsafe_proj_nocfg && bad "project without CFG not altered" || ok

# a fired category without concept descriptions: nothing to project against, so the gate
# appends the category's context instead and the report says so (the prompt is still altered)
printf '[bank]\nbase = none\n[violence]\nterms = knife\ncontext = peaceful\n' > "$O/nodesc.bank"
expect_rc 0 "no descriptions" $B generate -q -m "$M/model" --steps 2 -p "$UNSAFE" --concepts "$O/nodesc.bank" \
  --safety-strategy project -o "$O/nd.png" --safety-report "$O/nd.json"
"$PYTHON" -c '
import json, sys
r = json.load(open(sys.argv[1])); d = r["detectors"]
assert d["flagged"] and d["strategy"].startswith("append (project: no concept directions"), d
assert r["dual"]["safety_text"].endswith(", peaceful") and d["projection"] is None, r
' "$O/nd.json" && ok || bad "no descriptions: $(cat "$O/nd.json" 2>/dev/null)"
[ -s "$O/nd.png" ] && ok || bad "no image written"
summary
