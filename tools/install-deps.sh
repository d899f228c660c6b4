#!/bin/sh
# Install everything safesd needs to build, test and benchmark on Debian 12 (bookworm).
# Every dependency is a Debian package; nothing is downloaded at build or run time.
#   build:  cmake, a C11 compiler, pkg-config
#   math:   libdnnl-dev (oneDNN: convolutions, bf16 matrix products), libopenblas-dev (BLAS
#           for matmuls and the fallback convolutions), liblapacke-dev (LAPACK's C interface: the
#           Cholesky solves of `safesd edit uce`)
#   text:   libpcre2-dev (CLIP pre-tokenizer regex), libutf8proc-dev (Unicode tables),
#           zlib1g-dev (the bundled gzip'd CLIP vocabulary)
#   files:  libjansson-dev (JSON: safetensors headers, configs), libpng-dev (PNG output)
#   safety: wordnet-dev (libwordnet C API) + wordnet-base (the WordNet 3.0 database) for the
#           lexical detector's lexicon expansion
#   tests:  libcmocka-dev, python3-torch + python3-numpy (PyTorch reference), python3-pil
#           (PNG reading in the reference and training scripts),
#           clang + libclang-rt-14-dev (libFuzzer smoke run)
set -eu
PKGS="build-essential cmake pkg-config libdnnl-dev libopenblas-dev liblapacke-dev libpcre2-dev libutf8proc-dev zlib1g-dev
libjansson-dev libpng-dev wordnet-dev wordnet-base libcmocka-dev python3 python3-torch python3-numpy python3-pil clang libclang-rt-14-dev"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
