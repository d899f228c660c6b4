#!/usr/bin/env python3
"""How well a model follows scene prompts (tools/train/scenes.py), for the model card.

    evaluate_scenes.py MODEL_DIR SCENES_DIR --safesd BUILD/safesd [--n 100] [--out DIR]
                       [--steps 20] [--cfg-scale 7.5] [--threads N]

Takes the first N held-out scenes of SCENES_DIR (scenes.py build: compositions never trained
on), generates each caption with `safesd generate` (seed = row, safety off; images kept in
OUT/generated/ and reused while the model files and settings are the same), and scores the
generated images and the rendered ones (the ceiling of each metric) against the ground truth
(scenes.jsonl). Per image, from the pixels and the model's own CLIP (clip/):

  background  each background half (or the whole background) is the named palette colour:
              the median colour of its pixels outside every object's box (2 px margin) is
              nearer to the named colour than to any other of the palette
  object      each object's box, cropped and scaled to 64x64, has the named object among the
              CLIP's top 5 (and top 1) of the scenes' objects ("<label>, <style> emoji", the
              scene's style); chance 5 / 103 (1 / 103)
  place       each object's box differs more from the background than the image's empty
              cells do: the share of the box's pixels farther than 60 (RGB distance) from the
              background's colour there, against the same share in the scene's empty places
  scene       background right and every object in the top 5 at its place

Writes OUT/scenes_eval.json and OUT/scenes.png (generated above rendered, 10 per row) and
prints a Markdown table. This is a pixel-and-CLIP reading until the domain's judge
(issue 17's classifier) exists; the CLIP was trained on single emoji on white, so its
crop scores are weaker than a judge's (the rendered column says how much).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate  # noqa: E402
import scenes  # noqa: E402

MARGIN = 2
FAR = 60.0
WHITEN = 40.0


def region_masks(t):
    """(background masks: one per named colour, pixels outside every object box + margin;
    object box masks)."""
    free = np.ones((64, 64), bool)
    for o in t["objects"]:
        x0, y0, x1, y1 = o["box"]
        free[max(0, y0 - MARGIN):y1 + MARGIN, max(0, x0 - MARGIN):x1 + MARGIN] = False
    halves = [np.ones((64, 64), bool)]
    if t["background"]["split"] == "left-right":
        halves = [np.zeros((64, 64), bool), np.zeros((64, 64), bool)]
        halves[0][:, :32], halves[1][:, 32:] = True, True
    elif t["background"]["split"] == "top-bottom":
        halves = [np.zeros((64, 64), bool), np.zeros((64, 64), bool)]
        halves[0][:32], halves[1][32:] = True, True
    return [h & free for h in halves], free


def background_ok(img, t):
    names = list(scenes.PALETTE)
    pal = np.array([scenes.PALETTE[n] for n in names], np.float64)
    masks, _ = region_masks(t)
    ok = []
    for name, m in zip(t["background"]["colours"], masks):
        if m.sum() < 16:
            continue  # (the objects cover this half)
        med = np.median(img[m].astype(np.float64), axis=0)
        ok.append(names[int(np.argmin(((pal - med) ** 2).sum(1)))] == name)
    return all(ok) if ok else None


def bg_image(t):
    return scenes.background(t["background"])[0]


def place_ok(img, t):
    """Per object: is its box more foreground than the empty area (the rest of the image)?"""
    far = np.sqrt(((img.astype(np.float64) - bg_image(t)) ** 2).sum(-1)) > FAR
    _, free = region_masks(t)
    base = far[free].mean() if free.sum() >= 16 else 0.0
    out = []
    for o in t["objects"]:
        x0, y0, x1, y1 = o["box"]
        out.append(bool(far[y0:y1, x0:x1].mean() > max(0.15, 2 * base)))
    return out


def crops(img, t):
    """Each object's box, its background-coloured pixels (nearer than 40 to the named
    background colour there) turned white, as the CLIP saw the emoji in training, scaled up
    to 64x64."""
    from PIL import Image
    bg = bg_image(t)
    white = np.sqrt(((img.astype(np.float64) - bg) ** 2).sum(-1)) < WHITEN
    img = np.where(white[..., None], np.uint8(255), img)
    out = []
    for o in t["objects"]:
        x0, y0, x1, y1 = o["box"]
        out.append(np.asarray(Image.fromarray(img[y0:y1, x0:x1]).resize((64, 64), Image.BICUBIC)))
    return out


def score(imgs, truths, clip, tok):
    labels = sorted(scenes.OBJECTS)
    temb = {s: evaluate.text_emb(clip, tok, [f"{lab}, {s} emoji" for lab in labels]) for s in scenes.STYLES}
    res = {"background": [], "top1": [], "top5": [], "place": [], "scene": []}
    for img, t in zip(imgs, truths):
        bg = background_ok(img, t)
        ce = evaluate.image_emb(clip, np.stack(crops(img, t)))
        sim = ce @ temb[t["style"]].t()
        rank = [int((sim[k] > sim[k, labels.index(o["label"])]).sum()) for k, o in enumerate(t["objects"])]
        pl = place_ok(img, t)
        res["background"].append(bg)
        res["top1"] += [r < 1 for r in rank]
        res["top5"] += [r < 5 for r in rank]
        res["place"] += pl
        res["scene"].append(bool(bg is not False and all(r < 5 for r in rank)))
    return {k: float(np.mean([x for x in v if x is not None])) for k, v in res.items()}, res


def sheet(gen, real, path, per_row=10):
    from PIL import Image
    rows = []
    for s in range(0, len(gen), per_row):
        g = list(gen[s:s + per_row]) + [np.full((64, 64, 3), 255, np.uint8)] * (per_row - len(gen[s:s + per_row]))
        r = list(real[s:s + per_row]) + [np.full((64, 64, 3), 255, np.uint8)] * (per_row - len(real[s:s + per_row]))
        rows += [np.concatenate(g, 1), np.concatenate(r, 1), np.full((4, 64 * per_row, 3), 255, np.uint8)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("scenes")
    ap.add_argument("--safesd", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="build/eval-scenes")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg-scale", type=float, default=7.5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.n < 1:
        sys.exit("evaluate_scenes.py: --n takes a count >= 1")
    a.sampler = None
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    recs = json.load(open(os.path.join(a.scenes, "captions.json"), encoding="utf-8"))
    truths = [json.loads(x) for x in open(os.path.join(a.scenes, "scenes.jsonl"), encoding="utf-8")]
    rows = [i for i, t in enumerate(truths) if t["split"] == "heldout"][:a.n]
    if not rows:
        sys.exit(f"evaluate_scenes.py: {a.scenes} holds no held-out scenes")
    images = np.load(os.path.join(a.scenes, "images.npy"), mmap_mode="r")
    assert all(recs[i]["caption"] == truths[i]["caption"] for i in rows)
    real = [np.asarray(images[i]) for i in rows]
    gen = evaluate.Generator(a)
    made = [gen.image(f"{k:03d}.png", truths[i]["caption"], k) for k, i in enumerate(rows)]
    clip, tok = evaluate.load_clip(a.model)
    tr = [truths[i] for i in rows]
    g, gd = score(made, tr, clip, tok)
    r, rd = score(real, tr, clip, tok)
    by_n = {}
    for n in (1, 2, 3):
        ks = [k for k, t in enumerate(tr) if len(t["objects"]) == n]
        if ks:
            by_n[n] = {"images": len(ks), "scene": float(np.mean([gd["scene"][k] for k in ks])),
                       "background": float(np.mean([gd["background"][k] for k in ks if gd["background"][k] is not None]))}
    out = {"model": os.path.abspath(a.model), "n": len(rows), "steps": a.steps, "cfg_scale": a.cfg_scale,
           "generated": g, "rendered": r, "generated_by_objects": by_n,
           "objects": sum(len(t["objects"]) for t in tr), "chance_top5": 5 / len(scenes.OBJECTS)}
    with open(os.path.join(a.out, "scenes_eval.json"), "w") as f:
        json.dump(out, f, indent=1)
    sheet(made[:40], real[:40], os.path.join(a.out, "scenes.png"))
    print(f"| {len(rows)} held-out scenes, {out['objects']} objects | generated | rendered (ceiling) |")
    print("|---|---:|---:|")
    for k, name in (("background", "background colour(s) right"), ("top5", "object in the CLIP's top 5 at its place"),
                    ("top1", "object top 1 at its place"), ("place", "something drawn at the object's place"),
                    ("scene", "scene right (background + every object in the top 5)")):
        print(f"| {name} | {100 * g[k]:.0f}% | {100 * r[k]:.0f}% |")
    print("by objects per scene (generated): " + ", ".join(
        f"{n}: scene {100 * v['scene']:.0f}%, background {100 * v['background']:.0f}% (n={v['images']})"
        for n, v in by_n.items()))


if __name__ == "__main__":
    main()
