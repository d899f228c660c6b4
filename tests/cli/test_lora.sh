#!/usr/bin/env bash
# LoRA (`<lora:NAME:W[:W_UNET]>` in the prompt, --lora-model-dir): a random LoRA for the small
# SD 1.x model (tools/ref/lora_case.py: attention, proj_in/out, a 3x3 LoCon conv and the text
# encoder's projections) merged by safesd gives exactly the pixels of the folder that the
# reference merged (float32, the same order of operations), in the kohya and the PEFT format,
# with separate text-encoder and UNet weights; the metadata and the report name the LoRA; the
# tag never reaches the encoder (the same image as the merged folder without the tag); the
# safety gate judges the LoRA names (generate and check), without a span in the prompt; and
# bad input (no folder, no file, bad weight, a LoRA for another model, an unclosed tag) is a
# one-line error with no output.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
need_pipeline_model sd2
M="$TMP/pipeline_sd1/model"
O="$TMP/lora_cli"; rm -rf "$O"; mkdir -p "$O"
"$PYTHON" "$SRC/tools/ref/lora_case.py" "$M" "$O/kohya" --te 0.5 --unet 0.75 >/dev/null || bad "lora_case.py kohya"
"$PYTHON" "$SRC/tools/ref/lora_case.py" "$M" "$O/peft" --format peft --name style >/dev/null || bad "lora_case.py peft"
"$PYTHON" "$SRC/tools/ref/lora_case.py" "$TMP/pipeline_sd2/model" "$O/other" --name sd2_lora >/dev/null || bad "lora_case.py sd2"
cp "$O/other/loras/sd2_lora.safetensors" "$O/kohya/loras/"

gen() { $B generate -q -m "$1" -p "$2" --steps 4 -s 7 --safety off "${@:4}" -o "$3"; }
same() { "$BUILD/tests/png_check" "$1" "$2" --max-level 0 --max-frac 0 >/dev/null; }
expect_rc 0 "kohya, te 0.5, unet 0.75" gen "$M" "a red apple <lora:test_lora:0.5:0.75>" "$O/k.png" --lora-model-dir "$O/kohya/loras"
expect_rc 0 "the reference's merged folder" gen "$O/kohya/merged" "a red apple" "$O/k_ref.png"
same "$O/k.png" "$O/k_ref.png" && ok || bad "kohya: not the reference merge's pixels"
expect_rc 0 "no LoRA" gen "$M" "a red apple" "$O/base.png"
same "$O/k.png" "$O/base.png" && bad "the LoRA changed nothing" || ok
grep -qa 'LoRA: "test_lora:0.5:0.75"' "$O/k.png" && ok || bad "no 'LoRA: \"test_lora:0.5:0.75\"' in the metadata (quoted as A1111 quotes values with ':')"
grep -qa "a red apple <lora:test_lora:0.5:0.75>" "$O/k.png" && ok || bad "the metadata's prompt lost its tag (A1111 keeps it)"
expect_rc 0 "peft, weight 1 (default)" gen "$M" "<lora:style> a red apple" "$O/p.png" --lora-dir "$O/peft/loras"
expect_rc 0 "peft reference" gen "$O/peft/merged" " a red apple" "$O/p_ref.png"
same "$O/p.png" "$O/p_ref.png" && ok || bad "peft: not the reference merge's pixels"
# the report names it; weight 0 merges nothing
expect_rc 0 "report" $B generate -q -m "$M" -p "a red apple <lora:test_lora:0.5:0.75>" --lora-model-dir "$O/kohya/loras" \
  --steps 2 -s 7 --safety-report "$O/r.json" -o "$O/r.png"
grep -q '"loras": "test_lora:0.5:0.75"' "$O/r.json" && ok || bad "the report does not name the LoRA: $(grep -o '"loras[^,]*' "$O/r.json")"
expect_rc 0 "weight 0" gen "$M" "a red apple<lora:test_lora:0>" "$O/z.png" --lora-model-dir "$O/kohya/loras"
same "$O/z.png" "$O/base.png" && ok || bad "weight 0 changed the image"
# the safety gate judges the LoRA names too (a LoRA's name is often what it draws), with no
# span in the prompt: the safe text keeps every word and appends; a benign name changes nothing
cp "$O/kohya/loras/test_lora.safetensors" "$O/kohya/loras/nude_style-v2.safetensors"
expect_rc 0 "unsafe LoRA name" $B generate -q -m "$M" -p "a red apple on a table <lora:nude_style-v2:0.5>" \
  --lora-model-dir "$O/kohya/loras" --steps 2 -s 7 --safety high --safety-report "$O/g1.json" -o "$O/g1.png"
expect_rc 0 "benign LoRA name" $B generate -q -m "$M" -p "a red apple on a table <lora:test_lora:0.5>" \
  --lora-model-dir "$O/kohya/loras" --steps 2 -s 7 --safety high --safety-report "$O/g2.json" -o "$O/g2.png"
