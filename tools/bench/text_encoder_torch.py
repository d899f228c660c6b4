#!/usr/bin/env python3
"""PyTorch side of the text-encoder benchmark: load the same diffusers-layout folder
into the reference CLIP text model and time one pass of batch 2 × 77 (float32,
torch.no_grad), printing the same key=value line as bench_text_encoder."""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import sdref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg_json = json.load(open(os.path.join(a.model, "text_encoder", "config.json")))
    keys = sdref.CLIPTextConfig().__dict__.keys()
    cfg = sdref.CLIPTextConfig(**{k: v for k, v in cfg_json.items() if k in keys})
    model = sdref.CLIPTextModel(cfg).eval()
    sdref.load_weights_as_f32(model, sdref.load_safetensors(os.path.join(a.model, "text_encoder", "model.safetensors")))
    ids = (torch.arange(2 * 77) * 7919 % (cfg.vocab_size - 2)).reshape(2, 77)
    times = []
    with torch.no_grad():
        model(ids)
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - t0)
    times.sort()
    d, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    T = 2 * 77
    gflop = L * (2 * T * d * d * 4 + 2 * T * d * i * 2 + 2.0 * 2 * 77 * 77 * d) / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"impl=pytorch-{torch.__version__} threads={a.threads} median_s={times[len(times)//2]:.4f} "
          f"best_s={times[0]:.4f} gflop={gflop:.2f} gflops={gflop / times[len(times)//2]:.1f} peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
