#!/usr/bin/env python3
"""Reference dumps of the learned detector for the conformance test (tests/conformance/test_learned.sh).

    ref.py dump MODEL PROMPTS        per prompt line (raw bytes, '\\n' stripped, a '\\r' before it
                                     too): 'P i', one 'W start end word' per word, 'F idx ...'
                                     (the feature indices in order) and 'S p1 ... pC' (the
                                     probabilities, float32 numpy; model.Loaded)
    ref.py random OUT [--seed N] [--senses] [--glove --glove-words TEXT]
                                     a weights file with random weights (buckets_log2 12) and
                                     tables built from this Python's unicodedata; --senses: a
                                     version 2 file with the WordNet sense table (senses.py);
                                     --glove: with a word-vector table (glove.py) of the words
                                     of TEXT, random vectors
    ref.py compare A B [--tol T]     A and B dumps: P/W/F lines must be equal, S within T
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import features  # noqa: E402
import model  # noqa: E402


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [l[:-1] if l.endswith(b"\r") else l for l in lines]


def dump(a):
    ld = model.Loaded(a.model)
    out = sys.stdout.buffer
    for i, p in enumerate(read_lines(a.prompts)):
        out.write(f"P {i}\n".encode())
        ws, uf, gf = ld.hasher.prompt(p, ld.tables)
        for w, s, e in ws:
            out.write(f"W {s} {e} ".encode() + w.encode("utf-8") + b"\n")
        feats = []
        for j in range(len(ws)):
            feats.extend(uf[j])
            if gf[j] is not None:
                feats.append(gf[j])
        out.write(("F" + "".join(f" {x}" for x in feats) + "\n").encode())
        out.write(("S" + "".join(f" {x:.9g}" for x in ld.scores(p)) + "\n").encode())


def random_model(a):
    import torch
    torch.manual_seed(a.seed)
    hp = dict(buckets_log2=12, dim=8, hidden=16, window=4, ngram_min=2, ngram_max=4)
    net = model.Net(hp["buckets_log2"], hp["dim"], hp["hidden"], 3, hp["window"])
    with torch.no_grad():
        net.embed.weight.normal_(0, 0.5)
    meta = dict(categories="violence,sexual,nonexistent", threshold="0.5")
    senses = glove = None
    if a.glove:        # a small word-vector table of fixed words with random vectors (no npm)
        import glove as glovemod
        words = sorted({w for w, _, _ in features.words(open(a.glove_words, encoding="utf-8").read(), features.Tables.build())
                        if glovemod._WORD.match(w)})
        keyed = {glovemod.fnv1a32(w.encode()): w for w in words}
        hs = sorted(keyed)
        rng = np.random.default_rng(a.seed)
        glove = glovemod.Glove(hs, rng.normal(0, 1, (len(hs), 100)).astype(np.float32), [keyed[h] for h in hs])
        net = model.Net(hp["buckets_log2"], hp["dim"], hp["hidden"], 3, hp["window"], glove.vectors)
        with torch.no_grad():
            net.embed.weight.normal_(0, 0.5)
            net.gproj.weight.normal_(0, 0.1)
    if a.senses:
        import senses as sensemod
        senses = sensemod.SenseTable.build()
        meta.update(sense_depth=str(senses.depth), sense_max=str(senses.max_sense))
    model.export(a.out, net, features.Tables.build(), {k: str(v) for k, v in hp.items()}, meta, senses, glove, a.cjk)


def compare(a):
    A = open(a.a, encoding="utf-8", errors="surrogateescape").read().split("\n")
    B = open(a.b, encoding="utf-8", errors="surrogateescape").read().split("\n")
    if len(A) != len(B):
        print(f"compare: {a.a} has {len(A)} lines, {a.b} has {len(B)}")
        return 1
    worst, bad = 0.0, 0
    for n, (x, y) in enumerate(zip(A, B), 1):
        if x.startswith("S ") and y.startswith("S "):
            px, py = np.array(x.split()[1:], float), np.array(y.split()[1:], float)
            if px.shape != py.shape:
                print(f"line {n}: {len(px)} scores vs {len(py)}")
                bad += 1
                continue
            d = float(np.abs(px - py).max()) if len(px) else 0.0
            worst = max(worst, d)
            if d > a.tol:
                print(f"line {n}: scores differ by {d:.3g} (tolerance {a.tol}):\n  {x}\n  {y}")
                bad += 1
        elif x != y:
            print(f"line {n} differs:\n  {x[:300]}\n  {y[:300]}")
            bad += 1
        if bad > 20:
            break
    print(f"compare: {len(A)} lines, {bad} differing; largest score difference {worst:.3g}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("model")
    d.add_argument("prompts")
    r = sub.add_parser("random")
    r.add_argument("out")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--senses", action="store_true")
    r.add_argument("--cjk", action="store_true", help="extension cjk: CJK text read character by character")
    r.add_argument("--glove", action="store_true", help="a word-vector table of the words of --glove-words")
    r.add_argument("--glove-words", help="a text whose words make the --glove table")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--tol", type=float, default=2e-5)
    a = ap.parse_args()
    if a.cmd == "dump":
        dump(a)
    elif a.cmd == "random":
        random_model(a)
    else:
        sys.exit(compare(a))


if __name__ == "__main__":
    main()
