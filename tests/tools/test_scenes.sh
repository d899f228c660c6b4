#!/usr/bin/env bash
# tools/train/scenes.py, the emoji-scene renderer, on synthetic artwork (no data set needed:
# every object is a disk of its own colour, so a pixel tells which object is where):
#  - the ground truth matches the pixels: every pixel outside the objects' bboxes is exactly
#    the background colour of its half; each object's disk (its colour) sits at its recorded
#    centre, with the recorded size, inside its box; boxes are inside the canvas, apart;
#  - captions parse back to the ground truth (objects, places, sizes, background, style),
#    and parse_caption() refuses what is not a scene caption;
#  - determinism: the same seed gives the same bytes (two builds compared file by file);
#  - the held-out rules: no training scene holds a held-out artwork or composition, every
#    held-out scene holds a held-out composition;
#  - `scenes.py render` draws a caption, and a bad caption or an impossible layout is a
#    one-line error, exit 1, no output file.
# With the real data set (SAFESD_EMOJI_DATA, default build/train/data of the source tree) the
# background check also runs on real artwork; without it that part says SKIP.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
W="$TMP/scenes"; rm -rf "$W"; mkdir -p "$W"
REAL=${SAFESD_EMOJI_DATA:-$SRC/build/train/data}
"$PYTHON" - "$SRC/tools/train" "$W" "$REAL" <<'PY'
import hashlib, json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import scenes  # noqa: E402

work, real = sys.argv[2], sys.argv[3]
fails = []

def colour(label):
    d = hashlib.sha256(label.encode()).digest()
    return np.array([40 + d[0] % 180, 40 + d[1] % 180, 40 + d[2] % 180], np.uint8)

# synthetic artwork: a disk of radius 24 (of 64) in the label's colour, alpha 255 inside
yy, xx = np.mgrid[0:64, 0:64]
disk = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) <= 24 ** 2
recs, imgs, alph = [], [], []
for lab in scenes.OBJECTS:
    for st in scenes.STYLES:
        img = np.full((64, 64, 3), 255, np.uint8)
        img[disk] = colour(lab)
        imgs.append(img)
        alph.append((disk * 255).astype(np.uint8))
        held = (lab == "cat face" and st == "noto")  # one held-out artwork
        recs.append({"label": lab, "style": st, "hexcode": "H" + lab, "caption": f"{lab}, {st} emoji",
                     "split": "heldout" if held else "train"})
data = os.path.join(work, "data")
os.makedirs(data)
np.save(os.path.join(data, "images.npy"), np.stack(imgs))
np.save(os.path.join(data, "alpha.npy"), np.stack(alph))
json.dump(recs, open(os.path.join(data, "captions.json"), "w"))
art = scenes.Artwork(data)

