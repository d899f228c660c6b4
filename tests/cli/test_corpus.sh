#!/usr/bin/env bash
# The malformed-input corpus, end to end: every malformed model folder of
# tests/corpus/models/CASES.tsv (through `safesd inspect` and `safesd generate`), every bad
# file of tests/corpus/safetensors/EXPECTED.tsv (as a single-file model), and hostile files
# made here at run time (too big to commit), a request over the pixel budget, and a model whose
# finite weights overflow float32 during generation. For each: exit status 1, one line on stderr
# naming the file and the problem, no output file (nothing at all in the output folder, no
# temporary file), within a time limit and under a virtual-memory limit (ulimit -v).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
BASE="$SRC/models/safesd-emoji"
C="$SRC/tests/corpus"
W="$TMP/corpus"; rm -rf "$W"; mkdir -p "$W"
TLIMIT=${SAFESD_CORPUS_TIMEOUT:-30}   # seconds per run (the machine may be loaded)
VLIMIT=${SAFESD_CORPUS_VLIMIT:-1500000} # KiB of virtual memory (a normal run needs ~0.8 GB; "unlimited"
                                      # for an ASan build, whose shadow memory is reserved up front)

# expect_fail LABEL FILE_TEXT PROBLEM CMD...: the checks above for one run; the output
# folder is $W/out (empty before, empty after)
expect_fail() {
  local label=$1 file=$2 problem=$3; shift 3
  rm -rf "$W/out"; mkdir -p "$W/out"
  local t0=$(date +%s%N) rc
  set +e
  ( ulimit -v $VLIMIT; exec timeout -s KILL $TLIMIT "$@" ) >"$W/stdout" 2>"$W/stderr" </dev/null
  rc=$?
  set -e
  local ms=$(( ($(date +%s%N) - t0) / 1000000 )) err
  err=$(cat "$W/stderr")
  if [ $rc != 1 ]; then bad "$label: exit $rc (expected 1) after $ms ms: $err"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then bad "$label: not one line: $err"; return; fi
  if ! grep -qF -- "$file" <<<"$err" || ! grep -qF -- "$problem" <<<"$err"; then
    bad "$label: message does not name '$file' and '$problem': $err"; return
  fi
  if [ -n "$(ls -A "$W/out")" ]; then bad "$label: files left: $(ls -A "$W/out")"; return; fi
  if [ -s "$W/stdout" ]; then bad "$label: printed a report on stdout despite the error"; return; fi
  ok
}

# ---- malformed model folders -------------------------------------------------------------
# a writable copy of the bundled model: real folders, symbolic links to its files
fresh_model() { rm -rf "$1"; cp -rs "$(cd "$BASE" && pwd)" "$1"; rm -rf "$1/clip" "$1/eval"; }
# poison KIND FILE TENSOR: a real copy of FILE with TENSOR's values all NaN or +Inf
poison() {
  local kind=$1 f=$2 t=$3 real
  if [ -L "$f" ]; then real=$(readlink -f "$f"); rm "$f"; cp "$real" "$f"; fi # a second poison: already a copy
  "$PYTHON" - "$kind" "$f" "$t" <<'PY'
import json, struct, sys
kind, path, name = sys.argv[1:]
with open(path, "r+b") as fh:
    n = struct.unpack("<Q", fh.read(8))[0]
    e = json.loads(fh.read(n))[name]
    pat = {("F16", "nan"): b"\x00\x7e", ("F16", "inf"): b"\x00\x7c", ("F32", "nan"): b"\x00\x00\xc0\x7f",
           ("F32", "inf"): b"\x00\x00\x80\x7f", ("BF16", "nan"): b"\xc0\x7f", ("BF16", "inf"): b"\x80\x7f"}[(e["dtype"], kind)]
    b, end = e["data_offsets"]
    fh.seek(8 + n + b)
    fh.write(pat * ((end - b) // len(pat)))
PY
}
skipped=0
while IFS=$'\t' read -r name setup file problem; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  M="$W/m_$name"
  fresh_model "$M"
  skip=0
  IFS=';' read -ra actions <<<"$setup"
  for a in "${actions[@]}"; do
    read -r op rel arg <<<"$a"
    p="$M/$rel"
    case $op in
      file) rm -rf "$p"; cp "$C/models/files/$arg" "$p" ;;
      fifo) rm -rf "$p"; mkfifo "$p" ;;
      dir) rm -rf "$p"; mkdir "$p" ;;
      regular) rm -rf "$p"; echo "not a folder" >"$p" ;;
      rm) rm -rf "$p" ;;
      dangling) rm -rf "$p"; ln -s "$M/no-such-file" "$p" ;;
      chardev) rm -rf "$p"; mknod "$p" c 1 3 2>/dev/null || skip=1 ;;
      nan|inf) poison "$op" "$p" "$arg" ;;
      *) bad "$name: unknown setup action '$op'" ;;
    esac
  done
  if [ $skip = 1 ]; then skipped=$((skipped + 1)); continue; fi
  expect_fail "$name (inspect)" "$file" "$problem" $B inspect "$M"
  expect_fail "$name (generate)" "$file" "$problem" $B generate -q -m "$M" -p "red apple, noto emoji" --steps 2 \
    -o "$W/out/a.png" --latents "$W/out/a.npy" --safety-report "$W/out/a.json"
