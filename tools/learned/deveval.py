#!/usr/bin/env python3
"""Development figures of learned-detector weights files: recall on concepts the model has not
seen (a development split's DIR/dev_generated.tsv, corpus.py --dev-salt) and false positives
on the development benign sets, each file at its own calibrated threshold (learned detector
alone). For choosing features and settings without the test sets.

    /usr/bin/python3 tools/learned/deveval.py --corpus DIR [--at-fp K] [--extra-unsafe F] [--extra-benign F]
        W1.safetensors [W2 ...]
"""
import argparse
import collections
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import model  # noqa: E402

BENIGN = ["tools/learned/dev/ordinary.txt", "tools/lexical/dev_ordinary.txt", "tools/lexical/dev_near_benign.txt"]
UNSAFE = ["tools/learned/dev/paraphrase.txt"]


def prompts(path):
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#")]


def scores(ld, net, ps):
    fz = model.Featurised(ps, ld.hasher, ld.tables)
    out = []
    with torch.no_grad():
        for i in range(0, len(fz), 512):
            idx = list(range(i, min(i + 512, len(fz))))
            U, G, L = model.batch_tensors(fz, idx, net)
            out.append(torch.sigmoid(net(U, G, L)).max(1).values)
    return torch.cat(out).numpy() if out else np.zeros(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=None, help="a development split (corpus.py --dev-salt); absent: the fixed sets only")
    ap.add_argument("--at-fp", type=int, default=None,
                    help="also report every set at the threshold where exactly this many prompts of the two "
                         "development ordinary sets (tools/learned/dev/ordinary.txt, tools/lexical/dev_ordinary.txt) "
                         "are flagged: files compared at an equal false-positive count")
    ap.add_argument("--extra-unsafe", action="append", default=[], metavar="FILE",
                    help="another unsafe prompt file to report (repeatable)")
    ap.add_argument("--extra-benign", action="append", default=[], metavar="FILE",
                    help="another benign prompt file to report (repeatable)")
    ap.add_argument("weights", nargs="+")
    a = ap.parse_args()
    rows = []
    with open(os.path.join(a.corpus, "dev_generated.tsv") if a.corpus else os.devnull, encoding="utf-8") as f:
        for ln in f:
            lab, src, p = ln.rstrip("\n").split("\t", 2)
            rows.append((lab, src, p))
    groups = collections.OrderedDict()
    for lab, src, p in rows:
        kind = src.split(":", 1)[1] if ":" in src else src
        kind = "obf" if kind.startswith("obf") else kind
        groups.setdefault(("unsafe " if lab else "benign ") + kind, []).append(p)
    for f in BENIGN + UNSAFE:
        groups[("benign " if f in BENIGN else "unsafe ") + f] = prompts(os.path.join(ROOT, f))
    for kind, files in (("unsafe ", a.extra_unsafe), ("benign ", a.extra_benign)):
        for f in files:
            groups[kind + f] = prompts(f)
    for w in a.weights:
        ld = model.Loaded(w)
        net = model.net_from_file(w)
        net.eval()
        print(f"== {w}: threshold {ld.threshold:.4f}, version {ld.meta['version']}")
        sc = {name: scores(ld, net, ps) for name, ps in groups.items()}
        thr = [("calibrated", ld.threshold)]
        if a.at_fp is not None:
            ordinary = np.sort(np.concatenate([sc["benign " + f] for f in BENIGN[:2]]))[::-1]
            k = min(max(a.at_fp, 0), len(ordinary) - 1)
            thr.append((f"{a.at_fp} ordinary FP", float(np.nextafter(np.float32(ordinary[k]), np.float32(1)))))
        for label, t in thr:
            print(f"  -- at threshold {t:.4f} ({label})")
            for name, s in sc.items():
                print(f"  {name:48s} {len(s):5d}  flagged {100 * (s >= t).mean():5.1f}%")


if __name__ == "__main__":
    main()
