#!/usr/bin/env python3
"""Measure the bundled model for its model card.

    evaluate.py MODEL_DIR DATA_DIR --safesd BUILD/safesd [--out DIR] [--steps 20]
                [--cfg-scale 7.5] [--sampler NAME] [--threads N]

1. CLIP retrieval on the held-out images (never trained on): text->image and image->text
   recall@1/@5 within the held-out set (captions as queries).
2. Generation: for the 100 captions of MODEL_DIR/eval/heldout.csv, `safesd generate`
   (the C engine; 20 steps, CFG 7.5 or --cfg-scale, the model's sampler or --sampler,
   seed = row number) makes an image; the model's CLIP ranks every label of the data set
   ("<label>, <style> emoji", the prompt's style) for it; reported: share whose top-5
   holds the prompted label (and top-1). The same metric on the real held-out images is
   the ceiling, 5/labels is chance. Also: each image's own prompt ranked among the 100
   prompts (R@1, R@5; chance 1%, 5%), and both metrics for 100 training captions (every
   72nd training image, seed = row; sheet OUT/train_generated.png, generated above real):
   a seen caption against an unseen one.
3. Zero-shot accuracy on the concept-bank categories: every image of the unsafe and
   proximal emoji of safety/*.csv (both styles, all skin tones) is classified among the
   bank's categories plus "benign" by its nearest text (cosine): each category's texts are
   its descriptions, "benign"'s are every anchor of the bank plus safety/benign.csv (the
   rule of `safesd eval`'s clip-zeroshot judge). An unsafe emoji must get its category, a
   proximal one "benign". Reported overall, per class, and on the held-out images alone.
4. Colour: does an image's colour follow its prompt or its seed? The colour of an image
   is the mean RGB of its foreground (pixels not near white).
   - Agreement: for each generated image of 2., the real image of its caption is ranked
     among the 100 real images by colour distance; reported: share ranked in the top 10
     (chance 10%) and the median rank (chance about 50).
   - Seed against prompt: the first 12 captions of 2. are generated again with seeds
     1000..1003 (48 images); reported: the share of the colours' variance explained by the
     prompt and by the seed (one-way, eta squared). A model whose colours follow the
     prompt has a high prompt share and a low seed share. Sheet: OUT/prompt_seed.png
     (a row per prompt, a column per seed, the real image last).

Writes OUT/eval.json and prints a Markdown summary. The generated images are kept in
OUT/generated/ and reused by a rerun with the same model files (text encoder, tokenizer,
UNet, VAE, scheduler), steps, CFG and sampler; any other settings regenerate them.
"""
import argparse
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
sys.path.insert(0, HERE)
import clip_bpe  # noqa: E402
import sdref  # noqa: E402
import sdref_clip  # noqa: E402


def load_clip(model_dir):
    cj = json.load(open(os.path.join(model_dir, "clip", "config.json")))
    tkeys = sdref.CLIPTextConfig().__dict__.keys()
    vkeys = sdref_clip.CLIPVisionConfig().__dict__.keys()
    tc = sdref.CLIPTextConfig(**{k: v for k, v in cj["text_config"].items() if k in tkeys})
    vc = sdref_clip.CLIPVisionConfig(**{k: v for k, v in cj["vision_config"].items() if k in vkeys})
    m = sdref_clip.CLIPModel(tc, vc, cj["projection_dim"]).eval()
    sdref.load_weights_as_f32(m, sdref.load_safetensors(os.path.join(model_dir, "clip", "model.safetensors")))
    return m, clip_bpe.Tokenizer(os.path.join(model_dir, "tokenizer"))


