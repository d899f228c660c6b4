#!/usr/bin/env python3
"""Image-to-image and inpainting reference runs on the small random-weight models of
pipeline_case.py, for the conformance test of `safesd generate --init-img [--mask]`.

    img2img_case.py OUT_DIR --safesd BUILD/safesd [--family sd1|sd2|sd1-inpaint] [--seed N]

Writes OUT_DIR/model/ (pipeline_case.py's folder), OUT_DIR/init.png (a 16x16 RGB pattern),
OUT_DIR/mask.png (white = repaint: a rectangle, with grey levels either side of 128) and,
for each case, OUT_DIR/<name>/final_latents.npy from the PyTorch reference of diffusers'
StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline __call__ (v0.25.1), restated
in tools/ref (diffusers is not installed). sd1-inpaint is sd1 with a 9-channel inpainting UNet
(in_channels 9: latents, mask, masked-image latents):

    image -> /255 -> 2x - 1 -> VAE encode -> latent_dist.sample(generator) * scaling_factor
    init_timestep = min(int(steps * strength), steps); t_start = steps - init_timestep
    noise = randn(latents shape, generator)        (after the posterior sample)
    inpaint: masked image (image * (mask < 0.5)) encoded and sampled with the generator
    latents = add_noise(z0, noise, timesteps[t_start])   (inpaint at strength 1: noise * init sigma)
    for t in timesteps[t_start:]: CFG step (the same generator for the samplers' noise);
      inpaint, 4-channel UNet: latents = (1 - m) * add_noise(z0, noise, next t) + m * latents
      (z0 after the last); 9-channel UNet: input cat([scaled latents, m, masked-image latents]),
      no blend, and at strength 1 the image itself is not encoded (nothing drawn for it)

OUT_DIR/cases.txt lists "name sampler schedule seed strength mask batch".
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_case  # noqa: E402
import sdref_sched  # noqa: E402
import sdref_unet  # noqa: E402

PROMPT = pipeline_case.PROMPT
NEGATIVE = pipeline_case.NEGATIVE
# name, sampler, schedule, strength, mask, batch
CASES = {
    "sd1": [("ddim_s60", "ddim", "discrete", 0.6, False, 1),
            ("pndm_s75", "pndm", "discrete", 0.75, False, 1),
            ("pndm_s95", "pndm", "discrete", 0.95, False, 1),   # t_start 1: PNDM's duplicate step
            ("euler_s50", "euler", "discrete", 0.5, False, 1),
            ("euler_a_karras_s70_b2", "euler_a", "karras", 0.7, False, 2),
            ("dpm_s80", "dpm++2m", "discrete", 0.8, False, 1),
            ("dpm_karras_s30", "dpm++2m", "karras", 0.3, False, 1),
            ("ddim_s100", "ddim", "discrete", 1.0, False, 1),
            ("inpaint_ddim_s80", "ddim", "discrete", 0.8, True, 1),
            ("inpaint_euler_a_s100", "euler_a", "discrete", 1.0, True, 1),
            ("inpaint_pndm_s60_b2", "pndm", "discrete", 0.6, True, 2)],
    "sd2": [("ddim_s70", "ddim", "discrete", 0.7, False, 1),
            ("euler_s60", "euler", "discrete", 0.6, False, 1),
            ("inpaint_dpm_s90", "dpm++2m", "discrete", 0.9, True, 1)],
    "sd1-inpaint": [("ddim_s100", "ddim", "discrete", 1.0, True, 1),
                    ("euler_a_s70_b2", "euler_a", "discrete", 0.7, True, 2),
                    ("pndm_s90", "pndm", "discrete", 0.9, True, 1)],
}
SIZE = 16  # pixels (the test VAE halves once: 8x8 latents)


def make_images(size):
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([(x * 255) // (size - 1), (y * 255) // (size - 1), ((x + y) * 37) % 256], axis=-1).astype(np.uint8)
    mask = np.zeros((size, size, 3), np.uint8)
    mask[4:12, 2:10] = 255            # repaint
    mask[0:2, :] = 127                # luma 127: keep
    mask[14:16, :] = 128              # luma 128: repaint
    mask[:, 14] = (200, 30, 30)       # luma 83: keep
    return img, mask


def write_png(path, rgb):
    from PIL import Image
    Image.fromarray(rgb, "RGB").save(path)


def luma(rgb):
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16  # Pillow's convert("L")


def run_case(text, unet, vae, ids_u, ids_c, sampler, schedule, pred, seed, image, strength, mask, batch,
             steps=10, cfg=7.5):
    ov = dict(sdref_sched.SD15)
    ov["prediction_type"] = pred
    if schedule == "karras":
        ov["use_karras_sigmas"] = True
    smp = sdref_sched.Sampler(sampler, sdref_sched.resolve(sampler, ov), steps)
    init_ts = min(int(steps * strength), steps)
    t_start = steps - init_ts
    unet9 = unet.config.in_channels == 9
    with torch.no_grad():
        ctx = text.encode(torch.tensor([ids_u] * batch + [ids_c] * batch))
        gen = torch.Generator("cpu").manual_seed(seed)
        x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
        x = 2.0 * x - 1.0
        mom = vae.moments(x)
        shape = (batch, 4) + tuple(mom.shape[2:])
        z0 = None
        if not (unet9 and strength == 1.0):
            z = vae.posterior(mom, torch.randn(mom[:, :4].shape, generator=gen, dtype=torch.float32))
            z0 = z.repeat(batch, 1, 1, 1)
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        m_lat = extra = None
        if mask is not None:
            rep = (luma(mask).astype(np.float32) / 255.0) >= 0.5        # binarised: 1 = repaint
            xm = x * torch.from_numpy(~rep)[None, None].to(torch.float32)
            mm = vae.moments(xm)
            zm = vae.posterior(mm, torch.randn(mm[:, :4].shape, generator=gen, dtype=torch.float32))
            m_full = torch.from_numpy(rep.astype(np.float32))[None, None]
            m_lat = torch.nn.functional.interpolate(m_full, size=tuple(mom.shape[2:]))  # nearest
            if unet9:
                extra = torch.cat([m_lat.repeat(batch, 1, 1, 1), zm.repeat(batch, 1, 1, 1)], dim=1)
                extra = torch.cat([extra, extra])                        # CFG: [uncond, cond]
        smp.begin_at(t_start)
        if mask is not None and strength == 1.0:
            lat = noise * smp.init_noise_sigma
        else:
            lat = smp.add_noise(z0, noise, t_start)
        n = len(smp.timesteps)
        for j in range(t_start, n):
            t = smp.timesteps[j]
            xin = smp.scale(torch.cat([lat, lat]))
            if extra is not None:
                xin = torch.cat([xin, extra], dim=1)
            e = unet(xin, float(t), ctx)
            eu, ec = e.chunk(2)
            lat = smp.step(eu + cfg * (ec - eu), t, lat, gen)
            if m_lat is not None and not unet9:
                proper = smp.add_noise(z0, noise, j + 1) if j + 1 < n else z0
                lat = (1 - m_lat) * proper + m_lat * lat
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--safesd", required=True, help="the safesd program (for token ids)")
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2", "sd1-inpaint"])
    ap.add_argument("--seed", type=int, default=4242)
    a = ap.parse_args()
    torch.set_num_threads(1)
    text, unet, vae, pred = pipeline_case.build("sd2" if a.family == "sd2" else "sd1", a.seed)
    if a.family == "sd1-inpaint":  # the same model with a 9-channel UNet
        uc = copy.deepcopy(unet.config)
        uc.in_channels = 9
        unet = sdref_unet.randomize_unet_(sdref_unet.UNet2DConditionModel(uc), a.seed + 1).eval()
    model = os.path.join(a.out, "model")
    pipeline_case.write_folder(model, text, unet, vae, pred)
    image, mask = make_images(SIZE)
    write_png(os.path.join(a.out, "init.png"), image)
    write_png(os.path.join(a.out, "mask.png"), mask)
    ids_u = pipeline_case.token_ids(a.safesd, model, NEGATIVE)
    ids_c = pipeline_case.token_ids(a.safesd, model, PROMPT)
    lines = []
    for i, (name, sampler, schedule, strength, use_mask, batch) in enumerate(CASES[a.family]):
        seed = a.seed + 13 * i
        lat = run_case(text, unet, vae, ids_u, ids_c, sampler, schedule, pred, seed, image, strength,
                       mask if use_mask else None, batch)
        pipeline_case.save_case(a.out, name, final_latents=lat)
        lines.append(f"{name} {sampler} {schedule} {seed} {strength} {int(use_mask)} {batch}")
    pipeline_case.write_index(a.out, lines, a.family)


if __name__ == "__main__":
    main()
