#!/usr/bin/env python3
"""PyTorch reference UNet (diffusers' UNet2DConditionModel: same module tree, state-dict
names and math, written from the public description of the diffusers v0.25.1 modules) and
the UNet conformance-case generator.

    sdref_unet.py OUT_DIR [--preset sd15|small|small-linear] [--dtype f32|f16|bf16]
                  [--seed N] [--batch B] [--size HxW] [--ctx-len S] [--timestep T] [--blocks]

Writes OUT_DIR/model/ (model_index.json + unet/config.json + unet/
diffusion_pytorch_model.safetensors), latents.npy [B,4,h,w], context.npy [B,S,D],
timestep.npy (float32 [1]), noise_pred.npy, and with --blocks the output of every
top-level module as blocks/unet.block.<name>.npy (the names of the tiny golden set).
The weights are random with realistic scales (sdref-style: fan-in scaled matrices, norm
gains near 1, small biases); the reference computes in float32 with exactly the numbers
stored in the file (f16/bf16 weights are rounded first).

Needs only Debian's python3-torch and python3-numpy. Also imported by
tools/bench/unet_torch.py.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402

# ---------------------------------------------------------------------------------------
# configuration


class UNetConfig:
    """The diffusers UNet2DConditionModel config keys that SD 1.x/2.x use."""

    def __init__(self, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 mid_block_type="UNetMidBlock2DCrossAttn", attention_head_dim=8,
                 num_attention_heads=None, cross_attention_dim=768, use_linear_projection=False,
                 transformer_layers_per_block=1, norm_num_groups=32, norm_eps=1e-5,
                 in_channels=4, out_channels=4, sample_size=64, flip_sin_to_cos=True,
                 freq_shift=0):
        self.block_out_channels = list(block_out_channels)
        self.layers_per_block = layers_per_block
        self.down_block_types = list(down_block_types)
        self.up_block_types = list(up_block_types)
        self.mid_block_type = mid_block_type
        self.attention_head_dim = attention_head_dim
        self.num_attention_heads = num_attention_heads
        self.cross_attention_dim = cross_attention_dim
        self.use_linear_projection = use_linear_projection
        self.transformer_layers_per_block = transformer_layers_per_block
        self.norm_num_groups = norm_num_groups
        self.norm_eps = norm_eps
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.sample_size = sample_size
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift

    def heads(self):
        """Heads per level: num_attention_heads if set, else attention_head_dim (which
        diffusers, for historical reasons, reads as the number of heads)."""
        h = self.num_attention_heads if self.num_attention_heads is not None else self.attention_head_dim
        n = len(self.block_out_channels)
        return list(h) if isinstance(h, (list, tuple)) else [h] * n

    def to_json(self):
        d = dict(self.__dict__)
        d.update({"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.25.1",
                  "act_fn": "silu", "center_input_sample": False, "downsample_padding": 1,
                  "mid_block_scale_factor": 1, "dual_cross_attention": False,
                  "only_cross_attention": False, "upcast_attention": False,
                  "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
                  "class_embed_type": None, "num_class_embeds": None,
                  "addition_embed_type": None, "encoder_hid_dim": None,
                  "conv_in_kernel": 3, "conv_out_kernel": 3})
        return d


# ---------------------------------------------------------------------------------------
# modules (diffusers names)


def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period=10000):
    """Sinusoidal embedding of float32 timesteps t [N] -> [N, dim], float32 throughout."""
    half = dim // 2
    expo = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift)
    arg = t[:, None].float() * torch.exp(expo)[None, :]
    s, c = torch.sin(arg), torch.cos(arg)
    emb = torch.cat([c, s] if flip_sin_to_cos else [s, c], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeProj(nn.Module):
    def __init__(self, dim, flip, shift):
        super().__init__()
        self.dim, self.flip, self.shift = dim, flip, shift

    def forward(self, t):
        return timestep_embedding(t, self.dim, self.flip, self.shift)


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, heads, head_dim, ctx_dim=None):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.scale = head_dim ** -0.5
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(ctx_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(ctx_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Identity()])  # [1] = dropout

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, n, _ = x.shape

        def split(t):
            return t.view(b, -1, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(ctx)), split(self.to_v(ctx))
        if q.is_cuda:  # training on a GPU: fused attention (same maths, other rounding)
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            return self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))
        out = torch.empty_like(q)
        for i in range(b):  # one sample at a time bounds the score matrix's memory
            w = torch.softmax((q[i] @ k[i].transpose(-1, -2)) * self.scale, dim=-1)
            out[i] = w @ v[i]
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        a, g = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    def __init__(self, c, channels, heads, layers):
        super().__init__()
        head_dim = channels // heads
        self.linear = c.use_linear_projection
        self.norm = nn.GroupNorm(c.norm_num_groups, channels, eps=1e-6)
        if self.linear:
            self.proj_in = nn.Linear(channels, channels)
            self.proj_out = nn.Linear(channels, channels)
        else:
            self.proj_in = nn.Conv2d(channels, channels, 1)
            self.proj_out = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(channels, heads, head_dim, c.cross_attention_dim) for _ in range(layers)])

    def forward(self, x, ctx):
        b, ch, hh, ww = x.shape
        h = self.norm(x)
        if self.linear:
            h = self.proj_in(h.permute(0, 2, 3, 1).reshape(b, hh * ww, ch))
        else:
            h = self.proj_in(h).permute(0, 2, 3, 1).reshape(b, hh * ww, ch)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        if self.linear:
            h = self.proj_out(h).reshape(b, hh, ww, ch).permute(0, 3, 1, 2)
        else:
            h = self.proj_out(h.reshape(b, hh, ww, ch).permute(0, 3, 1, 2).contiguous())
        return h + x


class Sampler(nn.Module):
    """Downsample2D (3x3 conv, stride 2, padding 1) or Upsample2D (nearest 2x, 3x3 conv)."""

    def __init__(self, ch, up):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(ch, ch, 3, stride=1 if up else 2, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else x)


class DownBlock(nn.Module):
    def __init__(self, c, level, cin, cout, temb, attn, last):
        super().__init__()
        L = c.layers_per_block
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if j == 0 else cout, cout, temb, c.norm_num_groups, c.norm_eps) for j in range(L)])
        if attn:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(c, cout, c.heads()[level], c.transformer_layers_per_block) for _ in range(L)])
        else:
            self.attentions = None
        self.downsamplers = None if last else nn.ModuleList([Sampler(cout, up=False)])

    def forward(self, x, temb, ctx):
        states = []
        for j, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[j](x, ctx)
            states.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            states.append(x)
        return x, states


class UpBlock(nn.Module):
    def __init__(self, c, level, prev_out, cout, skip_last, temb, attn, last):
        super().__init__()
        L = c.layers_per_block
        res = []
        for j in range(L + 1):
            skip = skip_last if j == L else cout
            res.append(ResnetBlock2D((prev_out if j == 0 else cout) + skip, cout, temb, c.norm_num_groups,
                                     c.norm_eps))
        self.resnets = nn.ModuleList(res)
        if attn:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(c, cout, c.heads()[level], c.transformer_layers_per_block)
                 for _ in range(L + 1)])
        else:
            self.attentions = None
        self.upsamplers = None if last else nn.ModuleList([Sampler(cout, up=True)])

    def forward(self, x, skips, temb, ctx):
        for j, r in enumerate(self.resnets):
            x = r(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[j](x, ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, c, ch, temb):
        super().__init__()
        self.cross = c.mid_block_type == "UNetMidBlock2DCrossAttn"
        n_res = 2 if self.cross else 1  # diffusers builds UNetMidBlock2D with num_layers=0
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(ch, ch, temb, c.norm_num_groups, c.norm_eps) for _ in range(n_res)])
        if self.cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(c, ch, c.heads()[-1], c.transformer_layers_per_block)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        if self.cross:
            x = self.resnets[1](self.attentions[0](x, ctx), temb)
        return x


class UNet2DConditionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        ch = c.block_out_channels
        N = len(ch)
        temb = 4 * ch[0]
        self.time_proj = TimeProj(ch[0], c.flip_sin_to_cos, c.freq_shift)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = ch[0]
        for i in range(N):
            self.down_blocks.append(DownBlock(c, i, prev, ch[i], temb, c.down_block_types[i] == "CrossAttnDownBlock2D",
                                              i == N - 1))
            prev = ch[i]
        self.mid_block = MidBlock(c, ch[-1], temb)
        self.up_blocks = nn.ModuleList()
        out = ch[-1]
        for i in range(N):
            level = N - 1 - i
            prev_out, out = out, ch[level]
            skip_last = ch[max(level - 1, 0)]
            self.up_blocks.append(UpBlock(c, level, prev_out, out, skip_last, temb,
                                          c.up_block_types[i] == "CrossAttnUpBlock2D", i == N - 1))
        self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, ch[0], eps=c.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], c.out_channels, 3, padding=1)

    def forward(self, x, t, ctx):
        """x [B,4,h,w], t: a float (one timestep for the batch) or a tensor [B] (one per
        sample, as in training), ctx [B,S,D]."""
        if torch.is_tensor(t) and t.ndim == 1:
            tt = t.float()
        else:
            tt = torch.full((x.shape[0],), float(t), dtype=torch.float32)
        temb = self.time_embedding(self.time_proj(tt))
        x = self.conv_in(x)
        skips = [x]
        for b in self.down_blocks:
            x, st = b(x, temb, ctx)
            skips += st
        x = self.mid_block(x, temb, ctx)
        for b in self.up_blocks:
            x = b(x, skips, temb, ctx)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


TOP_LEVEL = ["time_proj", "time_embedding", "conv_in", "down_blocks", "mid_block", "up_blocks",
             "conv_norm_out", "conv_out"]


def capture_blocks(model):
    """Forward hooks on the top-level modules (as the tiny golden set was made): returns the
    dict that fills with name -> output (first element of tuples) and the hook handles."""
    out, handles = {}, []

    def hook(name):
        def fn(_m, _i, o):
            out[name] = (o[0] if isinstance(o, tuple) else o).detach().clone()
        return fn

    for name in TOP_LEVEL:
        m = getattr(model, name)
        if isinstance(m, nn.ModuleList):
            for i, sub in enumerate(m):
                handles.append(sub.register_forward_hook(hook(f"{name}.{i}")))
        else:
            handles.append(m.register_forward_hook(hook(name)))
    return out, handles


def randomize_unet_(model, seed):
    """Deterministic random weights with realistic scales: matrices and kernels ~ N(0, 1/fan_in),
    norm gains 1 + N(0, 0.1²), biases N(0, 0.02²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model


def write_unet_folder(root, model, dtype=torch.float32):
    """A diffusers-layout folder holding only the UNet."""
    os.makedirs(os.path.join(root, "unet"), exist_ok=True)
    sdref.write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "unet": ["diffusers", "UNet2DConditionModel"]})
    sdref.write_json(os.path.join(root, "unet", "config.json"), model.config.to_json())
    sdref.save_safetensors(os.path.join(root, "unet", "diffusion_pytorch_model.safetensors"),
                           sdref.state_dict_as(model, dtype), {"format": "pt"})


