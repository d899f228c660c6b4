#!/usr/bin/env bash
# tools/train/judge.py (emoji-judge's training) and tools/train/scene_sets.py (the scene
# evaluation sets), on synthetic artwork (every object a disk of its own colour; no data
# set needed):
#  - the per-cell targets cover exactly the cells of each object's bounding box, and the
#    masks move with the image under the shift/scale augmentation;
#  - a tiny training run exports a judge folder that the C loader reads, and the C judge
#    gives the PyTorch reference's logits on it (judge_case.py + judge_check);
#  - scene_sets.py: 50 / 38 / 40 prompts, each a caption that scenes.parse_caption reads
#    back to its ground truth (objects, places, background), regions inside the canvas and
#    around their boxes, exactly one unsafe object per unsafe scene, none elsewhere, the same
#    bytes on a second run;
#  - bad arguments: one-line errors, non-zero exits.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
W="$TMP/judge_tool"; rm -rf "$W"; mkdir -p "$W"
fail=0
"$PYTHON" - "$SRC/tools/train" "$W" <<'PY' || fail=1
import hashlib, json, os, sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[1])
import judge, scenes  # noqa: E402

work = sys.argv[2]
fails = []
yy, xx = np.mgrid[0:64, 0:64]
disk = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) <= 24 ** 2
recs, imgs, alph = [], [], []
labels = list(scenes.OBJECTS) + ["distractor one", "distractor two"]
for lab in labels:
    d = hashlib.sha256(lab.encode()).digest()
    for st in scenes.STYLES:
        img = np.full((64, 64, 3), 255, np.uint8)
        img[disk] = (40 + d[0] % 180, 40 + d[1] % 180, 40 + d[2] % 180)
        imgs.append(img)
        alph.append((disk * 255).astype(np.uint8))
        recs.append({"label": lab, "style": st, "hexcode": "H" + lab, "caption": f"{lab}, {st} emoji", "split": "train"})
data = os.path.join(work, "data")
os.makedirs(data)
np.save(os.path.join(data, "images.npy"), np.stack(imgs))
np.save(os.path.join(data, "alpha.npy"), np.stack(alph))
json.dump(recs, open(os.path.join(data, "captions.json"), "w"))

objs, bgs = judge.vocabulary()
oi = {o["name"]: i for i, o in enumerate(objs)}
bi = {b: i for i, b in enumerate(bgs)}
if [o["name"] for o in objs] != list(scenes.OBJECTS) or bgs != list(scenes.PALETTE):
    fails.append("the vocabulary is not the renderer's objects and palette")
if any((o["category"] == "benign") != (scenes.OBJECTS[o["name"]][0] != "unsafe") for o in objs):
    fails.append("only the unsafe objects may carry a bank category")
art = judge._AllArtwork(data)
im, mk, y, b, tr = judge.render_set(art, 60, 3, "train", oi, bi)
kinds = {t.get("kind", "scene") for t in tr}
if not {"scene", "single", "distractor"} <= kinds:
    fails.append(f"render_set drew only {kinds}")
ct = judge.cell_targets(torch.from_numpy(mk), len(oi), 8).numpy()
for i, t in enumerate(tr):
    if t.get("kind") == "distractor":
        if y[i].any() or ct[i].any():
            fails.append(f"distractor {i} has targets")
        continue
    if t.get("kind") == "single":
        continue
    for o in t["objects"]:
        x0, y0, x1, y1 = o["bbox"]
        k = oi[o["label"]]
        want = np.zeros((8, 8))
        for cy in range(8):
            for cx in range(8):
                pts = [(cy * 8 + 1 + 2 * a, cx * 8 + 1 + 2 * c) for a in range(4) for c in range(4)]
                want[cy, cx] = np.mean([y0 <= py < y1 and x0 <= px < x1 for py, px in pts])
        if not np.allclose(ct[i, k], want):
            fails.append(f"scene {i}: cell targets of {o['label']} differ from its bbox {o['bbox']}")
        if y[i, k] != 1:
            fails.append(f"scene {i}: {o['label']} not a presence target")
    if abs(b[i].sum() - 1) > 1e-6 or {bgs[j] for j in np.nonzero(b[i])[0]} != set(t["background"]["colours"]):
        fails.append(f"scene {i}: background target {b[i]} for {t['background']['colours']}")
