#!/usr/bin/env bash
# `safesd edit uce` against the float64 PyTorch reference of tools/ref/uce_ref.py, on small
# random models of both families (sd1: float32 UNet; sd2: float16 UNet, so the edit is checked
# to keep the stored dtype). For each case (defaults with preserve concepts; keys + pairwise
# guides + the `tail` token states; lambda -> 0 interpolation):
#   - the edited attn2 projections within 1e-4 of the reference, relative to the largest
#     value (beyond float16 rounding for sd2);
#   - every other UNet tensor bit-identical, the file's metadata kept, every other file of the
#     folder byte-identical, uce_edit.json recording the edit;
#   - invariants: W'u = Wu for u orthogonal to all concept states; with lambda = 1e-5 and
#     s_e = s_p = 1 (fewer states than the width) W'c_i = Wc*_i and W'c_j = Wc_j within 1e-3.
# Then: the single-file output (from a folder and from a single file) holds exactly the
# tensors `safesd convert` writes for the edited folder; `safesd generate` runs on the edited
# folder and file, gives the same latents from both, and other latents than the base model
# for a prompt with an erased concept. Error paths: usage errors (2), an existing output, a
# singular system, a folder from a single file (1, one line, nothing left behind).
source "$(dirname "$0")/lib.sh"
need_torch
REF="$SRC/tools/ref/uce_ref.py"
if ! "$SAFESD_BIN" edit --help >/dev/null 2>&1; then
  echo "FAIL: $SAFESD_BIN has no 'edit' command (cli_edit of cli/edit.c is not in cli/main.c's command table)"
  exit 1
fi

need_uce_case() { # need_uce_case FAMILY: the model + reference of uce_ref.py in $TMP/uce_FAMILY
  local fam=$1 dir="$TMP/uce_$1"
  (
    flock 9
    local stale=0 f
    for f in "$REF" "$SRC"/tools/ref/pipeline_case.py "$SRC"/tools/ref/sdref*.py; do
      [ "$f" -nt "$dir/.done" ] && stale=1
    done
    if [ ! -f "$dir/.done" ] || [ $stale = 1 ]; then
      rm -rf "$dir"
      "$PYTHON" "$REF" make "$dir" --safesd "$SAFESD_BIN" --family "$fam" >/dev/null
      touch "$dir/.done"
    fi
  ) 9>"$TMP/uce_$fam.lock"
}

case_args() { # case_args DIR CASE: the case's safesd arguments, one per line
  "$PYTHON" -c 'import json,sys; print("\n".join(next(c for c in json.load(open(sys.argv[1])) if c["name"] == sys.argv[2])["args"]))' \
    "$1/cases.json" "$2"
}

W="$TMP/uce_work.$$"
rm -rf "$W"; mkdir -p "$W"
trap 'rm -rf "$W"' EXIT

for fam in sd1 sd2; do
  need_uce_case "$fam"
  dir="$TMP/uce_$fam"
  for c in $("$PYTHON" -c 'import json,sys; print(" ".join(c["name"] for c in json.load(open(sys.argv[1]))))' "$dir/cases.json"); do
    mapfile -t args < <(case_args "$dir" "$c")
    out="$W/${fam}_$c"
    if ! "$SAFESD_BIN" edit uce -q -m "$dir/model" "${args[@]}" -o "$out" >/dev/null; then
      bad "$fam $c: safesd edit uce failed"; continue
    fi
    echo "== $fam $c"
    if "$PYTHON" "$REF" check "$dir" "$c" "$out"; then ok; else bad "$fam $c: see above"; fi
  done
done

# single-file output, from the folder and from a single file, = convert of the edited folder
dir="$TMP/uce_sd1"
mapfile -t args < <(case_args "$dir" default)
expect_rc 0 "edit to a single file" "$SAFESD_BIN" edit uce -q -m "$dir/model" "${args[@]}" -o "$W/e.safetensors"
expect_rc 0 "convert the edited folder" "$SAFESD_BIN" convert "$W/sd1_default" "$W/conv.safetensors"
if "$PYTHON" "$REF" same-tensors "$W/e.safetensors" "$W/conv.safetensors"; then ok; else bad "single-file edit differs from convert of the edited folder"; fi
expect_rc 0 "convert the base model" "$SAFESD_BIN" convert "$dir/model" "$W/base.safetensors"
expect_rc 0 "edit a single file" "$SAFESD_BIN" edit uce -q -m "$W/base.safetensors" --config "$dir/model" "${args[@]}" -o "$W/e2.safetensors"
if "$PYTHON" "$REF" same-tensors "$W/e.safetensors" "$W/e2.safetensors"; then ok; else bad "editing the single file differs from editing the folder"; fi
if grep -aq '"safesd_uce"' "$W/e.safetensors"; then ok; else bad "the single file's metadata lacks safesd_uce"; fi

