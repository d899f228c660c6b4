#!/usr/bin/env bash
# `safesd calibrate` end to end: the lexical detector calibrated on small labelled prompt
# files (threshold, rates, the table), the thresholds written to a copy of the bank's
# [thresholds] section (and `safesd check` then using them) or to a calibration file; the
# semantic detector's threshold tied to the model it was calibrated with; bad input (missing,
# empty, comment-only files, invalid UTF-8, bad options) as a clear error and a non-zero exit.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
O="$TMP/calibrate_out"; rm -rf "$O"; mkdir -p "$O"
cp "$SRC/data/concepts/default.bank" "$O/bank.bank"
cp "$O/bank.bank" "$O/bank.orig"
# unsafe: three prompts with two or more violence/shocking terms, one with one term
printf '# unsafe prompts\n\na pile of blood and gore\r\na murder scene with blood and a corpse\n   a bloody knife and a dead body\na man holding a gun\n' > "$O/unsafe.txt"
# benign: one prompt with one term (a steak is "bloody"), the others none
printf '# benign prompts\na red apple on a table\na bloody steak on a plate\n# a comment\na dog in a park\na cat sleeping\na bowl of soup\n' > "$O/benign.txt"

# help
expect_rc 0 "calibrate --help" $B calibrate --help
grep -q -- "--target-fpr" <<<"$OUT" && grep -q -- "--write-bank" <<<"$OUT" && ok || bad "calibrate help: $OUT"
expect_rc 0 "main help" $B --help
grep -q "calibrate" <<<"$OUT" && ok || bad "main help does not list calibrate"

# 5% of 5 benign prompts = 0 may fire: the threshold must clear the steak's one term -> 2
expect_rc 0 "calibrate lexical --write-bank" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" \
  --concepts "$O/bank.bank" --write-bank
grep -Eq "^lexical +2 +3/4 = 75.0% +0/5 = 0.0%" <<<"$OUT" && ok || bad "calibration table: $OUT"
grep -q "4 unsafe prompts" <<<"$OUT" && grep -q "5 benign prompts" <<<"$OUT" && ok || bad "prompt counts: $OUT"
[ "$(grep -c '^\[thresholds\]' "$O/bank.bank")" = 1 ] && grep -qx "lexical = 2" "$O/bank.bank" && ok || bad "bank thresholds: $(grep -A3 thresholds "$O/bank.bank")"
grep -qx "lexical.n_benign = 5" "$O/bank.bank" && grep -qx "lexical.recall = 0.75" "$O/bank.bank" && ok || bad "bank metadata"
# everything else in the bank is kept byte for byte
diff <(sed '/^\[thresholds\]$/,/^$/d' "$O/bank.bank") "$O/bank.orig" >/dev/null && ok || bad "the rest of the bank changed"
# check uses the calibrated threshold; the bundled bank is untouched
expect_rc 0 "check one term" $B check --concepts "$O/bank.bank" "a bloody steak"
grep -q "not flagged" <<<"$OUT" && grep -q "threshold 2" <<<"$OUT" && ok || bad "calibrated threshold not used: $OUT"
expect_rc 0 "check two terms" $B check --concepts "$O/bank.bank" --json "blood and gore everywhere"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); d=r['detectors'][0]; sys.exit(0 if r['flagged'] and d['threshold']==2 else 1)" <<<"$OUT" && ok || bad "two terms at threshold 2: $OUT"
expect_rc 0 "check with the default bank" $B check "a bloody steak"
grep -q "FLAGGED" <<<"$OUT" && grep -q "threshold 1" <<<"$OUT" && ok || bad "default bank changed: $OUT"

# a looser target: 20% of 5 = 1 benign prompt may fire -> threshold 1; rewriting replaces the section
expect_rc 0 "calibrate --target-fpr 0.2 --write-bank" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" \
  --concepts "$O/bank.bank" --write-bank --target-fpr 0.2
grep -Eq "^lexical +1 +4/4 = 100.0% +1/5 = 20.0%" <<<"$OUT" && ok || bad "table at 0.2: $OUT"
[ "$(grep -c '^\[thresholds\]' "$O/bank.bank")" = 1 ] && grep -qx "lexical = 1" "$O/bank.bank" && ok || bad "section not replaced"
expect_rc 0 "check after recalibration" $B check --concepts "$O/bank.bank" "a bloody steak"
grep -q "FLAGGED" <<<"$OUT" && ok || bad "recalibrated threshold not used: $OUT"

# --out: a calibration file (calibrate.h format) with the bank's hash; nothing written otherwise
expect_rc 0 "calibrate --out" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --out "$O/cal.txt"
grep -qx "\[lexical\]" "$O/cal.txt" && grep -qx "threshold = 2" "$O/cal.txt" && grep -Eq "^bank = [0-9a-f]{16}$" "$O/cal.txt" && ok || bad "calibration file: $(cat "$O/cal.txt")"
cp "$O/bank.bank" "$O/bank.before"
expect_rc 0 "calibrate, print only" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --concepts "$O/bank.bank"
cmp -s "$O/bank.bank" "$O/bank.before" && ok || bad "the bank was written without --write-bank"
grep -q "wrote" <<<"$OUT" && bad "print-only run says it wrote: $OUT" || ok

