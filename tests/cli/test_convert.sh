#!/usr/bin/env bash
# `safesd convert` to the LDM single-file layout and back through `safesd generate`: the small
# SD 1.x model (CLIP text encoder), the small SD 2.x model (OpenCLIP text encoder: q/k/v
# joined into attn.in_proj_*, the zero resblock in the place SD 2 skips, v-prediction), and
# the bundled model (its own 3,514-token vocabulary): each file, loaded with --config FOLDER
# (a file has no tokenizer or scheduler), gives the folder's pixels. Also the OpenCLIP file's
# layout, f16 conversion, and bad input.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
O="$TMP/convert_cli"; rm -rf "$O"; mkdir -p "$O"
for fam in sd1 sd2; do
  need_pipeline_model $fam
  M="$TMP/pipeline_$fam/model"
  expect_rc 0 "$fam: convert" $B convert "$M" "$O/$fam.safetensors"
  expect_rc 0 "$fam: generate from the folder" $B generate -q -m "$M" -p "a red apple" --steps 4 -s 7 -o "$O/$fam-folder.png"
  expect_rc 0 "$fam: generate from the file" $B generate -q -m "$O/$fam.safetensors" --config "$M" -p "a red apple" --steps 4 -s 7 -o "$O/$fam-file.png"
  "$BUILD/tests/png_check" "$O/$fam-file.png" "$O/$fam-folder.png" --max-level 0 --max-frac 0 >/dev/null && ok ||
    bad "$fam: the converted file does not give the folder's pixels"
done
# the OpenCLIP layout: resblocks 0..L (L = the folder's layers; L a zero block), in_proj [3h, h]
"$PYTHON" - "$O/sd2.safetensors" "$TMP/pipeline_sd2/model/text_encoder/config.json" <<'PY' && ok || bad "OpenCLIP LDM layout"
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
cfg = json.load(open(sys.argv[2])); L, d = cfg["num_hidden_layers"], cfg["hidden_size"]
blocks = sorted({int(k.split(".")[4]) for k in h if k.startswith("cond_stage_model.model.transformer.resblocks.")})
assert blocks == list(range(L + 1)), blocks
for i in range(L + 1):
    assert h[f"cond_stage_model.model.transformer.resblocks.{i}.attn.in_proj_weight"]["shape"] == [3 * d, d]
    assert h[f"cond_stage_model.model.transformer.resblocks.{i}.attn.in_proj_bias"]["shape"] == [3 * d]
for k in ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias"):
    assert "cond_stage_model.model." + k in h, k
assert not any(k.startswith("cond_stage_model.transformer") for k in h)
for k, v in h.items():  # the last block is zeros, the others are not
    if k.startswith(f"cond_stage_model.model.transformer.resblocks.{L}."):
        a, b = v["data_offsets"]; f.seek(base + a); assert not any(f.read(b - a)), k
a, b = h["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"]["data_offsets"]
f.seek(base + a); assert any(f.read(b - a))
PY
expect_rc 0 "sd2: convert to f16" $B convert "$TMP/pipeline_sd2/model" "$O/sd2-f16.safetensors" --dtype f16
expect_rc 0 "sd2: generate from the f16 file" $B generate -q -m "$O/sd2-f16.safetensors" --config "$TMP/pipeline_sd2/model" -p "a red apple" --steps 4 -s 7 -o "$O/sd2-f16.png"
# the bundled model: its own vocabulary, loaded through --config
BM="$SRC/models/safesd-emoji"
expect_rc 0 "bundled: convert" $B convert "$BM" "$O/emoji.safetensors"
expect_rc 0 "bundled: from the folder" $B generate -q -m "$BM" -p "cat face, noto emoji" --steps 10 -s 3 -o "$O/emoji-folder.png"
expect_rc 0 "bundled: from the file" $B generate -q -m "$O/emoji.safetensors" --config "$BM" -p "cat face, noto emoji" --steps 10 -s 3 -o "$O/emoji-file.png"
"$BUILD/tests/png_check" "$O/emoji-file.png" "$O/emoji-folder.png" --max-level 0 --max-frac 0 >/dev/null && ok ||
  bad "bundled: the converted file does not give the folder's pixels"
# bad input
expect_rc 1 "missing model" $B convert "$O/none" "$O/x.safetensors"
one_line_error "none" "missing model"
[ -e "$O/x.safetensors" ] && bad "a failed convert wrote its output" || ok
expect_rc 1 "bad dtype" $B convert "$BM" "$O/y.safetensors" --dtype f8
one_line_error "f8" "bad dtype"
summary