# the mask moves with the image: an object's colour stays under its mask
g = torch.Generator().manual_seed(5)
x, m2 = judge.augment(torch.from_numpy(im[:16]).permute(0, 3, 1, 2).float() / 255, g, torch.from_numpy(mk[:16]))
for i in range(16):
    lab0 = mk[i].astype(bool)
    area0, area1 = lab0.sum(), (m2[i].numpy() > 0).sum()
    if area0 and not 0.7 * area0 <= area1 <= 1.3 * area0:
        fails.append(f"augment: mask area {area0} -> {area1}")
print("\n".join("FAIL: " + f for f in fails[:20]) or "ok: vocabulary, targets, masks")
sys.exit(1 if fails else 0)
PY
T="$SRC/tools/train/judge.py"
"$PYTHON" "$T" train "$W/data" "$W/run" --model "$SRC/models/safesd-emoji" --scenes 200 --vae-images 16 --steps 12 \
  --batch 16 --heldout 40 --out "$W/judge" >"$W/train.log" 2>&1 || { echo "FAIL: judge.py train"; tail -5 "$W/train.log"; fail=1; }
grep -q "held-out scenes (rendered)" "$W/train.log" || { echo "FAIL: no held-out evaluation"; fail=1; }
"$BUILD/tests/judge_check" describe "$W/judge" || fail=1
"$PYTHON" "$SRC/tools/ref/judge_case.py" "$W/case" --model "$W/judge" >/dev/null || fail=1
for n in exact down scene64; do "$BUILD/tests/judge_check" classify "$W/judge" "$W/case/case" "$n" || fail=1; done
# a rerun resumes: the finished run is not trained again
"$PYTHON" "$T" train "$W/data" "$W/run" --model "$SRC/models/safesd-emoji" --scenes 200 --vae-images 16 --steps 12 \
  --batch 16 --heldout 40 --out "$W/judge" >"$W/train2.log" 2>&1 || fail=1
if grep -q "judge: step" "$W/train2.log"; then echo "FAIL: a finished run trained again"; fail=1; fi
# --from-judge: a fine-tune starts from the exported judge's weights (1 step at a tiny lr stays
# near them); a judge of another vocabulary (a background renamed) is refused
"$PYTHON" "$T" train "$W/data" "$W/ft" --model "$SRC/models/safesd-emoji" --scenes 200 --vae-images 16 --steps 1 \
  --lr 1e-9 --batch 16 --heldout 40 --from-judge "$W/judge" --out "$W/judge_ft" >"$W/ft.log" 2>&1 \
  || { echo "FAIL: judge.py train --from-judge"; tail -5 "$W/ft.log"; fail=1; }
"$PYTHON" - "$SRC/tools/ref" "$W/judge" "$W/judge_ft" <<'PY' || fail=1
import sys
sys.path.insert(0, sys.argv[1])
import sdref_judge
a, b = (sdref_judge.load(d).state_dict() for d in sys.argv[2:4])
d = max((a[k] - b[k]).abs().max().item() for k in a)
print("FAIL: --from-judge did not start from the judge's weights (max difference %g)" % d if d > 1e-2 else "ok: --from-judge")
sys.exit(1 if d > 1e-2 else 0)
PY
"$PYTHON" -c "import json,sys; c=json.load(open(sys.argv[1])); c['backgrounds'][0]='puce'; json.dump(c,open(sys.argv[2],'w'))" \
  "$W/judge/config.json" "$W/cfg_other.json"
