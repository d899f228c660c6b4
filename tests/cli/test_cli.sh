#!/usr/bin/env bash
# End-to-end tests of the safesd program: help, tokenize, encode, inspect, and bad input
# (clear one-line error, exit status 1 or 2, no partial output file).
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
# help
for c in "" tokenize encode inspect; do
  expect_rc 0 "help $c" $B $c --help
  grep -q "usage: safesd" <<<"$OUT" && ok || bad "help text of '$c'"
done
expect_rc 0 "help subcommand" $B help encode
grep -q -- "--clip-skip" <<<"$OUT" && ok || bad "help encode lists --clip-skip"
expect_rc 2 "no command" $B
expect_rc 2 "unknown command" $B frobnicate
expect_rc 0 version $B version

# tokenize with the bundled vocabulary
expect_rc 0 tokenize $B tokenize "a photo of a cat"
want="7	49406 320 1125 539 320 2368 49407 $(printf '49407 %.0s' $(seq 70))"
[ "$OUT" = "${want% }" ] && ok || bad "tokenize output: '$OUT'"
expect_rc 0 "tokenize --json --tokens" $B tokenize --json --tokens "Hello, World!"
grep -q '"tokens": \["<|startoftext|>", "hello</w>", ",</w>", "world</w>", "!</w>", "<|endoftext|>"\]' <<<"$OUT" && ok || bad "tokenize --json --tokens: $OUT"
expect_rc 0 "tokenize --pad 0" $B tokenize --pad 0 "cat"
[[ "$OUT" == "3	49406 2368 49407 0 0 "* ]] && ok || bad "padding with 0: $OUT"
printf 'a cat\nthe dog\n' > "$TMP/prompts.txt"
expect_rc 0 "tokenize -f" $B tokenize -f "$TMP/prompts.txt"
[ "$(wc -l <<<"$OUT")" = 2 ] && ok || bad "tokenize -f prints one line per input"
expect_rc 1 "invalid UTF-8" $B tokenize $'bad \xff byte'
one_line_error "UTF-8" "invalid UTF-8"
expect_rc 2 "tokenize without text" $B tokenize
expect_rc 1 "tokenize -f missing" $B tokenize -f "$TMP/no-such-file"

# a small random model (text encoder only) from the PyTorch reference
M="$TMP/clip_text_small_f32"
make_case "$M" --preset small --dtype f32 >/dev/null
expect_rc 0 encode $B encode -m "$M/model" -p "a red apple" -p "" -o "$TMP/e.npy"
"$PYTHON" -c "import numpy as np,sys; a=np.load(sys.argv[1]); sys.exit(0 if a.shape==(2,77,64) and a.dtype==np.float32 else 1)" "$TMP/e.npy" && ok || bad "encode output shape"
expect_rc 0 "encode --clip-skip 2 -t 1" $B encode -m "$M/model" -p "a red apple" --clip-skip 2 -t 1 -o "$TMP/e2.npy"
cmp -s "$TMP/e.npy" "$TMP/e2.npy" && bad "clip skip 2 changes the embedding" || ok
# determinism: same inputs, same thread count -> same bytes
expect_rc 0 "encode again" $B encode -m "$M/model" -p "a red apple" -p "" -o "$TMP/e3.npy"
cmp -s "$TMP/e.npy" "$TMP/e3.npy" && ok || bad "encode is not deterministic"
expect_rc 1 "clip skip past the layers" $B encode -m "$M/model" -p "x" --clip-skip 9
one_line_error "clip skip" "clip skip too large"
expect_rc 2 "encode without model" $B encode -p "x"
expect_rc 2 "encode bad --threads" $B encode -m "$M/model" -p x -t lots
expect_rc 1 "missing model" $B encode -m "$TMP/nope" -p x
one_line_error "nope" "missing model"
# unwritable output: error, and no file (partial or temporary) left behind
mkdir -p "$TMP/ro"; chmod 0555 "$TMP/ro"
if [ "$(id -u)" != 0 ]; then
  expect_rc 1 "unwritable output" $B encode -m "$M/model" -p x -o "$TMP/ro/e.npy"
  [ -z "$(ls -A "$TMP/ro")" ] && ok || bad "files left in an unwritable folder"
fi
expect_rc 1 "output in a missing folder" $B encode -m "$M/model" -p x -o "$TMP/missing-dir/e.npy"
one_line_error "missing-dir" "missing output folder"
# a full disk, simulated with a file-size limit (writes fail with EFBIG): error, no file left
rm -rf "$TMP/fsz"; mkdir -p "$TMP/fsz"
expect_rc 1 "write limit exceeded" bash -c "trap '' XFSZ; ulimit -f 4; exec \"\$0\" \"\$@\"" $B encode -m "$M/model" -p x -o "$TMP/fsz/e.npy"
one_line_error "fsz/e.npy" "write failure"
[ -z "$(ls -A "$TMP/fsz")" ] && ok || bad "partial file left after a failed write: $(ls "$TMP/fsz")"

# inspect
expect_rc 0 inspect $B inspect "$M/model"
grep -q "text_encoder" <<<"$OUT" && grep -q "unet *missing" <<<"$OUT" && ok || bad "inspect text: $OUT"
expect_rc 0 "inspect --json" $B inspect --json "$M/model"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); c=r['components']; sys.exit(0 if c['text_encoder']['present'] and c['text_encoder']['config']['layers']==3 and not c['unet']['present'] else 1)" <<<"$OUT" && ok || bad "inspect --json content"
# a corrupt model: truncated weights
C="$TMP/corrupt_model"; rm -rf "$C"; cp -r "$M/model" "$C"
truncate -s 1000 "$C/text_encoder/model.safetensors"
expect_rc 1 "truncated weights" $B inspect "$C"
one_line_error "model.safetensors" "truncated weights"
expect_rc 1 "encode with truncated weights" $B encode -m "$C" -p x
# garbage instead of a checkpoint
head -c 4096 /dev/urandom > "$TMP/garbage.safetensors"
expect_rc 1 "garbage file" $B inspect "$TMP/garbage.safetensors"
one_line_error "garbage.safetensors" "garbage file"

summary
