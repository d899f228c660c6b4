#!/usr/bin/env bash
# bf16 compute (--precision bf16) against the float32 PyTorch reference, on the small
# random-weight UNet and VAE of test_unet.sh / test_vae.sh. The whole process computes its
# convolutions and matrix products in bf16: natively on CPUs with AVX512-BF16 or AMX,
# elsewhere through the emulation (fp32 kernels on bf16-rounded inputs and weights,
# SAFESD_BF16_EMULATE=1). The line printed says which one ran.
# Tolerance (docs/performance.md, "bf16"): max abs error <= 3% of the largest reference
# value; and the error must exceed the fp32 tolerance (1e-5 here), or bf16 did not run.
source "$(dirname "$0")/lib.sh"
need_torch
export SAFESD_PRECISION=bf16 SAFESD_BF16_EMULATE=1
fail=0
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then echo "bf16: native"; else echo "bf16: emulated (no native bf16 on this CPU)"; fi
case_dir() { # case_dir DIR GENERATOR ARGS...: (re)generate unless DIR is newer than the generator
  local dir=$1 gen=$2; shift 2
  if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref.py" -nt "$dir/.done" ]; then
    rm -rf "$dir"
    "$PYTHON" "$gen" "$dir" "$@" >/dev/null || return 1
    touch "$dir/.done"
  fi
}
check() { # check LABEL COMMAND...: run a *_check, require pass and an error above fp32's
  local label=$1; shift
  local out
  out=$("$@" 2>&1) || { echo "$out"; echo "FAIL: $label"; fail=1; return; }
  echo "$out" | sed "s/^/$label: /"
  local err
  err=$(echo "$out" | sed -n 's/.*max abs error \([0-9.e+-]*\).*/\1/p' | head -1)
  if [ -z "$err" ] || ! "$PYTHON" -c "import sys; sys.exit(0 if float('$err') > 1e-5 else 1)"; then
    echo "FAIL: $label: error $err is not above fp32's: bf16 did not run"; fail=1
  fi
}
d="$TMP/bf16_unet_small_f32"
case_dir "$d" "$SRC/tools/ref/sdref_unet.py" --preset small --dtype f32 || { echo "FAIL: generating the UNet case"; exit 1; }
check unet "$BUILD/tests/unet_check" "$d/model" "$d/latents.npy" "$d/context.npy" "$d/timestep.npy" "$d/noise_pred.npy" --rel 0.03
v="$TMP/bf16_vae_small_f32"
case_dir "$v" "$SRC/tools/ref/sdref_vae.py" --preset small --dtype f32 || { echo "FAIL: generating the VAE case"; exit 1; }
check vae_decode "$BUILD/tests/vae_check" decode "$v/model" "$v/latents.npy" "$v/decoded.npy" --rel 0.03
exit $fail
