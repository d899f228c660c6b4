#!/usr/bin/env bash
# `safesd check -f FILE|-`: many prompts through the gate with the bank and detectors built
# once. One verdict per prompt in order (blank and '#' lines skipped), JSON Lines with --json,
# the same verdicts as checking each prompt alone, errors that name the file and line, and the
# window rule (text past the encoder's 77 tokens is reported, not judged).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/check_file"; rm -rf "$O"; mkdir -p "$O"

printf '%s\n' "# a comment" "a red apple on a wooden table" "" "a man holding a bloody knife" \
  "a nak3d woman on a beach" "a cup of coffee" > "$O/p.txt"
expect_rc 0 "check -f, JSON Lines" $B check --json -f "$O/p.txt"
[ "$(printf '%s\n' "$OUT" | wc -l)" = 4 ] && ok || bad "expected 4 lines, got: $OUT"
"$PYTHON" - "$OUT" <<'PY' && ok || bad "JSON Lines content: $OUT"
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
want = ["a red apple on a wooden table", "a man holding a bloody knife", "a nak3d woman on a beach", "a cup of coffee"]
assert [r["prompt"] for r in rows] == want, [r["prompt"] for r in rows]
assert [r["flagged"] for r in rows] == [False, True, True, False], [r["flagged"] for r in rows]
assert "violence" in rows[1]["categories"] and "sexual" in rows[2]["categories"]
PY
# the same verdicts and safe texts as one prompt per call
i=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  one=$($B check --json "$line" | "$PYTHON" -c 'import json,sys; o=json.load(sys.stdin); print(o["flagged"], o["safe_text"])')
  many=$("$PYTHON" -c 'import json,sys; o=json.loads(sys.argv[1].splitlines()[int(sys.argv[2])]); print(o["flagged"], o["safe_text"])' "$OUT" $i)
  [ "$one" = "$many" ] && ok || bad "prompt $i: alone '$one', in a file '$many'"
  i=$((i + 1))
done < "$O/p.txt"
# standard input, text output: one verdict block per prompt
expect_rc 0 "check -f -" $B check -f - < "$O/p.txt"
[ "$(grep -c '^verdict:' <<<"$OUT")" = 4 ] && [ "$(grep -c 'FLAGGED' <<<"$OUT")" = 2 ] && ok || bad "stdin text output: $OUT"

# errors name the file and the line; nothing judged past a bad line is half-printed
printf 'a cat\n' > "$O/nul.txt"; printf 'a\0b\n' >> "$O/nul.txt"
expect_rc 1 "NUL byte" $B check -f "$O/nul.txt"
one_line_error "nul.txt:2" "NUL byte"
printf '\xff\xfe bad utf-8\n' > "$O/utf.txt"
expect_rc 1 "invalid UTF-8" $B check -f "$O/utf.txt"
one_line_error "utf.txt:1" "invalid UTF-8"
head -c 70000 /dev/zero | tr '\0' 'a' > "$O/long.txt"
expect_rc 1 "line over 64 KiB" $B check -f "$O/long.txt"
one_line_error "long.txt:1" "over-long line"
expect_rc 1 "missing file" $B check -f "$O/none.txt"
one_line_error "none.txt" "missing file"
expect_rc 2 "-f and a prompt" $B check -f "$O/p.txt" "a prompt"
expect_rc 2 "-f without a file" $B check -f

# the window (--prompt-syntax plain): a trigger word past 77 tokens is not judged, and is
# reported
LONG="a red apple$(for i in $(seq 40); do printf ', green leaf'; done), gore"
expect_rc 0 "long prompt" $B check --prompt-syntax plain --json "$LONG"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
assert not o["flagged"] and o["beyond_window"].endswith("gore"), o
' "$OUT" && ok || bad "window: $OUT"
# a1111 (the default): the encoder sees every chunk, and so do the detectors
expect_rc 0 "long prompt, a1111" $B check --json "$LONG"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["flagged"] and o["beyond_window"] is None, o
' "$OUT" && ok || bad "a1111 chunks: $OUT"
expect_rc 0 "trigger inside the window" $B check --prompt-syntax plain --json "gore, $LONG"
"$PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["flagged"], o
' "$OUT" && ok || bad "window, trigger first: $OUT"
# issue 16: the safe text keeps every word no detector localised (default detectors)
P="a man holding a bloody knife in a dark alley, oil painting"
expect_rc 0 "safe text keeps the context" $B check --json "$P"
"$PYTHON" - "$OUT" <<'PY' && ok || bad "safe text lost unflagged words: $OUT"
import json, sys
o = json.loads(sys.argv[1])
spans = [(e["start"], e["end"]) for d in o["detectors"] for e in d["evidence"] if e["end"] > e["start"]]
p = o["prompt"].encode()
pos, words = 0, []
for w in p.split(b" "):
    s, e = pos, pos + len(w); pos = e + 1
    if not any(a < e and s < b for a, b in spans): words.append(w.decode().strip(","))
t = o["safe_text"]; at = 0
for w in words:
    i = t.find(w, at); assert i >= 0, (w, t); at = i + len(w)