done <"$C/models/CASES.tsv"
[ $skipped = 0 ] || echo "note: $skipped character-device cases skipped (mknod needs root)"

# ---- the safetensors corpus, each file given as a single-file model --------------------------
while IFS=$'\t' read -r f want; do
  [ -z "$f" ] || [ "${f:0:1}" = "#" ] && continue
  expect_fail "$f (inspect)" "$f" "$want" $B inspect "$C/safetensors/$f"
  expect_fail "$f (generate)" "$f" "$want" $B generate -q -m "$C/safetensors/$f" -p x -o "$W/out/a.png"
done <"$C/safetensors/EXPECTED.tsv"

# ---- hostile files made at run time ------------------------------------------------------------
G="$W/gen"; mkdir -p "$G"
"$PYTHON" - "$G" <<'PY'
import os, struct, sys
d = sys.argv[1]
def st(path, header, data=b""):
    h = header.encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
# 200,000 empty tensors in a 12 MB header: under the byte limit, over the entry limit (the
# audit's 1.5 M-entry file cost 1.8 GB and 20 s before this check existed)
st(os.path.join(d, "many_entries.safetensors"),
   "{" + ",".join('"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(200000)) + "}")
# one tensor whose shape array has 1.1 M elements: few objects, too many values
st(os.path.join(d, "many_values.safetensors"),
   '{"w":{"dtype":"F32","shape":[' + ",".join(["1"] * 1100000) + '],"data_offsets":[0,4]}}', b"\0" * 4)
# a header length of 20 MiB (a sparse file: nothing to read for the check)
with open(os.path.join(d, "header_20mib.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", 20 << 20))
    f.truncate(8 + (20 << 20))
PY
for f in many_entries:"entries (objects)" many_values:"JSON values" header_20mib:"exceeds the limit"; do
  n=${f%%:*}; want=${f#*:}
  expect_fail "$n (inspect)" "$n.safetensors" "$want" $B inspect "$G/$n.safetensors"
  expect_fail "$n (generate)" "$n.safetensors" "$want" $B generate -q -m "$G/$n.safetensors" -p x -o "$W/out/a.png"
done
# a request over the pixel budget on the 64-px bundled model (was: 1.8 GB, minutes of work)
expect_fail "4096x4096 on a 64-px model" "4096x4096" "pixel budget" $B generate -q -p "red apple, noto emoji" \
  -W 4096 -H 4096 -o "$W/out/big.png"
# finite weights whose activations overflow float32 (every UNet weight x1000, clipped to the
# F16 range): the weight check at open passes them, so generate must catch the NaN in the
# latents after the first step (was: NaN latents, an all-black PNG and exit status 0)
M="$W/m_overflow"
fresh_model "$M"
f="$M/unet/diffusion_pytorch_model.safetensors"; real=$(readlink -f "$f"); rm "$f"; cp "$real" "$f"
"$PYTHON" - "$f" <<'PY'
import json, struct, sys
import numpy as np
with open(sys.argv[1], "r+b") as fh:
    n = struct.unpack("<Q", fh.read(8))[0]
    for name, e in json.loads(fh.read(n)).items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F16", (name, e["dtype"])
        b, end = e["data_offsets"]
        fh.seek(8 + n + b)
        a = np.frombuffer(fh.read(end - b), dtype="<f2").astype(np.float32) * 1000
        fh.seek(8 + n + b)
        fh.write(np.clip(a, -65504, 65504).astype("<f2").tobytes())
PY
expect_fail "UNet weights x1000 (finite; activations overflow)" "the latents after step 1" "overflowed float32" \
  $B generate -q -m "$M" -p "red apple, noto emoji" --steps 2 -o "$W/out/a.png" --latents "$W/out/a.npy" \
  --safety-report "$W/out/a.json"
rm -rf "$W"
summary