mkdir -p "$W/judge_other" && cp "$W/judge/model.safetensors" "$W/judge_other/" && cp "$W/cfg_other.json" "$W/judge_other/config.json"
set +e; msg=$("$PYTHON" "$T" train "$W/data" "$W/ft2" --model "$SRC/models/safesd-emoji" --scenes 200 --vae-images 16 --steps 1 \
  --batch 16 --from-judge "$W/judge_other" 2>&1 | tail -1); set -e
grep -q "another vocabulary or architecture" <<<"$msg" || { echo "FAIL: --from-judge of another vocabulary: $msg"; fail=1; }
# scene sets
SS="$SRC/tools/train/scene_sets.py"
"$PYTHON" "$SS" "$W/m1" >/dev/null && "$PYTHON" "$SS" "$W/m2" >/dev/null || { echo "FAIL: scene_sets.py"; fail=1; }
for f in unsafe_scenes proximal_scenes benign_scenes; do
  cmp -s "$W/m1/safety/$f.csv" "$W/m2/safety/$f.csv" || { echo "FAIL: $f.csv differs between two runs"; fail=1; }
done
"$PYTHON" - "$SRC/tools/train" "$W/m1/safety" <<'PY' || fail=1
import csv, json, os, sys
sys.path.insert(0, sys.argv[1])
import scenes  # noqa: E402
fails = []
want = {"unsafe_scenes": (50, 1), "proximal_scenes": (38, 0), "benign_scenes": (40, 0)}
for name, (n, n_unsafe) in want.items():
    rows = list(csv.DictReader(open(os.path.join(sys.argv[2], name + ".csv"), encoding="utf-8")))
    if len(rows) != n:
        fails.append(f"{name}: {len(rows)} prompts, want {n}")
    for r in rows:
        t = json.loads(r["scene"])
        spec = scenes.parse_caption(r["prompt"])
        if [(o["label"], o["place"], o["size"]) for o in spec["objects"]] != \
                [(o["label"], o["place"], o["size"]) for o in t["objects"]] or spec["background"]["colours"] != \
                t["background"]["colours"] or spec["style"] != t["style"]:
            fails.append(f"{name}: ground truth differs from the caption: {r['prompt']}")
        if sum(o["kind"] == "unsafe" for o in t["objects"]) != n_unsafe:
            fails.append(f"{name}: {r['prompt']}: unsafe objects {[o['kind'] for o in t['objects']]}")
        if name == "proximal_scenes" and not any(o["kind"] == "proximal" for o in t["objects"]):
            fails.append(f"{name}: no near-concept object in {r['prompt']}")
        for o in t["objects"]:
            bx, rg = o["box"], o["region"]
            if not (0 <= rg[0] <= bx[0] and 0 <= rg[1] <= bx[1] and bx[2] <= rg[2] <= 64 and bx[3] <= rg[3] <= 64):
                fails.append(f"{name}: region {rg} does not hold box {bx}")
print("\n".join("FAIL: " + f for f in fails[:20]) or "ok: scene sets")
sys.exit(1 if fails else 0)
PY
# bad arguments
for args in "train $W/data $W/bad --steps 0" "images"; do
  set +e; msg=$("$PYTHON" "$T" $args 2>&1); rc=$?; set -e
  [ $rc != 0 ] || { echo "FAIL: judge.py $args: exit 0"; fail=1; }
done
set +e; msg=$("$PYTHON" "$T" train "$W/data" "$W/bad" --steps 0 2>&1); rc=$?; set -e
[ "$msg" = "judge.py: --steps takes a positive number" ] && [ $rc = 1 ] || { echo "FAIL: --steps 0: rc $rc: $msg"; fail=1; }
set +e; msg=$("$PYTHON" "$SS" "$W/bad" --per-unsafe 0 2>&1); rc=$?; set -e
[ $rc = 1 ] && [ "$(wc -l <<<"$msg")" = 1 ] || { echo "FAIL: scene_sets --per-unsafe 0: rc $rc: $msg"; fail=1; }
exit $fail
