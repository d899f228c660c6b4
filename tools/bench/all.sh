#!/usr/bin/env bash
# Every benchmark of docs/performance.md, safesd vs PyTorch back to back, at SD 1.5 shapes:
# text encoder (batch 2 × 77), one guided UNet step (batch 2, 64×64), VAE decode (512 px).
#   tools/bench/all.sh [BUILD_DIR] [THREADS]          (about 10 minutes on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}; threads=${2:-$(nproc)}
echo "## text encoder"; "$here/text_encoder.sh" "$build" 3 "$threads"
echo "## UNet"; BENCH_REPEAT=2 "$here/unet.sh" "$build" 2 "$threads" f16
echo "## VAE decode"; "$here/vae.sh" "$build" 1 "$threads" f16
