#!/usr/bin/env python3
"""PyTorch side of the VAE benchmark: load a diffusers-layout folder's vae/ into the
reference AutoencoderKL (tools/ref/sdref_vae.py, float32) and time one decode of a
64x64x4 latent -> 512x512 image (or --encode: one encode of a 512x512 image), printing the
same key=value line as bench/bench_vae.

    # once: an SD 1.x-shaped VAE with random weights (float16 stored, ~160 MB)
    /usr/bin/python3 tools/ref/sdref_vae.py BUILD/bench-data/vae_sd15 --preset sd15 --dtype f16 --no-encoder
    # then, back to back on the same machine and thread count:
    BUILD/bench_vae BUILD/bench-data/vae_sd15/model --threads 2
    /usr/bin/python3 tools/bench/vae_torch.py BUILD/bench-data/vae_sd15/model --threads 2

GFLOP counts the same operations as sd_vae_decode_flops (convolutions, projections and
attention; multiply-add = 2). peak_rss_mib is the whole process's (model included).
"""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import sdref_vae  # noqa: E402


def flop_hooks(model, total):
    """Forward hooks that add the FLOPs of convs, linears and the attention matmuls to
    total[0] (negligible overhead, so they stay on during the timed pass)."""

    def conv_hook(m, inp, out):
        total[0] += 2.0 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, inp, out):
        total[0] += 2.0 * out.numel() * m.in_features

    def attn_hook(m, inp, out):
        b, c, h, w = inp[0].shape
        total[0] += 4.0 * b * (h * w) ** 2 * c

    hs = []
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            hs.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            hs.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, sdref_vae.Attention):
            hs.append(mod.register_forward_hook(attn_hook))
    return hs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--latent", default="64x64")
    ap.add_argument("--encode", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = sdref_vae.load_vae_folder(a.model)
    c = model.config
    h, w = (int(s) for s in a.latent.lower().split("x"))
    f = 2 ** (len(c.block_out_channels) - 1)
    g = torch.Generator().manual_seed(0)
    if a.encode:
        x = torch.rand(1, c.in_channels, h * f, w * f, generator=g) * 2 - 1
        fn = model.moments
    else:
        x = torch.randn(1, c.latent_channels, h, w, generator=g)
        fn = model.decode
    times, cpus, flops = [], [], [0.0]
    flop_hooks(model, flops)
    with torch.no_grad():
        for r in range(-1 if a.warmup else 0, a.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            flops[0] = 0.0
            fn(x)
            if r >= 0:
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    gflop = flops[0] / 1e9
    med = times[len(times) // 2]
    print(f"impl=pytorch-{torch.__version__} op={'encode' if a.encode else 'decode'} threads={a.threads} "
          f"latent={h}x{w} image={h * f}x{w * f} median_s={med:.3f} best_s={times[0]:.3f} "
          f"cpu_s={sum(cpus) / len(cpus):.3f} gflop={gflop:.1f} gflops={gflop / med:.1f} peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
