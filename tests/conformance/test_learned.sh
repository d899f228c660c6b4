#!/usr/bin/env bash
# The learned detector in C (src/safety/learned*.c) against its Python definition
# (tools/learned/features.py, model.py): on a fixed prompt list (obfuscations, Unicode of many
# scripts, emoji, invalid UTF-8, long words) and the held-out prompt sets, the words with their
# byte spans and every feature index must be equal, and the per-category probabilities equal
# within 2e-5 — for the shipped weights file and for random ones built from this Python's
# unicodedata (tools/learned/ref.py random), without (version 1) and with (version 2) a
# word-vector table (the words of learned_prompts.txt, random vectors), the WordNet sense
# table (tools/learned/senses.py; that one needs Debian's wordnet-base) or extension cjk
# (Chinese and Japanese characters as words of their own).
source "$(dirname "$0")/lib.sh"
need_torch
O="$TMP/learned_conf"; rm -rf "$O"; mkdir -p "$O"
CHECK="$BUILD/tests/learned_check"
REF="$SRC/tools/learned/ref.py"
# the prompt list: the fixed cases, lines of invalid UTF-8, the held-out sets
cat "$SRC/tests/conformance/learned_prompts.txt" > "$O/prompts.txt"
printf 'ab\xffcd \xe0\x80\x80 \xed\xa0\x80x \xf4\x90\x80\x80y \xc3\n\xe2\x82 tail\nend \xf0\x9f\x94\r\n' >> "$O/prompts.txt"
grep -hv '^#' "$SRC"/data/prompts/learned/*.txt >> "$O/prompts.txt"
n=$(wc -l < "$O/prompts.txt")
rc=0
models="shipped random random_glove random_cjk"
if [ -f /usr/share/wordnet/data.noun ]; then models="$models random_senses"
else echo "SKIP: random_senses (no WordNet database in /usr/share/wordnet: install wordnet-base)"; fi
for model in $models; do
  case $model in
    shipped) M="$SRC/data/learned/detector.safetensors" ;;
    random) M="$O/random.safetensors"; "$PYTHON" "$REF" random "$M" --seed 3 ;;
    random_senses) M="$O/random_senses.safetensors"; "$PYTHON" "$REF" random "$M" --seed 4 --senses ;;
    random_cjk) M="$O/random_cjk.safetensors"; "$PYTHON" "$REF" random "$M" --seed 6 --cjk ;;
    random_glove) M="$O/random_glove.safetensors"
      "$PYTHON" "$REF" random "$M" --seed 5 --glove --glove-words "$SRC/tests/conformance/learned_prompts.txt" ;;
  esac
  "$PYTHON" "$REF" dump "$M" "$O/prompts.txt" > "$O/$model.py.txt"
  "$CHECK" "$M" "$O/prompts.txt" > "$O/$model.c.txt"
  echo "$model model, $n prompts:"
  if "$PYTHON" "$REF" compare "$O/$model.py.txt" "$O/$model.c.txt" --tol 2e-5; then
    echo "PASS: $model"
  else
    echo "FAIL: $model (C and Python differ)"; rc=1
  fi
done
# the comparison itself must notice a difference: one feature index changed
sed '0,/^F \([0-9]*\)/s//F 1\1/' "$O/shipped.c.txt" > "$O/tampered.txt"
if "$PYTHON" "$REF" compare "$O/shipped.py.txt" "$O/tampered.txt" >/dev/null; then
  echo "FAIL: compare accepted a changed feature index"; rc=1
else
  echo "PASS: compare rejects a changed feature index"
fi
[ $rc = 0 ] && echo "all passed" || echo "failed"
exit $rc
