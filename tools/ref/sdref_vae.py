#!/usr/bin/env python3
"""PyTorch reference VAE (diffusers AutoencoderKL) and VAE conformance-case generator.

The module tree and state-dict names are those of diffusers v0.25.1 AutoencoderKL
(encoder.down_blocks.0.resnets.0.norm1.weight, decoder.mid_block.attentions.0.to_q.weight,
decoder.up_blocks.0.upsamplers.0.conv.weight, quant_conv, post_quant_conv, ...), the math
that of its Encoder / Decoder / UNetMidBlock2D / DownEncoderBlock2D / UpDecoderBlock2D /
ResnetBlock2D / Attention (single head, GroupNorm, residual), written from the public
descriptions of those modules. Needs only Debian's python3-torch and python3-numpy.

As a program it writes a conformance case:

    sdref_vae.py OUT_DIR [--preset small|sd15|...] [--dtype f32|f16|bf16] [--latent HxW]
                 [--seed N] [--no-encoder] [--blocks] [--tiled [T]]

OUT_DIR/model/            diffusers folder: model_index.json, vae/config.json,
                          vae/diffusion_pytorch_model.safetensors (weights in --dtype)
OUT_DIR/latents.npy       [1, Z, h, w] latents in sampler space (N(0,1))
OUT_DIR/decoded.npy       [1, 3, 8h, 8w] raw decoder output of vae.decode(latents / sf)
OUT_DIR/block.<name>.npy  decoder block outputs (with --blocks)
OUT_DIR/decoded_tiled.npy the same through tiled_decode (with --tiled [T])
OUT_DIR/image.npy         [1, 3, H, W] encoder input in [-1, 1] (unless --no-encoder)
OUT_DIR/moments.npy       [1, 2Z, h, w] quant_conv output (mean, logvar)
OUT_DIR/latent_mean.npy   [1, Z, h, w] posterior mean * sf
OUT_DIR/noise.npy         [1, Z, h, w] N(0,1) draws, and latent_sample.npy the posterior
                          sample (mean + exp(0.5 clamp(logvar, -30, 20)) * noise) * sf
The reference computes in float32 with exactly the numbers stored in the file.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402

EPS = 1e-6


class VAEConfig:
    def __init__(self, in_channels=3, out_channels=3, latent_channels=4,
                 block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                 scaling_factor=0.18215, sample_size=512):
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.latent_channels = latent_channels
        self.block_out_channels = list(block_out_channels)
        self.layers_per_block = layers_per_block
        self.norm_num_groups = norm_num_groups
        self.scaling_factor = scaling_factor
        self.sample_size = sample_size

    def to_json(self):
        n = len(self.block_out_channels)
        d = dict(self.__dict__)
        d.update({"_class_name": "AutoencoderKL", "_diffusers_version": "0.25.1", "act_fn": "silu",
                  "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
                  "force_upcast": True})
        return d

    @staticmethod
    def from_json(d):
        keys = VAEConfig().__dict__.keys()
        return VAEConfig(**{k: v for k, v in d.items() if k in keys})


def _gn(c, groups):
    return nn.GroupNorm(groups, c, eps=EPS, affine=True)


class ResnetBlock2D(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> SiLU -> conv3x3, + input (1x1 conv_shortcut when the
    width changes). No time embedding in the VAE."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = _gn(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _gn(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """diffusers Attention as the VAE mid block builds it: one head of dim C, GroupNorm on
    the input, q/k/v/out linear projections with bias, residual connection, scale C^-0.5."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = _gn(c, groups)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])
        self.scale = c ** -0.5

    def forward(self, x):
        b, c, h, w = x.shape
        res = x
        t = self.group_norm(x.view(b, c, h * w)).transpose(1, 2)  # [b, hw, c]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        # diffusers passes torch.empty here; with beta=0 the values are ignored, but zeros keep
        # the reference from depending on how a BLAS treats NaNs in memory it was told to ignore
        p = torch.baddbmm(torch.zeros(b, h * w, h * w, dtype=q.dtype, device=q.device), q, k.transpose(1, 2), beta=0,
                          alpha=self.scale).softmax(dim=-1)
        o = self.to_out[0](torch.bmm(p, v))
        return o.transpose(1, 2).reshape(b, c, h, w) + res


class UNetMidBlock2D(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups), ResnetBlock2D(c, c, groups)])
        self.attentions = nn.ModuleList([Attention(c, groups)])

    def forward(self, x):
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


