#!/usr/bin/env bash
# Image to image and inpainting through `safesd generate` on a small random model: the
# safety invariants (a prompt no detector flags gives exactly the bytes of --safety off; a
# flagged prompt runs the dual path from the noised init latent: λ = 1, τ = 0 equals the
# safe text alone from the same init image; the report and the PNG metadata say img2img,
# the strength and the init image), the mask (outside it the final latents are the init
# image's whatever the prompt), and every bad input: exit 1 (2 for usage), one line, no file.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
M="$TMP/pipeline_sd1/model"
PNGCHECK="$BUILD/tests/png_check"
O="$TMP/img2img_cli"; rm -rf "$O"; mkdir -p "$O"
TMP="$O/tmp"; mkdir -p "$TMP"   # expect_rc's stderr file: not shared with tests running beside this one
BENIGN="a red apple on a wooden table"
UNSAFE="a man holding a bloody knife"
S="a green pear"
DET=(--detectors lexical)

# inputs: a 16x16 init image, masks, and bad files
"$PYTHON" - "$O" <<'PY'
import sys, numpy as np
from PIL import Image
o = sys.argv[1]
y, x = np.mgrid[0:16, 0:16]
img = np.stack([x * 16, y * 16, (x * y) % 256], -1).astype(np.uint8)
Image.fromarray(img, "RGB").save(f"{o}/init.png")
Image.fromarray(img, "RGB").convert("RGBA").save(f"{o}/init_rgba.png")
m = np.zeros((16, 16), np.uint8); m[4:12, 4:12] = 255
Image.fromarray(m, "L").save(f"{o}/mask.png")
Image.fromarray(m, "L").convert("1").save(f"{o}/mask_1bit.png")
Image.fromarray(np.zeros((24, 16, 3), np.uint8), "RGB").save(f"{o}/init_24x16.png")
Image.fromarray(np.zeros((12, 12, 3), np.uint8), "RGB").save(f"{o}/init_12.png")
Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(f"{o}/mask_8.png")
open(f"{o}/not.png", "w").write("this is not an image\n")
data = open(f"{o}/init.png", "rb").read()
open(f"{o}/trunc.png", "wb").write(data[: len(data) // 2])
import struct, zlib   # a valid header claiming 20000x20000 pixels: refused before any allocation
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(f"{o}/huge.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                                 + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
PY
gen() { # gen NAME ARGS...: NAME.png and NAME.npy from the init image
  local name=$1; shift
  expect_rc 0 "generate $name" $B generate -q -m "$M" --steps 6 -s 5 --sampler euler_a -i "$O/init.png" \
    -o "$O/$name.png" --latents "$O/$name.npy" "${DET[@]}" "$@"
}
same() { cmp -s "$O/$1.npy" "$O/$2.npy" && "$PNGCHECK" "$O/$1.png" "$O/$2.png" --max-level 0 --max-frac 0 >/dev/null && ok || bad "$3: $1 and $2 differ"; }
differ() { cmp -s "$O/$1.npy" "$O/$2.npy" && bad "$3: $1 and $2 are identical" || ok; }

# img2img runs, starts from the image (differs from text to image), and the strength matters
gen i2i -p "$BENIGN" --strength 0.6
expect_rc 0 "txt2img" $B generate -q -m "$M" --steps 6 -s 5 --sampler euler_a -p "$BENIGN" -o "$O/t2i.png" --latents "$O/t2i.npy" "${DET[@]}"
differ i2i t2i "init image ignored"
gen i2i_s3 -p "$BENIGN" --strength 0.3
differ i2i i2i_s3 "strength ignored"
gen i2i_rgba -p "$BENIGN" --strength 0.6 -i "$O/init_rgba.png"   # alpha is dropped
same i2i i2i_rgba "RGBA init image"
gen i2i_again -p "$BENIGN" --strength 0.6
same i2i i2i_again "determinism"
grep -qa "Denoising strength: 0.6, Init image: img2img" "$O/i2i.png" && ok || bad "PNG metadata lacks the img2img summary"

# safety: unflagged = --safety off, bit for bit (PNG bytes too), at every level
gen i2i_off -p "$BENIGN" --strength 0.6 --safety off
cmp -s "$O/i2i.png" "$O/i2i_off.png" && ok || bad "unflagged img2img PNG differs from --safety off"
for lvl in low high max; do
  gen "i2i_$lvl" -p "$BENIGN" --strength 0.6 --safety "$lvl"
  same i2i_off "i2i_$lvl" "unflagged img2img at --safety $lvl"
done
# flagged: the dual path runs from the init latent, and says so
gen u_off -p "$UNSAFE" --strength 0.6 --safety off
gen u_med -p "$UNSAFE" --strength 0.6 --safety-report "$O/u_med.json"
differ u_off u_med "flagged img2img not altered"
grep -qa 'Safety: "medium, flagged (violence' "$O/u_med.png" && grep -qa "Init image: img2img" "$O/u_med.png" && ok || bad "flagged img2img PNG metadata"
"$PYTHON" - "$O/u_med.json" <<'PY' && ok || bad "flagged img2img report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mode"] == "img2img" and r["init_image"] is True and abs(r["strength"] - 0.6) < 1e-9, r
assert r["t_start"] == 3 and r["evaluations"] == 3, r        # int(6 x 0.6) = 3 of 6 steps
assert r["altered"] and r["detectors"]["flagged"] and r["dual"]["ran"], r
PY
expect_rc 0 "txt2img report" $B generate -q -m "$M" --steps 2 -p "$BENIGN" -o "$O/t2i_r.png" --safety-report "$O/t2i_r.json"
"$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["mode"]=="txt2img" and r["init_image"] is False and r["strength"] is None' "$O/t2i_r.json" && ok || bad "txt2img report fields"
# both streams start from the noised init latent: λ = 1, τ = 0 is the safe text alone from it
gen pear -p "$S" --strength 0.6 --safety off
for blend in step final; do
  gen "l1_$blend" -p "$BENIGN" --strength 0.6 --safety-text "$S" --safety-weight 1 --context-steps 0 --safety-blend "$blend"
  same pear "l1_$blend" "lambda 1 tau 0 img2img $blend"
  SAFESD_DUAL_NO_SHORTCUT=1 gen "full1_$blend" -p "$BENIGN" --strength 0.6 --safety-text "$S" --safety-weight 1 --context-steps 0 --safety-blend final
  close=$(compare_npy "$O/full1_$blend.npy" "$O/pear.npy" 1e-3 "two-stream lambda 1") && ok || bad "$close"
  gen "l0_$blend" -p "$BENIGN" --strength 0.6 --safety-text "$S" --safety-weight 0 --context-steps 0.3 --safety-blend "$blend"
  same i2i_off "l0_$blend" "lambda 0 img2img $blend"
  gen "mix_$blend" -p "$BENIGN" --strength 0.6 --safety-text "$S" --safety-weight 0.5 --context-steps 0 --safety-blend "$blend"
  differ i2i_off "mix_$blend" "lambda 0.5 img2img $blend"
  differ pear "mix_$blend" "lambda 0.5 img2img $blend"
done

# inpainting: the same invariants, and outside the mask the latents are the init image's
gen inp -p "$BENIGN" --strength 0.8 --mask "$O/mask.png"
gen inp_off -p "$BENIGN" --strength 0.8 --mask "$O/mask.png" --safety off
cmp -s "$O/inp.png" "$O/inp_off.png" && ok || bad "unflagged inpainting PNG differs from --safety off"
gen inp_1bit -p "$BENIGN" --strength 0.8 --mask "$O/mask_1bit.png"
same inp inp_1bit "1-bit grey mask"
gen inp_pear -p "$S" --strength 0.8 --mask "$O/mask.png" --safety off
gen inp_u -p "$UNSAFE" --strength 0.8 --mask "$O/mask.png" --safety-report "$O/inp_u.json"
gen inp_u_off -p "$UNSAFE" --strength 0.8 --mask "$O/mask.png" --safety off
differ inp_u_off inp_u "flagged inpainting not altered"
grep -qa "Denoising strength: 0.8, Init image: inpaint" "$O/inp_u.png" && ok || bad "inpainting PNG metadata"
"$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["mode"]=="inpaint" and r["dual"]["ran"] and r["detectors"]["flagged"]' "$O/inp_u.json" && ok || bad "inpainting report"
"$PYTHON" - "$O" <<'PY' && ok || bad "the mask: latents outside it are not the init image's, or inside not repainted"
import sys, numpy as np
o = sys.argv[1]
a, b, c = (np.load(f"{o}/{n}.npy") for n in ("inp", "inp_pear", "inp_u"))
keep = np.ones(a.shape[-2:], bool); keep[2:6, 2:6] = False   # the mask's 8x8 square at 16 px, halved
for x in (b, c):
    assert np.array_equal(a[..., keep], x[..., keep]), "outside the mask"
    assert not np.array_equal(a[..., ~keep], x[..., ~keep]), "inside the mask"
PY
gen inp_l1 -p "$BENIGN" --strength 0.8 --mask "$O/mask.png" --safety-text "$S" --safety-weight 1 --context-steps 0 --safety-blend final
same inp_pear inp_l1 "lambda 1 tau 0 inpainting"

# the flags in --help
expect_rc 0 "help" $B generate --help
grep -q -- "--init-img" <<<"$OUT" && grep -q -- "--strength" <<<"$OUT" && grep -q -- "--mask" <<<"$OUT" && ok || bad "--help lacks the img2img flags"

# bad input: exit 1 (2 for usage), one line naming the problem, no output file
bad_run() { # bad_run RC WHAT TEXT ARGS...
  local rc=$1 what=$2 text=$3; shift 3
  rm -f "$O/e.png"
  expect_rc "$rc" "$what" $B generate -m "$M" --steps 4 -p "$BENIGN" -o "$O/e.png" "$@"
  one_line_error "$text" "$what"
  [ -e "$O/e.png" ] && bad "$what: e.png written despite the error" || ok
}
bad_run 1 "init image not a PNG" "not a PNG file" -i "$O/not.png"
bad_run 1 "truncated init image" "trunc.png" -i "$O/trunc.png"
bad_run 1 "missing init image" "nothing.png" -i "$O/nothing.png"
bad_run 1 "init image a folder" "directory" -i "$O"
bad_run 1 "init image header of 20000x20000" "image too large" -i "$O/huge.png"
bad_run 1 "init image size not a multiple of 8" "init image size 12x12: width and height must be multiples of 8" -i "$O/init_12.png"
bad_run 1 "-W against the init image" "the init image is 16x16 but the requested size is 24x16" -i "$O/init.png" -W 24
bad_run 1 "init image over the pixel budget" "pixel budget" -i "$O/init_24x16.png" --max-pixels 256
bad_run 1 "strength above 1" "strength 1.5 is out of range" -i "$O/init.png" --strength 1.5
bad_run 1 "strength below 0" "strength -0.1 is out of range" -i "$O/init.png" --strength -0.1
bad_run 1 "strength with no step" "runs no step" -i "$O/init.png" --strength 0.2
bad_run 2 "strength not a number" "--strength takes a number" -i "$O/init.png" --strength lots
bad_run 1 "mask size mismatch" "the mask is 8x8 but the init image is 16x16" -i "$O/init.png" --mask "$O/mask_8.png"
bad_run 1 "mask not a PNG" "not a PNG file" -i "$O/init.png" --mask "$O/not.png"
bad_run 2 "mask without init image" "--mask needs --init-img" --mask "$O/mask.png"
summary
