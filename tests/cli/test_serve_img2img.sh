#!/usr/bin/env bash
# `safesd serve`'s AUTOMATIC1111 /sdapi/v1/img2img on the bundled model, with curl: an init
# image (base64 PNG, or a data: URL) with denoising_strength gives the CLI's PNG bytes for
# `generate -i --strength` (safety at the server's default level, as the CLI's); a mask (and
# inpainting_mask_invert) the CLI's `--mask` bytes; bad requests are 400s naming the field.
source "$(dirname "$0")/../conformance/lib.sh"
command -v curl >/dev/null || { echo "FAIL: curl is not installed (tools/install-deps.sh)"; exit 1; }
unset SAFESD_API_KEY
T="$TMP/serve_img2img"; rm -rf "$T"; mkdir -p "$T"
"$PYTHON" - "$T" <<'PY'
import base64, json, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
y, x = np.mgrid[0:64, 0:64]
img = np.stack([x * 4, y * 4, ((x // 8 + y // 8) % 2) * 255], -1).astype(np.uint8)
Image.fromarray(img, "RGB").save(f"{t}/init.png")
m = np.zeros((64, 64), np.uint8); m[16:48, 8:40] = 255
Image.fromarray(m, "L").save(f"{t}/mask.png")
Image.fromarray(255 - m, "L").save(f"{t}/mask_inv.png")
Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(f"{t}/mask32.png")
b = lambda p: base64.b64encode(open(p, "rb").read()).decode()
base = {"prompt": "cat face, noto emoji", "steps": 6, "seed": 5, "cfg_scale": 7.5}
def req(name, **kw):
    d = dict(base); d.update(kw); json.dump(d, open(f"{t}/{name}.json", "w"))
req("i2i", init_images=[b(f"{t}/init.png")], denoising_strength=0.6)
# what A1111 clients (webuiapi, the Java/TS SDKs) send by default: without a mask these fields
# change nothing in A1111 either, so the image must be plain img2img's
req("i2i_defaults", init_images=[b(f"{t}/init.png")], denoising_strength=0.6, mask_blur=4, inpainting_fill=0,
    inpaint_full_res=True, inpaint_full_res_padding=0, image_cfg_scale=1.5, resize_mode=0, initial_noise_multiplier=1,
    inpainting_mask_invert=0)
req("inp", init_images=["data:image/png;base64," + b(f"{t}/init.png")], mask=b(f"{t}/mask.png"), denoising_strength=0.8,
    mask_blur=0, inpainting_fill=1, inpaint_full_res=False, resize_mode=0, include_init_images=False)
req("inp_inv", init_images=[b(f"{t}/init.png")], mask=b(f"{t}/mask_inv.png"), inpainting_mask_invert=1, denoising_strength=0.8)
req("e_noinit")
req("e_b64", init_images=["!!!not base64"])
req("e_notpng", init_images=[base64.b64encode(b"hello, this is text").decode()])
req("e_two", init_images=[b(f"{t}/init.png"), b(f"{t}/init.png")])
req("e_width", init_images=[b(f"{t}/init.png")], width=128)
req("e_mask", init_images=[b(f"{t}/init.png")], mask=b(f"{t}/mask32.png"))
req("e_strength", init_images=[b(f"{t}/init.png")], denoising_strength=1.5)
req("e_nostep", init_images=[b(f"{t}/init.png")], denoising_strength=0.1)
req("e_blur", init_images=[b(f"{t}/init.png")], mask=b(f"{t}/mask.png"), mask_blur=4)
req("e_fill", init_images=[b(f"{t}/init.png")], mask=b(f"{t}/mask.png"), inpainting_fill=0)
req("e_fill_range", init_images=[b(f"{t}/init.png")], inpainting_fill=7)
req("e_blur_type", init_images=[b(f"{t}/init.png")], mask_blur="4")
req("e_icfg", init_images=[b(f"{t}/init.png")], image_cfg_scale="high")
req("e_fullres", init_images=[b(f"{t}/init.png")], inpaint_full_res=2)
PY
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
"$SAFESD_BIN" serve -q --port 0 --port-file "$T/port" --access-log off 2>"$T/serve.err" &
PIDS+=($!)
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.1; done
U="http://127.0.0.1:$(cat "$T/port")/sdapi/v1/img2img"
post() { curl -s -o "$T/$1.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$T/$1.json" "$U"; }
png_of() { "$PYTHON" -c 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$T/$1.out" "$T/$1.png"; }
cli() { local name=$1; shift; "$SAFESD_BIN" generate -q -p "cat face, noto emoji" --steps 6 -s 5 -i "$T/init.png" -o "$T/$name.png" "$@" >/dev/null; }

code=$(post i2i); [ "$code" = 200 ] && ok || bad "img2img: $code $(head -c 300 "$T/i2i.out")"
png_of i2i; cli cli_i2i --strength 0.6
cmp -s "$T/i2i.png" "$T/cli_i2i.png" && ok || bad "img2img: the server's PNG differs from the CLI's"
"$PYTHON" -c 'import json,sys; p=json.load(open(sys.argv[1]))["parameters"]; assert abs(p["denoising_strength"]-0.6)<1e-9 and p["mask"] is False' "$T/i2i.out" \
  && grep -q "Denoising strength: 0.6, Init image: img2img" "$T/i2i.out" && ok || bad "img2img: parameters/infotext lack the strength"
code=$(post i2i_defaults); [ "$code" = 200 ] && ok || bad "img2img with A1111's default mask fields: $code $(head -c 300 "$T/i2i_defaults.out")"
png_of i2i_defaults
cmp -s "$T/i2i_defaults.png" "$T/i2i.png" && ok || bad "img2img: A1111's default mask fields without a mask changed the image"
code=$(post inp); [ "$code" = 200 ] && ok || bad "inpaint: $code $(head -c 300 "$T/inp.out")"
png_of inp; cli cli_inp --strength 0.8 --mask "$T/mask.png"
cmp -s "$T/inp.png" "$T/cli_inp.png" && ok || bad "inpaint: the server's PNG differs from the CLI's"
code=$(post inp_inv); [ "$code" = 200 ] && ok || bad "inpaint, inverted mask: $code"
png_of inp_inv
cmp -s "$T/inp_inv.png" "$T/cli_inp.png" && ok || bad "inpainting_mask_invert: differs from the plain mask"
cmp -s "$T/i2i.png" "$T/inp.png" && bad "the mask changed nothing" || ok

for c in "e_noinit init_images required" "e_b64 init_images base64" "e_notpng init_images not a PNG" \
         "e_two init_images array of one" "e_width width no resizing" "e_mask mask 32x32" \
         "e_strength denoising_strength out of range" "e_nostep - runs no step" "e_blur mask_blur only 0" \
         "e_fill inpainting_fill original" "e_fill_range inpainting_fill out of range" \
         "e_blur_type mask_blur expected an integer" "e_icfg image_cfg_scale expected a number" \
         "e_fullres inpaint_full_res expected a boolean"; do
  read -r name field text <<<"$c"
  code=$(post "$name")
  if [ "$code" = 400 ] && grep -q -- "$text" "$T/$name.out" && { [ "$field" = - ] || grep -q "\"field\": *\"$field\"" "$T/$name.out"; }; then ok
  else bad "$name: $code $(head -c 300 "$T/$name.out")"; fi
done
code=$(curl -s -o "$T/get.out" -w '%{http_code}' "$U"); [ "$code" = 405 ] && ok || bad "GET img2img: $code"
kill -TERM "${PIDS[0]}"
set +e; wait "${PIDS[0]}"; rc=$?; set -e
[ "$rc" = 0 ] && ok || bad "server exit status $rc"
summary
