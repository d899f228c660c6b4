#!/usr/bin/env bash
# The generation-side safety options of `safesd generate` end to end on a small random model:
# the invariants of the dual latent reconstruction (method.md §2.4), checked byte for byte
# (latents) and pixel for pixel (PNG), the negative-prompt baseline, the safety report and
# the PNG summary, and bad input. Every equality check is paired with a check that the
# mechanism does change the output when it should, so a no-op implementation fails.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
B=$SAFESD_BIN
need_pipeline_model sd1
M="$TMP/pipeline_sd1"
PNGCHECK="$BUILD/tests/png_check"
O="$TMP/safety_gen_out"; rm -rf "$O"; mkdir -p "$O"
TMP="$O/tmp"; mkdir -p "$TMP"   # expect_rc's stderr file: not shared with tests running beside this one
P="a red apple"; S="a green pear"
# the lexical detector only: this test is about the dual path, and P must stay unflagged
# (the default list's learned detector flags "a red apple" as sexual at p = 0.117, one of
# its false positives, docs/safety-detectors.md)
DET=(--detectors lexical)
gen() { # gen NAME ARGS...: generate NAME.png and NAME.npy
  local name=$1; shift
  expect_rc 0 "generate $name" $B generate -q -m "$M/model" -p "$P" --steps 6 -s 11 -o "$O/$name.png" --latents "$O/$name.npy" "${DET[@]}" "$@"
}
same_latents() { cmp -s "$O/$1.npy" "$O/$2.npy" && ok || bad "$3: latents $1 vs $2 differ"; }
diff_latents() { cmp -s "$O/$1.npy" "$O/$2.npy" && bad "$3: latents $1 and $2 are identical" || ok; }
same_pixels() { "$PNGCHECK" "$O/$1.png" "$O/$2.png" --max-level 0 --max-frac 0 >/dev/null && ok || bad "$3: pixels $1 vs $2 differ"; }
close_latents() { compare_npy "$O/$1.npy" "$O/$2.npy" "$3" "$4" >/dev/null && ok || bad "$4: $1 vs $2 beyond $3"; }

# an unchanged binary (copied before the safety work, when present) gives the same bytes
gen plain_ddim --sampler ddim
if [ -x "$BUILD/safesd-baseline" ]; then
  "$BUILD/safesd-baseline" generate -q -m "$M/model" -p "$P" --steps 6 -s 11 --sampler ddim -o "$O/old.png" --latents "$O/old.npy" >/dev/null
  cmp -s "$O/old.png" "$O/plain_ddim.png" && cmp -s "$O/old.npy" "$O/plain_ddim.npy" && ok || bad "output differs from the baseline binary"
else
  echo "note: no $BUILD/safesd-baseline (a binary built before the safety layer); that comparison is skipped"
fi
# safety options that resolve to off: the same PNG bytes (metadata included)
gen off_opts --sampler ddim --sld none --safety-weight 0.3 --context-steps 0.9 --safety-blend final
cmp -s "$O/plain_ddim.png" "$O/off_opts.png" && ok || bad "options without a safety text changed the PNG"
same_latents plain_ddim off_opts "safety off"

for smp in ddim euler_a dpm++2m pndm; do
  gen "plain_$smp" --sampler "$smp"
  gen "pear_$smp" --sampler "$smp" -p "$S"
  for blend in step final; do
    # λ = 0 ⇒ bit-identical to safety off (any τ)
    gen "l0_${smp}_$blend" --sampler "$smp" --safety-text "$S" --safety-weight 0 --context-steps 0.3 --safety-blend "$blend"
    same_latents "plain_$smp" "l0_${smp}_$blend" "lambda 0 $smp $blend"
    same_pixels "plain_$smp" "l0_${smp}_$blend" "lambda 0 $smp $blend"
    # λ = 1, τ = 0 ⇒ identical to generating from the safety text
    gen "l1_${smp}_$blend" --sampler "$smp" --safety-text "$S" --safety-weight 1 --context-steps 0 --safety-blend "$blend"
    same_latents "pear_$smp" "l1_${smp}_$blend" "lambda 1 tau 0 $smp $blend"
    same_pixels "pear_$smp" "l1_${smp}_$blend" "lambda 1 tau 0 $smp $blend"
    # ... and the mechanism is not a no-op: a mix differs from both, a late start from the pear
    gen "mix_${smp}_$blend" --sampler "$smp" --safety-text "$S" --safety-weight 0.5 --context-steps 0.2 --safety-blend "$blend"
    diff_latents "plain_$smp" "mix_${smp}_$blend" "lambda 0.5 $smp $blend"
    diff_latents "pear_$smp" "mix_${smp}_$blend" "lambda 0.5 $smp $blend"
  done
  gen "l1late_$smp" --sampler "$smp" --safety-text "$S" --safety-weight 1 --context-steps 0.5
  diff_latents "pear_$smp" "l1late_$smp" "lambda 1 tau 0.5 $smp"
  # the full two-stream path (no λ ∈ {0,1} shortcut, batch 3B) agrees within rounding
  SAFESD_DUAL_NO_SHORTCUT=1 gen "full0_$smp" --sampler "$smp" --safety-text "$S" --safety-weight 0 --context-steps 0
  close_latents "plain_$smp" "full0_$smp" 1e-3 "full path lambda 0 $smp"
  SAFESD_DUAL_NO_SHORTCUT=1 gen "full1_$smp" --sampler "$smp" --safety-text "$S" --safety-weight 1 --context-steps 0 --safety-blend final
  close_latents "pear_$smp" "full1_$smp" 1e-3 "full path lambda 1 final $smp"
