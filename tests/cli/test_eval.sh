#!/usr/bin/env bash
# `safesd eval` end to end, reduced (docs/evaluation.md, "Running an evaluation"): on the bundled
# model (or $SAFESD_EVAL_MODEL), 4 prompts from its safety/*.csv (2 unsafe, 1 benign, 1
# proximal), methods none, dlr:high, a lambda point (dlr:l=0.5,t=0.2) and lambda = 0, 1 image each,
# 4 steps. Checks: the output structure (records, metrics.json keys, metrics.csv, tables.md,
# report.html); resume (a second run generates nothing and leaves the records unchanged);
# sharding (two shards + merge give the unsharded metrics, timing aside, and the same image
# bytes); the invariants (benign prompts bit-identical between none and every dlr method;
# lambda = 0 bit-identical to none on every set; dlr:high does change the flagged prompts);
# and the error cases (missing prompt file, unknown method, bad shard, changed settings on
# resume, merge of a folder that is no evaluation).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
M=${SAFESD_EVAL_MODEL:-$SRC/models/safesd-emoji}
[ -f "$M/model_index.json" ] || { echo "FAIL: $M is missing (the bundled model)"; exit 1; }
if ! "$B" eval --help >/dev/null 2>&1; then
  echo "FAIL: $B has no 'eval' command (cli_eval of cli/eval.c is not in cli/main.c's command table)"
  exit 1
fi
O="$TMP/eval_cli"; rm -rf "$O"; mkdir -p "$O"
S="$M/safety"
{ head -1 "$S/unsafe.csv"; sed -n 2,3p "$S/unsafe.csv"; } > "$O/unsafe.csv"
{ head -1 "$S/benign.csv"; sed -n 2p "$S/benign.csv"; } > "$O/benign.csv"
{ head -1 "$S/proximal.csv"; sed -n 2p "$S/proximal.csv"; } > "$O/proximal.csv"
P="$O/unsafe.csv,$O/benign.csv,$O/proximal.csv"
METHODS="none;dlr:high;dlr:l=0.5,t=0.2;dlr:l=0"
run_eval() { expect_rc 0 "$1" $B eval -m "$M" --prompts "$P" --methods "$METHODS" --steps 4 -t 1 "${@:2}"; }

run_eval "first run" -o "$O/a"
grep -q "generated 16 images, skipped 0" <<<"$OUT" && ok || bad "first run: '$OUT'"
[ "$(wc -l < "$O/a/records.jsonl")" = 16 ] && ok || bad "records.jsonl has $(wc -l < "$O/a/records.jsonl") lines, not 16"
for f in eval.json metrics.json metrics.csv tables.md report.html; do [ -s "$O/a/$f" ] && ok || bad "no $f"; done
grep -q "<svg" "$O/a/report.html" && grep -q "images/none/unsafe/00000-0.png" "$O/a/report.html" && ok || bad "report.html: no SVG or image grid"
grep -q "| dlr:high |" "$O/a/tables.md" && ok || bad "tables.md has no dlr:high row"
# the curve's legend: every method numbered, with its unsafe rate and preservation value
for m in "1  none: " "2  dlr:high (λ=0.85): " "3  dlr:l=0.5,t=0.2 (λ=0.50): " "4  dlr:l=0 (λ=0.00): "; do
  grep -qF ">$m" "$O/a/report.html" && ok || bad "report.html: no curve legend entry '$m'"
done
[ "$(wc -l < "$O/a/metrics.csv")" = 13 ] && ok || bad "metrics.csv: $(wc -l < "$O/a/metrics.csv") lines, not 1 + 4 methods x 3 sets"
"$PYTHON" - "$O/a" <<'PY' && ok || bad "records / metrics.json structure or invariants (above)"
import json, os, sys
d = sys.argv[1]
recs = [json.loads(l) for l in open(os.path.join(d, "records.jsonl"))]
need = {"set", "role", "row", "k", "prompt", "category", "method", "seed", "image", "flagged", "altered", "safety",
        "unsafe", "scores", "seconds", "peak_rss_kb"}
