#!/usr/bin/env python3
"""Reference cases for the C emoji-judge (src/judge/emoji_judge.c, tests/conformance/test_judge.sh).

    judge_case.py OUT_DIR [--model DIR] [--dtype f32|f16|bf16] [--seed N]

Without --model: a small random judge (sdref.randomize_) of odd shapes is written to
OUT_DIR/model (image size 24, channels 8/16/16, strides 1/2/2, 4 groups, 5 objects, 4
backgrounds) in the given dtype. With --model: that folder (e.g. the shipped
models/safesd-emoji/judge) is used as it is. Then for each test image (sizes that exercise
the area resize: the input size itself, a non-integer downscale, an upscale, a wide and a
tall image, and 64x64; random pixels and a blocky "scene" with flat areas) the reference
writes OUT_DIR/case/:
  img_NAME.npy       int32 [H, W, 3]
  input_NAME.npy     float32 [3, S, S]          the preprocessed input
  presence_NAME.npy  float32 [N_o]              presence logits (max over cells)
  cell_NAME.npy      int32 [N_o]                argmax cell (row-major), -1 where the top two
                                                cells are within 1e-3 (a tie C may break otherwise)
  background_NAME.npy float32 [N_b]             background logits (absent without backgrounds)
  cases.txt          the names
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402
import sdref_judge  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def random_judge(folder, dtype, seed):
    cfg = {"image_size": 24, "channels": [8, 16, 16], "strides": [1, 2, 2], "groups": 4, "norm_eps": 1e-5,
           "threshold": 0.5,
           "objects": [{"name": n, "category": c} for n, c in
                       [("dagger", "weapons"), ("cat face", "benign"), ("skull", "death"), ("tulip", "benign"),
                        ("beer mug", "drugs")]],
           "backgrounds": ["white", "light blue", "yellow", "pink"]}
    m = sdref.randomize_(sdref_judge.EmojiJudge(cfg), seed)
    m = m.to(dtype).float()  # the reference computes with the stored numbers
    sdref_judge.save(folder, m, dtype)


def images(rng, size):
    out = {}
    out["exact"] = rng.integers(0, 256, (size, size, 3))
    out["down"] = rng.integers(0, 256, (size * 8 // 3 + 1, size * 8 // 3 + 1, 3))
    out["up"] = rng.integers(0, 256, (size // 2 + 1, size // 3 + 2, 3))
    out["wide"] = rng.integers(0, 256, (size // 2 + 3, 3 * size + 5, 3))
    out["tall"] = rng.integers(0, 256, (2 * size + 7, size - 5, 3))
    sc = np.full((64, 64, 3), (173, 216, 230))  # a flat background with two blocks
    sc[10:30, 6:26] = (220, 40, 40)
    sc[30:54, 36:60] = (250, 200, 30)
    out["scene64"] = sc
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=17)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    folder = a.model
    if not folder:
        folder = os.path.join(a.out, "model")
        random_judge(folder, DTYPES[a.dtype], a.seed)
    m = sdref_judge.load(folder).double()  # float64 reference: the C side is checked against exact math
    S = m.cfg["image_size"]
    case = os.path.join(a.out, "case")
    os.makedirs(case, exist_ok=True)
    names = []
    for name, img in images(np.random.default_rng(a.seed), S).items():
        img = img.astype(np.int32)
        x = sdref_judge.preprocess(img.astype(np.uint8), S)
        with torch.no_grad():
            pres, cells, bg = m(x[None].double())
        flat = cells[0].flatten(1)
        top2 = flat.topk(min(2, flat.shape[1]), dim=1)
        cell = top2.indices[:, 0].to(torch.int32)
        if flat.shape[1] > 1:
            cell[(top2.values[:, 0] - top2.values[:, 1]) < 1e-3] = -1
        np.save(os.path.join(case, f"img_{name}.npy"), img)
        np.save(os.path.join(case, f"input_{name}.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(case, f"presence_{name}.npy"), pres[0].numpy().astype(np.float32))
        np.save(os.path.join(case, f"cell_{name}.npy"), cell.numpy().astype(np.int32))
        if bg is not None:
            np.save(os.path.join(case, f"background_{name}.npy"), bg[0].numpy().astype(np.float32))
        names.append(name)
    with open(os.path.join(case, "cases.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"judge_case: {len(names)} images, judge {folder}")


if __name__ == "__main__":
    main()
