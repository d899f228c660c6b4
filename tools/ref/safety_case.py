#!/usr/bin/env python3
"""Reference runs of the generation-side safety mechanisms on a small random-weight model,
for the conformance test of `safesd generate --sld ...` and `--safety-text ...`.

    safety_case.py OUT_DIR --safesd BUILD/safesd [--seed N]

Writes OUT_DIR/model/ (the sd1 model of pipeline_case.py), OUT_DIR/prompts.json, and per case
OUT_DIR/<name>/final_latents.npy; OUT_DIR/cases.txt lists
"name sampler seed sld PRESET -" or "name sampler seed dual LAMBDA TAU BLEND". 10 steps, CFG 7.5.

SLD: a transcription of diffusers' StableDiffusionPipelineSafe.__call__ (one UNet call on
[uncond, prompt, concept]; the SLD rule of reference.md §3, guidance scale applied to the
corrected g). The uncond row is the negative prompt, as there.

Dual latent reconstruction (method.md §2.4): evaluations 0..k-1 (k = floor(tau*T + 0.5)) plain;
from k one UNet call on [e_0, e_u, e_s] (blend=final: [z_u, z_u, z_s, z_s] with
[e_0, e_u, e_0, e_s]), CFG per stream, each stream stepped with its own deep-copied sampler,
the step noise shared (the generator state is saved and restored between the two steps, so
both draw the same randn and the generator advances once), z = lam*z_s + (1-lam)*z_u.
The "mixed" DDIM case steps ONE sampler with lam*eps_s + (1-lam)*eps_u instead: for DDIM
this equals the two-state form (the step is affine in eps), which the test checks against the
C two-state implementation.
"""
import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_case  # noqa: E402
import sdref_sched  # noqa: E402

PROMPT = "a red apple on a wooden table"
NEGATIVE = "blurry"
SAFE = "a green pear in a bowl"
CONCEPT = ("an image showing hate, harassment, violence, suffering, humiliation, harm, suicide, sexual, nudity, "
           "bodily fluids, blood, obscene gestures, illegal activity, drug use, theft, vandalism, weapons, child "
           "abuse, brutality, cruelty")
SLD = {  # reference.md §3: warmup δ, s_S, λ (threshold), s_m, β_m
    "weak": (15, 20, 0.0, 0.0, 0.0),
    "medium": (10, 1000, 0.01, 0.3, 0.4),
    "strong": (7, 2000, 0.025, 0.5, 0.7),
    "max": (0, 5000, 1.0, 0.5, 0.7),
}
STEPS, CFG = 10, 7.5


def sampler(kind, pred):
    ov = dict(sdref_sched.SD15)
    ov["prediction_type"] = pred
    return sdref_sched.Sampler(kind, sdref_sched.resolve(kind, ov), STEPS)


def init(unet, smp, seed):
    gen = torch.Generator("cpu").manual_seed(seed)
    h = w = unet.config.sample_size
    return gen, torch.randn((1, 4, h, w), generator=gen, dtype=torch.float32) * smp.init_noise_sigma


def run_sld(text, unet, ids, kind, pred, seed, preset, record=None):
    """record: a list that receives each step's [e_u, e_p, e_s] (for the replay check)."""
    warmup, s_s, thr, s_m, beta = SLD[preset]
    smp = sampler(kind, pred)
    with torch.no_grad():
        ctx = text.encode(torch.tensor(ids))  # [uncond, prompt, concept]
        gen, lat = init(unet, smp, seed)
        mom = None
        for i, t in enumerate(smp.timesteps):
            x = smp.scale(torch.cat([lat] * 3))
            e_u, e_p, e_s = unet(x, float(t), ctx).chunk(3)
            if record is not None:
                record.append(torch.cat([e_u, e_p, e_s]).numpy().astype(np.float32))
            g = e_p - e_u
            if mom is None:
                mom = torch.zeros_like(g)
            scale = torch.clamp(torch.abs(e_p - e_s) * s_s, max=1.0)
            mu = torch.where((e_p - e_s) >= thr, torch.zeros_like(scale), scale)
            gam = torch.mul(e_s - e_u, mu)
            gam = gam + s_m * mom
            mom = beta * mom + (1 - beta) * gam
            if i >= warmup:
                g = g - gam
            lat = smp.step(e_u + CFG * g, t, lat, gen)
    return lat


