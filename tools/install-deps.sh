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
#   server: libmicrohttpd-dev (GNU libmicrohttpd: `safesd serve`'s HTTP), curl (its tests);
#           npm's official `openai` client for the OpenAI-route test (tests/node, `npm ci`,
#           only when npm is present: the test skips without it)
#   safety: wordnet-dev (libwordnet C API) + wordnet-base (the WordNet 3.0 database) for the
#           lexical detector's lexicon expansion and English dictionary and the learned
#           detector's training corpus; libicu-dev (ICU: the Unicode confusables of the spoof
#           checker), libstemmer-dev (Snowball stemmers), icu-devtools (uconv:
#           tools/concepts/gen_zh_hant.py, for editing the bank only), hunspell-tools +
#           hunspell-pl + hunspell-uk (unmunch and the dictionaries:
#           tools/concepts/gen_inflections.py, for editing the bank only)
#   tests:  libcmocka-dev, python3-torch + python3-numpy (PyTorch reference), python3-pil
#           (PNG reading in the reference and training scripts),
#           clang + libclang-rt-14-dev (libFuzzer smoke run)
#   cluster: openmpi-bin (mpirun: `safesd eval` shards across processes and machines; safesd
#           links no MPI library, it reads the launcher's rank; the suite's cli.eval_mpi runs
#           `mpirun -np 2`) and libopenmpi-dev (MPI headers for programs that embed safesd)
set -eu
PKGS="build-essential cmake pkg-config libdnnl-dev libopenblas-dev liblapacke-dev libpcre2-dev libutf8proc-dev zlib1g-dev
libjansson-dev libpng-dev libmicrohttpd-dev curl wordnet-dev wordnet-base libicu-dev libstemmer-dev icu-devtools hunspell-tools hunspell-pl hunspell-uk libcmocka-dev python3 python3-torch python3-numpy python3-pil clang libclang-rt-14-dev
openmpi-bin libopenmpi-dev"
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
# the openai npm client of tests/cli/test_serve_openai_npm.sh, pinned by tests/node/package-lock.json
if command -v npm >/dev/null 2>&1; then
  (cd "$(dirname "$0")/../tests/node" && npm ci --no-audit --no-fund --silent) || echo "npm ci in tests/node failed: cli.serve_openai_npm will be skipped"
fi