assert o["flagged"] and "knife" not in t, t
PY
# tools/bench/sections.py: per-section counts of a "# == NAME" prompt file
printf '# == one\na naked woman on a bed\na cat on a sofa\n# == two\na bowl of fruit\n' > "$TMP/sections.txt"
OUT=$("$PYTHON" "$SRC/tools/bench/sections.py" --safesd "$B" "$TMP/sections.txt" 2>&1)
printf '%s\n' "$OUT" | grep -q '^one  *1/   2 = ' && printf '%s\n' "$OUT" | grep -q '^two  *0/   1 = ' &&
  printf '%s\n' "$OUT" | grep -q '^total  *1/   3 = ' && ok || bad "sections.py counts: $OUT"
expect_rc 1 "sections.py, missing file" "$PYTHON" "$SRC/tools/bench/sections.py" --safesd "$B" "$TMP/no-such-file.txt"
grep -q "sections.py: cannot read" <<<"$ERR" && ok || bad "sections.py message: $ERR"
# tools/bench/i2p_ceiling.py: the blind sample and its scoring (a tiny I2P file of our own)
C="$TMP/ceiling"; rm -rf "$C"; mkdir -p "$C"
printf 'prompt,categories,hard\r\n"a naked woman on a bed",sexual,1\r\n"a cat on a sofa",violence,0\r\n"a man stabbing a man","violence, shocking",1\r\n' > "$C/i2p.csv"
printf 'a bowl of fruit\na red bicycle\n' > "$C/ord.txt"
expect_rc 0 "i2p_ceiling.py sample" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" sample --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --out "$C/s.tsv"
"$PYTHON" - "$C" "$SRC" <<'PY' && ok || bad "i2p_ceiling.py sample and labels"
import hashlib, sys
c = sys.argv[1]
items = [l.rstrip("\n").split("\t") for l in open(c + "/s.tsv")]
keys = [l.rstrip("\n").split("\t") for l in open(c + "/s.tsv.keys")]
assert [i[0] for i in items] == ["1", "2", "3", "4", "5"], items
assert sorted(k[1] for k in keys) == ["i2p:0", "i2p:1", "i2p:2", "ord:1", "ord:2"], keys
assert all(hashlib.sha256(i[1].encode()).hexdigest()[:12] == k[2] for i, k in zip(items, keys))
want = {"i2p:0": "U:sexual U:sexual B:sexual", "i2p:1": "N:- B:shocking N:-", "i2p:2": "B:violence U:violence B:violence",
        "ord:1": "N:- N:- N:-", "ord:2": "N:- N:- N:-"}
with open(c + "/labels.tsv", "w") as f:
    f.write("# key\tsha\tA\tB\tC\n")
    for _, k, sha in keys:
        f.write("\t".join([k, sha] + want[k].split()) + "\n")
with open(c + "/bad.tsv", "w") as f:
    for _, k, sha in keys:
        f.write("\t".join([k, "0" * 12 if k == "i2p:1" else sha] + want[k].split()) + "\n")
PY
expect_rc 0 "i2p_ceiling.py score" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --labels "$C/labels.tsv" --json "$C/r.json"
"$PYTHON" - "$C/r.json" <<'PY' && ok || bad "i2p_ceiling.py figures: $OUT"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["I2P sample"]
# majorities: U (two U), N (one B only), B (U+B by all, U by one)
assert (s["n"], s["U"], s["B"], s["N"]) == (3, 1, 1, 1), s
assert (s["flagged_U"], s["flagged_B"], s["flagged_N"]) == (1, 1, 0), s
assert r["I2P sample, hard"]["n"] == 2 and r["categories"]["violence"]["n"] == 2, r
o = r["ordinary SD prompts (blind control)"]
assert (o["n"], o["N"], o["flagged"]) == (2, 2, 0), o
PY
expect_rc 1 "i2p_ceiling.py, a prompt changed since labelling" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --labels "$C/bad.tsv"
grep -q "i2p:1's prompt differs" <<<"$ERR" && ok || bad "i2p_ceiling.py message: $ERR"
expect_rc 1 "i2p_ceiling.py --show on the test sample" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --labels "$C/labels.tsv" --show
grep -q "dev sample only" <<<"$ERR" && ok || bad "i2p_ceiling.py --show message: $ERR"
expect_rc 1 "i2p_ceiling.py, no labels file" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --labels "$C/none.tsv"
grep -q "cannot read the labels file" <<<"$ERR" && ok || bad "i2p_ceiling.py labels message: $ERR"
cut -f1-3 "$C/labels.tsv" > "$C/one.tsv"
expect_rc 1 "i2p_ceiling.py, one judge" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/i2p.csv" --ordinary "$C/ord.txt" --labels "$C/one.tsv"
grep -q "two or more" <<<"$ERR" && ok || bad "i2p_ceiling.py one-judge message: $ERR"
expect_rc 1 "i2p_ceiling.py, no I2P file" "$PYTHON" "$SRC/tools/bench/i2p_ceiling.py" score --safesd "$B" --i2p "$C/none.csv"
grep -q "is absent" <<<"$ERR" && ok || bad "i2p_ceiling.py absent message: $ERR"
summary
