#!/usr/bin/env python3
"""A complete Stable Diffusion 1.5-shaped model with random weights, as a diffusers folder:
CLIP ViT-L/14 text tower (12 × 768, 49,408 tokens), UNet (320/640/1280/1280, 8 heads, 768
context), VAE (128/256/512/512), the SD 1.5 scheduler config and the CLIP tokenizer files.
For speed and memory measurements at full size and for the end-to-end check that
`safesd generate` runs on such a checkpoint in both layouts (see docs/performance.md):

    make_sd15_random.py OUT_DIR [--dtype f16|f32|bf16] [--seed N]

The weights are random (realistic scales), so images are noise; 1.07 G parameters: about
2.1 GB in f16, 4.3 GB in f32. Takes a few minutes.
"""
import argparse
import gzip
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402
import sdref_sched  # noqa: E402
import sdref_unet  # noqa: E402
import sdref_vae  # noqa: E402


def write_tokenizer(root, gz_path):
    """vocab.json + merges.txt derived from OpenAI's bpe_simple_vocab_16e6.txt.gz exactly as
    the Hugging Face files are (see ../shared/data/clip-tokenizer/README.md)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_syms = [chr(c) for c in cs]
    merges = gzip.open(gz_path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = byte_syms + [s + "</w>" for s in byte_syms] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    d = os.path.join(root, "tokenizer")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32", "bf16"])
    ap.add_argument("--seed", type=int, default=1505)
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    root = a.out
    text = sdref.randomize_(sdref.CLIPTextModel(sdref.CLIPTextConfig()), a.seed)
    sdref.write_text_encoder_folder(root, text, dtype)
    del text
    unet = sdref_unet.randomize_unet_(sdref_unet.UNet2DConditionModel(sdref_unet.UNetConfig()), a.seed + 1)
    sdref_unet.write_unet_folder(root, unet, dtype)
    del unet
    vae = sdref.randomize_(sdref_vae.AutoencoderKL(sdref_vae.VAEConfig()), a.seed + 2)
    sdref_vae.write_vae_folder(root, vae, dtype)
    del vae
    os.makedirs(os.path.join(root, "scheduler"), exist_ok=True)
    sched = dict(sdref_sched.SD15)
    sched.update({"_class_name": "PNDMScheduler", "_diffusers_version": "0.25.1"})
    sdref.write_json(os.path.join(root, "scheduler", "scheduler_config.json"), sched)
    here = os.path.dirname(os.path.abspath(__file__))
    write_tokenizer(root, os.path.join(here, "..", "..", "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
    sdref.write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "requires_safety_checker": False})
    print(f"wrote {root} ({a.dtype})")


if __name__ == "__main__":
    main()
