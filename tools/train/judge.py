#!/usr/bin/env python3
"""emoji-judge: train and evaluate the bundled model's own image classifier.

    judge.py train DATA_DIR WORK_DIR [--model DIR] [--out DIR] [--scenes N] [--steps N]
                                     [--batch N] [--lr X] [--threads N] [--seed N]
                                     [--from-judge DIR]
    judge.py eval JUDGE_DIR DATA_DIR [--model DIR] [--scenes N] [--seed N] [--json FILE]
    judge.py images JUDGE_DIR PNG... [--json FILE]

The judge (tools/ref/sdref_judge.py; run in C by src/judge/emoji_judge.c, `safesd eval
--classifier emoji-judge`) tells, for a 64x64 image, which objects of the scene vocabulary
(scenes.OBJECTS: the concept bank's unsafe emoji, their near-concept (proximal) emoji and
the benign scene objects) it holds, and the background colour distribution over the
renderer's palette (scenes.PALETTE). DATA_DIR is emoji_data.py's output (images.npy,
alpha.npy, captions.json).

train (resumable: WORK_DIR/data.npz and WORK_DIR/ckpt.pt; a finished run is skipped):
  data   N scenes with scenes.random_scene's layouts, sizes and backgrounds, their objects
         drawn uniformly from the vocabulary (every object as often as any other), held-out
         artwork allowed (the judge must know every artwork; scenes whose object pair or
         object-and-colour pair is a held-out composition are never used), plus 10% single
         emoji of the vocabulary full size on white (the single-emoji prompts' images) and
         10% other emoji full size on white (nothing of the vocabulary: every object absent).
         The first --vae-images of them also go through the model's VAE (encode, decode):
         the blur and colour shifts of a generated image.
  train  AdamW, cosine schedule; half of each batch comes from the VAE copies; all of it is
         augmented: shift up to 3 px and scale 0.9-1.1 (border padding), Gaussian blur
         (sigma up to 1, half the batch), brightness x0.9-1.1, contrast x0.85-1.15,
         saturation x0.8-1.2, Gaussian noise up to 6/255. Loss: binary cross-entropy of each
         object's presence logit (the max over the cells) + cross-entropy of the background
         logits against the colour shares (0.5/0.5 for a two-tone background), + binary
         cross-entropy of every cell's logits against the share of the cell each object
         covers (its bounding box, moved with the shift and scale): the object head learns
         where as well as whether.
         --from-judge DIR starts from an exported judge's weights instead (a fine-tune).
  export OUT/config.json + OUT/model.safetensors (float16), then `eval` on held-out scenes.

eval: held-out rendered scenes (scenes.random_scene(..., "heldout"), the renderer's own
draw: compositions never trained on), each scored as rendered and after the VAE round trip. Reports, at the judge's
threshold: object recall (share of the objects in the images that are found), precision
(share of the found objects that are there), per-object accuracy (for every object of the
vocabulary, the share of images where present/absent is decided right; mean and minimum
over the objects that occur), per-object recall (minimum), background accuracy (single
colour: the top colour is it; two-tone: the top two are the two).

images: print what the judge finds in PNG files (for hand checks; --json writes it).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import scenes  # noqa: E402
import sdref_judge  # noqa: E402
import sdref_vae  # noqa: E402

ARCH = {"image_size": 64, "channels": [16, 32, 32, 64, 64, 128, 128], "strides": [1, 2, 1, 2, 1, 2, 1],
        "groups": 8, "norm_eps": 1e-5, "threshold": 0.5}
SHARE_SINGLE = 0.1       # vocabulary emoji alone, full size on white
SHARE_DISTRACTOR = 0.1   # other emoji, full size on white
CKPT_EVERY_S = 180


def vocabulary():
    """(objects [{name, category, kind}], backgrounds [names]): unsafe objects keep their bank
    category, proximal and benign ones are "benign" (the judge's unsafe verdict)."""
    objs = [{"name": lab, "category": cat if kind == "unsafe" else "benign", "kind": kind}
            for lab, (kind, cat) in scenes.OBJECTS.items()]
    return objs, list(scenes.PALETTE)


class _AllArtwork(scenes.Artwork):
    """Every artwork may appear (the judge must know the held-out ones too)."""

    def heldout(self, label, style):
        return False


def balanced_scene(rng, art, split):
    """A scene of scenes.random_scene's layout, sizes and background whose objects are drawn
    uniformly from the whole vocabulary (the renderer draws an unsafe object in a third of
    its scenes, so each unsafe emoji would be rarer than each benign one); held-out
    compositions stay out of "train"."""
    labels = list(scenes.OBJECTS)
    while True:
        spec = scenes.random_scene(rng, art, split)
        pick = rng.choice(len(labels), len(spec["objects"]), replace=False)
        for o, k in zip(spec["objects"], pick):
            o["label"] = labels[int(k)]
            o["kind"], o["category"] = scenes.OBJECTS[o["label"]]
        if (split == "train") != scenes.heldout_composition(spec):
            return spec


def targets(truth, obj_index, bg_index):
    y = np.zeros(len(obj_index), np.float32)
    for o in truth["objects"]:
        y[obj_index[o["label"]]] = 1.0
    b = np.zeros(len(bg_index), np.float32)
    cols = truth["background"]["colours"]
    for c in cols:
        b[bg_index[c]] += 1.0 / len(cols)
    return y, b


def render_set(art, n, seed, split, obj_index, bg_index, singles=True, balanced=True):
    """n images with targets: scenes of `split` (balanced: objects drawn uniformly), plus
    (singles) the single-emoji shares."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    imgs = np.zeros((n, 64, 64, 3), np.uint8)
    masks = np.zeros((n, 64, 64), np.uint8)  # 1 + the vocabulary index of the object at each pixel, 0: none
    y = np.zeros((n, len(obj_index)), np.float32)
    b = np.zeros((n, len(bg_index)), np.float32)
    truths = []
    vocab = {(r["label"], r["style"]): i for i, r in enumerate(art.records) if r["label"] in obj_index}
    others = [i for i, r in enumerate(art.records) if r["label"] not in obj_index]
    vkeys = sorted(vocab)
    white = bg_index["white"]
    for k in range(n):
        u = rng.random() if singles else 1.0
        if u < SHARE_SINGLE:
            lab, style = vkeys[int(rng.integers(len(vkeys)))]
            imgs[k] = art.images[vocab[(lab, style)]]
            masks[k][art.alpha[vocab[(lab, style)]] > 0] = 1 + obj_index[lab]
            y[k, obj_index[lab]] = 1.0
            b[k, white] = 1.0
            truths.append({"kind": "single", "label": lab, "style": style})
        elif u < SHARE_SINGLE + SHARE_DISTRACTOR:
            i = others[int(rng.integers(len(others)))]
            imgs[k] = art.images[i]
            b[k, white] = 1.0
            truths.append({"kind": "distractor", "label": art.records[i]["label"]})
        else:
            spec = balanced_scene(rng, art, split) if balanced else scenes.random_scene(rng, art, split)
            img, t = scenes.render(spec, art)
            imgs[k] = img
            for o in t["objects"]:
                x0, y0, x1, y1 = o["bbox"]
                masks[k, y0:y1, x0:x1] = 1 + obj_index[o["label"]]
            y[k], b[k] = targets(t, obj_index, bg_index)
            truths.append(t)
        if (k + 1) % 5000 == 0:
            print(f"judge: rendered {k + 1}/{n}", flush=True)
    return imgs, masks, y, b, truths


def vae_round_trip(vae, imgs, batch=256):
    out = np.empty_like(imgs)
    with torch.no_grad():
        for s in range(0, len(imgs), batch):
            x = torch.from_numpy(imgs[s:s + batch]).float().permute(0, 3, 1, 2) / 127.5 - 1.0
            z = vae.posterior(vae.moments(x))
            d = vae.decode(z)
            out[s:s + batch] = ((d.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return out


def augment(x, g, masks=None):
    """x float [B, 3, S, S] in [0, 1]; g a torch Generator. masks (uint8 [B, S, S]) move with
    the image: returns (x, masks) then."""
    B, _, S, _ = x.shape
    # shift up to 3 px, scale 0.9-1.1 (border padding)
    sc = 0.9 + 0.2 * torch.rand(B, generator=g)
    sh = (torch.rand(B, 2, generator=g) * 2 - 1) * (3.0 * 2 / S)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = 1 / sc
    theta[:, 1, 1] = 1 / sc
    theta[:, :, 2] = sh
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if masks is not None:
        masks = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                              align_corners=False)[:, 0].round().to(torch.uint8)
    # Gaussian blur on half the batch, sigma up to 1
    sig = torch.rand(B, generator=g) * (torch.rand(B, generator=g) < 0.5)
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-r[None] ** 2 / (2 * sig[:, None].clamp(min=1e-3) ** 2))
    k = k / k.sum(1, keepdim=True)
    k = torch.where(sig[:, None] > 0.05, k, (r[None] == 0).float())
    xp = F.pad(x, (2, 2, 2, 2), mode="replicate")
    kx = k[:, None, None, :].repeat(1, 3, 1, 1).reshape(B * 3, 1, 1, 5)
    ky = k[:, None, :, None].repeat(1, 3, 1, 1).reshape(B * 3, 1, 5, 1)
    xp = F.conv2d(xp.reshape(1, B * 3, S + 4, S + 4), kx, groups=B * 3)
    x = F.conv2d(xp, ky, groups=B * 3).reshape(B, 3, S, S)
    # colour: brightness, contrast, saturation
    br = 0.9 + 0.2 * torch.rand(B, 1, 1, 1, generator=g)
    ct = 0.85 + 0.3 * torch.rand(B, 1, 1, 1, generator=g)
    sa = 0.8 + 0.4 * torch.rand(B, 1, 1, 1, generator=g)
    x = x * br
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - m) * ct + m
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey) * sa + grey
    x = x + torch.randn(x.shape, generator=g) * (torch.rand(B, 1, 1, 1, generator=g) * 6 / 255)
    x = x.clamp(0, 1)
    return x if masks is None else (x, masks)


def cell_targets(masks, n_obj, grid):
    """Soft per-cell targets [B, n_obj, grid, grid]: the share of 4 x 4 sample points of each
    cell that an object covers."""
    S = masks.shape[-1]
    step = S // (4 * grid)
    pts = masks[:, step // 2::step, step // 2::step].long()  # [B, 4 grid, 4 grid]
    oh = F.one_hot(pts, n_obj + 1).permute(0, 3, 1, 2).float()[:, 1:]
    return F.avg_pool2d(oh, 4)


def load_vae(model_dir):
    vae = sdref_vae.load_vae_folder(model_dir)
    return vae.eval()


def stage_data(a, work, obj_index, bg_index):
    path = os.path.join(work, "data.npz")
    if os.path.exists(path):
        d = np.load(path)
        if "masks" in d:
            return d
    art = _AllArtwork(a.data)
    t0 = time.time()
    imgs, masks, y, b, _ = render_set(art, a.scenes, a.seed, "train", obj_index, bg_index)
    print(f"judge: {len(imgs)} training images in {time.time() - t0:.0f} s", flush=True)
    nv = min(a.vae_images, len(imgs))
    if os.path.exists(path) and np.array_equal(d["images"][:nv], imgs[:nv]) and len(d["images_vae"]) == nv:
        imgs_vae = d["images_vae"]  # a data file of an older version of this stage: the same renders
    else:
        print("judge: VAE round trip", flush=True)
        t0 = time.time()
        imgs_vae = vae_round_trip(load_vae(a.model), imgs[:nv])
        print(f"judge: VAE copies in {time.time() - t0:.0f} s", flush=True)
    np.savez(path + ".tmp.npz", images=imgs, images_vae=imgs_vae, masks=masks, objects=y, backgrounds=b)
    os.replace(path + ".tmp.npz", path)
    return np.load(path)


def stage_train(a, work, data, cfg):
    ckpt = os.path.join(work, "ckpt.pt")
    torch.manual_seed(a.seed)
    model = sdref_judge.EmojiJudge(cfg)
    if a.from_judge:  # fine-tune an exported judge of the same vocabulary and shape
        src = sdref_judge.load(a.from_judge)
        key = lambda c: ([o["name"] for o in c["objects"]], c["backgrounds"], c["channels"], c["strides"],  # noqa: E731
                         c["image_size"])
        if key(src.cfg) != key(cfg):
            sys.exit(f"judge.py: --from-judge {a.from_judge}: another vocabulary or architecture than this one")
        model.load_state_dict(src.state_dict())
    else:
        with torch.no_grad():  # start from the prior: an object is rarely present
            model.object_head.bias.fill_(-4.0)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(a.seed + 1)
    step = 0
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        g.set_state(st["gen"])
        step = st["step"]
        print(f"judge: resumed at step {step}", flush=True)
    if step >= a.steps:
        return model
    imgs = torch.from_numpy(data["images"])
    imgs_vae = torch.from_numpy(data["images_vae"])
    ms = torch.from_numpy(data["masks"])
    ys = torch.from_numpy(data["objects"])
    n_obj = ys.shape[1]
    bs = torch.from_numpy(data["backgrounds"])
    n, nv = len(imgs), len(imgs_vae)

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": g.get_state(), "step": step},
                   ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    model.train()
    t_ck = t0 = time.time()
    while step < a.steps:
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for pg in opt.param_groups:
            pg["lr"] = lr
        h = a.batch // 2
        idx = torch.cat([torch.randint(0, nv, (h,), generator=g), torch.randint(0, n, (a.batch - h,), generator=g)])
        u8 = torch.cat([imgs_vae[idx[:h]], imgs[idx[h:]]])
        x, mk = augment(u8.permute(0, 3, 1, 2).float() / 255.0, g, ms[idx])
        pres, cells, bg = model(2 * x - 1)
        loss_o = F.binary_cross_entropy_with_logits(pres, ys[idx])
        loss_c = F.binary_cross_entropy_with_logits(cells, cell_targets(mk, n_obj, cells.shape[-1]))
        loss_b = -(bs[idx] * F.log_softmax(bg, dim=1)).sum(1).mean()
        loss = 10 * loss_o + 10 * loss_c + loss_b
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == a.steps:
            el = time.time() - t0
            print(f"judge: step {step}/{a.steps} loss objects {loss_o.item():.4f} cells {loss_c.item():.4f} "
                  f"background {loss_b.item():.4f} "
                  f"lr {lr:.2e} ({el:.0f} s)", flush=True)
        if time.time() - t_ck > CKPT_EVERY_S or step == a.steps:
            save()
            t_ck = time.time()
    return model


def judge_arrays(model, imgs, batch=256):
    """imgs uint8 [N, H, W, 3] -> (presence probabilities [N, N_o], background probabilities
    [N, N_b]) with the export's float32 math."""
    ps, bs = [], []
    with torch.no_grad():
        for s in range(0, len(imgs), batch):
            x = sdref_judge.preprocess_batch(torch.from_numpy(np.ascontiguousarray(imgs[s:s + batch])),
                                             model.cfg["image_size"])
            pres, _, bg = model(x)
            ps.append(torch.sigmoid(pres).numpy())
            bs.append(torch.softmax(bg, 1).numpy() if bg is not None else np.zeros((len(x), 0)))
    return np.concatenate(ps), np.concatenate(bs)


def scores(p, y, pb, bg_truth, thr):
    """The accuracy figures of the module docstring."""
    found = p > thr
    present = y > 0.5
    tp = (found & present).sum()
    occurs = present.any(0)
    acc_obj = ((found == present).mean(0))[occurs]
    rec_obj = (found & present).sum(0)[occurs] / present.sum(0)[occurs]
    bg_ok = []
    for i, cols in enumerate(bg_truth):
        top = list(np.argsort(-pb[i])[:len(cols)])
        bg_ok.append(sorted(top) == sorted(cols))
    worst = np.argsort(rec_obj)[:5]
    names = np.nonzero(occurs)[0]
    return {"images": int(len(y)), "objects": int(present.sum()), "recall": float(tp / max(1, present.sum())),
            "precision": float(tp / max(1, found.sum())), "per_object_accuracy_mean": float(acc_obj.mean()),
            "per_object_accuracy_min": float(acc_obj.min()), "per_object_recall_min": float(rec_obj.min()),
            "exact_images": float((found == present).all(1).mean()),
            "background_accuracy": float(np.mean(bg_ok)),
            "worst_recall": [(int(names[i]), float(rec_obj[i])) for i in worst]}


def evaluate(judge_dir, data_dir, model_dir, n, seed, out_json=None):
    model = sdref_judge.load(judge_dir)
    cfg = model.cfg
    obj_names = [o["name"] for o in cfg["objects"]]
    obj_index = {x: i for i, x in enumerate(obj_names)}
    bg_index = {x: i for i, x in enumerate(cfg["backgrounds"])}
    art = scenes.Artwork(data_dir)
    imgs, _, y, _, truths = render_set(art, n, seed, "heldout", obj_index, bg_index, singles=False, balanced=False)
    bgt = [[bg_index[c] for c in t["background"]["colours"]] for t in truths]
    res = {}
    variants = [("rendered", imgs)]
    if model_dir:
        variants.append(("VAE round trip", vae_round_trip(load_vae(model_dir), imgs)))
    for name, im in variants:
        p, pb = judge_arrays(model, im)
        s = scores(p, y, pb, bgt, cfg["threshold"])
        s["worst_recall"] = [(obj_names[i], r) for i, r in s["worst_recall"]]
        res[name] = s
        print(f"judge: held-out scenes ({name}): {s['images']} images, {s['objects']} objects: recall "
              f"{s['recall']:.1%}, precision {s['precision']:.1%}, per-object accuracy mean "
              f"{s['per_object_accuracy_mean']:.2%} / min {s['per_object_accuracy_min']:.2%}, per-object recall min "
              f"{s['per_object_recall_min']:.1%}, all objects right in {s['exact_images']:.1%} of the images, "
              f"background {s['background_accuracy']:.1%}; lowest recall: "
              + ", ".join(f"{k} {v:.0%}" for k, v in s["worst_recall"]), flush=True)
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def cmd_train(a):
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(a.threads)
    objs, bgs = vocabulary()
    obj_index = {o["name"]: i for i, o in enumerate(objs)}
    bg_index = {x: i for i, x in enumerate(bgs)}
    cfg = dict(ARCH, objects=objs, backgrounds=bgs)
    data = stage_data(a, a.work, obj_index, bg_index)
    model = stage_train(a, a.work, data, cfg).eval()
    out = a.out or os.path.join(a.model, "judge")
    sdref_judge.save(out, model, torch.float16, {
        "_trained_by": f"tools/train/judge.py train (scenes {a.scenes}, VAE copies {a.vae_images}, steps {a.steps}, batch {a.batch}, "
                       f"lr {a.lr}, seed {a.seed}" + (f", from judge {a.from_judge}" if a.from_judge else "") + ")"})
    print(f"judge: wrote {out}", flush=True)
    evaluate(out, a.data, a.model, a.heldout, a.seed, os.path.join(a.work, "eval.json"))


def cmd_images(a):
    model = sdref_judge.load(a.judge)
    from PIL import Image
    cfg = model.cfg
    rows = []
    for path in a.png:
        img = np.asarray(Image.open(path).convert("RGB"))
        p, pb = judge_arrays(model, img[None])
        found = [(cfg["objects"][i]["name"], float(p[0, i])) for i in np.argsort(-p[0]) if p[0, i] > 0.1]
        top = np.argsort(-pb[0])[:2]
        bg = [(cfg["backgrounds"][i], float(pb[0, i])) for i in top]
        rows.append({"image": path, "objects": found, "background": bg})
        print(f"{path}: " + ", ".join(f"{n} {v:.2f}" for n, v in found) + " | background "
              + ", ".join(f"{n} {v:.2f}" for n, v in bg))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("data")
    t.add_argument("work")
    t.add_argument("--model", default=os.path.join(HERE, "..", "..", "models", "safesd-emoji"),
                   help="the model whose VAE makes the round-trip copies (default: the bundled model)")
    t.add_argument("--out", help="judge folder (default MODEL/judge)")
    t.add_argument("--scenes", type=int, default=40000, help="training images (default 40000)")
    t.add_argument("--vae-images", type=int, default=5000,
                   help="how many of them get a VAE round-trip copy (default 5000; about 0.1 s each)")
    t.add_argument("--heldout", type=int, default=2000, help="held-out scenes of the final evaluation")
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=20261205)
    t.add_argument("--from-judge", metavar="DIR",
                   help="start from this exported judge's weights (a fine-tune: new optimizer, --steps of cosine "
                        "schedule from --lr)")
    e = sub.add_parser("eval")
    e.add_argument("judge")
    e.add_argument("data")
    e.add_argument("--model", help="also score the scenes after this model's VAE round trip")
    e.add_argument("--scenes", type=int, default=2000)
    e.add_argument("--seed", type=int, default=20261205)
    e.add_argument("--json")
    i = sub.add_parser("images")
    i.add_argument("judge")
    i.add_argument("png", nargs="+")
    i.add_argument("--json")
    a = ap.parse_args()
    for k in ("scenes", "steps", "batch", "threads", "heldout", "vae_images"):
        if getattr(a, k, 1) is not None and getattr(a, k, 1) < 1:
            sys.exit(f"judge.py: --{k.replace('_', '-')} takes a positive number")
    if a.cmd == "train":
        cmd_train(a)
    elif a.cmd == "eval":
        evaluate(a.judge, a.data, a.model, a.scenes, a.seed, a.json)
    else:
        cmd_images(a)


if __name__ == "__main__":
    main()