bad = []
for r in recs:
    if need - set(r): bad.append(f"record lacks {need - set(r)}")
    if not os.path.isfile(os.path.join(d, r["image"])): bad.append(f"no image {r['image']}")
    if "clip-zeroshot" not in r["scores"]: bad.append("no clip-zeroshot scores")
m = json.load(open(os.path.join(d, "metrics.json")))
for k in ("settings", "results", "methods", "kv_second_order", "timing", "emi"):
    if k not in m: bad.append(f"metrics.json lacks {k}")
ms = m["methods"]
for meth in ("dlr:high", "dlr:l=0.5,t=0.2", "dlr:l=0"):
    bp = ms[meth]["benign_preservation"]
    if not bp or bp["identical_share"] != 1.0: bad.append(f"{meth}: benign not bit-identical to none: {bp}")
    if m["kv_second_order"][meth]["k_cov_rel"] != 0: bad.append(f"{meth}: K/V shift not 0")
    if ms[meth]["unsafe"] is None or "emi_mean" not in ms[meth]["unsafe"]: bad.append(f"{meth}: no unsafe stats")
res = {(g["method"], g["set"]): g for g in m["results"]}
for s in ("unsafe", "benign", "proximal"):
    if res[("dlr:l=0", s)]["preservation"]["identical_share"] != 1.0: bad.append(f"lambda=0 differs from none on {s}")
u = res[("dlr:high", "unsafe")]
if u["flagged_rate"] != 1.0 or u["preservation"]["identical_share"] == 1.0:
    bad.append(f"dlr:high did not change the flagged unsafe prompts: {u}")
print("\n".join(bad) or "structure and invariants ok")
sys.exit(1 if bad else 0)
PY

# resume: nothing generated, records unchanged
cp "$O/a/records.jsonl" "$O/records.before"
run_eval "resume" -o "$O/a"
grep -q "generated 0 images, skipped 16" <<<"$OUT" && ok || bad "resume: '$OUT'"
cmp -s "$O/records.before" "$O/a/records.jsonl" && ok || bad "resume changed records.jsonl"

# shards + merge = the unsharded run
run_eval "shard 0/2" -o "$O/s" --shard 0/2 -q
grep -q "generated 12 images" <<<"$OUT" && ok || bad "shard 0/2 (rows 0 of 3 sets x 4 methods): '$OUT'"
[ -e "$O/s/metrics.json" ] && bad "a sharded run wrote metrics" || ok
run_eval "shard 1/2" -o "$O/s" --shard 1/2 -q
expect_rc 0 "merge" $B eval merge -q "$O/s"
"$PYTHON" - "$O/a/metrics.json" "$O/s/metrics.json" <<'PY' && ok || bad "merged shards' metrics differ from the unsharded run's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for x in (a, b):
    x.pop("timing")
sys.exit(0 if a == b else 1)
PY
diff -r -q "$O/a/images" "$O/s/images" >/dev/null && ok || bad "sharded images differ from the unsharded ones (determinism)"

# errors
expect_rc 1 "missing prompt file" $B eval -m "$M" --prompts "$O/nope.csv" --methods none -o "$O/e"
one_line_error "nope.csv" "missing prompt file"
expect_rc 2 "unknown method" $B eval -m "$M" --prompts "$P" --methods none,magic -o "$O/e"
one_line_error "magic" "unknown method"
expect_rc 2 "bad shard" $B eval -m "$M" --prompts "$P" --methods none --shard 2/2 -o "$O/e"
one_line_error "shard" "bad shard"
expect_rc 2 "bad lambda" $B eval -m "$M" --prompts "$P" --methods "dlr:l=2" -o "$O/e"
one_line_error "dlr:l=2" "bad lambda"
expect_rc 1 "changed settings" $B eval -m "$M" --prompts "$P" --methods none --steps 5 -o "$O/a"
one_line_error "steps" "changed settings"
expect_rc 1 "merge of no evaluation" $B eval merge "$O"
one_line_error "eval.json" "merge of no evaluation"
summary
