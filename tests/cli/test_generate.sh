#!/usr/bin/env bash
# `safesd generate` end to end on a small random model: outputs, metadata, determinism, and
# bad input (sizes, missing component, wrong tensor shape, unwritable output): a one-line
# error, exit status 1 (2 for usage), and no output file, partial or temporary.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
M="$TMP/pipeline_sd1"
O="$TMP/gen_out"; rm -rf "$O"; mkdir -p "$O"

expect_rc 0 "generate" $B generate -m "$M/model" -p "a red apple" --steps 4 -s 7 -o "$O/a.png"
[ -s "$O/a.png" ] && ok || bad "no image written"
grep -q "step 5/5" <<<"$ERR" && ok || bad "no progress on stderr (PLMS: 4 steps = 5 UNet evaluations): $ERR"
grep -qa "Steps: 4, Sampler: PLMS, CFG scale: 7.5, Seed: 7, Size: 16x16, Model: model" "$O/a.png" && ok || bad "parameters metadata"
expect_rc 0 "same seed again" $B generate -q -m "$M/model" -p "a red apple" --steps 4 -s 7 -o "$O/b.png"
cmp -s "$O/a.png" "$O/b.png" && ok || bad "same seed gave different bytes"
expect_rc 0 "another seed" $B generate -q -m "$M/model" -p "a red apple" --steps 4 -s 8 -o "$O/c.png"
cmp -s "$O/a.png" "$O/c.png" && bad "different seeds gave the same image" || ok
expect_rc 0 "batch" $B generate -q -m "$M/model" -p "a red apple" --steps 2 -b 3 -o "$O/batch.png" --sampler euler_a
[ -s "$O/batch.png" ] && [ -s "$O/batch_2.png" ] && [ -s "$O/batch_3.png" ] && ok || bad "batch file names: $(ls "$O")"
grep -qa "Batch size: 3, Batch pos: 2" "$O/batch_3.png" && ok || bad "batch metadata"
expect_rc 0 "no guidance, karras, dpm++" $B generate -q -m "$M/model" -p "x" --steps 3 --cfg-scale 1 --sampler dpm++2m --scheduler karras -o "$O/d.png"
grep -qa "Schedule type: Karras" "$O/d.png" && ok || bad "karras metadata"

# bad input: each is an error before any output exists
expect_rc 1 "size not a multiple of 8" $B generate -m "$M/model" -p x -W 20 -H 16 -o "$O/e1.png"
one_line_error "multiples of 8" "size 20"
expect_rc 1 "absurd size" $B generate -m "$M/model" -p x -W 1000000 -H 1000000 -o "$O/e2.png"
one_line_error "out of range" "absurd size"
expect_rc 1 "unknown sampler" $B generate -m "$M/model" -p x --sampler heun -o "$O/e3.png"
one_line_error "heun" "unknown sampler"
expect_rc 1 "output folder missing" $B generate -q -m "$M/model" -p x --steps 1 -o "$O/missing/e4.png"
one_line_error "missing/e4.png" "unwritable output"
expect_rc 2 "no prompt" $B generate -m "$M/model"
expect_rc 2 "bad steps" $B generate -m "$M/model" -p x --steps zero
for f in e1 e2 e3; do [ -e "$O/$f.png" ] && bad "$f.png written despite the error" || ok; done
[ -z "$(ls "$O" | grep -v '\.png$')" ] && ok || bad "temporary files left: $(ls "$O")"

# a model without a UNet
X="$TMP/gen_nounet"; rm -rf "$X"; cp -r "$M/model" "$X"; rm -rf "$X/unet"
sed -i 's/"unet": \[[^]]*\],//' "$X/model_index.json"
expect_rc 1 "missing unet" $B generate -m "$X" -p x -o "$O/e5.png"
one_line_error "unet" "missing unet"
# a checkpoint whose tensor has the wrong shape
W="$TMP/gen_badshape"; rm -rf "$W"; cp -r "$M/model" "$W"
"$PYTHON" - "$W/unet/diffusion_pytorch_model.safetensors" <<'PY'
import sys, os
sys.path.insert(0, os.path.join(os.environ["SAFESD_SOURCE_DIR"], "tools", "ref"))
import sdref
t = sdref.load_safetensors(sys.argv[1])
t["conv_in.weight"] = t["conv_in.weight"][:, :, :2, :]   # [32, 4, 3, 3] -> [32, 4, 2, 3]
sdref.save_safetensors(sys.argv[1], t)
PY
expect_rc 1 "wrong tensor shape" $B generate -m "$W" -p x -o "$O/e6.png"
one_line_error "conv_in.weight" "wrong shape"
[ -e "$O/e5.png" ] || [ -e "$O/e6.png" ] && bad "image written for a broken model" || ok

summary