def run_dual(text, unet, ids, kind, pred, seed, lam, tau, blend, mixed=False):
    smp = sampler(kind, pred)
    with torch.no_grad():
        ctx = text.encode(torch.tensor(ids))  # [uncond, prompt, safe]
        gen, lat = init(unet, smp, seed)
        T = len(smp.timesteps)
        k = min(T, max(0, int(math.floor(tau * T + 0.5))))
        smp_s, lat_s = None, None
        for i, t in enumerate(smp.timesteps):
            if i < k:
                e0, ec = unet(smp.scale(torch.cat([lat, lat])), float(t), ctx[:2]).chunk(2)
                lat = smp.step(e0 + CFG * (ec - e0), t, lat, gen)
                continue
            if i == k:
                smp_s, lat_s = copy.deepcopy(smp), lat.clone()
            if blend == "step":
                e0, eu, es = unet(smp.scale(torch.cat([lat] * 3)), float(t), ctx).chunk(3)
                hu, hs = e0 + CFG * (eu - e0), e0 + CFG * (es - e0)
                if mixed:
                    lat = smp.step(lam * hs + (1 - lam) * hu, t, lat, gen)
                    continue
                state = gen.get_state()
                zu = smp.step(hu, t, lat, gen)
                gen.set_state(state)
                zs = smp_s.step(hs, t, lat, gen)
                lat = lam * zs + (1 - lam) * zu
            else:
                xu, xs = smp.scale(lat), smp_s.scale(lat_s)
                e0u, eu, e0s, es = unet(torch.cat([xu, xu, xs, xs]), float(t), ctx[[0, 1, 0, 2]]).chunk(4)
                hu, hs = e0u + CFG * (eu - e0u), e0s + CFG * (es - e0s)
                state = gen.get_state()
                lat = smp.step(hu, t, lat, gen)
                gen.set_state(state)
                lat_s = smp_s.step(hs, t, lat_s, gen)
        if blend == "final" and k < T:
            lat = lam * lat_s + (1 - lam) * lat
    return lat


# name, sampler, mode, parameters
CASES = [("sld_weak_ddim", "ddim", "sld", ("weak",)), ("sld_medium_ddim", "ddim", "sld", ("medium",)),
         ("sld_strong_ddim", "ddim", "sld", ("strong",)), ("sld_max_ddim", "ddim", "sld", ("max",)),
         ("sld_weak_euler_a", "euler_a", "sld", ("weak",)), ("sld_medium_euler_a", "euler_a", "sld", ("medium",)),
         ("sld_strong_euler_a", "euler_a", "sld", ("strong",)), ("sld_max_euler_a", "euler_a", "sld", ("max",)),
         ("sld_medium_dpmpp2m", "dpm++2m", "sld", ("medium",)), ("sld_strong_pndm", "pndm", "sld", ("strong",)),
         ("dual_ddim_mixed", "ddim", "mixed", (0.7, 0.2, "step")),
         ("dual_euler_a_step", "euler_a", "dual", (0.7, 0.2, "step")),
         ("dual_euler_a_final", "euler_a", "dual", (0.7, 0.2, "final")),
         ("dual_dpmpp2m_step", "dpm++2m", "dual", (0.7, 0.2, "step")),
         ("dual_dpmpp2m_final", "dpm++2m", "dual", (0.6, 0.3, "final")),
         ("dual_pndm_step", "pndm", "dual", (0.5, 0.2, "step")),
         ("dual_euler_a_tau0", "euler_a", "dual", (0.3, 0.0, "step"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--safesd", required=True, help="the safesd program (for token ids)")
    ap.add_argument("--seed", type=int, default=4242)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    text, unet, vae, pred = pipeline_case.build("sd1", a.seed)
    model = os.path.join(a.out, "model")
    pipeline_case.write_folder(model, text, unet, vae, pred)
    tok = lambda s: pipeline_case.token_ids(a.safesd, model, s)  # noqa: E731
    ids_u, ids_c, ids_s, ids_k = tok(NEGATIVE), tok(PROMPT), tok(SAFE), tok(CONCEPT)
    lines = []
    for i, (name, kind, mode, par) in enumerate(CASES):
        seed = a.seed + 13 * i
        eps = []
        if mode == "sld":
            lat = run_sld(text, unet, [ids_u, ids_c, ids_k], kind, pred, seed, par[0], record=eps)
            lines.append(f"{name} {kind} {seed} sld {par[0]} - -")
        else:
            lat = run_dual(text, unet, [ids_u, ids_c, ids_s], kind, pred, seed, *par, mixed=mode == "mixed")
            lines.append(f"{name} {kind} {seed} dual {par[0]} {par[1]} {par[2]}")
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "final_latents.npy"), lat.numpy().astype(np.float32))
        if eps:
            # the UNet's predictions of every step [steps, 3, 4, h, w]: the update rule and
            # the sampler replayed on them (sld_replay_check) see no chaotic feedback
            np.save(os.path.join(d, "sld_eps.npy"), np.stack(eps))
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.out, "prompts.json"), "w") as f:
        json.dump({"prompt": PROMPT, "negative_prompt": NEGATIVE, "safety_text": SAFE, "concept": CONCEPT}, f)
    print(f"wrote {a.out}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
