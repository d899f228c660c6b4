#!/usr/bin/env bash
# Input edge cases: numbers with a leading space, a sign, trailing text or overflow are usage
# errors in every subcommand; --steps over the scheduler's limit is refused before any work,
# naming the limit; invalid UTF-8 in a prompt is a clear error that does not echo the raw
# bytes (generate -p/-n, check, encode); inspect escapes control characters of tensor names;
# a file argument that is a directory or a FIFO is an error at once (never a hang).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
M="$SRC/models/safesd-emoji"
O="$TMP/inputs"; rm -rf "$O"; mkdir -p "$O"
P="red apple, noto emoji"
T="timeout -s KILL 30"

# ---- numbers ------------------------------------------------------------------------------
while IFS='|' read -r cmd opt val; do
  [ -z "$cmd" ] && continue
  case $cmd in
    generate) expect_rc 2 "generate $opt '$val'" $B generate -q -p "$P" $opt "$val" -o "$O/n.png" ;;
    demo) expect_rc 2 "demo $opt '$val'" $B demo -q $opt "$val" -o "$O/demo" ;;
    eval) expect_rc 2 "eval $opt '$val'" $B eval $opt "$val" -o "$O/eval" ;;
    calibrate) expect_rc 2 "calibrate $opt '$val'" $B calibrate --unsafe x --benign y $opt "$val" ;;
    tokenize) expect_rc 2 "tokenize $opt '$val'" $B tokenize $opt "$val" cat ;;
    edit) expect_rc 2 "edit uce $opt '$val'" $B edit uce -m "$M" --erase x $opt "$val" -o "$O/e" ;;
  esac
done <<'EOF'
generate|-s| -5
generate|-s|+5
generate|-s|5x
generate|-s|18446744073709551616
generate|-s|0x10
generate|--steps| 5
generate|--steps|+5
generate|--steps|1001
generate|-W| 64
generate|-b|+2
generate|-t|1.0
generate|--cfg-scale| 7
generate|--cfg-scale|+7
generate|--cfg-scale|0x10
generate|--cfg-scale|1e999
generate|--cfg-scale|nan
generate|--safety-weight|.5x
generate|--max-pixels|-1
generate|--max-pixels|4096x4096
demo|--seed| 7
demo|--steps|+20
demo|--cfg-scale|7,5
eval|--steps| 5
eval|--shard| 0/2
eval|--shard|+0/2
eval|--emi-seed|-1
calibrate|--target-fpr| 0.1
tokenize|--pad| 0
edit|--lambda| 0.5
edit|--threads|+1
EOF
[ -z "$(ls -A "$O")" ] && ok || bad "usage errors wrote: $(ls "$O")"

# ---- --steps: the scheduler's limit, named, before any work --------------------------------
expect_rc 1 "--steps 1000 on DDIM with steps_offset 1" $T $B generate -q -p "$P" --steps 1000 -o "$O/s.png"
one_line_error "at most 999" "--steps over the scheduler's limit"
[ ! -e "$O/s.png" ] && ok || bad "--steps 1000: an image was written"

# ---- invalid UTF-8: a clear error, the bytes escaped ----------------------------------------
bad_text=$'bad \xff\x1b[31m text'
raw() { LC_ALL=C grep -q $'[\x1b\xff]' <<<"$ERR"; }
for what in "generate -p" "generate -n" "check" "encode"; do
  case $what in
    "generate -p") expect_rc 1 "$what" $B generate -q -p "$bad_text" -o "$O/u.png" ;;
    "generate -n") expect_rc 1 "$what" $B generate -q -p "$P" -n "$bad_text" -o "$O/u.png" ;;
    check) expect_rc 1 "$what" $B check "$bad_text" ;;
    encode) expect_rc 1 "$what" $B encode -m "$M" -p "$bad_text" ;;
  esac
  one_line_error "not valid UTF-8" "$what with invalid UTF-8"
  grep -qF '\xff\x1b[31m' <<<"$ERR" && ok || bad "$what: the bytes are not shown escaped: $ERR"
  raw && bad "$what: raw bytes echoed: $ERR" || ok
  grep -q "semantic" <<<"$ERR" && bad "$what: blamed on the semantic detector: $ERR" || ok
done
[ ! -e "$O/u.png" ] && ok || bad "an image was written for an invalid prompt"

# ---- inspect escapes what comes from the file --------------------------------------------------
E="$O/escapes"; cp -rs "$(cd "$M" && pwd)" "$E"
f="$E/unet/diffusion_pytorch_model.safetensors"; real=$(readlink -f "$f"); rm "$f"
"$PYTHON" - "$real" "$f" <<'PY'
import json, struct, sys
src, dst = sys.argv[1:]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["evil\x1b[31mred\x07.weight"] = {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]}  # an empty tensor
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
expect_rc 0 "inspect, a tensor name with escapes" $B inspect "$E"
grep -qF 'evil\x1b[31mred\x07' <<<"$OUT" && ok || bad "inspect: the name is not shown escaped: $(grep evil <<<"$OUT")"
LC_ALL=C grep -q $'[\x1b\x07]' <<<"$OUT" && bad "inspect printed raw control characters" || ok
expect_rc 0 "inspect --json, the same" $B inspect --json "$E"
LC_ALL=C grep -q $'[\x1b\x07]' <<<"$OUT" && bad "inspect --json printed raw control characters" || ok

# ---- file arguments that are not regular files: an error, at once ---------------------------
mkdir -p "$O/adir"; mkfifo "$O/afifo"
expect_rc 1 "tokenize -f DIR" $T $B tokenize -f "$O/adir"
one_line_error "is a directory" "tokenize -f DIR"
expect_rc 1 "tokenize -f FIFO" $T $B tokenize -f "$O/afifo"
one_line_error "is a FIFO" "tokenize -f FIFO"
expect_rc 1 "generate --concepts FIFO" $T $B generate -q -p "$P" --concepts "$O/afifo" --steps 2 -o "$O/c.png"
one_line_error "is a FIFO" "generate --concepts FIFO"
expect_rc 1 "generate --concepts DIR" $T $B generate -q -p "$P" --concepts "$O/adir" --steps 2 -o "$O/c.png"
one_line_error "is a directory" "generate --concepts DIR"
expect_rc 1 "check --concepts FIFO" $T $B check --concepts "$O/afifo" "a cat"
one_line_error "is a FIFO" "check --concepts FIFO"
expect_rc 1 "demo --prompts DIR" $T $B demo -q --prompts "$O/adir" -o "$O/demo"
one_line_error "is a directory" "demo --prompts DIR"
expect_rc 1 "calibrate --unsafe FIFO" $T $B calibrate --unsafe "$O/afifo" --benign "$O/afifo"
one_line_error "FIFO" "calibrate --unsafe FIFO"
[ ! -e "$O/c.png" ] && [ ! -e "$O/demo" ] && ok || bad "outputs written after an input error"
rm -rf "$O"
summary
