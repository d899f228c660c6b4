"""emoji-judge: the bundled model's image classifier (the PyTorch reference of
src/judge/emoji_judge.c; trained by tools/train/judge.py).

    x = area-resize(u8 / 255) to S x S, then 2x - 1    (preprocess: float64, cast to float32)
    h_i = SiLU(GroupNorm(conv3x3(h_{i-1}) + b, stride s_i))
    object logits per cell = 1x1 conv of the last feature map; presence = max over cells
    background logits = linear([mean of the last map, mean of the stem conv before its norm])

The folder: config.json (image_size, channels, strides, groups, norm_eps, threshold,
objects [{name, category}], backgrounds [names]) and model.safetensors.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import sdref


class EmojiJudge(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        ch, st = cfg["channels"], cfg["strides"]
        g, eps = cfg.get("groups", 8), cfg.get("norm_eps", 1e-5)
        cin = 3
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for c, s in zip(ch, st):
            self.convs.append(nn.Conv2d(cin, c, 3, stride=s, padding=1))
            self.norms.append(nn.GroupNorm(g, c, eps=eps))
            cin = c
        self.object_head = nn.Linear(ch[-1], len(cfg["objects"]))
        nb = len(cfg.get("backgrounds") or [])
        self.background_head = nn.Linear(ch[-1] + ch[0], nb) if nb else None

    def features(self, x):
        stem = None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = conv(x)
            if i == 0:
                stem = x.mean(dim=(2, 3))
            x = F.silu(norm(x))
        return x, stem

    def forward(self, x):
        """x [B, 3, S, S] -> (presence logits [B, N_o], cell logits [B, N_o, h, w],
        background logits [B, N_b] or None)."""
        h, stem = self.features(x)
        cells = torch.einsum("bchw,oc->bohw", h, self.object_head.weight) + self.object_head.bias[None, :, None, None]
        presence = cells.flatten(2).max(dim=2).values
        bg = None
        if self.background_head is not None:
            bg = self.background_head(torch.cat([h.mean(dim=(2, 3)), stem], dim=1))
        return presence, cells, bg


def preprocess(rgb, size):
    """rgb uint8 [H, W, 3] (numpy) -> float32 [3, size, size]: adaptive average pooling of
    u8/255 in float64, then 2x - 1."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float64).permute(2, 0, 1)[None] / 255.0
    x = F.adaptive_avg_pool2d(x, (size, size))
    return (2.0 * x - 1.0)[0].to(torch.float32)


def preprocess_batch(u8, size):
    """u8: uint8 tensor [B, H, W, 3] -> float32 [B, 3, size, size] (the same rule, in float32:
    the training path; at H = W = size it equals preprocess() exactly)."""
    x = u8.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.adaptive_avg_pool2d(x, (size, size))
    return 2.0 * x - 1.0


def load(folder, dtype=torch.float32):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    m = EmojiJudge(cfg)
    sdref.load_weights_as_f32(m, sdref.load_safetensors(os.path.join(folder, "model.safetensors")))
    return m.to(dtype).eval()


def save(folder, model, dtype=torch.float16, extra=None):
    """config.json + model.safetensors (weights in dtype), written into folder."""
    os.makedirs(folder, exist_ok=True)
    cfg = dict(model.cfg)
    if extra:
        cfg.update(extra)
    sdref.save_safetensors(os.path.join(folder, "model.safetensors"), sdref.state_dict_as(model, dtype))
    sdref.write_json(os.path.join(folder, "config.json"), cfg)
