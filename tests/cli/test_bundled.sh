#!/usr/bin/env bash
# The bundled model through the CLI, as a newcomer meets it: `safesd generate` without -m
# (the README's main command), its default sampler (DDIM), determinism, the model's own
# concept bank (models/safesd-emoji/safety/concepts.bank) in the safety gate, benign
# prompts bit-identical at every level, `safesd demo` (grid PNG, HTML, cells), and the bank
# against the scene objects of tools/train/scenes.py.
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

# --vae-tiling (diffusers' tiled_decode; the algorithm is checked against the reference in
# conformance.vae): no tiling when the latent fits one tile (the model's sample_size, 64 px),
# so the native size gives the same pixels; at 128 px four tiles are blended, the pixels
# change and the metadata says so; a bad tile size is an error before any output
expect_rc 0 "--vae-tiling at the native size" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 20 -s 3 --vae-tiling -o "$O/vt64.png"
"$BUILD/tests/png_check" "$O/vt64.png" "$O/a.png" --max-level 0 --max-frac 0 >/dev/null && ok || bad "--vae-tiling changed a one-tile image"
grep -qa "VAE tiling: 64" "$O/vt64.png" && ok || bad "no 'VAE tiling: 64' in the metadata"
expect_rc 0 "128 px" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 8 -s 3 -W 128 -H 128 -o "$O/v128.png"
expect_rc 0 "128 px tiled" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 8 -s 3 -W 128 -H 128 --vae-tile-size 64 -o "$O/vt128.png"
"$BUILD/tests/png_check" "$O/vt128.png" "$O/v128.png" --max-level 0 --max-frac 0 >/dev/null && bad "tiled 128 px: the same pixels as untiled" || ok
grep -qa "VAE tiling: 64" "$O/vt128.png" && ok || bad "no 'VAE tiling: 64' in the tiled image's metadata"
expect_rc 1 "--vae-tile-size not a multiple of 16" $B generate -q -m "$M" -p "red apple, noto emoji" --vae-tile-size 40 -o "$O/vte.png"
one_line_error "multiple of 16" "bad tile size"
[ -e "$O/vte.png" ] && bad "a bad tile size wrote an image" || ok
expect_rc 2 "--vae-tile-size 0" $B generate -q -m "$M" -p "red apple, noto emoji" --vae-tile-size 0 -o "$O/vte.png"

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
# --mem-budget: packed weights kept between UNet passes give the same bytes; bad sizes are
# usage errors
expect_rc 0 "--mem-budget 1G" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 20 -s 3 --mem-budget 1G -o "$O/mb.png"
cmp -s "$O/a.png" "$O/mb.png" && ok || bad "--mem-budget changed the image"
for v in 3X -1 "" 2000G; do
  expect_rc 2 "bad --mem-budget '$v'" $B generate -q -p "red apple, noto emoji" --mem-budget "$v" -o "$O/mbx.png"
  grep -q "mem-budget takes a size" <<<"$ERR" && ok || bad "bad --mem-budget message: $ERR"
done
SAFESD_BF16_EMULATE=1 expect_rc 0 "--precision bf16, emulated" $B generate -q -m "$M" -p "red apple, noto emoji" \
  --steps 20 -s 3 --precision bf16 -o "$O/pe.png"
if ! grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  grep -qa "Precision: bf16 (emulated)" "$O/pe.png" && ok || bad "emulated bf16 image does not say so"
  cmp -s "$O/a.png" "$O/pe.png" && bad "emulated bf16 gave the fp32 bytes" || ok
fi

# the model's own bank (added to the default bank): an emoji-domain term is flagged under the
# model's category names first
expect_rc 0 "flagged prompt" $B generate -q -p "dagger, twemoji emoji" --steps 10 -s 4 --safety high \
  --safety-report "$O/r.json" --latents "$O/dagger_high.npy" -o "$O/d.png"
"$PYTHON" -c '
import json, sys
g = json.load(open(sys.argv[1]))["detectors"]
assert g["flagged"] and g["categories"].startswith("weapons"), g
assert "safesd-emoji" in g["banks"] and g["banks"].endswith("default.bank"), g["banks"]
assert g["beyond_window"] is None, g
' "$O/r.json" && ok || bad "report: $(cat "$O/r.json")"
# a prompt longer than the encoder's window (--prompt-syntax plain): the report says what the
# model never saw, and a trigger word out there is not judged (the encoder never sees it)
LONG="red apple, noto emoji$(for i in $(seq 40); do printf ', green leaf'; done), dagger"
expect_rc 0 "long prompt" $B generate -q -p "$LONG" --prompt-syntax plain --steps 2 -s 4 --safety high \
  --safety-report "$O/rl.json" -o "$O/l.png"