def check_pixels(img, t, where, synthetic=True):
    bg = np.zeros((64, 64, 3), np.int64)
    rgb = t["background"]["rgb"]
    bg[:] = rgb[0]
    if t["background"]["split"] == "left-right":
        bg[:, 32:] = rgb[1]
    elif t["background"]["split"] == "top-bottom":
        bg[32:] = rgb[1]
    outside = np.ones((64, 64), bool)
    boxes = []
    for o in t["objects"]:
        x0, y0, x1, y1 = o["bbox"]
        b = o["box"]
        if not (b[0] <= x0 < x1 <= b[2] and b[1] <= y0 < y1 <= b[3]):
            fails.append(f"{where}: {o['label']}: bbox {o['bbox']} not inside its box {b}")
        if not (0 <= b[0] and 0 <= b[1] and b[2] <= 64 and b[3] <= 64 and b[2] - b[0] == scenes.SIZES[o["size"]]):
            fails.append(f"{where}: {o['label']}: box {b} off the canvas or not {o['size']}")
        cx, cy = scenes.PLACES[o["place"]]
        j = scenes.JITTER[o["size"]]
        if not (abs(o["centre"][0] - cx) <= j and abs(o["centre"][1] - cy) <= j):
            fails.append(f"{where}: {o['label']}: centre {o['centre']} not at {o['place']}")
        if any(b[0] < c[2] and c[0] < b[2] and b[1] < c[3] and c[1] < b[3] for c in boxes):
            fails.append(f"{where}: {o['label']}: box overlaps another")
        boxes.append(b)
        outside[y0:y1, x0:x1] = False
        if synthetic:
            # the disk: its colour at the centre, its width (3/4 of the box) along the centre row
            mx, my = o["centre"]
            if np.abs(img[my, mx].astype(int) - colour(o["label"])).max() > 2:
                fails.append(f"{where}: {o['label']}: pixel {img[my, mx]} at its centre, want {colour(o['label'])}")
            row = np.abs(img[my].astype(int) - colour(o["label"])).max(1) <= 2
            width = int(row[b[0]:b[2]].sum())
            want = 0.75 * scenes.SIZES[o["size"]]
            if abs(width - want) > 5 or row[:b[0]].any() or row[b[2]:].any():
                fails.append(f"{where}: {o['label']}: disk {width} px wide on its row, want about {want:.0f}, "
                             "inside its box only")
    if not np.array_equal(img[outside].astype(np.int64), bg[outside]):
        n = int((img[outside].astype(np.int64) != bg[outside]).any(1).sum())
        fails.append(f"{where}: {n} pixels outside the objects differ from the background")

def same_spec(t, p):
    keys = ("label", "place", "size", "kind", "category")
    return ([{k: o[k] for k in keys} for o in t["objects"]] == [{k: o[k] for k in keys} for o in p["objects"]]
            and {k: t["background"][k] for k in ("colours", "split")} == p["background"]
            and t["style"] == p["style"])

counts = {1: 0, 2: 0, 3: 0}
splits_seen = set()
for split, n in (("train", 300), ("heldout", 100)):
    for i in range(n):
        img, t = scenes.scene(7, i, art, split)
        img2, t2 = scenes.scene(7, i, art, split)
        if not (np.array_equal(img, img2) and t == t2):
            fails.append(f"{split} scene {i}: not deterministic")
        check_pixels(img, t, f"{split} scene {i}")
        try:
            p = scenes.parse_caption(t["caption"])
            if not same_spec(t, p):
                fails.append(f"{split} scene {i}: caption parses to {p}, truth {t}")
        except ValueError as e:
            fails.append(f"{split} scene {i}: {e}")
        held = scenes.heldout_composition(t)
        if split == "train" and (held or any(art.heldout(o["label"], t["style"]) for o in t["objects"])):
            fails.append(f"training scene {i} holds a held-out composition or artwork: {t['caption']}")
        if split == "heldout" and not held:
            fails.append(f"held-out scene {i} is not a held-out composition: {t['caption']}")
        if t["split"] != split:
            fails.append(f"{split} scene {i}: truth says split {t['split']}")
        counts[len(t["objects"])] += 1
        splits_seen.add(t["background"]["split"])
if min(counts.values()) < 30 or splits_seen != {None, "left-right", "top-bottom"}:
    fails.append(f"the draw covers too little: objects per scene {counts}, backgrounds {splits_seen}")

# a hand-written caption: its parse and its render
cap = "a large cat face on the left and a small dagger on the right, light blue background, twemoji emoji"
p = scenes.parse_caption(cap)
img, t = scenes.render(p, art)
if t["caption"] != cap or [o["place"] for o in t["objects"]] != ["left", "right"]:
    fails.append(f"render of {cap!r}: {t}")
check_pixels(img, t, "hand-written caption")
if t["objects"][1]["kind"] != "unsafe" or t["objects"][1]["category"] != "weapons":
    fails.append(f"dagger: kind {t['objects'][1]['kind']}, category {t['objects'][1]['category']}")
two = scenes.parse_caption("a small bomb at the top, red top and yellow bottom background, noto emoji")
if two["background"] != {"colours": ["red", "yellow"], "split": "top-bottom"}:
    fails.append(f"two-tone background parsed as {two['background']}")
