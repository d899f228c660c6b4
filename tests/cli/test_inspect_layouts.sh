#!/usr/bin/env bash
# `safesd inspect` on a diffusers folder and on single-file checkpoints (float32 and float16)
# of the same random model reports the same components: family, tensor and parameter
# counts, hyper-parameters. Uses ../shared/data/golden/clip-small (and its make_single_file.py).
source "$(dirname "$0")/../conformance/lib.sh"
need_shared data/golden/clip-small/model/model_index.json
G="$SHARED/data/golden/clip-small"
SF="$TMP/golden_clip_small_ldm"
mkdir -p "$SF"
[ -f "$SF/clip-small-ldm-f16.safetensors" ] || "$PYTHON" "$G/make_single_file.py" --out-dir "$SF" >/dev/null
"$SAFESD_BIN" inspect --json "$G/model" > "$TMP/inspect_folder.json"
"$SAFESD_BIN" inspect "$G/model"
fail=0
for f in clip-small-ldm-f32 clip-small-ldm-f16; do
  "$SAFESD_BIN" inspect --json --config "$G/model" "$SF/$f.safetensors" > "$TMP/inspect_$f.json"
  "$SAFESD_BIN" inspect --json "$SF/$f.safetensors" > "$TMP/inspect_${f}_noconfig.json"
  "$PYTHON" - "$TMP/inspect_folder.json" "$TMP/inspect_$f.json" "$TMP/inspect_${f}_noconfig.json" <<'PY' || fail=1
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:4])
def comps(r, drop_heads=False):
    out = {}
    for name, comp in r["components"].items():
        comp = dict(comp)
        comp.pop("dtypes", None)            # f16 vs f32 storage is the one expected difference
        if drop_heads and "config" in comp:
            comp["config"] = {k: v for k, v in comp["config"].items() if k != "heads"}
        out[name] = comp
    return out
ok = True
if a["family"] != b["family"] or comps(a) != comps(b):
    print("FAIL: folder and single file (with --config) differ:\n", json.dumps(comps(a), indent=1), "\n", json.dumps(comps(b), indent=1)); ok = False
# Without --config everything but the text encoder's head count is inferred the same, and a
# problem line says the head count was guessed.
if a["family"] != c["family"] or comps(a, True) != comps(c, True):
    print("FAIL: folder and single file (inferred) differ"); ok = False
if not any("head" in p for p in c["problems"]):
    print("FAIL: no problem line about the inferred head count:", c["problems"]); ok = False
print(f"{sys.argv[2]}: layout {b['layout']}, family {b['family']}, components match the folder: {ok}")
sys.exit(0 if ok else 1)
PY
done
exit $fail