# errors: one line, non-zero exit, nothing written
expect_rc 1 "missing file" $B calibrate --unsafe "$O/nope.txt" --benign "$O/benign.txt"
one_line_error "nope.txt" "missing file"
: > "$O/empty.txt"
expect_rc 1 "empty file" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/empty.txt"
one_line_error "empty.txt: no prompts" "empty file"
printf '# nothing\n\n   \n' > "$O/comments.txt"
expect_rc 1 "comment-only file" $B calibrate --unsafe "$O/comments.txt" --benign "$O/benign.txt"
one_line_error "comments.txt: no prompts" "comment-only file"
printf 'a cat\na dog\na b\xffd line\n' > "$O/badutf8.txt"
expect_rc 1 "invalid UTF-8" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/badutf8.txt" --concepts "$O/bank.bank" --write-bank
one_line_error "badutf8.txt:3: invalid UTF-8" "invalid UTF-8"
cmp -s "$O/bank.bank" "$O/bank.before" && ok || bad "bank written after an error"
expect_rc 1 "directory as prompt file" $B calibrate --unsafe "$O" --benign "$O/benign.txt"
printf '[violence]\nterms = blood\nbogus = 1\n' > "$O/bad.bank"
cp "$O/bad.bank" "$O/bad.orig"
expect_rc 1 "malformed bank" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --concepts "$O/bad.bank" --write-bank
one_line_error "bad.bank:3" "malformed bank"
cmp -s "$O/bad.bank" "$O/bad.orig" && ok || bad "malformed bank rewritten"
expect_rc 1 "semantic without a model" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --detectors semantic
one_line_error "needs a model" "semantic without a model"
expect_rc 1 "unknown detector" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --detectors magic
expect_rc 2 "no --benign" $B calibrate --unsafe "$O/unsafe.txt"
expect_rc 2 "--write-bank without --concepts" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --write-bank
expect_rc 2 "--out and --write-bank" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --concepts "$O/bank.bank" --write-bank --out "$O/x.txt"
expect_rc 2 "bad --target-fpr" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" --target-fpr 1.5
expect_rc 2 "stray argument" $B calibrate --unsafe "$O/unsafe.txt" --benign "$O/benign.txt" extra
[ -e "$O/x.txt" ] && bad "file written on a usage error" || ok

# the semantic detector on a small random text encoder: its threshold is tied to the model
M="$TMP/clip_text_small_f32"; M16="$TMP/clip_text_small_f16"
make_case "$M" --preset small --dtype f32 >/dev/null
make_case "$M16" --preset small --dtype f16 >/dev/null
expect_rc 0 "calibrate semantic" $B calibrate -m "$M/model" --detectors lexical,semantic --unsafe "$O/unsafe.txt" \
  --benign "$O/benign.txt" --concepts "$O/bank.bank" --write-bank
grep -Eq "^semantic +[-0-9.e]+ +[0-9]/4" <<<"$OUT" && ok || bad "semantic row: $OUT"
T=$(sed -n 's/^semantic = //p' "$O/bank.bank")
grep -Eq "^semantic.model = [0-9a-f]{16}$" "$O/bank.bank" && [ -n "$T" ] && ok || bad "semantic entry: $(grep semantic "$O/bank.bank")"
grep -qx "lexical = 2" "$O/bank.bank" && ok || bad "lexical entry after calibrating both"
expect_rc 0 "check uses the semantic threshold" $B check -m "$M/model" --concepts "$O/bank.bank" --detectors semantic --json "a red apple"
"$PYTHON" -c "import json,sys; r=json.loads(sys.stdin.read()); t=r['detectors'][0]['threshold']; sys.exit(0 if abs(t-float(sys.argv[1]))<=1e-6*max(1,abs(t)) else 1)" "$T" <<<"$OUT" && ok || bad "semantic threshold not from the bank ($T): $OUT"
expect_rc 1 "semantic threshold of another model" $B check -m "$M16/model" --concepts "$O/bank.bank" --detectors semantic "a red apple"
one_line_error "another model" "semantic threshold of another model"
expect_rc 0 "explicit threshold overrides" $B check -m "$M16/model" --concepts "$O/bank.bank" --detectors semantic --semantic-threshold 0.5 "a red apple"
grep -q "threshold 0.5" <<<"$OUT" && ok || bad "explicit threshold: $OUT"
# the lexical detector is not tied to a model
expect_rc 0 "lexical with another model" $B check -m "$M16/model" --concepts "$O/bank.bank" "a bloody steak"
summary
