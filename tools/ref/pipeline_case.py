#!/usr/bin/env python3
"""Full text-to-image reference runs on a small random-weight model, for the sampler
conformance test of `safesd generate`.

    pipeline_case.py OUT_DIR --safesd BUILD/safesd [--family sd1|sd2] [--seed N]

Writes OUT_DIR/model/ (a complete diffusers folder: text encoder, UNet, VAE, scheduler;
no tokenizer/, so both sides use the bundled CLIP vocabulary) and, for every sampler and
sigma schedule, OUT_DIR/<sampler>_<schedule>/final_latents.npy from the PyTorch reference
(tools/ref/sdref*.py) of diffusers' StableDiffusionPipeline.__call__: CFG 7.5, 10 steps,
the same torch generator for the initial latents and the samplers' noise. OUT_DIR/cases.txt
lists "name sampler schedule seed". Token ids come from `safesd tokenize` (the tokenizer is
checked against Hugging Face's separately).

sd1: CLIP-L-like text tower (quick-GELU, pad 49407), 1×1-conv projections, epsilon.
sd2: OpenCLIP-like text tower (GELU, pad 0), linear projections, per-level head counts,
     v-prediction.
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

PROMPT = "a red apple on a wooden table"
NEGATIVE = "blurry"
CASES = [("ddim", "discrete"), ("pndm", "discrete"), ("euler", "discrete"), ("euler", "karras"),
         ("euler_a", "discrete"), ("euler_a", "karras"), ("dpm++2m", "discrete"), ("dpm++2m", "karras")]


def build(family, seed):
    if family == "sd1":
        tc = sdref.CLIPTextConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96)
        uc = sdref_unet.UNetConfig(block_out_channels=(32, 64), layers_per_block=1,
                                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                   attention_head_dim=4, cross_attention_dim=48, norm_num_groups=16, sample_size=8)
        pred = "epsilon"
    else:
        tc = sdref.CLIPTextConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=80,
                                  hidden_act="gelu", pad_token_id=0)
        uc = sdref_unet.UNetConfig(block_out_channels=(32, 64), layers_per_block=1,
                                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                   num_attention_heads=[2, 4], attention_head_dim=8, cross_attention_dim=48,
                                   use_linear_projection=True, norm_num_groups=16, sample_size=8)
        pred = "v_prediction"
    vc = sdref_vae.VAEConfig(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16, sample_size=16)
    text = sdref.randomize_(sdref.CLIPTextModel(tc), seed).eval()
    unet = sdref_unet.randomize_unet_(sdref_unet.UNet2DConditionModel(uc), seed + 1).eval()
    vae = sdref.randomize_(sdref_vae.AutoencoderKL(vc), seed + 2).eval()
    return text, unet, vae, pred


def write_folder(root, text, unet, vae, pred):
    sdref.write_text_encoder_folder(root, text)
    sdref_unet.write_unet_folder(root, unet)
    sdref_vae.write_vae_folder(root, vae)
    os.makedirs(os.path.join(root, "scheduler"), exist_ok=True)
    sched = dict(sdref_sched.SD15)
    sched.update({"_class_name": "PNDMScheduler", "_diffusers_version": "0.25.1", "prediction_type": pred})
    sdref.write_json(os.path.join(root, "scheduler", "scheduler_config.json"), sched)
    sdref.write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "text_encoder": ["transformers", "CLIPTextModel"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "PNDMScheduler"]})


def token_ids(safesd, model, text):
    out = subprocess.run([safesd, "tokenize", "--json", "-m", model, text], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["ids"]


def run_case(text, unet, vae, ids_u, ids_c, sampler, schedule, pred, seed, steps=10, cfg=7.5):
    ov = dict(sdref_sched.SD15)
    ov["prediction_type"] = pred
    if schedule == "karras":
        ov["use_karras_sigmas"] = True
    smp = sdref_sched.Sampler(sampler, sdref_sched.resolve(sampler, ov), steps)
    with torch.no_grad():
        ctx = text.encode(torch.tensor([ids_u, ids_c]))
        gen = torch.Generator("cpu").manual_seed(seed)
        h = w = unet.config.sample_size
        lat = torch.randn((1, 4, h, w), generator=gen, dtype=torch.float32) * smp.init_noise_sigma
        for t in smp.timesteps:
            x = smp.scale(torch.cat([lat, lat]))
            e = unet(x, float(t), ctx)
            eu, ec = e.chunk(2)
            lat = smp.step(eu + cfg * (ec - eu), t, lat, gen)
        image = vae.decode(lat)
    return lat, image


def save_case(out, name, **arrays):
    """OUT/name/<key>.npy for each array (float32)."""
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for key, a in arrays.items():
        np.save(os.path.join(d, key + ".npy"), a.numpy().astype(np.float32))


def write_index(out, lines, what):
    """OUT/cases.txt (a line a case) and OUT/prompts.json; prints what was written."""
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "prompts.json"), "w") as f:
        json.dump({"prompt": PROMPT, "negative_prompt": NEGATIVE}, f)
    print(f"wrote {out}: {what}, {len(lines)} cases")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--safesd", required=True, help="the safesd program (for token ids)")
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2"])
    ap.add_argument("--seed", type=int, default=31337)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    text, unet, vae, pred = build(a.family, a.seed)
    model = os.path.join(a.out, "model")
    write_folder(model, text, unet, vae, pred)
    ids_u, ids_c = token_ids(a.safesd, model, NEGATIVE), token_ids(a.safesd, model, PROMPT)
    lines = []
    for i, (sampler, schedule) in enumerate(CASES):
        seed = a.seed + 17 * i
        lat, image = run_case(text, unet, vae, ids_u, ids_c, sampler, schedule, pred, seed)
        save_case(a.out, f"{sampler}_{schedule}", final_latents=lat, decoded=image)
        lines.append(f"{sampler}_{schedule} {sampler} {schedule} {seed}")
    write_index(a.out, lines, a.family)


if __name__ == "__main__":
    main()
