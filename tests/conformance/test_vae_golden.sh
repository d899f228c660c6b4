#!/usr/bin/env bash
# The C VAE decoder against the real diffusers v0.25.1 outputs in ../shared/data/golden:
#  - tiny: vae.in.latents -> every decoder block output (post_quant_conv, decoder.conv_in,
#    decoder.mid_block, decoder.up_blocks.N, decoder.conv_norm_out) and vae.out.image,
#    max abs error <= 1e-4;
#  - clip-small: each case's final_latents -> decoded.npy and image.npy (max abs <= 1e-3),
#    and sd_vae_to_rgb8's pixels vs the pipeline's image.png (<= 1 level, <= 1% of the
#    values differ); sd_vae_to_rgb8 applied to the golden decoded.npy itself must give the
#    PNG's pixels exactly. The PNG is decoded here in Python (zlib), not by the engine;
#  - the same decode from the clip-small single files (original LDM names: 1x1-conv
#    attention weights viewed as linear) in float32 and float16 (the same numbers).
source "$(dirname "$0")/lib.sh"
need_shared data/golden/tiny/tensors/vae.out.image.npy
need_shared data/golden/clip-small/cases/ddim_s42/decoded.npy
need_torch
G="$SHARED/data/golden"
CHECK="$BUILD/tests/vae_check"
fail=0

# tiny: its weights/ folder is not a diffusers folder; lay one out with links.
T="$TMP/golden_tiny_vae"
rm -rf "$T"; mkdir -p "$T/vae"
echo '{"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"]}' > "$T/model_index.json"
ln -s "$G/tiny/weights/vae_config.json" "$T/vae/config.json"
ln -s "$G/tiny/weights/vae.safetensors" "$T/vae/diffusion_pytorch_model.safetensors"
B=()
for n in post_quant_conv decoder.conv_in decoder.mid_block decoder.up_blocks.0 decoder.up_blocks.1 decoder.conv_norm_out; do
  B+=(--block "$n" "$G/tiny/tensors/vae.block.$n.npy")
done
"$CHECK" decode "$T" "$G/tiny/tensors/vae.in.latents.npy" "$G/tiny/tensors/vae.out.image.npy" --tol 1e-4 "${B[@]}" || fail=1
# the sampler goldens end in a decode too
for s in ddim pndm; do
  "$CHECK" decode "$T" "$G/tiny/tensors/sample.$s.final_latents.npy" "$G/tiny/tensors/sample.$s.image.npy" --tol 1e-4 || fail=1
done

png_cmp() { # PNG RGB.npy LABEL MAXLEVEL
  "$PYTHON" - "$@" <<'PY'
import struct, sys, zlib
import numpy as np

def read_png(path):  # 8-bit RGB/RGBA, non-interlaced: what PIL writes by default
    d = open(path, "rb").read()
    if d[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos < len(d):
        n, typ = struct.unpack(">I4s", d[pos:pos + 8])
        body = d[pos + 8:pos + 8 + n]
        pos += 12 + n
        if typ == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        elif typ == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise SystemExit(f"{path}: unsupported PNG {hdr}")
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * bpp).astype(np.int64)
    out = np.zeros((h, w * bpp), np.int64)
    prev = np.zeros(w * bpp, np.int64)
    for y in range(h):
        ft, line = raw[y, 0], raw[y, 1:].copy()
        for x in range(w * bpp):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ft == 1:
                line[x] = (line[x] + a) & 255
            elif ft == 2:
                line[x] = (line[x] + b) & 255
            elif ft == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y] = line
        prev = line
    return out.reshape(h, w, bpp)[:, :, :3]

ref, got, label, maxlev = read_png(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if ref.shape != got.shape:
    print(f"{label}: PNG {ref.shape} vs rgb8 {got.shape} FAIL")
    sys.exit(1)
d = np.abs(ref - got)
nd = int((d > 0).sum())
ok = d.max() <= maxlev and (nd <= 0.01 * d.size if maxlev else nd == 0)
print(f"{label}: rgb8 vs image.png max {int(d.max())} level(s), {nd} of {d.size} values differ "
      f"(limit {maxlev} level(s){', 1%' if maxlev else ''}) {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
}

C="$G/clip-small"
for c in ddim_s42 pndm_s0 euler_s4290749014; do
  d="$C/cases/$c"
  "$CHECK" decode "$C/model" "$d/final_latents.npy" "$d/decoded.npy" --tol 1e-3 --image01 "$d/image.npy" --tol01 1e-3 \
    --rgb-out "$TMP/vae_golden_$c.rgb.npy" || fail=1
  png_cmp "$d/image.png" "$TMP/vae_golden_$c.rgb.npy" "$c (engine decode)" 1 || fail=1
  "$CHECK" rgb8 "$d/decoded.npy" "$TMP/vae_golden_$c.ref_rgb.npy" || fail=1
  png_cmp "$d/image.png" "$TMP/vae_golden_$c.ref_rgb.npy" "$c (golden decoded.npy)" 0 || fail=1
done
# single files (LDM layout), built once as test_golden_text.sh does
SF="$TMP/golden_clip_small_ldm"
mkdir -p "$SF"
if [ ! -f "$SF/clip-small-ldm-f16.safetensors" ] || [ ! -f "$SF/clip-small-ldm-f32.safetensors" ]; then
  "$PYTHON" "$C/make_single_file.py" --out-dir "$SF" >/dev/null || fail=1
fi
for model in "$SF/clip-small-ldm-f32.safetensors" "$SF/clip-small-ldm-f16.safetensors"; do
  for c in ddim_s42 euler_s4290749014; do
    d="$C/cases/$c"
    "$CHECK" decode "$model" "$d/final_latents.npy" "$d/decoded.npy" --tol 1e-3 --image01 "$d/image.npy" || fail=1
  done
done
exit $fail
