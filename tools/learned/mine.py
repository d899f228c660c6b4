#!/usr/bin/env python3
"""Benign hard-negative words for the learned detector's corpus (tools/learned/hard_words.txt),
from the benign vocabulary (corpus.py's WordNet vocabulary and sdstyle.py's pools), of two
kinds: n-gram neighbours of the training concepts' trigger words (corpus.hard_negative_words:
"apple" for "nipple") and the words that make a given weights file (a previous model) fire in
an ordinary, otherwise benign prompt. corpus.py puts them into benign training prompts (source
'benign:hard'), so the next model learns that they are not evidence.

    /usr/bin/python3 tools/learned/mine.py --weights data/learned/detector.safetensors \
        --out tools/learned/hard_words.txt [--share 1.0] [--safesd build/safesd]

A word is kept when, in one of a few probe prompts ("a WORD", "a photo of a WORD, highly
detailed", "a woman with a WORD in a garden"), some
category's probability reaches share x the file's threshold. A word that any training
concept's unsafe line (words, phrases, euphemisms, other languages) uses is never taken: it
is evidence the model should keep. With --safesd, words the lexical
detector flags on their own (`safesd check --detectors lexical`) are dropped, of both kinds:
those are the bank's unsafe terms and their WordNet relatives ("homicidal", "drugged"), never
benign training material. Only generated probes are scored; no evaluation set is read.
Output: 'word<TAB>pos<TAB>why' lines (why: 'ngram' or the model's score) under a header naming
the weights file's SHA-256.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import features  # noqa: E402
import model  # noqa: E402
import sdstyle  # noqa: E402

PROBES = {"noun": ["a {w}", "a photo of a {w}, highly detailed", "a woman with a {w} in a garden"]}


def candidates(vocab, exclude):
    """Concrete words only: WordNet's common nouns (its benign lexicographer files: animals,
    artefacts, food, places, objects, plants, shapes) and sdstyle.py's words. Adjectives and
    verbs are left out: those a model fires on are mostly loaded ("humiliating", "drunken"),
    and teaching them as benign would cost recall."""
    out = {}
    for w in vocab.get("common_noun", []):
        out.setdefault(w, "noun")
    for w in sdstyle.benign_words():
        if w not in exclude:
            out.setdefault(w, "noun")
    return out


def lexical_flags(safesd, words):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")
        name = f.name
    res = subprocess.run([safesd, "check", "-f", name, "--json", "--detectors", "lexical"],
                         capture_output=True, text=True)
    os.unlink(name)
    if res.returncode != 0:
        sys.exit(f"mine.py: {safesd} check failed: {res.stderr.strip()}")
    out = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
    return {w for w, r in zip(words, out) if r["flagged"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--share", type=float, default=1.0, help="keep words reaching share x threshold")
    ap.add_argument("--safesd", help="drop words the lexical detector flags (path to safesd)")
    ap.add_argument("--inventory", default=os.path.join(HERE, "concepts.txt"))
    ap.add_argument("--all-concepts", action="store_true",
                    help="the weights were trained on every concept (corpus.py --all-concepts): every concept's words are evidence")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ld = model.Loaded(a.weights)
    concepts = [c for c in corpus.load_inventory(a.inventory) if c.cats]
    train = concepts if a.all_concepts else corpus.split(concepts)[0]
    triggers = corpus.single_word_triggers(train, ld.tables)
    # never a word the training concepts' unsafe lines use: those are the evidence the model
    # should keep ("shackled", "submissive"); a hard negative is a word with no such use
    used = set()
    for c in train:
        for k in ("words", "phrases", "euphemisms", "foreign"):
            for x in c.items[k]:
                used.update(w for w, _, _ in features.words(x, ld.tables))
    exclude = corpus.training_exclusions(train) | triggers | used
    vocab = corpus.wordnet_vocab(exclude)
    cand = candidates(vocab, exclude)
    neighbours = {w for w, _ in corpus.hard_negative_words(triggers, vocab) if w in cand}
    words = sorted(cand)
    prompts, owner = [], []
    for i, w in enumerate(words):
        for p in PROBES[cand[w]]:
            prompts.append(p.format(w=w))
            owner.append(i)
    net = model.net_from_file(a.weights)
    fz = model.Featurised(prompts, ld.hasher, ld.tables)
    net.eval()
    best = np.zeros(len(words))
    with torch.no_grad():
        for i in range(0, len(prompts), 1024):
            idx = range(i, min(i + 1024, len(prompts)))
            U, G, L = model.batch_tensors(fz, idx, net)
            p = torch.sigmoid(net(U, G, L)).max(1).values.numpy()
            for j, k in zip(idx, p):
                best[owner[j]] = max(best[owner[j]], float(k))
    cut = a.share * ld.threshold
    mined = sum(1 for i in range(len(words)) if best[i] >= cut)
    keep = [i for i in range(len(words)) if best[i] >= cut or words[i] in neighbours]
    dropped = set()
    if a.safesd:
        dropped = lexical_flags(a.safesd, [words[i] for i in keep])
        keep = [i for i in keep if words[i] not in dropped]
    sha = hashlib.sha256(open(a.weights, "rb").read()).hexdigest()
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"# benign hard-negative words mined by tools/learned/mine.py from {os.path.basename(a.weights)} "
                f"(sha256 {sha[:16]}) at threshold {ld.threshold:.4g} x {a.share} ({mined} of {len(words)} candidates) "
                f"and the n-gram neighbours of the training triggers ({len(neighbours)}); {len(keep)} kept, "
                f"{len(dropped)} dropped as flagged by the lexical detector\n")
        for i in sorted(keep, key=lambda i: (-best[i], words[i])):
            why = f"{best[i]:.3f}" if best[i] >= cut else "ngram"
            f.write(f"{words[i]}\t{cand[words[i]]}\t{why}\n")
    print(f"mine.py: {mined} of {len(words)} words reach {cut:.4g}, {len(neighbours)} n-gram neighbours; "
          f"{len(dropped)} dropped by the lexical detector; {len(keep)} written to {a.out}")


if __name__ == "__main__":
    main()
