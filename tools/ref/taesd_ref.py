#!/usr/bin/env python3
"""PyTorch reference for the TAESD decoder (madebyollin/taesd; diffusers AutoencoderTiny),
written from the published architecture, and a conformance case on random weights.

    taesd_ref.py OUT_DIR [--latent HxW] [--seed N] [--channels C] [--dtype f32|f16] [--upsamples N]

OUT_DIR/taesd_decoder.safetensors  taesd's layout: nn.Sequential(Clamp, conv(4, C), ReLU,
                                   3 × [Block, Block, Block, Upsample, conv(no bias)],
                                   Block, conv(C, 3)); Block = conv.{0,2,4} (+ skip, fuse)
OUT_DIR/tiny/diffusion_pytorch_model.safetensors   the same weights as diffusers'
                                   AutoencoderTiny decoder (decoder.layers.N, one index lower)
OUT_DIR/latents.npy                [1, 4, h, w], N(0, 1) x 2
OUT_DIR/decoded.npy                [1, 3, 8h, 8w]: 2 · decoder(latents) − 1 (diffusers'
                                   AutoencoderTiny.decode; taesd's own output is in [0, 1])
--upsamples N builds N upsampling stages instead of 3 (a decoder for small test models).
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402


def conv(n_in, n_out, **kw):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def decoder(latent_channels=4, c=64, upsamples=3):
    """taesd's Decoder (upsamples 3: SD's 8x); fewer upsampling stages for small test models."""
    layers = [Clamp(), conv(latent_channels, c), nn.ReLU()]
    for _ in range(upsamples):
        layers += [Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False)]
    return nn.Sequential(*layers, Block(c, c), conv(c, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--latent", default="6x9")
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--upsamples", type=int, default=3, help="2x upsampling stages (3: SD's 8x)")
    a = ap.parse_args()
    h, w = (int(v) for v in a.latent.split("x"))
    model = sdref.randomize_(decoder(4, a.channels, a.upsamples), a.seed).eval()
    dtype = {"f32": torch.float32, "f16": torch.float16}[a.dtype]
    sd = sdref.state_dict_as(model, dtype)
    sdref.load_weights_as_f32(model, sd)
    os.makedirs(os.path.join(a.out, "tiny"), exist_ok=True)
    sdref.save_safetensors(os.path.join(a.out, "taesd_decoder.safetensors"), sd, {"format": "pt"})
    tiny = {}
    for k, v in sd.items():
        i, rest = k.split(".", 1)
        tiny[f"decoder.layers.{int(i) - 1}.{rest}"] = v
    sdref.save_safetensors(os.path.join(a.out, "tiny", "diffusion_pytorch_model.safetensors"), tiny, {"format": "pt"})
    g = torch.Generator().manual_seed(a.seed + 1)
    z = torch.randn(1, 4, h, w, generator=g) * 2
    with torch.no_grad():
        y = model(z) * 2 - 1
    np.save(os.path.join(a.out, "latents.npy"), z.numpy())
    np.save(os.path.join(a.out, "decoded.npy"), y.numpy().astype(np.float32))
    print(f"wrote {a.out}: TAESD decoder ({a.channels} channels, {a.dtype}), latent {h}x{w}, "
          f"output scale {y.abs().max().item():.3g}")


if __name__ == "__main__":
    main()