class Downsample2D(nn.Module):
    """Zero-pad (left 0, right 1, top 0, bottom 1), then 3x3 conv stride 2, no padding."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownEncoderBlock2D(nn.Module):
    def __init__(self, cin, cout, n, groups, down):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(n)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if down else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin, cout, n, groups, up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(n)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if up else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, g, n = c.block_out_channels, c.norm_num_groups, len(c.block_out_channels)
        self.conv_in = nn.Conv2d(c.in_channels, boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = boc[0]
        for i in range(n):
            self.down_blocks.append(DownEncoderBlock2D(prev, boc[i], c.layers_per_block, g, i < n - 1))
            prev = boc[i]
        self.mid_block = UNetMidBlock2D(boc[-1], g)
        self.conv_norm_out = _gn(boc[-1], g)
        self.conv_out = nn.Conv2d(boc[-1], 2 * c.latent_channels, 3, padding=1)

    def forward(self, x, hook=None):
        x = self.conv_in(x)
        for i, b in enumerate(self.down_blocks):
            x = b(x)
            if hook:
                hook(f"encoder.down_blocks.{i}", x)
        x = self.mid_block(x)
        if hook:
            hook("encoder.mid_block", x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, g, n = c.block_out_channels, c.norm_num_groups, len(c.block_out_channels)
        rev = list(reversed(boc))
        self.conv_in = nn.Conv2d(c.latent_channels, boc[-1], 3, padding=1)
        self.mid_block = UNetMidBlock2D(boc[-1], g)
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i in range(n):
            self.up_blocks.append(UpDecoderBlock2D(prev, rev[i], c.layers_per_block + 1, g, i < n - 1))
            prev = rev[i]
        self.conv_norm_out = _gn(boc[0], g)
        self.conv_out = nn.Conv2d(boc[0], c.out_channels, 3, padding=1)

    def forward(self, z, hook=None):
        x = self.conv_in(z)
        if hook:
            hook("decoder.conv_in", x)
        x = self.mid_block(x)
        if hook:
            hook("decoder.mid_block", x)
        for i, b in enumerate(self.up_blocks):
            x = b(x)
            if hook:
                hook(f"decoder.up_blocks.{i}", x)
        x = self.conv_norm_out(x)
        if hook:
            hook("decoder.conv_norm_out", x)
        return self.conv_out(F.silu(x))


class AutoencoderKL(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        z = c.latent_channels
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)

    def decode(self, latents, hook=None):
        """latents in sampler space; returns the raw decoder output (diffusers:
        vae.decode(latents / scaling_factor).sample)."""
        z = self.post_quant_conv(latents / self.config.scaling_factor)
        if hook:
            hook("post_quant_conv", z)
        return self.decoder(z, hook)

    def tiled_decode(self, latents, tile_sample=None):
        """diffusers' AutoencoderKL.tiled_decode (overlap factor 0.25), written from its
        description: tiles of tile_sample pixels (default: config.sample_size), i.e.
        tile_sample / f latent pixels, every floor(0.75 t) latent pixels; each decoded alone;
        the first E = floor(0.25 T) rows blended with the (already blended) tile above, then
        the first E columns with the tile to the left, E shrunk to the smaller tile; each tile
        keeps its first T - E rows and columns. No tiling when the latent fits one tile."""
        T = tile_sample or self.config.sample_size
        f = 2 ** (len(self.config.block_out_channels) - 1)
        t = int(T / f)
        if latents.shape[2] <= t and latents.shape[3] <= t:
            return self.decode(latents)
        s, E = int(t * 0.75), int(T * 0.25)
        keep = T - E
        rows = []
        for i in range(0, latents.shape[2], s):
            rows.append([self.decode(latents[:, :, i:i + t, j:j + t]) for j in range(0, latents.shape[3], s)])

        def blend(a, b, dim):
            e = min(a.shape[dim], b.shape[dim], E)
            for y in range(e):
                wy = y / e
                if dim == 2:
                    b[:, :, y, :] = a[:, :, a.shape[2] - e + y, :] * (1 - wy) + b[:, :, y, :] * wy
                else:
                    b[:, :, :, y] = a[:, :, :, a.shape[3] - e + y] * (1 - wy) + b[:, :, :, y] * wy

        out_rows = []
        for i, row in enumerate(rows):
            kept = []
            for j, tile in enumerate(row):
                if i > 0:
                    blend(rows[i - 1][j], tile, 2)
                if j > 0:
                    blend(row[j - 1], tile, 3)
                kept.append(tile[:, :, :keep, :keep])
            out_rows.append(torch.cat(kept, dim=3))
        return torch.cat(out_rows, dim=2)

    def moments(self, image, hook=None):
        return self.quant_conv(self.encoder(image, hook))

    def posterior(self, moments, noise=None):
        """(mean + std * noise) * sf, or mean * sf (DiagonalGaussianDistribution)."""
        mean, logvar = torch.chunk(moments, 2, dim=1)
        if noise is None:
            return mean * self.config.scaling_factor
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        return (mean + std * noise) * self.config.scaling_factor


def write_vae_folder(root, model, dtype=torch.float32):
    """A diffusers-layout folder holding only the VAE; model_index.json lists just it."""
    os.makedirs(os.path.join(root, "vae"), exist_ok=True)
    sdref.write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "vae": ["diffusers", "AutoencoderKL"]})
    sdref.write_json(os.path.join(root, "vae", "config.json"), model.config.to_json())
    sdref.save_safetensors(os.path.join(root, "vae", "diffusion_pytorch_model.safetensors"),
                           sdref.state_dict_as(model, dtype), {"format": "pt"})


def load_vae_folder(root):
    import json
    cfg = VAEConfig.from_json(json.load(open(os.path.join(root, "vae", "config.json"))))
    model = AutoencoderKL(cfg).eval()
    sdref.load_weights_as_f32(model, sdref.load_safetensors(
        os.path.join(root, "vae", "diffusion_pytorch_model.safetensors")))
    return model


PRESETS = {
    # SD 1.x / 2.x
    "sd15": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32),
    # quick, but every feature: 3 levels, width changes (shortcuts) both ways, 2 layers
    "small": dict(block_out_channels=(32, 64, 64), layers_per_block=2, norm_num_groups=16, sample_size=64),
    # other groups / latent width / a single level (no up- or downsampling)
    "small-z8": dict(block_out_channels=(24, 48), layers_per_block=1, norm_num_groups=8, latent_channels=8,
                     scaling_factor=0.13025, sample_size=32),
    "one-level": dict(block_out_channels=(32,), layers_per_block=1, norm_num_groups=32, sample_size=16),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--latent", default="8x12", help="latent height x width")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--no-encoder", action="store_true")
    ap.add_argument("--blocks", action="store_true", help="also write decoder block outputs")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tiled", type=int, nargs="?", const=0, default=None, metavar="T",
                    help="also write decoded_tiled.npy: tiled_decode with tiles of T pixels (default sample_size)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, a.threads))
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    h, w = (int(s) for s in a.latent.lower().split("x"))
    cfg = VAEConfig(**PRESETS[a.preset])
    f = 2 ** (len(cfg.block_out_channels) - 1)
    model = sdref.randomize_(AutoencoderKL(cfg), a.seed).eval()
    os.makedirs(a.out, exist_ok=True)
    write_vae_folder(os.path.join(a.out, "model"), model, dtype)
    sdref.load_weights_as_f32(model, sdref.state_dict_as(model, dtype))
    g = torch.Generator().manual_seed(a.seed + 1)
    z = cfg.latent_channels
    latents = torch.randn(1, z, h, w, generator=g)
    save = lambda name, t: np.save(os.path.join(a.out, name), t.detach().numpy().astype(np.float32))  # noqa: E731
    hook = (lambda name, t: save(f"block.{name}.npy", t)) if a.blocks else None
    with torch.no_grad():
        t0 = time.perf_counter()
        dec = model.decode(latents, hook)
        t_dec = time.perf_counter() - t0
        save("latents.npy", latents)
        save("decoded.npy", dec)
        if a.tiled is not None:
            save("decoded_tiled.npy", model.tiled_decode(latents, a.tiled or None))
        msg = f"decode {t_dec:.1f} s, output scale {dec.abs().max().item():.3g}"
        if not a.no_encoder:
            # a smooth-ish image in [-1, 1]: upsampled noise plus fine noise
            img = F.interpolate(torch.rand(1, cfg.in_channels, h, w, generator=g), scale_factor=f, mode="bilinear",
                                align_corners=False) * 1.6 - 0.8
            img = (img + 0.2 * torch.rand(img.shape, generator=g) - 0.1).clamp(-1, 1)
            t0 = time.perf_counter()
            mom = model.moments(img)
            t_enc = time.perf_counter() - t0
            noise = torch.randn(1, z, h, w, generator=g)
            save("image.npy", img)
            save("moments.npy", mom)
            save("latent_mean.npy", model.posterior(mom))
            save("noise.npy", noise)
            save("latent_sample.npy", model.posterior(mom, noise))
            msg += f", encode {t_enc:.1f} s, moments scale {mom.abs().max().item():.3g}"
    print(f"wrote {a.out}: preset {a.preset}, dtype {a.dtype}, latent {h}x{w}: {msg}")


if __name__ == "__main__":
    main()
