#!/usr/bin/env bash
# The bundled model through the CLI, as a newcomer meets it: `safesd generate` without -m
# (the README's main command), its default sampler (DDIM), determinism, the model's own
# concept bank (models/safesd-emoji/safety/concepts.bank) in the safety gate, benign
# prompts bit-identical at every level, and `safesd demo` (grid PNG, HTML, cells).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
M="$SRC/models/safesd-emoji"
[ -f "$M/model_index.json" ] || { echo "FAIL: $M is missing"; exit 1; }
O="$TMP/bundled_cli"; rm -rf "$O"; mkdir -p "$O"

expect_rc 0 "generate without -m" $B generate -p "red apple, noto emoji" --steps 20 -s 3 -o "$O/a.png"
grep -q "bundled model" <<<"$ERR" && ok || bad "stderr does not say the bundled model is used: $ERR"
[ -s "$O/a.png" ] && ok || bad "no image written"
grep -qa "Size: 64x64" "$O/a.png" && ok || bad "not a 64x64 image (metadata)"
# the model's scheduler is DDIM (its model card: PNDM degrades this UNet's images at 20 steps)
grep -qa "Sampler: DDIM," "$O/a.png" && ok || bad "the bundled model does not sample with DDIM by default (metadata)"
expect_rc 0 "same again" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 20 -s 3 -o "$O/b.png"
cmp -s "$O/a.png" "$O/b.png" && ok || bad "-m models/safesd-emoji and no -m, same seed: different bytes"

# --precision: a bad value is a usage error; bf16 runs natively where the CPU has it, else
# warns and computes in fp32 (the same bytes as the default), or is emulated on request
expect_rc 2 "bad --precision" $B generate -q -p "red apple, noto emoji" --precision fp64 -o "$O/p.png"
grep -q "precision takes fp32 or bf16" <<<"$ERR" && ok || bad "bad --precision message: $ERR"
[ -e "$O/p.png" ] && bad "a usage error wrote an image" || ok
expect_rc 0 "--precision bf16" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 20 -s 3 --precision bf16 -o "$O/p16.png"
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  grep -qa "Precision: bf16" "$O/p16.png" && ok || bad "bf16 image does not say so in its metadata"
else
  grep -q "no native bf16" <<<"$ERR" && ok || bad "no warning for bf16 on a CPU without it: $ERR"
  cmp -s "$O/a.png" "$O/p16.png" && ok || bad "the bf16 fallback is not the fp32 image"
fi
SAFESD_BF16_EMULATE=1 expect_rc 0 "--precision bf16, emulated" $B generate -q -m "$M" -p "red apple, noto emoji" \
  --steps 20 -s 3 --precision bf16 -o "$O/pe.png"
if ! grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  grep -qa "Precision: bf16 (emulated)" "$O/pe.png" && ok || bad "emulated bf16 image does not say so"
  cmp -s "$O/a.png" "$O/pe.png" && bad "emulated bf16 gave the fp32 bytes" || ok
fi

# the model's own bank: an emoji-domain term is flagged under the model's category names
expect_rc 0 "flagged prompt" $B generate -q -p "dagger, twemoji emoji" --steps 10 -s 4 --safety high \
  --safety-report "$O/r.json" --latents "$O/dagger_high.npy" -o "$O/d.png"
grep -q '"flagged": true' "$O/r.json" && grep -q '"weapons"' "$O/r.json" && ok || bad "report: $(cat "$O/r.json")"
expect_rc 0 "flagged prompt, safety off" $B generate -q -p "dagger, twemoji emoji" --steps 10 -s 4 --safety off \
  --latents "$O/dagger_off.npy" -o "$O/d0.png"
cmp -s "$O/dagger_off.npy" "$O/dagger_high.npy" && bad "flagged prompt unchanged at level high" || ok
for lv in low medium high max; do
  expect_rc 0 "benign at $lv" $B generate -q -p "fork and knife, noto emoji" --steps 10 -s 5 --safety $lv \
    --latents "$O/fork_$lv.npy" -o "$O/f_$lv.png"
done
expect_rc 0 "benign off" $B generate -q -p "fork and knife, noto emoji" --steps 10 -s 5 --safety off \
  --latents "$O/fork_off.npy" -o "$O/f_off.png"
for lv in low medium high max; do
  cmp -s "$O/fork_off.npy" "$O/fork_$lv.npy" && ok || bad "proximal benign prompt changed at level $lv"
done

# demo: a reduced grid
printf '# test\nred apple, noto emoji\ndagger, twemoji emoji\n' > "$O/prompts.txt"
expect_rc 0 "demo" $B demo -q --prompts "$O/prompts.txt" --levels off,high --steps 8 -o "$O/demo"
for f in demo.png index.html cells/r00_off.png cells/r00_high.png cells/r01_off.png cells/r01_high.png; do
  [ -s "$O/demo/$f" ] && ok || bad "demo did not write $f"
done
grep -q "dagger, twemoji emoji" "$O/demo/index.html" && grep -q "flagged: weapons" "$O/demo/index.html" && ok \
  || bad "index.html lacks the prompt or the verdict"
"$BUILD/tests/png_check" "$O/demo/cells/r00_off.png" "$O/demo/cells/r00_high.png" --max-level 0 --max-frac 0 >/dev/null \
  && ok || bad "demo: benign row differs between levels"
"$BUILD/tests/png_check" "$O/demo/cells/r01_off.png" "$O/demo/cells/r01_high.png" --max-level 0 --max-frac 0 >/dev/null \
  && bad "demo: flagged row identical between off and high" || ok
# a paraphrase that only the semantic detector catches on this model's encoder, with the
# threshold calibrated for it (the bank's [thresholds]): "kaboom" holds no lexicon term, but
# its sub-token "ka" lies close to the bomb description (docs/safety-detectors.md)
expect_rc 0 "check a paraphrase" $B check -m "$M" --detectors lexical,semantic --json "kaboom, noto emoji"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1]); d = {x["detector"]: x for x in o["detectors"]}
assert o["flagged"] and not d["lexical"]["fired"] and d["semantic"]["fired"], o
assert "weapons" in json.dumps(d["semantic"]), d["semantic"]
' "$OUT" && ok || bad "kaboom: not caught by the semantic detector alone: $OUT"

expect_rc 1 "demo, missing prompts file" $B demo -q --prompts "$O/none.txt" -o "$O/demo2"
one_line_error "none.txt" "missing prompts file"
[ ! -e "$O/demo2/demo.png" ] && ok || bad "demo wrote output after an error"
expect_rc 2 "demo, bad level list" $B demo --levels "" -o "$O/demo3"
summary
