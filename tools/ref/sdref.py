"""PyTorch reference models for safesd's conformance tests and benchmarks.

One definition of each architecture, written from the public descriptions of the
diffusers / transformers modules (same module tree and state-dict names, same math), so
that its random-weight outputs can be compared with the C engine. Also used later by the
training scripts, so there is one definition of each model in the project.

Needs only Debian's python3-torch and python3-numpy (no transformers/diffusers).
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# CLIP text tower (transformers' CLIPTextModel names: text_model.embeddings..., etc.)


class CLIPTextConfig:
    def __init__(self, vocab_size=49408, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, max_position_embeddings=77,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
                 eos_token_id=49407, pad_token_id=49407):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id

    def to_json(self):
        d = dict(self.__dict__)
        d.update({"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
                  "projection_dim": self.hidden_size, "torch_dtype": "float32"})
        return d


class CLIPAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.scale = self.head_dim ** -0.5
        self.q_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.k_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.v_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.out_proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x, causal_mask):
        b, s, d = x.shape
        q = (self.q_proj(x) * self.scale).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        w = q @ k.transpose(-1, -2) + causal_mask
        w = w.softmax(dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, s, d)
        return self.out_proj(o)


class CLIPMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = c.hidden_act
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x):
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x) if self.act == "quick_gelu" else F.gelu(x)
        return self.fc2(x)


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = CLIPAttention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = CLIPMLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class _Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embedding = nn.Embedding(c.max_position_embeddings, c.hidden_size)


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c.num_hidden_layers)])


class _TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class CLIPTextModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.text_model = _TextTransformer(c)

    def forward(self, ids):
        """Returns (last_hidden_state, hidden_states) where hidden_states[0] are the
        embeddings and hidden_states[i] the output of layer i (as transformers does)."""
        tm = self.text_model
        b, s = ids.shape
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(
            torch.arange(s, device=ids.device).unsqueeze(0))
        mask = torch.full((s, s), float("-inf"), device=ids.device).triu(1)[None, None]
        hs = [x]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
            hs.append(x)
        return tm.final_layer_norm(x), hs

    def encode(self, ids, clip_skip=1):
        """What SD feeds the UNet: final LN of the output of layer L-(clip_skip-1)."""
        last, hs = self.forward(ids)
        if clip_skip <= 1:
            return last
        return self.text_model.final_layer_norm(hs[-clip_skip])


def randomize_(model, seed):
    """Deterministic random weights with realistic scales (fan-in scaled matrices, small
    biases, LayerNorm gains near 1): harder for a conformance check than zero-ish init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                fan_in = p[0].numel()
                std = 0.02 if "embedding" in name else 1.0 / math.sqrt(fan_in)
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model


# ---------------------------------------------------------------------------------------
# File formats (no safetensors package on Debian 12: the format is simple enough)

_ST_DTYPES = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16),
              torch.bfloat16: ("BF16", None), torch.int64: ("I64", np.int64)}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor. Sorted by name, header padded to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dt, npdt = _ST_DTYPES[t.dtype]
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().astype(npdt).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = data[b:en]
        if e["dtype"] == "BF16":
            t = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16)
        else:
            npdt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}[e["dtype"]]
            t = torch.from_numpy(np.frombuffer(raw, dtype=npdt).copy())
        out[name] = t.reshape(e["shape"])
    return out


def state_dict_as(model, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def load_weights_as_f32(model, sd):
    """Load a (possibly f16/bf16) state dict, widening to float32: the reference computes
    with exactly the numbers stored in the file."""
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    return model


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_text_encoder_folder(root, model, dtype=torch.float32):
    """A diffusers-layout folder holding only the text encoder (what the text-side tests
    need); model_index.json lists just that component."""
    os.makedirs(os.path.join(root, "text_encoder"), exist_ok=True)
    write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "text_encoder": ["transformers", "CLIPTextModel"]})
    write_json(os.path.join(root, "text_encoder", "config.json"), model.config.to_json())
    save_safetensors(os.path.join(root, "text_encoder", "model.safetensors"),
                     state_dict_as(model, dtype), {"format": "pt"})
