#!/usr/bin/env python3
"""Make a CLIP text-encoder conformance case: a random-weight model (diffusers-layout
folder), token ids, and the PyTorch outputs as .npy.

    clip_text_case.py OUT_DIR [--preset sd15|small] [--dtype f32|f16|bf16] [--seed N]

Writes OUT_DIR/model/ (model_index.json + text_encoder/), ids.npy [B,77] int64,
last_hidden_state.npy [B,77,D], clip_skip2.npy (penultimate + final LN), and
penultimate_raw.npy (no final LN).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdref  # noqa: E402

PRESETS = {
    # SD 1.x: CLIP ViT-L/14 text tower
    "sd15": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    # SD 2.x: OpenCLIP ViT-H/14 text tower as diffusers stores it (23 of its 24 layers: SD 2
    # uses the penultimate), GELU, pad 0
    "sd21": dict(hidden_size=1024, num_hidden_layers=23, num_attention_heads=16, intermediate_size=4096,
                 hidden_act="gelu", pad_token_id=0),
    # a quick one for the default test run
    "small": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128),
    # OpenCLIP-style activation (GELU), pad 0
    "small-gelu": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                       hidden_act="gelu", pad_token_id=0),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    cfg = sdref.CLIPTextConfig(**PRESETS[a.preset])
    model = sdref.randomize_(sdref.CLIPTextModel(cfg), a.seed).eval()
    os.makedirs(a.out, exist_ok=True)
    sdref.write_text_encoder_folder(os.path.join(a.out, "model"), model, dtype)
    # The reference computes in float32 with exactly the stored numbers.
    sdref.load_weights_as_f32(model, sdref.state_dict_as(model, dtype))
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.full((3, 77), cfg.pad_token_id, dtype=torch.int64)
    ids[:, 0] = cfg.bos_token_id
    # row 0: a full-length prompt; row 1: short prompt; row 2: empty prompt
    ids[0, 1:76] = torch.randint(0, 49406, (75,), generator=g)
    ids[0, 76] = cfg.eos_token_id
    ids[1, 1:9] = torch.randint(0, 49406, (8,), generator=g)
    ids[1, 9] = cfg.eos_token_id
    ids[2, 1] = cfg.eos_token_id
    with torch.no_grad():
        last, hs = model(ids)
        skip2 = model.encode(ids, clip_skip=2)
    np.save(os.path.join(a.out, "ids.npy"), ids.numpy())
    np.save(os.path.join(a.out, "last_hidden_state.npy"), last.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "clip_skip2.npy"), skip2.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "penultimate_raw.npy"), hs[-2].numpy().astype(np.float32))
    print(f"wrote {a.out}: preset {a.preset}, dtype {a.dtype}, output scale "
          f"{last.abs().max().item():.3g}")


if __name__ == "__main__":
    main()