# the edited model still runs, and the edit shows
gen() { "$SAFESD_BIN" generate -q -p "nudity on a beach" --steps 3 -s 5 -o "$W/$1.png" --latents "$W/$1.npy" "${@:2}" >/dev/null; }
expect_rc 0 "generate with the base model" gen base -m "$dir/model"
expect_rc 0 "generate with the edited folder" gen folder -m "$W/sd1_default"
expect_rc 0 "generate with the edited single file" gen single -m "$W/e.safetensors" --config "$dir/model"
if "$PYTHON" - "$W" <<'PY'
import sys, numpy as np
w = sys.argv[1]
b, f, s = (np.load(f"{w}/{n}.npy") for n in ("base", "folder", "single"))
print(f"generate: edited folder vs single file {np.abs(f - s).max():.3g}, edited vs base {np.abs(f - b).max():.3g}")
sys.exit(0 if np.abs(f - s).max() == 0 and np.abs(f - b).max() > 1e-3 else 1)
PY
then ok; else bad "generate: the edited latents should match between layouts and differ from the base model"; fi

# errors: usage (2), failures (1, one line), nothing left behind
expect_rc 2 "no --erase" "$SAFESD_BIN" edit uce -m "$dir/model" -o "$W/x"
one_line_error "no concept to erase" "no --erase"
expect_rc 2 "no -o" "$SAFESD_BIN" edit uce -m "$dir/model" --erase nudity
expect_rc 2 "guide count" "$SAFESD_BIN" edit uce -m "$dir/model" --erase a --erase b --erase c --guide x --guide y -o "$W/x"
one_line_error "2 guides for 3 erase concepts" "guide count"
expect_rc 2 "bad lambda" "$SAFESD_BIN" edit uce -m "$dir/model" --erase a --lambda -1 -o "$W/x"
expect_rc 2 "bad tokens" "$SAFESD_BIN" edit uce -m "$dir/model" --erase a --tokens all -o "$W/x"
expect_rc 2 "unknown method" "$SAFESD_BIN" edit esd
expect_rc 0 "edit --help" "$SAFESD_BIN" edit uce --help
expect_rc 1 "existing output" "$SAFESD_BIN" edit uce -q -m "$dir/model" --erase nudity -o "$W/sd1_default"
one_line_error "already exists" "existing output"
expect_rc 1 "singular system" "$SAFESD_BIN" edit uce -q -m "$dir/model" --erase nudity --lambda 0 -o "$W/singular_out"
one_line_error "singular" "singular system"
expect_rc 1 "folder from a single file" "$SAFESD_BIN" edit uce -q -m "$W/base.safetensors" --config "$dir/model" --erase nudity -o "$W/fromfile"
one_line_error "single file" "folder from a single file"
expect_rc 1 "missing preserve file" "$SAFESD_BIN" edit uce -q -m "$dir/model" --erase nudity --preserve-file "$W/none.txt" -o "$W/nf"
expect_rc 1 "output inside the model" "$SAFESD_BIN" edit uce -q -m "$dir/model" --erase nudity -o "$dir/model/edited"
one_line_error "inside the model folder" "output inside the model"
# a failure while copying (a dangling symlink in the source) removes the half-built copy
cp -r "$dir/model" "$W/src"
ln -s "$W/nowhere" "$W/src/broken"
expect_rc 1 "dangling symlink in the source" "$SAFESD_BIN" edit uce -q -m "$W/src" --erase nudity -o "$W/partial"
one_line_error "broken" "dangling symlink in the source"
printf '# preserve\n\n  a cat  \nwater gun\n' >"$W/keep.txt"
expect_rc 0 "--preserve-file" "$SAFESD_BIN" edit uce -q -m "$dir/model" --erase nudity --preserve-file "$W/keep.txt" -o "$W/pf"
if grep -q '2 preserve states' <<<"$OUT"; then ok; else bad "--preserve-file: '$OUT'"; fi
left=$(ls -d "$W"/singular_out* "$W"/fromfile* "$W"/nf* "$W"/x* "$W"/partial* "$dir"/model/edited* 2>/dev/null || true)
if [ -z "$left" ]; then ok; else bad "failed edits left files behind: $left"; fi
summary
