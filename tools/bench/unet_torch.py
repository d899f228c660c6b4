#!/usr/bin/env python3
"""PyTorch side of the UNet benchmark: load the same diffusers-layout folder into the
reference UNet (tools/ref/sdref_unet.py, float32) and time one forward of batch 2 × 64×64
latents × 77 context tokens (torch.no_grad), printing the same key=value line as
bench_unet. FLOPs are counted with hooks (convolutions, linears, attention products;
multiply-add = 2), the same things sd_unet_flops counts."""
import argparse
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import sdref_unet  # noqa: E402


def count_flops(model, x, t, ctx):
    total = [0.0]

    def conv_hook(m, i, o):
        total[0] += 2.0 * o.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, i, o):
        total[0] += 2.0 * o.numel() * m.in_features

    def attn_hook(m, i, o):
        q = i[0]
        kv = i[1] if len(i) > 1 and i[1] is not None else q
        total[0] += 4.0 * q.shape[0] * q.shape[1] * kv.shape[1] * m.heads * m.head_dim

    hs = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hs.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hs.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, sdref_unet.Attention):
            hs.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(x, t, ctx)
    for h in hs:
        h.remove()
    return total[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--ctx", type=int, default=77)
    ap.add_argument("--flops", action="store_true", help="count FLOPs with hooks (one extra forward)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: the model and its inputs in torch.bfloat16 (autocast fails in 1.13's group_norm)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = sdref_unet.load_unet_folder(a.model)
    h, w = (int(v) for v in a.size.split("x"))
    g = torch.Generator().manual_seed(1)
    x = torch.randn((a.batch, model.config.in_channels, h, w), generator=g)
    ctx = torch.randn((a.batch, a.ctx, model.config.cross_attention_dim), generator=g)
    times, cpu = [], []
    if a.precision == "bf16":
        model, x, ctx = model.to(torch.bfloat16), x.to(torch.bfloat16), ctx.to(torch.bfloat16)
        emb = sdref_unet.timestep_embedding  # the reference computes it in float32
        sdref_unet.timestep_embedding = lambda *args, **kw: emb(*args, **kw).to(torch.bfloat16)
    with torch.no_grad():
        for _ in range(a.warmup):
            model(x, 981.0, ctx)
        for _ in range(a.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            model(x, 981.0, ctx)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    med = times[len(times) // 2]
    gflop = count_flops(model, x, 981.0, ctx) / 1e9 if a.flops else float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"impl=pytorch-{torch.__version__} precision={a.precision} threads={a.threads} batch={a.batch} latent={h}x{w} "
          f"median_s={med:.3f} best_s={times[0]:.3f} cpu_s={cpu[len(cpu) // 2]:.1f} gflop={gflop:.1f} gflops={gflop / med:.1f} "
          f"peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
