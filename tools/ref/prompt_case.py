#!/usr/bin/env python3
"""Reference for the a1111 prompt syntax (docs/prompts.md): AUTOMATIC1111's emphasis
parser, its 75-token chunks and its emphasis on the text encoder's output, in Python and
PyTorch, on the small random-weight models of tools/ref/pipeline_case.py.

    prompt_case.py OUT_DIR --safesd BUILD/safesd [--family sd1|sd2] [--seed N]

Written from the behaviour of A1111's modules/prompt_parser.py (parse_prompt_attention),
modules/sd_hijack_clip.py (tokenize_line, process_tokens) and modules/sd_emphasis.py
("Original"), with its defaults (emphasis on, comma_padding_backtrack 20); each weighted
segment is tokenized on its own, as there, by `safesd tokenize --bpe` (the tokenizer is
checked against Hugging Face's separately).

Writes OUT_DIR/model/ (pipeline_case.py's folder), OUT_DIR/cases.json (per prompt: the
parsed segments, the chunks' ids and weights, the expected embedding file), OUT_DIR/emb_K.npy
([1, 77 x chunks, D]: the conditioning of case K), and OUT_DIR/gen_K/final_latents.npy for
the generation cases (a weighted prompt of several chunks with a one-chunk negative prompt,
and the other way round: the shorter conditioning padded with the empty prompt's chunks, as
A1111's pad_cond_uncond; DDIM, 10 steps, CFG 7.5).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_case  # noqa: E402
import sdref_sched  # noqa: E402

LONG_COMMAS = ", ".join(f"a {c} apple on a {w} table" for c, w in
                        zip(["red", "green", "blue", "pink", "gold", "grey", "teal", "cyan", "lime", "rose",
                             "navy", "plum"],
                            ["wooden", "glass", "stone", "metal", "paper", "marble", "oak", "pine", "clay",
                             "steel", "brass", "iron"]))
LONG_WORDS = " ".join(["cat"] * 160)
PROMPTS = [
    "a (red:1.3) apple on a [wooden] table",
    "((masterpiece)), [[blurry]], (cat:0.5) and (dog)",
    "an \\(escaped\\) bracket, \\[x\\] and a \\\\ backslash \\ lone",
    "unbalanced (open bracket and [square",
    "close) without open] and a :colon: (weird:1.2.3 no) ok",
    "a:1.5) stray weight, ( spaced : 1.5 ), (plus:+2) (dot:.5) (trail:2.)",
    "first chunk BREAK second chunk BREAK",
    "BREAK leading, (BREAK) in brackets, xBREAK BREAKy BREAK_ BREAK, comma",
    "café BREAK\u00a0naïve (日本:1.2) éBREAK",
    "(a:-1) negative, (big:0) zero, [(nested:1.5) mixed]",
    "",
    LONG_COMMAS,
    "(" + LONG_COMMAS + ":1.2), [tail words here]",
    LONG_WORDS,
]
GEN_CASES = [  # (prompt, negative)
    ("(" + LONG_COMMAS + ":1.1), [blurry]", "(ugly:1.4)"),
    ("a (red:1.3) apple", "low quality BREAK " + LONG_WORDS),
]

RE_TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse(text):
    """[[text, weight]] as A1111's parse_prompt_attention returns them."""
    out, rounds, squares = [], [], []

    def scale(start, m):
        for e in out[start:]:
            e[1] *= m

    for m in RE_TOKEN.finditer(text):
        tok, w = m.group(0), m.group(1)
        if tok.startswith("\\"):
            out.append([tok[1:], 1.0])
        elif tok == "(":
            rounds.append(len(out))
        elif tok == "[":
            squares.append(len(out))
        elif w is not None and rounds:
            scale(rounds.pop(), float(w))
        elif tok == ")" and rounds:
            scale(rounds.pop(), 1.1)
        elif tok == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(RE_BREAK.split(tok)):
                if i:
                    out.append(["BREAK", -1])
                out.append([part, 1.0])
    for s in rounds:
        scale(s, 1.1)
    for s in squares:
        scale(s, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged = [out[0]]
    for e in out[1:]:
        if e[1] == merged[-1][1]:
            merged[-1][0] += e[0]
        else:
            merged.append(e)
    return merged


def bpe(safesd, model, texts):
    if not texts:
        return []
    r = subprocess.run([safesd, "tokenize", "--bpe", "--json", "-m", model, "--"] + texts, check=True,
                       capture_output=True, text=True)
    return [json.loads(line)["ids"] for line in r.stdout.splitlines()]


def chunks(segs, seg_ids, comma, bos, eos, pad):
    """A1111's tokenize_line: chunks of 75 tokens (+ BOS, EOS, padding) and their weights."""
    res, cur, mul = [], [], []
    last_comma = -1

    def flush():
        nonlocal cur, mul, last_comma
        ids = [bos] + cur + [eos] + [pad] * (75 - len(cur))
        ws = [1.0] + mul + [1.0] * (76 - len(cur))
        res.append((ids, ws))
        cur, mul, last_comma = [], [], -1

    for (text, w), ids in zip(segs, seg_ids):
        if text == "BREAK" and w == -1:
            flush()
            continue
        for t in ids:
            if t == comma:
                last_comma = len(cur)
            elif len(cur) == 75 and last_comma != -1 and len(cur) - last_comma <= 20:
                at = last_comma + 1
                rt, rw = cur[at:], mul[at:]
                cur, mul = cur[:at], mul[:at]
                flush()
                cur, mul = rt, rw
            if len(cur) == 75:
                flush()
            cur.append(t)
            mul.append(w)
    if cur or not res:
        flush()
    return res


def condition(text_model, chs):
    """Each chunk encoded on its own, A1111's "Original" emphasis, concatenated."""
    zs = []
    with torch.no_grad():
        for ids, ws in chs:
            z = text_model.encode(torch.tensor([ids]))
            mult = torch.asarray(ws).reshape(1, -1, 1)  # float32
            before = z.mean()
            z = z * mult.expand(z.shape)
            after = z.mean()
            zs.append(z * (before / after))
    return torch.hstack(zs)


def generate(text, unet, vae, ctx_u, ctx_c, pred, seed, steps=10, cfg=7.5):
    ov = dict(sdref_sched.SD15)
    ov["prediction_type"] = pred
    smp = sdref_sched.Sampler("ddim", sdref_sched.resolve("ddim", ov), steps)
    with torch.no_grad():
        ctx = torch.cat([ctx_u, ctx_c])
        gen = torch.Generator("cpu").manual_seed(seed)
        h = w = unet.config.sample_size
        lat = torch.randn((1, 4, h, w), generator=gen, dtype=torch.float32) * smp.init_noise_sigma
        for t in smp.timesteps:
            e = unet(smp.scale(torch.cat([lat, lat])), float(t), ctx)
            eu, ec = e.chunk(2)
            lat = smp.step(eu + cfg * (ec - eu), t, lat, gen)
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--safesd", required=True)
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2"])
    ap.add_argument("--seed", type=int, default=4242)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    text, unet, vae, pred = pipeline_case.build(a.family, a.seed)
    model = os.path.join(a.out, "model")
    pipeline_case.write_folder(model, text, unet, vae, pred)
    bos, eos = 49406, 49407
    pad = text.config.pad_token_id
    comma = bpe(a.safesd, model, [","])[0][0]
    cases = []

    def conditioning(prompt):
        segs = parse(prompt)
        texts = [s for s, w in segs if not (s == "BREAK" and w == -1) and s]
        ids = dict(zip(texts, bpe(a.safesd, model, texts)))
        seg_ids = [ids.get(s, []) if not (s == "BREAK" and w == -1) else [] for s, w in segs]
        chs = chunks(segs, seg_ids, comma, bos, eos, pad)
        return segs, chs, condition(text, chs)

    for k, prompt in enumerate(PROMPTS):
        segs, chs, z = conditioning(prompt)
        np.save(os.path.join(a.out, f"emb_{k}.npy"), z.numpy().astype(np.float32))
        cases.append({"prompt": prompt, "segments": segs, "pad": pad,
                      "ids": [c[0] for c in chs], "weights": [c[1] for c in chs], "embedding": f"emb_{k}.npy"})
    empty = conditioning("")[2]
    gens = []
    for k, (prompt, neg) in enumerate(GEN_CASES):
        zc, zu = conditioning(prompt)[2], conditioning(neg)[2]
        while zc.shape[1] < zu.shape[1]:
            zc = torch.hstack([zc, empty])
        while zu.shape[1] < zc.shape[1]:
            zu = torch.hstack([zu, empty])
        seed = a.seed + 31 * k
        lat = generate(text, unet, vae, zu, zc, pred, seed)
        d = os.path.join(a.out, f"gen_{k}")
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "final_latents.npy"), lat.numpy().astype(np.float32))
        gens.append({"prompt": prompt, "negative_prompt": neg, "seed": seed, "dir": f"gen_{k}",
                     "tokens": int(zc.shape[1])})
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump({"family": a.family, "cases": cases, "generate": gens}, f, ensure_ascii=False)
    print(f"wrote {a.out}: {a.family}, {len(cases)} conditioning cases, {len(gens)} generation cases")


if __name__ == "__main__":
    main()
