#!/bin/sh
# Train the bundled model on one GPU, in about eight minutes (the shipped model's run).
#
#   tools/train/train_gpu.sh DATA_DIR WORK_DIR [OUT_DIR]
#
# DATA_DIR: the data set of emoji_data.py (images.npy, or images.npz as written by
# np.savez_compressed, and captions.json). WORK_DIR: the stages' checkpoints. OUT_DIR:
# the model folder written (default models/safesd-emoji; its model card and concept
# bank are kept). Run from the repository root, with a PyTorch that sees a GPU (PYTHON=
# names the interpreter; default python3).
#
# The tokenizer is the shipped one (the tokenizer stage reproduces it exactly from the
# captions; copying it saves that minute). Each stage's step count comes from its time
# budget and the GPU's measured speed, and is recorded in WORK_DIR/<stage>/done; to
# repeat a run, pass those counts as --steps STAGE=N instead of --time-budget.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DATA_DIR WORK_DIR [OUT_DIR]" >&2; exit 2; }
data=$1 work=$2 out=${3:-models/safesd-emoji}
mkdir -p "$work/tokenizer"
cp models/safesd-emoji/tokenizer/vocab.json models/safesd-emoji/tokenizer/merges.txt "$work/tokenizer/"
exec "${PYTHON:-python3}" tools/train/train.py "$work" --data "$data" --out "$out" --device cuda \
    --stages clip,vae,cache,unet,export \
    --time-budget clip=100 --time-budget vae=80 --time-budget unet=280
