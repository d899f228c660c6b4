#!/usr/bin/env python3
"""PyTorch reference of the CLIP vision tower and the two-tower CLIPModel (transformers'
CLIPVisionModelWithProjection / CLIPModel: same state-dict names and math, written from
the public description), sharing the text tower and encoder layers of sdref.py.

Names: vision_model.embeddings.{class_embedding, patch_embedding.weight,
position_embedding.weight}, vision_model.pre_layrnorm, vision_model.encoder.layers.N.*,
vision_model.post_layernorm, visual_projection.weight, text_projection.weight,
logit_scale; the text tower under text_model.* exactly as in CLIPTextModel.

Used by the bundled model's training (tools/train/) and by the image-classifier
conformance tests. Needs only Debian's python3-torch.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402

# CLIP's image normalisation (transformers' CLIPImageProcessor defaults)
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPVisionConfig:
    def __init__(self, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, image_size=224, patch_size=32, num_channels=3,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5):
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps

    def to_json(self):
        d = dict(self.__dict__)
        d.update({"model_type": "clip_vision_model"})
        return d


class _VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c.hidden_size))
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size, bias=False)
        n = (c.image_size // c.patch_size) ** 2 + 1
        self.position_embedding = nn.Embedding(n, c.hidden_size)

    def forward(self, px):
        b = px.shape[0]
        p = self.patch_embedding(px).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        x = torch.cat([cls, p], dim=1)
        return x + self.position_embedding.weight[None]


class CLIPVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.embeddings = _VisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.encoder = sdref._Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, px):
        """px: normalised pixels [B, 3, H, W]. Returns (last_hidden_state, pooled)."""
        x = self.pre_layrnorm(self.embeddings(px))
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        for layer in self.encoder.layers:
            x = layer(x, zero)
        return x, self.post_layernorm(x[:, 0])


def text_pooled(text_model, ids, eos_id):
    """transformers' CLIPTextTransformer pooled output: the final-LN state at the first
    end-of-text token of each row."""
    b, s = ids.shape
    x = text_model.embeddings.token_embedding(ids) + text_model.embeddings.position_embedding(
        torch.arange(s, device=ids.device).unsqueeze(0))
    mask = torch.full((s, s), float("-inf"), device=ids.device).triu(1)[None, None]
    for layer in text_model.encoder.layers:
        x = layer(x, mask)
    x = text_model.final_layer_norm(x)
    pos = (ids == eos_id).int().argmax(dim=1)
    return x, x[torch.arange(b, device=ids.device), pos]


class CLIPModel(nn.Module):
    def __init__(self, tc, vc, projection_dim=512):
        super().__init__()
        self.text_config, self.vision_config, self.projection_dim = tc, vc, projection_dim
        self.text_model = sdref._TextTransformer(tc)
        self.vision_model = CLIPVisionTransformer(vc)
        self.visual_projection = nn.Linear(vc.hidden_size, projection_dim, bias=False)
        self.text_projection = nn.Linear(tc.hidden_size, projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))

    def image_embeds(self, px):
        return self.visual_projection(self.vision_model(px)[1])

    def text_embeds(self, ids):
        return self.text_projection(text_pooled(self.text_model, ids, self.text_config.eos_token_id)[1])

    def forward(self, ids, px):
        t = F.normalize(self.text_embeds(ids), dim=-1)
        i = F.normalize(self.image_embeds(px), dim=-1)
        logits = self.logit_scale.exp() * i @ t.t()
        return logits  # [images, texts]

    def config_json(self):
        tj = self.text_config.to_json()
        tj.pop("architectures", None)
        tj["projection_dim"] = self.projection_dim
        return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": self.projection_dim,
                "logit_scale_init_value": 2.6592, "text_config": tj,
                "vision_config": self.vision_config.to_json(), "torch_dtype": "float32"}


def pixels_from_uint8(img):
    """uint8 [B, H, W, 3] (numpy or tensor) -> CLIP-normalised float [B, 3, H, W]."""
    x = torch.as_tensor(img).float().permute(0, 3, 1, 2) / 255.0
    m = torch.tensor(IMAGE_MEAN, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(IMAGE_STD, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
