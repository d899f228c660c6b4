#!/usr/bin/env bash
# The image classifiers of src/eval/ against PyTorch / Pillow on random weights
# (tools/ref/clip_vision_case.py; reference models in tools/ref/sdref_clip.py):
#  - "clip f32": a whole CLIPModel folder (the bundled clip/ layout), projection 768: the
#    preprocessing of non-square down/upscaled images (Pillow BICUBIC bytes, exact), the
#    image embeddings, Q16 with synthetic 2x768 prompt vectors (labels, 100*cos, p), the
#    preprocessing at 224 px for larger images, bad arguments; again with one thread;
#  - "vision f16": CLIPVisionModelWithProjection (CLIPVisionConfig), gelu, 30 px / 7 px patches;
#  - "safety bf16", "safety f32": the SD safety checker layout (vision_model.vision_model.*,
#    concept tensors, vision_config_dict): embeddings and the has_nsfw_concept decisions,
#    including a flag that only the 0.01 special-care adjustment produces.
# Tolerances: embeddings max abs error <= 1e-4 x max|reference| (float32 compute either side,
# weights widened from the stored dtype); preprocessing exact (0 bytes, 0.0 in the floats);
# Q16 100*cos within 2e-3, p within 1e-4, labels equal; safety cosines within 1e-4, rounded
# scores within 1e-3 (one rounding step), decisions equal.
# Opt-in (minutes of CPU, ~1 GB of files): SAFESD_CLIP_VISION_L14=1 adds "safety-l14 f16", the
# SD 1.4 safety checker's real shapes (ViT-L/14, 224 px, 24 layers, projection 768).
# The real Q16 prompt file is checked by test_q16_shared.sh.
source "$(dirname "$0")/lib.sh"
need_torch
if ! "$PYTHON" -c 'import PIL' 2>/dev/null; then
  echo "FAIL: $PYTHON cannot import PIL (install python3-pil): the preprocessing reference is Pillow"
  exit 1
fi
CHECK="$BUILD/tests/clip_vision_check"
fail=0
run() { echo "== clip_vision_check $*"; "$CHECK" "$@" || { echo "FAIL: clip_vision_check $*"; fail=1; }; }

make_cv_case() { # DIR ARGS...: (re)generate unless DIR is newer than the generator and models
  local dir=$1; shift
  local gen="$SRC/tools/ref/clip_vision_case.py"
  (
    flock 9
    if [ ! -f "$dir/.done" ] || [ "$gen" -nt "$dir/.done" ] || [ "$SRC/tools/ref/sdref_clip.py" -nt "$dir/.done" ] ||
       [ "$SRC/tools/ref/sdref.py" -nt "$dir/.done" ]; then
      rm -rf "$dir"
      "$PYTHON" "$gen" "$dir" "$@" >/dev/null
      touch "$dir/.done"
    fi
  ) 9>"$dir.lock"
}

specs=("clip f32" "vision f16" "safety bf16" "safety f32")
if [ "${SAFESD_CLIP_VISION_L14:-0}" = 1 ]; then
  specs+=("safety-l14 f16")
else
  echo "note: the ViT-L/14-sized safety-checker case is opt-in (SAFESD_CLIP_VISION_L14=1)"
fi
for spec in "${specs[@]}"; do
  set -- $spec
  dir="$TMP/clip_vision_$1_$2"
  make_cv_case "$dir" --layout "$1" --dtype "$2"
  run embed "$dir"
  case $1 in
    clip)
      run q16 "$dir"
      run resize "$dir"
      run errors "$dir"
      run embed "$dir" --threads 1
      ;;
    safety)
      run safety "$dir"
      run safety "$dir" --threads 1
      ;;
    safety-l14)
      run safety "$dir"
      ;;
  esac
done
exit $fail