for badcap in ("a large cat face on the left, light blue background",           # no style
               "a large cat face on the left, teal background, noto emoji",     # unknown colour
               "a huge cat face on the left, blue background, noto emoji",      # unknown size
               "a large cat face on the left and a small dagger on the right and a small bomb at the top, "
               "blue background, noto emoji",                                   # wrong joiners
               "a large cat face on the left, red right and blue left background, noto emoji",
               "cat face, noto emoji", ""):
    try:
        scenes.parse_caption(badcap)
        fails.append(f"parse_caption accepted {badcap!r}")
    except ValueError:
        pass
try:
    scenes.render(scenes.parse_caption("a large cat face on the left and a large dagger at the top left, "
                                       "blue background, noto emoji"), art)
    fails.append("render accepted overlapping objects")
except ValueError:
    pass

# two builds with the same seed: the same bytes
for d in ("b1", "b2"):
    scenes.build(data, os.path.join(work, d), 40, 10, 11)
for f in ("images.npy", "captions.json", "scenes.jsonl"):
    h = [hashlib.sha256(open(os.path.join(work, d, f), "rb").read()).hexdigest() for d in ("b1", "b2")]
    if h[0] != h[1]:
        fails.append(f"build: {f} differs between two runs with the same seed")
caps = json.load(open(os.path.join(work, "b1", "captions.json")))
gt = [json.loads(x) for x in open(os.path.join(work, "b1", "scenes.jsonl"))]
arr = np.load(os.path.join(work, "b1", "images.npy"))
if len(caps) != 50 + len(recs) or len(gt) != 50 or arr.shape[0] != len(caps):
    fails.append(f"build: {len(caps)} records, {len(gt)} truths, {arr.shape[0]} images")
for k, t in enumerate(gt):
    if caps[k]["caption"] != t["caption"] or caps[k]["split"] != t["split"]:
        fails.append(f"build: record {k} does not match its ground truth")
        break
    check_pixels(arr[k], t, f"built scene {k}")
if not np.array_equal(arr[50:], np.stack(imgs)) or caps[50]["kind"] != "emoji":
    fails.append("build: the single-emoji images are not appended unchanged")

# the real artwork, when the data set is built
if os.path.exists(os.path.join(real, "alpha.npy")):
    rart = scenes.Artwork(real)
    for i in range(60):
        img, t = scenes.scene(3, i, rart)
        check_pixels(img, t, f"real scene {i}", synthetic=False)
    print("real artwork: 60 scenes checked")
else:
    print(f"SKIP (part): {real}/alpha.npy absent: the real-artwork check needs tools/train/emoji_data.py's data set")
print("\n".join("FAIL: " + f for f in fails[:20]) or "ok: pixels, captions, determinism, held-out rules")
sys.exit(1 if fails else 0)
PY
fail=$?
# the command line: a caption drawn; a bad one refused
S="$SRC/tools/train/scenes.py"
"$PYTHON" "$S" render "$W/data" "a small cat face at the bottom right, pink background, noto emoji" "$W/one.png" \
  --truth "$W/one.json" || { echo "FAIL: scenes.py render"; fail=1; }
[ -s "$W/one.png" ] && grep -q '"bottom right"' "$W/one.json" || { echo "FAIL: render wrote no image or truth"; fail=1; }
for badcap in "a cat, pink background, noto emoji" \
              "a large cat face on the left and a large dagger at the top left, blue background, noto emoji"; do
  set +e; msg=$("$PYTHON" "$S" render "$W/data" "$badcap" "$W/bad.png" 2>&1); rc=$?; set -e
  if [ $rc != 1 ] || [ -e "$W/bad.png" ] || [ "$(wc -l <<<"$msg")" != 1 ]; then
    echo "FAIL: render '$badcap': rc $rc, file $(ls "$W/bad.png" 2>/dev/null), message: $msg"; fail=1
  fi
done
exit $fail
