#!/usr/bin/env python3
"""A random LoRA for a diffusers folder, and the folder with it merged (the reference).

    lora_case.py MODEL_DIR OUT_DIR [--format kohya|peft] [--rank R] [--seed N]
                 [--te W] [--unet W] [--name NAME]

OUT_DIR/loras/NAME.safetensors  the LoRA: for every UNet attention projection (to_q, to_k,
                                to_v, to_out.0), proj_in/proj_out, the first resnet's conv1
                                (a 3x3 LoCon module) and the text encoder's q/k/v/out and
                                fc1 projections. kohya: lora_unet_<module>/lora_te_<module>
                                ('.' -> '_'), .lora_down.weight [r, in(, kh, kw)],
                                .lora_up.weight [out, r(, 1, 1)], .alpha (= r/2: scale 0.5).
                                peft: unet.<module>.lora_A.weight / .lora_B.weight (scale 1).
OUT_DIR/merged/                 MODEL_DIR with W' = W + w · (alpha / r) · up · down, in
                                float32, computed rank term by rank term in float32 as
                                safesd does (models/lora.c), so the two agree to the bit.
The module names follow diffusers / transformers, the formats kohya-ss sd-scripts and PEFT.
"""
import argparse
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402

UNET_SUFFIXES = (".attn1.to_q.weight", ".attn1.to_k.weight", ".attn1.to_v.weight", ".attn1.to_out.0.weight",
                 ".attn2.to_q.weight", ".attn2.to_k.weight", ".attn2.to_v.weight", ".attn2.to_out.0.weight",
                 ".proj_in.weight", ".proj_out.weight")
TE_SUFFIXES = (".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
               ".self_attn.out_proj.weight", ".mlp.fc1.weight")


def pick(sd, suffixes, extra=()):
    return sorted(k for k in sd if k.endswith(suffixes) or k in extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--format", choices=["kohya", "peft"], default="kohya")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--te", type=float, default=1.0, help="the text encoder's weight merged into merged/")
    ap.add_argument("--unet", type=float, default=1.0, help="the UNet's weight merged into merged/")
    ap.add_argument("--name", default="test_lora")
    a = ap.parse_args()
    g = torch.Generator().manual_seed(a.seed)
    r = a.rank
    comps = {"unet": os.path.join("unet", "diffusion_pytorch_model.safetensors"),
             "text_encoder": os.path.join("text_encoder", "model.safetensors")}
    lora, merged = {}, {}
    for comp, rel in comps.items():
        sd = {k: v.float() for k, v in sdref.load_safetensors(os.path.join(a.model, rel)).items()}
        if comp == "unet":
            keys = pick(sd, UNET_SUFFIXES, extra=("down_blocks.0.resnets.0.conv1.weight",))
        else:
            keys = pick(sd, TE_SUFFIXES)
        w_user = a.unet if comp == "unet" else a.te
        for k in keys:
            W = sd[k]
            out, inner = W.shape[0], W[0].numel()
            if W.dim() == 4:
                down = torch.randn((r,) + tuple(W.shape[1:]), generator=g) * 0.3
                up = torch.randn((out, r, 1, 1), generator=g) * 0.3
            else:
                down = torch.randn((r, W.shape[1]), generator=g) * 0.3
                up = torch.randn((out, r), generator=g) * 0.3
            mod = k[: -len(".weight")]
            if a.format == "kohya":
                alpha = r / 2.0
                name = ("lora_unet_" if comp == "unet" else "lora_te_") + mod.replace(".", "_")
                lora[name + ".lora_down.weight"] = down.half()
                lora[name + ".lora_up.weight"] = up.half()
                lora[name + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
            else:
                alpha = float(r)
                name = comp + "." + mod
                lora[name + ".lora_A.weight"] = down.half()
                lora[name + ".lora_B.weight"] = up.half()
            # the merge, as models/lora.c computes it: float32, rank term by rank term
            scale = torch.tensor(w_user * alpha / r, dtype=torch.float32)
            u = up.half().float().reshape(out, r)
            d = down.half().float().reshape(r, inner)
            Wf = W.reshape(out, inner).clone()
            for kk in range(r):
                Wf += (scale * u[:, kk:kk + 1]) * d[kk:kk + 1, :]
            sd[k] = Wf.reshape(W.shape)
        merged[comp] = sd
    os.makedirs(os.path.join(a.out, "loras"), exist_ok=True)
    sdref.save_safetensors(os.path.join(a.out, "loras", a.name + ".safetensors"), lora, {"format": "pt"})
    dst = os.path.join(a.out, "merged")
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(a.model, dst)
    for comp, rel in comps.items():
        sdref.save_safetensors(os.path.join(dst, rel), merged[comp], {"format": "pt"})
    print(f"wrote {a.out}: {a.format} LoRA '{a.name}' of rank {r}, {len(lora)} tensors; merged folder "
          f"(te {a.te}, unet {a.unet})")


if __name__ == "__main__":
    main()
