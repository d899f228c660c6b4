#!/usr/bin/env python3
"""How much bf16 compute changes the bundled model's images: PSNR and SSIM of each image
generated with --precision bf16 against the same prompt and seed in fp32.

On a CPU without native bf16 (AVX512-BF16/AMX) the bf16 images come from the emulation
(SAFESD_BF16_EMULATE=1: fp32 kernels on bf16-rounded inputs and weights), which this script
sets; the line it prints says which one ran.

    tools/bench/precision_bundled.py [--safesd build/safesd] [--prompts N] [--steps 20]

SSIM: Wang et al. 2004, Gaussian window 11×11 σ 1.5, K1 0.01, K2 0.03, on each RGB channel
of the 8-bit images, averaged. Needs numpy and PIL (python3-numpy, python3-pil)."""
import argparse, csv, math, os, subprocess, sys, tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "models", "safesd-emoji")


def gauss_filter(x, sigma=1.5, size=11):
    k = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    x = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 0, x)
    return np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, x)


def ssim(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch].astype(np.float64), b[:, :, ch].astype(np.float64)
        mx, my = gauss_filter(x), gauss_filter(y)
        sxx = gauss_filter(x * x) - mx * mx
        syy = gauss_filter(y * y) - my * my
        sxy = gauss_filter(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out.append(m.mean())
    return float(np.mean(out))


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--safesd", default=os.path.join(HERE, "..", "..", "build", "safesd"))
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    with open(os.path.join(MODEL, "eval", "heldout.csv"), encoding="utf-8", newline="") as f:
        prompts = [r[0] for r in csv.reader(l for l in f if not l.startswith("#"))][1:]
    prompts = prompts[: a.prompts]
    env = dict(os.environ, SAFESD_BF16_EMULATE="1")
    ps, ss = [], []
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    mode = "native" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "emulated"
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(prompts):
            imgs = []
            for prec in ("fp32", "bf16"):
                out = os.path.join(tmp, f"{i}-{prec}.png")
                r = subprocess.run([a.safesd, "generate", "-q", "-p", p, "-s", str(1000 + i), "--steps", str(a.steps),
                                    "--precision", prec, "--safety", "off", "-o", out],
                                   env=env, capture_output=True, text=True)
                if r.returncode:
                    sys.exit(f"safesd generate failed: {r.stderr.strip()}")
                imgs.append(np.asarray(Image.open(out).convert("RGB")))
            ps.append(psnr(*imgs))
            ss.append(ssim(*imgs))
    finite = [p for p in ps if math.isfinite(p)]
    print(f"bf16={mode} images={len(ps)} steps={a.steps} identical={len(ps) - len(finite)} "
          f"psnr_db_median={np.median(finite) if finite else math.inf:.1f} psnr_db_min={min(ps):.1f} "
          f"ssim_mean={np.mean(ss):.4f} ssim_min={min(ss):.4f}")


if __name__ == "__main__":
    main()