@torch.no_grad()
def text_emb(clip, tok, texts):
    out = []
    for s in range(0, len(texts), 256):
        ids = torch.tensor([tok.encode(t) for t in texts[s:s + 256]])
        out.append(F.normalize(clip.text_embeds(ids), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def image_emb(clip, imgs):
    out = []
    for s in range(0, len(imgs), 256):
        out.append(F.normalize(clip.image_embeds(sdref_clip.pixels_from_uint8(imgs[s:s + 256])), dim=-1))
    return torch.cat(out)


def recall(sim, k):
    """sim [queries, gallery], the right item of query i is i."""
    top = sim.topk(k, dim=1).indices
    return float((top == torch.arange(len(sim))[:, None]).any(1).float().mean())


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_png(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))


def fg_colour(img):
    """Mean RGB (0..255) of an HxWx3 uint8 image's foreground: the pixels with some channel
    below 232 (the emoji lie on white); the whole image if it has no such pixel."""
    x = img.reshape(-1, 3).astype(np.float64)
    fg = x.min(1) < 232
    return (x[fg] if fg.any() else x).mean(0)


def eta_squared(values, groups):
    """Share of the total variance of the rows of values (N x D) explained by the group
    means (one-way analysis of variance, summed over the D dimensions)."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    tot = ((v - v.mean(0)) ** 2).sum()
    between = sum(((v[g == k].mean(0) - v.mean(0)) ** 2).sum() * (g == k).sum() for k in np.unique(g))
    return between / tot if tot > 0 else 0.0


def among_prompts(gen_e, real_e, cap_e):
    """Recall@1/@5 of each image's own prompt among the prompts (row i's prompt is image i's),
    for the generated and the real images."""
    gs, rs = gen_e @ cap_e.t(), real_e @ cap_e.t()
    return {"gen_r1": recall(gs, 1), "gen_r5": recall(gs, 5), "real_r1": recall(rs, 1), "real_r5": recall(rs, 5)}


def training_captions(recs):
    """The 100 training captions of section 2b (every 72nd training record): their record
    indices and rows (prompt, label, style). Also diagnose_noise.py's set."""
    idx = [i for i, r in enumerate(recs) if r["split"] == "train"][::72][:100]
    return idx, [{"prompt": recs[i]["caption"], "label": recs[i]["label"], "style": recs[i]["style"]} for i in idx]


def model_hash(model_dir):
    """sha256 over every file of the folders that shape a generated image (the text
    encoder, tokenizer, UNet, VAE and scheduler), names included."""
    h = hashlib.sha256()
    for sub in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
        d = os.path.join(model_dir, sub)
        for name in sorted(os.listdir(d)):
            h.update(f"{sub}/{name}\0".encode())
            with open(os.path.join(d, name), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


class Generator:
    """`safesd generate` into OUT/generated/, reusing images made with the same settings:
    generated/settings.json records the model, the hash of its files (model_hash), steps,
    CFG and sampler, and the folder's images are removed when they differ."""

    def __init__(self, a):
        self.a = a
        self.dir = os.path.join(a.out, "generated")
        os.makedirs(self.dir, exist_ok=True)
        want = {"model": os.path.abspath(a.model), "sha256": model_hash(a.model), "steps": a.steps,
                "cfg_scale": a.cfg_scale, "sampler": a.sampler}
        stamp = os.path.join(self.dir, "settings.json")
        have = json.load(open(stamp)) if os.path.exists(stamp) else None
        if have != want:
            for f in os.listdir(self.dir):
                if f.endswith(".png"):
                    os.remove(os.path.join(self.dir, f))
            with open(stamp, "w") as f:
                json.dump(want, f)

    def image(self, name, prompt, seed):
        p = os.path.join(self.dir, name)
        if not os.path.exists(p):
            a = self.a
            subprocess.run([a.safesd, "generate", "-q", "-m", a.model, "-p", prompt, "--steps", str(a.steps),
                            "--cfg-scale", str(a.cfg_scale), "-s", str(seed), "-t", str(a.threads),
                            "--safety", "off", "-o", p] + (["--sampler", a.sampler] if a.sampler else []),
                           check=True, stdout=subprocess.DEVNULL)
        return load_png(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--safesd", required=True)
    ap.add_argument("--out", default="build/eval-bundled")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg-scale", type=float, default=7.5)
    ap.add_argument("--sampler", default=None, choices=["ddim", "pndm", "plms", "euler", "euler_a", "dpm++2m"],
                    help="safesd generate's --sampler (default: the model's scheduler)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    clip, tok = load_clip(a.model)
    images = np.load(os.path.join(a.data, "images.npy"))
    recs = json.load(open(os.path.join(a.data, "captions.json"), encoding="utf-8"))
    res = {}

    # 1. retrieval on held-out images
    held = [i for i, r in enumerate(recs) if r["split"] == "heldout"]
    ti = text_emb(clip, tok, [recs[i]["caption"] for i in held])
    ii = image_emb(clip, images[held])
    sim = ti @ ii.t()
    res["retrieval_heldout"] = {"n": len(held), "text_to_image_r1": recall(sim, 1), "text_to_image_r5": recall(sim, 5),
                                "image_to_text_r1": recall(sim.t(), 1), "image_to_text_r5": recall(sim.t(), 5)}

    # 2. generated images of held-out captions
    rows = read_csv(os.path.join(a.model, "eval", "heldout.csv"))
    labels = sorted({r["label"] for r in recs})
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    gal = {s: text_emb(clip, tok, [f"{lab}, {s} emoji" for lab in labels]) for s in ("noto", "twemoji")}
    gen = Generator(a)
    t0 = time.time()
    gen_imgs = [gen.image(f"{i:03d}.png", r["prompt"], i) for i, r in enumerate(rows)]
    gen_s = time.time() - t0
    by_hex = {(r["hexcode"], r["style"]): i for i, r in enumerate(recs)}
    real_imgs = np.stack([images[by_hex[(r["hexcode"], r["style"])]] for r in rows])

    def no_tone(label):
        """The label without its skin tones ("thumbs up: medium skin tone" -> "thumbs up")."""
        t = re.sub(r"(:\s*|,\s*)?(light|medium-light|medium|medium-dark|dark) skin tone", "", label)
        return re.sub(r"\s*[:,]\s*", ", ", t).strip(" :,")

    def topk_hits(embs, rows=rows):
        h1 = h5 = t5 = 0
        for e, r in zip(embs, rows):
            s = gal[r["style"]] @ e
            top = s.topk(5).indices.tolist()
            h1 += top[0] == lab_idx[r["label"]]
            h5 += lab_idx[r["label"]] in top
            t5 += any(no_tone(labels[k]) == no_tone(r["label"]) for k in top)
        return h1 / len(rows), h5 / len(rows), t5 / len(rows)

    gen_e, real_e = image_emb(clip, np.stack(gen_imgs)), image_emb(clip, real_imgs)
    g1, g5, gt5 = topk_hits(gen_e)
    r1, r5, rt5 = topk_hits(real_e)
    # the same images against only the 100 prompts (each image's own prompt among them)
    cap_e = text_emb(clip, tok, [r["prompt"] for r in rows])
    among = {**among_prompts(gen_e, real_e, cap_e), "chance_r5": 5 / len(rows)}
    res["generation_heldout_captions"] = {"n": len(rows), "labels": len(labels), "steps": a.steps,
                                          "cfg_scale": a.cfg_scale, "sampler": a.sampler or "model's",
                                          "among_prompts": among,
                                          "top1": g1, "top5": g5, "real_image_top1": r1, "real_image_top5": r5,
                                          "top5_up_to_skin_tone": gt5, "real_image_top5_up_to_skin_tone": rt5,
                                          "labels_up_to_skin_tone": len({no_tone(x) for x in labels}),
                                          "chance_top5": 5 / len(labels), "seconds_total": gen_s}
    sheet = np.concatenate([np.concatenate(gen_imgs[r * 10:(r + 1) * 10], 1) for r in range(len(gen_imgs) // 10)], 0)
    from PIL import Image
    Image.fromarray(sheet).save(os.path.join(a.out, "heldout_generated.png"))

    # 2b. the same for 100 training captions (every 72nd training image): how much of the
    # gap is the held-out concept (seen only in the other style) and how much the generator
    tr, tr_rows = training_captions(recs)
    tr_imgs = [gen.image(f"train{k:03d}.png", r["prompt"], k) for k, r in enumerate(tr_rows)]
    tg_e, tr_e = image_emb(clip, np.stack(tr_imgs)), image_emb(clip, images[tr])
    tcap_e = text_emb(clip, tok, [r["prompt"] for r in tr_rows])
    res["generation_train_captions"] = {
        "n": len(tr), "rule": "training records [::72][:100], seed = row",
        "top5": topk_hits(tg_e, tr_rows)[1], "real_image_top5": topk_hits(tr_e, tr_rows)[1],
        "among_prompts": among_prompts(tg_e, tr_e, tcap_e)}
    sheet = np.concatenate([np.concatenate([np.concatenate([tr_imgs[k], images[tr[k]]], 0)
                                            for k in range(r * 10, r * 10 + 10)], 1)
                            for r in range(len(tr) // 10)], 0)
    Image.fromarray(sheet).save(os.path.join(a.out, "train_generated.png"))

    # 4. colour: prompt or seed
    gcol = np.stack([fg_colour(x) for x in gen_imgs])
    rcol = np.stack([fg_colour(x) for x in real_imgs])
    dist = ((gcol[:, None, :] - rcol[None, :, :]) ** 2).sum(-1)
    ranks = np.array([int((dist[i] < dist[i, i]).sum()) + 1 for i in range(len(rows))])
    n_ps, seeds = min(12, len(rows)), [1000, 1001, 1002, 1003]
    ps_imgs, ps_cols, ps_p, ps_s = [], [], [], []
    for i in range(n_ps):
        for s in seeds:
            ps_imgs.append(gen.image(f"ps{i:02d}_{s}.png", rows[i]["prompt"], s))
            ps_cols.append(fg_colour(ps_imgs[-1]))
            ps_p.append(i)
            ps_s.append(s)
    res["colour"] = {"n": len(rows), "real_in_colour_top10": float((ranks <= 10).mean()),
                     "median_rank": float(np.median(ranks)), "chance_top10": 10 / len(rows),
                     "prompt_seed_prompts": n_ps, "prompt_seed_seeds": seeds,
                     "eta2_prompt": eta_squared(ps_cols, ps_p), "eta2_seed": eta_squared(ps_cols, ps_s),
                     # what eta squared comes to for groups that explain nothing: (k - 1) / (N - 1)
                     "eta2_prompt_chance": (n_ps - 1) / (len(ps_cols) - 1),
                     "eta2_seed_chance": (len(seeds) - 1) / (len(ps_cols) - 1)}
    sheet = np.concatenate([np.concatenate(ps_imgs[i * len(seeds):(i + 1) * len(seeds)] + [real_imgs[i]], 1)
                            for i in range(n_ps)], 0)
    Image.fromarray(sheet).save(os.path.join(a.out, "prompt_seed.png"))

    # 3. zero-shot on the bank's categories
    bank = os.path.join(a.model, "safety", "concepts.bank")
    cats, cur = {}, None
    for line in open(bank, encoding="utf-8"):
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            cur = line[1:-1]
            if cur != "thresholds":
                cats[cur] = {"descriptions": [], "anchors": []}
            continue
        for key in ("descriptions", "anchors"):
            if cur in cats and line.startswith(key + " ="):
                cats[cur][key].append(line.split("=", 1)[1].strip())
    # the rule of safesd eval's clip-zeroshot judge (src/judge/classify.c): each category's
    # texts are its descriptions, "benign"'s are every anchor plus the model's benign prompt
    # set; a class scores its nearest text (cosine), the image takes the best class
    cats = {c: v for c, v in cats.items() if v["descriptions"]}
    classes = list(cats) + ["benign"]
    texts, tcls = [], []
    for k, c in enumerate(cats):
        texts += cats[c]["descriptions"]
        tcls += [k] * len(cats[c]["descriptions"])
    benign_texts = [x for c in cats for x in cats[c]["anchors"]]
    bpath = os.path.join(a.model, "safety", "benign.csv")
    if os.path.exists(bpath):
        benign_texts += [r["prompt"] for r in read_csv(bpath) if r["prompt"]]
    texts += benign_texts
    tcls += [len(cats)] * len(benign_texts)
    temb = F.normalize(text_emb(clip, tok, texts), dim=-1)
    tcls = torch.tensor(tcls)
    want = {}
    for f, benign in (("unsafe.csv", False), ("proximal.csv", True)):
        for r in read_csv(os.path.join(a.model, "safety", f)):
            want[r["label"]] = "benign" if benign else r["category"]
    idx = [i for i, r in enumerate(recs) if r["label"].split(":")[0] in want]
    sims = F.normalize(image_emb(clip, images[idx]), dim=-1) @ temb.t()
    cls_score = torch.full((len(idx), len(classes)), -float("inf"))
    for k in range(len(classes)):
        cls_score[:, k] = sims[:, tcls == k].max(1).values
    pred = cls_score.argmax(1).tolist()
    per = {c: [0, 0] for c in classes}
    hits = held_hits = held_n = 0
    for i, p in zip(idx, pred):
        tgt = want[recs[i]["label"].split(":")[0]]
        ok = classes[p] == tgt
        per[tgt][0] += ok
        per[tgt][1] += 1
        hits += ok
        if recs[i]["split"] == "heldout":
            held_hits += ok
            held_n += 1
    res["zero_shot_categories"] = {"classes": classes, "n": len(idx), "accuracy": hits / len(idx),
                                   "per_class": {c: {"accuracy": v[0] / v[1] if v[1] else None, "n": v[1]}
                                                 for c, v in per.items()},
                                   "heldout_n": held_n, "heldout_accuracy": held_hits / held_n if held_n else None}
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    rt, gh, zs = res["retrieval_heldout"], res["generation_heldout_captions"], res["zero_shot_categories"]
    print(f"| CLIP retrieval, {rt['n']} held-out images | text->image R@1 {rt['text_to_image_r1']:.1%}, "
          f"R@5 {rt['text_to_image_r5']:.1%}; image->text R@1 {rt['image_to_text_r1']:.1%}, "
          f"R@5 {rt['image_to_text_r5']:.1%} |")
    print(f"| generated images of {gh['n']} held-out captions, label in CLIP top-5 of {gh['labels']} | "
          f"{gh['top5']:.0%} (top-1 {gh['top1']:.0%}); real images {gh['real_image_top5']:.0%} "
          f"(top-1 {gh['real_image_top1']:.0%}); chance {gh['chance_top5']:.2%} |")
    print(f"| the same, a label counting as found when it differs only in skin tone "
          f"({gh['labels_up_to_skin_tone']} labels without tones) | {gh['top5_up_to_skin_tone']:.0%}; "
          f"real images {gh['real_image_top5_up_to_skin_tone']:.0%} |")
    am = gh["among_prompts"]
    print(f"| the {gh['n']} generated images of held-out captions, own prompt among their prompts (R@1 / R@5) | "
          f"{am['gen_r1']:.0%} / {am['gen_r5']:.0%}; real images {am['real_r1']:.0%} / {am['real_r5']:.0%}; "
          f"chance {am['chance_r5']:.0%} (R@5) |")
    gt = res["generation_train_captions"]
    print(f"| generated images of {gt['n']} training captions, label in CLIP top-5 of {gh['labels']} | "
          f"{gt['top5']:.0%}; real images {gt['real_image_top5']:.0%}; own prompt among the {gt['n']} (R@1 / R@5): "
          f"{gt['among_prompts']['gen_r1']:.0%} / {gt['among_prompts']['gen_r5']:.0%}, real images "
          f"{gt['among_prompts']['real_r1']:.0%} / {gt['among_prompts']['real_r5']:.0%} |")
    print(f"| zero-shot, {len(classes)} classes, {zs['n']} images | {zs['accuracy']:.1%} "
          f"(held-out images: {zs['heldout_accuracy'] if zs['heldout_accuracy'] is None else format(zs['heldout_accuracy'], '.1%')}, "
          f"n={zs['heldout_n']}) |")
    for c, v in zs["per_class"].items():
        print(f"|   {c} | {v['accuracy'] if v['accuracy'] is None else format(v['accuracy'], '.1%')} (n={v['n']}) |")
    co = res["colour"]
    print(f"| colour: generated image's real counterpart in its colour top-10 of {co['n']} | "
          f"{co['real_in_colour_top10']:.0%} (chance {co['chance_top10']:.0%}); median rank {co['median_rank']:.0f} |")
    print(f"| colour variance explained, {co['prompt_seed_prompts']} prompts x {len(co['prompt_seed_seeds'])} seeds | "
          f"by the prompt {co['eta2_prompt']:.0%} (chance {co['eta2_prompt_chance']:.0%}), "
          f"by the seed {co['eta2_seed']:.0%} (chance {co['eta2_seed_chance']:.0%}) |")


if __name__ == "__main__":
    main()
