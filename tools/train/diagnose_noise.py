#!/usr/bin/env python3
"""Where does a generated image lose its prompt? A diagnosis of the bundled model's UNet.

    diagnose_noise.py MODEL_DIR DATA_DIR [--threads N] [--cfg-scale 7.5]

On the 100 training captions of evaluate.py (every 72nd training image; each caption's real
image known), PyTorch runs the model's UNet and VAE (the reference code of the conformance
tests) with DDIM, 20 steps, CFG 7.5, and the model's CLIP scores the decoded images by
evaluate.py's two label metrics: the prompted label in the top 5 of all labels of its style,
and the image's own prompt among the 100 prompts (R@1, R@5). The rows:

  real images / VAE round trip      what the CLIP and the VAE allow
  from the real latent at t0        the real image's latent noised to DDIM's step at t0
                                    (301, 501, 701, 851, 951) and denoised from there:
                                    what the UNet keeps once the layout is given
  from noise                        the plain text-to-image run (standard normal noise)
  from noise, channel means removed the same noise with each channel's mean over the 16x16
                                    latent subtracted (zero)
  from noise + the real channel means the zero-mean noise plus sqrt(abar) x the real
                                    latent's channel means: the leak SD's schedule leaves at
                                    the first step, and nothing else of the image

If the last three rows differ much, the UNet reads the image's colours off the initial
noise's channel means rather than off the prompt (release 4's UNet did: see the model card).
The same noise (seed 0) is used for every row; a real image's latent is its VAE posterior
mean. Prints a Markdown table; about 6 minutes on two cores.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
sys.path.insert(0, HERE)
import evaluate as E  # noqa: E402
import bundled_case  # noqa: E402
import sdref_sched  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cfg-scale", type=float, default=7.5)
    a = ap.parse_args()
    for need in (os.path.join(a.model, "clip", "config.json"), os.path.join(a.model, "unet", "config.json"),
                 os.path.join(a.data, "images.npy"), os.path.join(a.data, "captions.json")):
        if not os.path.isfile(need):
            sys.exit(f"diagnose_noise.py: {need}: no such file (MODEL_DIR: the bundled model's folder; "
                     f"DATA_DIR: the data set of tools/train/emoji_data.py)")
    torch.set_num_threads(a.threads)
    m = a.model
    clip, tok = E.load_clip(m)
    text, unet, vae, sched = bundled_case.load_pipeline(m)
    sf = vae.config.scaling_factor
    cfg = sdref_sched.resolve("ddim", {k: v for k, v in sched.items() if not k.startswith("_")})
    images = np.load(os.path.join(a.data, "images.npy"))
    recs = json.load(open(os.path.join(a.data, "captions.json"), encoding="utf-8"))
    idx, rows = E.training_captions(recs)
    labels = sorted({r["label"] for r in recs})
    lab = {x: k for k, x in enumerate(labels)}
    gal = {s: E.text_emb(clip, tok, [f"{x}, {s} emoji" for x in labels]) for s in ("noto", "twemoji")}
    cap_e = E.text_emb(clip, tok, [r["prompt"] for r in rows])

    def score(name, imgs):
        e = E.image_emb(clip, imgs)
        top5 = np.mean([lab[r["label"]] in (gal[r["style"]] @ x).topk(5).indices.tolist() for x, r in zip(e, rows)])
        am = E.among_prompts(e, e, cap_e)
        print(f"| {name} | {top5:.0%} | {am['gen_r1']:.0%} / {am['gen_r5']:.0%} |", flush=True)

    print("| images of the 100 training captions | label in top 5 | own prompt among 100, R@1 / R@5 |")
    print("|---|---:|---:|")
    score("real images", images[idx])
    with torch.no_grad():
        ids = torch.tensor([tok.encode(r["prompt"]) for r in rows])
        ctx = text.encode(ids)
        unc = text.encode(torch.tensor([tok.encode("")])).expand_as(ctx)
        x = torch.from_numpy(images[idx]).float().permute(0, 3, 1, 2) / 127.5 - 1.0
        x0 = vae.moments(x)[:, :4] * sf

        def decode(z):
            return ((vae.decode(z / sf).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

        def ddim(lat, start=0):
            smp = sdref_sched.Sampler("ddim", cfg, 20)
            smp.i = start
            for t in smp.timesteps[start:]:
                tt = torch.full((2 * len(lat),), int(t))
                eu, ec = unet(torch.cat([lat, lat]), tt, torch.cat([unc, ctx])).chunk(2)
                lat = smp.step(eu + a.cfg_scale * (ec - eu), t, lat, None)
            return lat

        score("VAE round trip", decode(x0))
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        ts = sdref_sched.Sampler("ddim", cfg, 20).timesteps.tolist()
        ac = sdref_sched.train_tables(cfg)
        for t0 in (301, 501, 701, 851, 951):
            k = min(range(len(ts)), key=lambda j: abs(ts[j] - t0))  # the nearest step
            ab = ac[ts[k]]
            score(f"from the real latent noised to t = {ts[k]}", decode(ddim(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, k)))
        score("from noise (text to image)", decode(ddim(noise)))
        zero = noise - noise.mean((2, 3), keepdim=True)
        score("from noise, channel means removed", decode(ddim(zero)))
        score("from noise + the real channel means' leak", decode(ddim(zero + ac[ts[0]].sqrt() * x0.mean((2, 3), keepdim=True))))


if __name__ == "__main__":
    main()
