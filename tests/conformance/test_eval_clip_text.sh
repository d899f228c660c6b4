#!/usr/bin/env bash
# The text side of the evaluation's clip-zeroshot classifier (src/judge/clip_textproj.c: the
# CLIP text tower's pooled output, the final-LayerNorm state at the first end-of-text token,
# times text_projection) against tools/ref/sdref_clip.py's CLIPModel.text_embeds with the
# tokenizer of tools/train/clip_bpe.py, on the bundled model's clip/ folder (or
# $SAFESD_EVAL_MODEL, e.g. a dry-run copy of it). Tolerance: max abs error <= 1e-4 x max |ref|.
source "$(dirname "$0")/lib.sh"
need_torch
MODEL=${SAFESD_EVAL_MODEL:-$SRC/models/safesd-emoji}
if [ ! -f "$MODEL/clip/config.json" ]; then
  echo "SKIP: $MODEL/clip is absent (the bundled model is not built yet)"
  exit 77
fi
texts="$TMP/eval_clip_text.txt"
printf '%s\n' "dagger, noto emoji" "fork and knife, twemoji emoji, cutlery" "" \
  "a very long prompt $(printf 'word %.0s' $(seq 1 90))" "RED HEART, Noto Emoji!!" > "$texts"
"$BUILD/tests/eval_clip_text_check" "$MODEL/clip" "$MODEL" < "$texts" > "$TMP/eval_clip_text.c.txt"
"$PYTHON" - "$MODEL" "$texts" "$TMP/eval_clip_text.c.txt" <<'PY'
import json, os, sys
import torch
src = os.environ["SAFESD_SOURCE_DIR"]
sys.path.insert(0, os.path.join(src, "tools", "ref")); sys.path.insert(0, os.path.join(src, "tools", "train"))
import clip_bpe, sdref, sdref_clip
model, texts, cout = sys.argv[1:]
cj = json.load(open(os.path.join(model, "clip", "config.json")))
tk = sdref.CLIPTextConfig().__dict__.keys(); vk = sdref_clip.CLIPVisionConfig().__dict__.keys()
tc = sdref.CLIPTextConfig(**{k: v for k, v in cj["text_config"].items() if k in tk})
vc = sdref_clip.CLIPVisionConfig(**{k: v for k, v in cj["vision_config"].items() if k in vk})
m = sdref_clip.CLIPModel(tc, vc, cj["projection_dim"]).eval()
sdref.load_weights_as_f32(m, sdref.load_safetensors(os.path.join(model, "clip", "model.safetensors")))
tok = clip_bpe.Tokenizer(os.path.join(model, "tokenizer"))
lines = open(texts, encoding="utf-8").read().split("\n")[:-1]
with torch.no_grad():
    ref = m.text_embeds(torch.tensor([tok.encode(t) for t in lines]))
got = torch.tensor([[float(x) for x in l.split()] for l in open(cout).read().strip().split("\n")])
assert got.shape == ref.shape, (got.shape, ref.shape)
err, scale = float((got - ref).abs().max()), float(ref.abs().max())
print(f"clip text_embeds: {len(lines)} texts, max abs error {err:.3g}, max |ref| {scale:.3g}")
sys.exit(0 if err <= 1e-4 * scale else 1)
PY
