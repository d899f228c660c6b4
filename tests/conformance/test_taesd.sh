#!/usr/bin/env bash
# The C TAESD decoder (src/models/taesd.c) against the PyTorch reference
# (tools/ref/taesd_ref.py) on random weights: taesd's own file layout and diffusers'
# AutoencoderTiny folder layout (the same weights), float32 and float16 stored, an odd latent
# size; bad sizes refused; a file that is not a TAESD decoder refused.
# Tolerance: max abs error <= 1e-4 (float32 compute either side).
source "$(dirname "$0")/lib.sh"
need_torch
CHECK="$BUILD/tests/taesd_check"
fail=0
for spec in "f32 6x9" "f16 5x4"; do
  set -- $spec
  dir="$TMP/taesd_$1_$2"
  if [ ! -f "$dir/.done" ] || [ "$SRC/tools/ref/taesd_ref.py" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$SRC/tools/ref/taesd_ref.py" "$dir" --dtype "$1" --latent "$2"
    touch "$dir/.done"
  fi
  "$CHECK" "$dir/taesd_decoder.safetensors" "$dir/latents.npy" "$dir/decoded.npy" --tol 1e-4 || fail=1
  "$CHECK" "$dir/tiny" "$dir/latents.npy" "$dir/decoded.npy" --tol 1e-4 --threads 1 || fail=1
done
"$CHECK" errors "$TMP/taesd_f32_6x9/taesd_decoder.safetensors" || fail=1
# (also the previews of sd_sampler_predict_x0, below)
# safesd generate --taesd on the small SD 1.x model (VAE factor 2: a one-stage TAESD): the
# latents are those of the VAE run, the PNG is exactly the TAESD decode of them, and says so
need_pipeline_model sd1
M="$TMP/pipeline_sd1/model"
dir="$TMP/taesd_x2"
rm -rf "$dir"
"$PYTHON" "$SRC/tools/ref/taesd_ref.py" "$dir" --upsamples 1 --latent 8x8 >/dev/null || fail=1
"$SAFESD_BIN" generate -q -m "$M" -p "a red apple" --steps 4 -s 7 --safety off --latents "$dir/vae_lat.npy" -o "$dir/vae.png" || fail=1
"$SAFESD_BIN" generate -q -m "$M" -p "a red apple" --steps 4 -s 7 --safety off --taesd "$dir/tiny" --latents "$dir/t_lat.npy" -o "$dir/t.png" || fail=1
cmp -s "$dir/vae_lat.npy" "$dir/t_lat.npy" && echo "ok: --taesd leaves the latents alone" || { echo "FAIL: --taesd changed the latents"; fail=1; }
"$CHECK" png "$dir/tiny" "$dir/t_lat.npy" "$dir/t.png" || fail=1
grep -qa "VAE: TAESD" "$dir/t.png" && echo "ok: metadata" || { echo "FAIL: no 'VAE: TAESD' in the metadata"; fail=1; }
# previews (--preview-path): with Euler the last x0 estimate is the final latent, so the last
# preview is the image; previews never change the image (dual path, VAE-decoded previews)
"$SAFESD_BIN" generate -q -m "$M" -p "a red apple" --steps 6 -s 7 --safety off --sampler euler --taesd "$dir/tiny" \
  --preview-path "$dir/pv.png" -o "$dir/pv_out.png" || fail=1
"$BUILD/tests/png_check" "$dir/pv.png" "$dir/pv_out.png" --max-level 0 --max-frac 0 || fail=1
grep -qa "preview 6/6" "$dir/pv.png" && echo "ok: the last preview is step 6/6" || { echo "FAIL: no 'preview 6/6'"; fail=1; }
for pv in "" "--preview-path $dir/pv2.png --preview-interval 4"; do
  "$SAFESD_BIN" generate -q -m "$M" -p "a bloody knife" --steps 6 -s 7 --safety high --sampler euler_a $pv -o "$dir/d${pv:+_pv}.png" || fail=1
done
cmp -s "$dir/d.png" "$dir/d_pv.png" && echo "ok: previews leave the image alone (dual path)" || { echo "FAIL: previews changed the image"; fail=1; }
if "$SAFESD_BIN" generate -q -m "$M" -p x --preview-path "$dir/pv3.png" --preview-interval 0 -o "$dir/e.png" 2>/dev/null; then
  echo "FAIL: --preview-interval 0 accepted"; fail=1
fi
# a TAESD of another factor is refused at open, before any work
if "$SAFESD_BIN" generate -q -m "$M" -p x --taesd "$TMP/taesd_f32_6x9/tiny" -o "$dir/bad.png" 2>"$dir/bad.err"; then
  echo "FAIL: an 8x TAESD was taken for a 2x model"; fail=1
elif [ -e "$dir/bad.png" ] || ! grep -q "8x up; this model's are 4-channel, 2x" "$dir/bad.err"; then
  echo "FAIL: factor mismatch: $(cat "$dir/bad.err")"; fail=1
else
  echo "ok: factor mismatch refused"
fi
# the bundled model's VAE is not a TAESD decoder
if "$CHECK" errors "$SRC/models/safesd-emoji/vae" >"$TMP/taesd_not.txt" 2>&1; then
  echo "FAIL: a VAE folder was taken for a TAESD decoder"; fail=1
else
  grep -q "neither a taesd decoder" "$TMP/taesd_not.txt" && echo "ok: a VAE folder is refused" || { echo "FAIL: $(cat "$TMP/taesd_not.txt")"; fail=1; }
fi
exit $fail