done
# batch of two
gen plain_b2 --sampler euler_a -b 2
gen l0_b2 --sampler euler_a -b 2 --safety-text "$S" --safety-weight 0
same_latents plain_b2 l0_b2 "lambda 0, batch 2"
gen mix_b2 --sampler euler_a -b 2 --safety-text "$S" --safety-weight 0.6
diff_latents plain_b2 mix_b2 "lambda 0.6, batch 2"
# no guidance: [e_u, e_s] only
gen nocfg --sampler dpm++2m --cfg-scale 1 --safety-text "$S" --safety-weight 0.6
gen nocfg_plain --sampler dpm++2m --cfg-scale 1
diff_latents nocfg nocfg_plain "dual without CFG"

# negative-prompt baseline: the concept text as the negative prompt
CONCEPT=$("$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); import safety_case; print(safety_case.CONCEPT)' "$SRC/tools/ref")
gen negbase --sampler ddim --safety-negative
gen negexplicit --sampler ddim -n "$CONCEPT"
same_latents negbase negexplicit "--safety-negative = -n CONCEPT"
diff_latents negbase plain_ddim "--safety-negative changes the image"
grep -qa "Negative prompt: an image showing hate" "$O/negbase.png" && grep -qa "Safety: negative prompt" "$O/negbase.png" && ok || bad "negative baseline metadata"
gen negown --sampler ddim --safety-negative --sld-concept "gore"
gen negownx --sampler ddim -n "gore"
same_latents negown negownx "--sld-concept with --safety-negative"

# SLD changes the image, and is named
gen sld --sampler ddim --sld max
diff_latents sld plain_ddim "SLD max"
grep -qa "Safety: SLD max" "$O/sld.png" && ok || bad "SLD metadata"

# the report and the PNG summary
expect_rc 0 "report" $B generate -q -m "$M/model" -p "$P" "${DET[@]}" --steps 6 -s 11 --safety-text "$S" --safety-weight 0.7 --context-steps 0.2 -o "$O/rep.png" --safety-report "$O/rep.json"
grep -qa "Safety: dual λ=0.7 τ=0.2 (step)" "$O/rep.png" && ok || bad "dual summary in the PNG parameters"
"$PYTHON" - "$O/rep.json" <<'PY' && ok || bad "report content"
import json, sys
r = json.load(open(sys.argv[1]))
d = r["dual"]
assert r["altered"] is True and r["sld"] == "none" and r["safety_negative"] is False, r
assert d["requested"] and d["ran"] and d["safety_text"] == "a green pear" and d["blend"] == "step", d
assert abs(d["safety_weight"] - 0.7) < 1e-6 and abs(d["context_steps"] - 0.2) < 1e-6, d
assert r["evaluations"] == 7 and d["k"] == 1, r          # PLMS: 6 steps = 7 evaluations, round(1.4) = 1
assert r["unet_batch"] == 3 and r["seconds"] > 0 and r["extra_method"] == "measured", r
PY
expect_rc 0 "report, safety off" $B generate -q -m "$M/model" -p "$P" "${DET[@]}" --steps 2 -o "$O/rep0.png" --safety-report "$O/rep0.json"
"$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["altered"] is False and r["dual"]["ran"] is False' "$O/rep0.json" && ok || bad "report without safety"
grep -qa "Safety:" "$O/rep0.png" && bad "safety summary without safety" || ok
expect_rc 1 "report folder missing" $B generate -q -m "$M/model" -p "$P" --steps 2 -o "$O/rep1.png" --safety-report "$O/missing/r.json"
one_line_error "missing/r.json" "unwritable report"

# bad input
expect_rc 2 "unknown SLD preset" $B generate -m "$M/model" -p x --sld extreme -o "$O/e1.png"
expect_rc 2 "weight out of range" $B generate -m "$M/model" -p x --safety-text y --safety-weight 1.5 -o "$O/e2.png"
expect_rc 2 "context steps out of range" $B generate -m "$M/model" -p x --safety-text y --context-steps -0.1 -o "$O/e3.png"
expect_rc 2 "unknown blend" $B generate -m "$M/model" -p x --safety-text y --safety-blend sometimes -o "$O/e4.png"
expect_rc 1 "SLD without guidance" $B generate -m "$M/model" -p x --sld medium --cfg-scale 1 -o "$O/e5.png"
one_line_error "guidance" "SLD without CFG"
expect_rc 1 "SLD with the dual path" $B generate -m "$M/model" -p x --sld medium --safety-text y -o "$O/e6.png"
one_line_error "cannot be combined" "SLD + dual"
expect_rc 1 "two negative prompts" $B generate -m "$M/model" -p x -n z --safety-negative -o "$O/e7.png"
one_line_error "negative prompt" "negative + safety negative"
for f in e1 e2 e3 e4 e5 e6 e7; do [ -e "$O/$f.png" ] && bad "$f.png written despite the error" || ok; done
expect_rc 0 "help" $B generate --help
grep -q -- "--safety-text" <<<"$OUT" && grep -q -- "--sld PRESET" <<<"$OUT" && ok || bad "--help lacks the safety options"
summary