"$PYTHON" - "$O/g1.json" "$O/g2.json" <<'PY' && ok || bad "LoRA names in the gate: $(cat "$O/g1.json")"
import json, sys
r1, r2 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
g1, g2 = r1["detectors"], r2["detectors"]
assert g1["flagged"] and "sexual" in g1["categories"] and "(LoRA names)" in g1["detection"], g1
assert r1["dual"]["ran"] and r1["dual"]["safety_text"].startswith("a red apple on a table, "), r1["dual"]
assert not g2["flagged"] and not r2["dual"]["ran"], (g2, r2["dual"])
PY
expect_rc 0 "check, LoRA name" $B check --json "a red apple <lora:nude_style-v2:1>"
"$PYTHON" -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["flagged"] and r["lora_names"] == "nude style v2", r
assert r["safe_text"].startswith("a red apple, "), r["safe_text"]
ev = [e for d in r["detectors"] if "LoRA" in d["detector"] for e in d["evidence"]]
assert ev and all(e["start"] == e["end"] == 0 and e["via"].startswith("lora name") for e in ev), ev
' "$OUT" && ok || bad "check --json with a LoRA tag: $OUT"
expect_rc 0 "check, benign LoRA name" $B check --json "a red apple <lora:test_lora:1>"
"$PYTHON" -c 'import json, sys; r = json.loads(sys.argv[1]); assert not r["flagged"] and r["lora_names"] == "test lora", r' "$OUT" \
  && ok || bad "check --json, benign LoRA: $OUT"
# bad input
expect_rc 1 "no folder" gen "$M" "x <lora:test_lora:1>" "$O/e1.png"
one_line_error "no LoRA folder" "no folder"
expect_rc 1 "no file" gen "$M" "x <lora:nothere:1>" "$O/e2.png" --lora-model-dir "$O/kohya/loras"
one_line_error "nothere" "no file"
expect_rc 1 "bad weight" gen "$M" "x <lora:test_lora:lots>" "$O/e3.png" --lora-model-dir "$O/kohya/loras"
one_line_error "lots" "bad weight"
expect_rc 1 "another model's LoRA" gen "$M" "x <lora:sd2_lora:1>" "$O/e4.png" --lora-model-dir "$O/kohya/loras"
one_line_error "sd2_lora" "another model's LoRA"
expect_rc 1 "unclosed tag" gen "$M" "x <lora:test_lora:1" "$O/e5.png" --lora-model-dir "$O/kohya/loras"
one_line_error "<lora:" "unclosed tag"
expect_rc 1 "a path in the name" gen "$M" "x <lora:../merged:1>" "$O/e6.png" --lora-model-dir "$O/kohya/loras"
one_line_error "without '/'" "a path"
expect_rc 1 "three weights" gen "$M" "x <lora:test_lora:1:1:1>" "$O/e7.png" --lora-model-dir "$O/kohya/loras"
one_line_error "two weights" "three weights"
for f in e1 e2 e3 e4 e5 e6 e7; do [ -e "$O/$f.png" ] && bad "$f.png written despite the error" || ok; done

# the server: --lora-model-dir; a request's tag gives the CLI's image, the next request without
# one the base model's again (the merge is undone); a missing LoRA is a 400
if command -v curl >/dev/null; then
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
  timeout 300 $B serve -q -m "$M" --port 0 --port-file "$O/port" --access-log off --lora-model-dir "$O/kohya/loras" 2>"$O/serve.err" &
  PIDS+=($!)
  for _ in $(seq 300); do [ -s "$O/port" ] && break; sleep 0.1; done
  U="http://127.0.0.1:$(cat "$O/port")"
  req() { # req OUT.json PROMPT: txt2img, 4 steps, seed 7, safety off; prints the HTTP code
    curl -s --max-time 120 -o "$1" -w '%{http_code}' -H 'Content-Type: application/json' \
      -d "{\"prompt\": \"$2\", \"steps\": 4, \"seed\": 7, \"sampler_name\": \"PLMS\", \"cfg_scale\": 7.5, \"safety\": {\"level\": \"off\"}}" "$U/sdapi/v1/txt2img"
  }
  png() { "$PYTHON" -c 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$1" "$2"; }
  code=$(req "$O/s1.json" "a red apple <lora:test_lora:0.5:0.75>")
  [ "$code" = 200 ] && ok || bad "server, LoRA tag: $code $(head -c 300 "$O/s1.json")"
  png "$O/s1.json" "$O/s1.png" && same "$O/s1.png" "$O/k_ref.png" && ok || bad "server + LoRA: not the reference merge's pixels"
  code=$(req "$O/s2.json" "a red apple")
  png "$O/s2.json" "$O/s2.png" && same "$O/s2.png" "$O/base.png" && ok || bad "server: the LoRA stayed merged for a request without it ($code)"
  code=$(req "$O/s3.json" "a red apple <lora:nothere:1>")
  [ "$code" = 400 ] && grep -q nothere "$O/s3.json" && ok || bad "server, missing LoRA: $code $(head -c 300 "$O/s3.json")"
  kill -TERM "${PIDS[0]}"
  set +e; wait "${PIDS[0]}"; rc=$?; set -e
  [ "$rc" = 0 ] && ok || bad "server exit status $rc: $(cat "$O/serve.err")"
else
  echo "SKIP (part): curl is not installed: the server's LoRA requests are not checked here"
fi
summary
