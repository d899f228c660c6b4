#!/usr/bin/env python3
"""Reference runs of diffusers' StableDiffusionPipeline (the PyTorch reference of
tools/ref/sdref*.py) on an existing diffusers folder, e.g. the bundled model.

    bundled_case.py MODEL_DIR OUT_DIR --safesd BUILD/safesd
                    [--case NAME:SAMPLER:SCHEDULE:SEED:STEPS:CFG:PROMPT] ...

For each case writes OUT_DIR/<NAME>/final_latents.npy and decoded.npy (the VAE output in
[-1, 1]) and appends "NAME SAMPLER SCHEDULE SEED STEPS CFG<TAB>PROMPT" to OUT_DIR/cases.tsv.
The negative prompt is empty (the pipeline's default unconditional text). Token ids come
from `safesd tokenize -m MODEL_DIR` (the tokenizer is checked separately against
tools/train/clip_bpe.py).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402
import sdref_sched  # noqa: E402
import sdref_unet  # noqa: E402
import sdref_vae  # noqa: E402


def load_text_encoder(root):
    cj = json.load(open(os.path.join(root, "text_encoder", "config.json")))
    keys = sdref.CLIPTextConfig().__dict__.keys()
    model = sdref.CLIPTextModel(sdref.CLIPTextConfig(**{k: v for k, v in cj.items() if k in keys})).eval()
    return sdref.load_weights_as_f32(model, sdref.load_safetensors(
        os.path.join(root, "text_encoder", "model.safetensors")))


def load_pipeline(root):
    sched = json.load(open(os.path.join(root, "scheduler", "scheduler_config.json")))
    return load_text_encoder(root), sdref_unet.load_unet_folder(root), sdref_vae.load_vae_folder(root), sched


def token_ids(safesd, model, text):
    out = subprocess.run([safesd, "tokenize", "--json", "-m", model, text], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)["ids"]


def run(text, unet, vae, sched, ids_u, ids_c, sampler, schedule, seed, steps, cfg):
    ov = {k: v for k, v in sched.items() if not k.startswith("_")}
    if schedule == "karras":
        ov["use_karras_sigmas"] = True
    smp = sdref_sched.Sampler(sampler, sdref_sched.resolve(sampler, ov), steps)
    with torch.no_grad():
        ctx = text.encode(torch.tensor([ids_u, ids_c]))
        gen = torch.Generator("cpu").manual_seed(seed)
        c, s = unet.config.in_channels, unet.config.sample_size
        lat = torch.randn((1, c, s, s), generator=gen, dtype=torch.float32) * smp.init_noise_sigma
        for t in smp.timesteps:
            e = unet(smp.scale(torch.cat([lat, lat])), float(t), ctx)
            eu, ec = e.chunk(2)
            lat = smp.step(eu + cfg * (ec - eu), t, lat, gen)
        return lat, vae.decode(lat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--safesd", required=True)
    ap.add_argument("--case", action="append", required=True)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    text, unet, vae, sched = load_pipeline(a.model)
    ids_u = token_ids(a.safesd, a.model, "")
    os.makedirs(a.out, exist_ok=True)
    lines = []
    for spec in a.case:
        name, sampler, schedule, seed, steps, cfg, prompt = spec.split(":", 6)
        lat, img = run(text, unet, vae, sched, ids_u, token_ids(a.safesd, a.model, prompt), sampler, schedule,
                       int(seed), int(steps), float(cfg))
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "final_latents.npy"), lat.numpy().astype(np.float32))
        np.save(os.path.join(d, "decoded.npy"), img.numpy().astype(np.float32))
        lines.append(f"{name} {sampler} {schedule} {seed} {steps} {cfg}\t{prompt}")
    with open(os.path.join(a.out, "cases.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}: {len(lines)} cases")


if __name__ == "__main__":
    main()