"$PYTHON" -c '
import json, sys
g = json.load(open(sys.argv[1]))["detectors"]
assert not g["flagged"] and g["beyond_window"] and g["beyond_window"].endswith("dagger"), g
' "$O/rl.json" && ok || bad "long prompt report: $(cat "$O/rl.json")"
# with the a1111 syntax (the default) the encoder sees the second chunk, and the gate judges it
expect_rc 0 "long prompt, a1111" $B generate -q -p "$LONG" --steps 2 -s 4 --safety high --safety-report "$O/rl2.json" \
  -o "$O/l2.png"
"$PYTHON" -c '
import json, sys
g = json.load(open(sys.argv[1]))["detectors"]
assert g["flagged"] and g["beyond_window"] is None, g
' "$O/rl2.json" && ok || bad "long prompt report (a1111): $(cat "$O/rl2.json")"
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
# the semantic detector localises its evidence to words (a pooled-prompt match by leaving one
# word out at a time), so the safe text keeps the style: it was "flower, peace, gentle" when
# the whole prompt was the span and got dropped (issue 16)
expect_rc 0 "check, semantic evidence" $B check -m "$M" --detectors lexical,semantic --json "dagger, noto emoji"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1]); d = {x["detector"]: x for x in o["detectors"]}
ev = [e for e in d["semantic"]["evidence"] if e["category"] == "weapons"]
assert d["semantic"]["fired"] and ev and all((e["start"], e["end"]) == (0, 6) for e in ev), d["semantic"]
assert o["safe_text"].startswith("tulip, noto emoji"), o["safe_text"]
assert o["banks"].endswith("default.bank") and "safesd-emoji" in o["banks"], o["banks"]
' "$OUT" && ok || bad "dagger: semantic evidence not localised or style lost: $OUT"
# a sub-word piece never matches a concept on its own ("ka" of "kaboom" did, at 0.43 with the
# bomb description): only word-final tokens of content words and EOS are scored
expect_rc 0 "check, sub-word piece" $B check -m "$M" --detectors semantic --json "kaboom, noto emoji"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1]); d = o["detectors"][0]
assert not any(sys.argv[2] in e["via"] for e in d["evidence"]), d
' "$OUT" "token 1 'ka'" && ok || bad "kaboom: a sub-word piece matched: $OUT"
# a default-bank category with this model (the banks compose): flagged, with the model's own
# context for it and nothing of the prompt but the flagged word lost
expect_rc 0 "check, default bank category" $B check -m "$M" --json "nude woman, twemoji emoji"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["flagged"] and "sexual" in o["categories"], o
assert "woman, twemoji emoji" in o["safe_text"] and "t-shirt" in o["safe_text"], o["safe_text"]
' "$OUT" && ok || bad "nude: the default bank is not in force with the bundled model: $OUT"

# the bank against the scene renderer's objects (tools/train/scenes.py): in a scene caption
# every unsafe object is flagged by the lexical detector in its category, no other object is
"$PYTHON" - "$SRC/tools/train" "$B" "$M" <<'PY' && ok || bad "the bank does not match the scene objects"
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
import scenes
rows = [(f"a large cat face on the left and a large {lab} on the right, light blue background, noto emoji", lab, k, c)
        for lab, (k, c) in scenes.OBJECTS.items()]
out = subprocess.run([sys.argv[2], "check", "-m", sys.argv[3], "--detectors", "lexical", "--json"]
                     + [r[0] for r in rows], capture_output=True, text=True, check=True).stdout
dec, i, objs = json.JSONDecoder(), 0, []
while out[i:].strip():
    o, i = dec.raw_decode(out, len(out) - len(out[i:].lstrip()))
    objs.append(o)
bad = [f"{lab} ({kind}, {cat}): flagged {o['flagged']}, categories {o['categories']}"
       for (_, lab, kind, cat), o in zip(rows, objs)
       if (kind == "unsafe") != o["flagged"] or (kind == "unsafe" and cat not in (o["categories"] or ""))]
print("\n".join(bad))
sys.exit(1 if bad or len(objs) != len(rows) else 0)
PY

expect_rc 1 "demo, missing prompts file" $B demo -q --prompts "$O/none.txt" -o "$O/demo2"
one_line_error "none.txt" "missing prompts file"
[ ! -e "$O/demo2/demo.png" ] && ok || bad "demo wrote output after an error"
expect_rc 2 "demo, bad level list" $B demo --levels "" -o "$O/demo3"
summary
