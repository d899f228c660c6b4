#!/usr/bin/env python3
"""Make an image-classifier conformance case for src/eval/: a random-weight CLIP vision tower
(sdref_clip.py), a few uint8 images of assorted sizes, their CLIPImageProcessor
preprocessing (Pillow BICUBIC resize, center crop, rescale, normalise: transformers' steps,
written out here with Pillow and numpy), and the PyTorch reference outputs as .npy.

    clip_vision_case.py OUT_DIR --layout clip|vision|safety|safety-l14 [--dtype f32|f16|bf16] [--seed N]

Layouts (OUT_DIR/model/ = config.json + model.safetensors):
  clip    a whole CLIPModel (text_model.*, vision_model.*, visual_projection, text_projection,
          logit_scale; config with text_config/vision_config), projection_dim 768 (the Q16
          width), quick_gelu; also a synthetic Q16 prompt file (q16_prompts.f32) and the Q16
          reference (q16_sims.npy, q16_p.npy, q16_label.npy);
  vision  CLIPVisionModelWithProjection (CLIPVisionConfig at the top level), gelu, a patch
          size that does not divide the image size (30 px, 7 px patches);
  safety  diffusers' StableDiffusionSafetyChecker (vision_model.vision_model.*, concept_embeds
          [17, P], special_care_embeds [3, P] and their thresholds; config with vision_config
          and the legacy vision_config_dict, which wins), and the reference decision of
          diffusers' forward() (safety_*.npy). Thresholds are placed so that some images are
          flagged, some not, one only through the 0.01 special-care adjustment, and no score
          lies within 2e-4 of the 0.0005 rounding boundary that decides a flag;
  safety-l14  the same at the real SD 1.4 safety-checker shapes (ViT-L/14, 224 px, 24 layers,
          projection 768; minutes of CPU).

Always: image_K.npy (int32 [H, W, 3]), crop_K.npy (int32 [S, S, 3], Pillow's bytes after
resize + crop), pixels_K.npy ([3, S, S] float32), embeds.npy ([n, P] image_embeds), and
resize_K_in.npy / resize_K_out.npy: larger images resized + cropped to 224 by Pillow (the
preprocessing at the real CLIP size, independent of the model).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402
import sdref_clip  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

LAYOUTS = {
    "clip": dict(vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             image_size=32, patch_size=8, hidden_act="quick_gelu"), projection_dim=768),
    "vision": dict(vision=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                               image_size=30, patch_size=7, hidden_act="gelu", layer_norm_eps=1e-6),
                   projection_dim=32),
    "safety": dict(vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                               image_size=28, patch_size=14, hidden_act="quick_gelu"), projection_dim=48),
    # the SD 1.4 safety checker's real shapes (CLIP ViT-L/14 at 224 px, projection 768); slow
    "safety-l14": dict(vision=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                   intermediate_size=4096, image_size=224, patch_size=14,
                                   hidden_act="quick_gelu"), projection_dim=768),
}

# (width, height) of the model-size images: non-square down- and upscales, exact size, extreme
IMAGE_SIZES = [(45, 61), (20, 13), None, (100, 37), (7, 300)]
# Pillow at the real CLIP size
RESIZE_SIZES = [(640, 480), (150, 101), (224, 224), (224, 300), (3, 400), (1000, 999)]


def make_image(rng, w, h):
    """Smooth gradients + noise + saturated blocks: exercises rounding and clipping."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.3)
        img[..., c] = 128 + 100 * np.sin(fx * xx + fy * yy + ph)
    img += rng.normal(0, 30, img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if w > 4 and h > 4:
        img[: h // 4, : w // 4] = 255
        img[-(h // 4):, -(w // 4):] = 0
    return img


def resize_crop(img, size):
    """transformers' CLIPImageProcessor resize (shortest_edge) + center_crop on uint8 RGB."""
    h, w = img.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    ow, oh = (new_short, new_long) if w <= h else (new_long, new_short)
    pil = Image.fromarray(img, "RGB")
    if (ow, oh) != (w, h):
        pil = pil.resize((ow, oh), resample=Image.BICUBIC, reducing_gap=None)
    a = np.array(pil)
    top, left = (oh - size) // 2, (ow - size) // 2
    return a[top:top + size, left:left + size]


def normalise(crop):
    """rescale (float64 multiply, cast to float32) then (x - mean) / std in float32, CHW."""
    x = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(sdref_clip.IMAGE_MEAN, dtype=np.float32)
    std = np.array(sdref_clip.IMAGE_STD, dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1).copy()


class VisionWithProjection(nn.Module):
    """CLIPVisionModelWithProjection's names: vision_model.*, visual_projection.weight."""

    def __init__(self, vc, p):
        super().__init__()
        self.vision_model = sdref_clip.CLIPVisionTransformer(vc)
        self.visual_projection = nn.Linear(vc.hidden_size, p, bias=False)

    def image_embeds(self, px):
        return self.visual_projection(self.vision_model(px)[1])


class _CLIPVisionModel(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vision_model = sdref_clip.CLIPVisionTransformer(vc)


class SafetyChecker(nn.Module):
    """diffusers' StableDiffusionSafetyChecker (names and forward() decision rule)."""

    def __init__(self, vc, p, nc=17, ns=3):
        super().__init__()
        self.vision_model = _CLIPVisionModel(vc)
        self.visual_projection = nn.Linear(vc.hidden_size, p, bias=False)
        self.concept_embeds = nn.Parameter(torch.ones(nc, p), requires_grad=False)
        self.special_care_embeds = nn.Parameter(torch.ones(ns, p), requires_grad=False)
        self.concept_embeds_weights = nn.Parameter(torch.ones(nc), requires_grad=False)
        self.special_care_embeds_weights = nn.Parameter(torch.ones(ns), requires_grad=False)

    def image_embeds(self, px):
        return self.visual_projection(self.vision_model.vision_model(px)[1])

    def cosines(self, e):
        ne = F.normalize(e)
        return (torch.mm(ne, F.normalize(self.special_care_embeds).t()).float().numpy(),
                torch.mm(ne, F.normalize(self.concept_embeds).t()).float().numpy())

    def decide(self, e):
        """diffusers' forward() loop, verbatim in numpy / Python types."""
        special_cos_dist, cos_dist = self.cosines(e)
        out = []
        for i in range(e.shape[0]):
            r = {"special_scores": {}, "special_care": [], "concept_scores": {}, "bad_concepts": []}
            adjustment = 0.0
            for k in range(len(special_cos_dist[0])):
                concept_cos = special_cos_dist[i][k]
                thr = self.special_care_embeds_weights[k].item()
                r["special_scores"][k] = round(concept_cos - thr + adjustment, 3)
                if r["special_scores"][k] > 0:
                    r["special_care"].append({k, r["special_scores"][k]})
                    adjustment = 0.01
            for k in range(len(cos_dist[0])):
                concept_cos = cos_dist[i][k]
                thr = self.concept_embeds_weights[k].item()
                r["concept_scores"][k] = round(concept_cos - thr + adjustment, 3)
                if r["concept_scores"][k] > 0:
                    r["bad_concepts"].append(k)
            out.append(r)
        return out, special_cos_dist, cos_dist


def quantize(t, dtype):
    return t.to(dtype).float()


def place_thresholds(sc, e, dtype, g):
    """Thresholds (stored in dtype) for interesting, boundary-safe decisions: exactly one image
    (a) needs special care; concept 0 flags the closest image other than a (and a if it is
    closer); concept k1 flags image a only through the 0.01 adjustment; the other concepts flag
    nobody. Concept embeddings are redrawn until such a k1 exists."""
    n = e.shape[0]
    for attempt in range(100):
        s_cos, c_cos = sc.cosines(e)
        ns, nc = s_cos.shape[1], c_cos.shape[1]
        s_thr = s_cos.max(0) + 0.05
        c_thr = c_cos.max(0) + 0.05
        order = np.argsort(-s_cos[:, 0])
        a = int(order[0])
        s_thr[0] = (s_cos[order[0], 0] + s_cos[order[1], 0]) / 2
        order = np.argsort(-c_cos[:, 0])
        j = 1 if order[0] != a else 2  # the top image other than a (and a, if it is the top)
        c_thr[0] = (c_cos[order[j - 1], 0] + c_cos[order[j], 0]) / 2
        k1 = None
        for k in range(1, nc):
            o = np.argsort(-c_cos[:, k])
            if o[0] == a and c_cos[o[0], k] - c_cos[o[1], k] > 0.006:
                k1 = k
                c_thr[k] = c_cos[a, k] + 0.003
                break
        if k1 is not None:
            break
        with torch.no_grad():
            sc.concept_embeds.copy_(quantize(torch.randn(sc.concept_embeds.shape, generator=g), dtype))
    else:
        raise SystemExit("could not find a concept for the special-care adjustment case")
    for it in range(200):
        with torch.no_grad():
            sc.special_care_embeds_weights.copy_(quantize(torch.tensor(s_thr, dtype=torch.float32), dtype))
            sc.concept_embeds_weights.copy_(quantize(torch.tensor(c_thr, dtype=torch.float32), dtype))
        st = sc.special_care_embeds_weights.numpy().astype(np.float64)
        ct = sc.concept_embeds_weights.numpy().astype(np.float64)
        bad = None
        for i in range(n):
            adj = 0.0
            for k in range(ns):
                d = float(s_cos[i, k]) - st[k] + adj
                if abs(d - 0.0005) < 2e-4:
                    bad = ("s", k)
                if round(d, 3) > 0:
                    adj = 0.01
            for k in range(nc):
                d = float(c_cos[i, k]) - ct[k] + adj
                if abs(d - 0.0005) < 2e-4:
                    bad = ("c", k)
        if bad is None:
            return a, k1
        if bad[0] == "s":
            s_thr[bad[1]] += 0.0007
        else:
            c_thr[bad[1]] += 0.0007
    raise SystemExit("could not place the safety-checker thresholds away from the rounding boundary")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layout", required=True, choices=sorted(LAYOUTS))
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=4321)
    a = ap.parse_args()
    torch.set_num_threads(1)
    dtype = DTYPES[a.dtype]
    L = LAYOUTS[a.layout]
    vc = sdref_clip.CLIPVisionConfig(**L["vision"])
    P = L["projection_dim"]
    out = a.out
    mdir = os.path.join(out, "model")
    os.makedirs(mdir, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    if a.layout == "clip":
        tc = sdref.CLIPTextConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, bos_token_id=998, eos_token_id=999, pad_token_id=999)
        model = sdref_clip.CLIPModel(tc, vc, P)
        config = model.config_json()
    elif a.layout == "vision":
        model = VisionWithProjection(vc, P)
        config = vc.to_json()
        config.update({"architectures": ["CLIPVisionModelWithProjection"], "projection_dim": P})
    else:  # safety, safety-l14
        model = SafetyChecker(vc, P)
        full = vc.to_json()
        full["layer_norm_eps"] = 1e-3  # overridden: transformers uses vision_config_dict (+ defaults) instead
        config = {"architectures": ["StableDiffusionSafetyChecker"], "model_type": "clip", "projection_dim": P,
                  "text_config": {"hidden_size": 32}, "vision_config": full,
                  "vision_config_dict": {k: L["vision"][k] for k in L["vision"]}}
    sdref.randomize_(model, a.seed)
    g = torch.Generator().manual_seed(a.seed + 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("patch_embedding.weight"):  # fan-in scale rather than randomize_'s 0.02
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p[0].numel()))
            if name in ("concept_embeds", "special_care_embeds"):
                p.copy_(torch.randn(p.shape, generator=g))
    model.eval()
    sdref.load_weights_as_f32(model, sdref.state_dict_as(model, dtype))  # the stored numbers

    # images and their preprocessing
    S = vc.image_size
    images = []
    for i, wh in enumerate(IMAGE_SIZES):
        w, h = wh if wh else (S, S)
        img = make_image(rng, w, h)
        crop = resize_crop(img, S)
        px = normalise(crop)
        np.save(os.path.join(out, f"image_{i}.npy"), img.astype(np.int32))
        np.save(os.path.join(out, f"crop_{i}.npy"), crop.astype(np.int32))
        np.save(os.path.join(out, f"pixels_{i}.npy"), px)
        images.append(px)
    for i, (w, h) in enumerate(RESIZE_SIZES):
        img = make_image(rng, w, h)
        np.save(os.path.join(out, f"resize_{i}_in.npy"), img.astype(np.int32))
        np.save(os.path.join(out, f"resize_{i}_out.npy"), resize_crop(img, 224).astype(np.int32))
    px = torch.from_numpy(np.stack(images))
    with torch.no_grad():
        e = model.image_embeds(px)
    np.save(os.path.join(out, "embeds.npy"), e.numpy().astype(np.float32))
    summary = {"layout": a.layout, "dtype": a.dtype, "images": len(images), "projection_dim": P,
               "embed_scale": float(e.abs().max())}

    if a.layout == "clip":
        # Q16 with synthetic prompts (norm ~22 like the real ones): row 1 ("inappropriate") near
        # image 0's embedding, row 0 near image 1's.
        en = F.normalize(e, dim=-1).numpy().astype(np.float64)
        noise = rng.normal(0, 1, (2, P)) / np.sqrt(P)
        prompts = np.stack([en[1] + 0.7 * noise[0], en[0] + 0.7 * noise[1]])
        prompts = (22.0 * prompts / np.linalg.norm(prompts, axis=1, keepdims=True)).astype("<f4")
        prompts.tofile(os.path.join(out, "q16_prompts.f32"))
        pt = torch.from_numpy(prompts.astype(np.float32))
        sims = 100.0 * F.normalize(e, dim=-1) @ F.normalize(pt, dim=-1).t()
        probs = sims.softmax(dim=-1)
        label = probs.argmax(dim=-1)
        margin = float((sims[:, 1] - sims[:, 0]).abs().min())
        if margin < 1e-2:
            raise SystemExit(f"Q16 reference too close to a tie ({margin})")
        np.save(os.path.join(out, "q16_sims.npy"), sims.numpy().astype(np.float32))
        np.save(os.path.join(out, "q16_p.npy"), probs[:, 1].numpy().astype(np.float32))
        np.save(os.path.join(out, "q16_label.npy"), label.numpy().astype(np.int32))
        summary["q16_labels"] = label.tolist()
    if a.layout.startswith("safety"):
        a_img, k1 = place_thresholds(model, e, dtype, g)
        res, s_cos, c_cos = model.decide(e)
        n, ns, nc = e.shape[0], s_cos.shape[1], c_cos.shape[1]
        np.save(os.path.join(out, "safety_special_cos.npy"), s_cos.astype(np.float32))
        np.save(os.path.join(out, "safety_cos.npy"), c_cos.astype(np.float32))
        np.save(os.path.join(out, "safety_special_scores.npy"),
                np.array([[float(r["special_scores"][k]) for k in range(ns)] for r in res]))
        np.save(os.path.join(out, "safety_scores.npy"),
                np.array([[float(r["concept_scores"][k]) for k in range(nc)] for r in res]))
        np.save(os.path.join(out, "safety_special_care.npy"), np.array([len(r["special_care"]) for r in res], np.int32))
        np.save(os.path.join(out, "safety_bad.npy"), np.array([len(r["bad_concepts"]) for r in res], np.int32))
        np.save(os.path.join(out, "safety_nsfw.npy"), np.array([len(r["bad_concepts"]) > 0 for r in res], np.int32))
        summary["nsfw"] = [len(r["bad_concepts"]) > 0 for r in res]
        summary["special_care"] = [len(r["special_care"]) for r in res]
        summary["bad_concepts"] = [r["bad_concepts"] for r in res]
        if all(summary["nsfw"]) or not any(summary["nsfw"]) or k1 not in res[a_img]["bad_concepts"]:
            raise SystemExit(f"safety reference: unexpected outcome {summary}")
        summary["adjustment_case"] = {"image": a_img, "concept": k1}

    sdref.write_json(os.path.join(mdir, "config.json"), config)
    sdref.save_safetensors(os.path.join(mdir, "model.safetensors"), sdref.state_dict_as(model, dtype),
                           {"format": "pt"})
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
