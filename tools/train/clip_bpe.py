#!/usr/bin/env python3
"""A byte-level BPE tokenizer in CLIP's format, trained on captions.

    clip_bpe.py train CAPTIONS.json OUT_DIR [--merges N]   -> vocab.json, merges.txt
    clip_bpe.py encode OUT_DIR "text" ...                   -> token ids (77, padded)

Format as OpenAI CLIP / transformers' CLIPTokenizer: the 256 byte symbols of the GPT-2
byte-to-unicode table, the same 256 with the end-of-word marker "</w>", one entry per
merge in order, then <|startoftext|> and <|endoftext|>; merges.txt starts with a
"#version: 0.2" line. Pre-tokenisation follows CLIP (lower case, whitespace collapsed,
letters / single digits / other runs); Python's `re` stands in for the `regex` module's
\\p{L} and \\p{N} classes, which agrees on every caption of the data set (the C tokenizer
is checked against this on all captions by the bundled-model tests).
"""
import collections
import json
import os
import re
import sys
import unicodedata

PAT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
                 re.IGNORECASE)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def clean(text):
    text = unicodedata.normalize("NFC", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def words(text):
    for w in PAT.findall(clean(text)):
        yield "".join(B2U[b] for b in w.encode("utf-8"))


def train(texts, n_merges):
    freq = collections.Counter(w for t in texts for w in words(t))
    seqs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in freq}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, s in seqs.items():
            f = freq[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += f
        if not pairs:
            break
        # most frequent; ties broken by the pair's text so the result is deterministic
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        a, b = best
        for w, s in seqs.items():
            if len(s) < 2:
                continue
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = tuple(out)
    syms = list(B2U.values())
    vocab = syms + [s + "</w>" for s in syms] + [a + b for a, b in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(vocab)}, merges


def save(out, vocab, merges):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


class Tokenizer:
    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]
        self.rank = {tuple(line.split()): i for i, line in enumerate(lines)}
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.cache = {}

    def bpe(self, w):
        if w in self.cache:
            return self.cache[w]
        s = list(w[:-1]) + [w[-1] + "</w>"]
        while len(s) > 1:
            pairs = [(self.rank.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
            r, _ = min(pairs)
            if r == 1 << 30:
                break
            # merge every occurrence of the best pair, left to right
            best = next(p for p in zip(s, s[1:]) if self.rank.get(p) == r)
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            s = out
        ids = [self.vocab[t] for t in s]
        self.cache[w] = ids
        return ids

    def encode(self, text, length=77):
        ids = [self.bos]
        for w in words(text):
            ids += self.bpe(w)
        ids = ids[:length - 1] + [self.eos]
        return ids + [self.eos] * (length - len(ids))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "train":
        n = int(sys.argv[sys.argv.index("--merges") + 1]) if "--merges" in sys.argv else 3000
        with open(sys.argv[2], encoding="utf-8") as f:
            texts = [r["caption"] for r in json.load(f)]
        vocab, merges = train(texts, n)
        save(sys.argv[3], vocab, merges)
        print(f"clip_bpe: {len(merges)} merges, {len(vocab)} tokens -> {sys.argv[3]}")
    elif len(sys.argv) >= 4 and sys.argv[1] == "encode":
        tok = Tokenizer(sys.argv[2])
        for t in sys.argv[3:]:
            print(" ".join(map(str, tok.encode(t))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