def load_unet_folder(root):
    """The reference model with the weights of a diffusers folder (widened to float32)."""
    cj = json.load(open(os.path.join(root, "unet", "config.json")))
    keys = UNetConfig().__dict__.keys()
    model = UNet2DConditionModel(UNetConfig(**{k: v for k, v in cj.items() if k in keys})).eval()
    sdref.load_weights_as_f32(model, sdref.load_safetensors(
        os.path.join(root, "unet", "diffusion_pytorch_model.safetensors")))
    return model


# ---------------------------------------------------------------------------------------
# case generator

PRESETS = {
    # SD 1.x (diffusers runwayml/stable-diffusion-v1-5 unet/config.json)
    "sd15": (dict(), dict(batch=2, size=(64, 64), ctx_len=77, timestep=981.0)),
    # SD 2.1 (diffusers stabilityai/stable-diffusion-2-1 unet/config.json): heads 5, 10, 20, 20
    # (head size 64 at every width), linear proj_in/out, 1024-wide context, 768 px (96x96)
    "sd21": (dict(attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, use_linear_projection=True,
                  sample_size=96),
             dict(batch=2, size=(96, 96), ctx_len=77, timestep=981.0)),
    # three levels, per-level heads (head dims 16, 16, 24), two transformer layers, 16 groups,
    # a non-square latent; attention on the two upper levels and the mid block
    "small": (dict(block_out_channels=(32, 64, 96), layers_per_block=2,
                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                   attention_head_dim=[2, 4, 4], cross_attention_dim=48, transformer_layers_per_block=2,
                   norm_num_groups=16, sample_size=16),
              dict(batch=2, size=(16, 24), ctx_len=77, timestep=417.0)),
    # SD 2.x-style: linear proj_in/out, num_attention_heads, sin/cos not flipped, shift 1,
    # one layer per block, batch 3, a short context and a fractional timestep
    "small-linear": (dict(block_out_channels=(32, 64), layers_per_block=1,
                          down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                          up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                          num_attention_heads=[2, 4], attention_head_dim=8, cross_attention_dim=40,
                          use_linear_projection=True, norm_num_groups=8, norm_eps=1e-6,
                          flip_sin_to_cos=False, freq_shift=1, sample_size=8),
                     dict(batch=3, size=(8, 12), ctx_len=9, timestep=36.5)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--size", help="latent HxW")
    ap.add_argument("--ctx-len", type=int)
    ap.add_argument("--timestep", type=float)
    ap.add_argument("--blocks", action="store_true", help="also write every top-level block's output")
    ap.add_argument("--no-outputs", action="store_true", help="write the model and inputs only (benchmarks)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    cfg_kw, run = PRESETS[a.preset]
    B = a.batch or run["batch"]
    h, w = (tuple(int(v) for v in a.size.lower().split("x")) if a.size else run["size"])
    S = a.ctx_len or run["ctx_len"]
    t = run["timestep"] if a.timestep is None else a.timestep
    cfg = UNetConfig(**cfg_kw)
    model = randomize_unet_(UNet2DConditionModel(cfg), a.seed).eval()
    os.makedirs(a.out, exist_ok=True)
    write_unet_folder(os.path.join(a.out, "model"), model, dtype)
    sdref.load_weights_as_f32(model, sdref.state_dict_as(model, dtype))
    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randn((B, cfg.in_channels, h, w), generator=g)
    ctx = torch.randn((B, S, cfg.cross_attention_dim), generator=g)
    np.save(os.path.join(a.out, "latents.npy"), x.numpy())
    np.save(os.path.join(a.out, "context.npy"), ctx.numpy())
    np.save(os.path.join(a.out, "timestep.npy"), np.array([t], dtype=np.float32))
    if a.no_outputs:
        print(f"wrote {a.out}: preset {a.preset}, dtype {a.dtype} (no outputs)")
        return
    blocks, handles = capture_blocks(model) if a.blocks else ({}, [])
    with torch.no_grad():
        y = model(x, t, ctx)
    for hnd in handles:
        hnd.remove()
    np.save(os.path.join(a.out, "noise_pred.npy"), y.numpy().astype(np.float32))
    if blocks:
        os.makedirs(os.path.join(a.out, "blocks"), exist_ok=True)
        for name, v in blocks.items():
            np.save(os.path.join(a.out, "blocks", f"unet.block.{name}.npy"), v.numpy().astype(np.float32))
    print(f"wrote {a.out}: preset {a.preset}, dtype {a.dtype}, batch {B}, latent {h}x{w}, context {S}, "
          f"t {t}, output scale {y.abs().max().item():.3g}")


if __name__ == "__main__":
    main()
