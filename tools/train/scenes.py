#!/usr/bin/env python3
"""Emoji scenes: one to three emoji at named places and sizes on named backgrounds, with
their ground truth, composed from the emoji data set of emoji_data.py.

    scenes.py build DATA_DIR OUT_DIR [--scenes N] [--heldout N] [--seed S]
    scenes.py render DATA_DIR "CAPTION" OUT.png [--seed S] [--truth OUT.json]

`build` writes a training set in emoji_data.py's format, so train.py reads it unchanged:
  OUT_DIR/images.npy    uint8 [M, 64, 64, 3]: the N training scenes, then the held-out
                        scenes, then every single-emoji image of DATA_DIR (on white, as before)
  OUT_DIR/captions.json one record per image: caption, split ("train" / "heldout"), kind
                        ("scene" / "emoji"), label (a scene's: its caption), style; an
                        emoji record keeps all of emoji_data.py's fields
  OUT_DIR/scenes.jsonl  the ground truth of every scene image, one JSON object per line
                        (format below), in the order of images.npy
  OUT_DIR/manifest.json the counts, the seed, the object list, palette, places and sizes
`render` parses one caption (the format below) and draws it (the jitter from --seed).

Python API (tools/train on sys.path; `import scenes`):
  Artwork(data_dir)             the emoji artwork (images.npy + alpha.npy + captions.json);
                                Artwork.from_arrays(images, alpha, records) for tests
  random_scene(rng, art, split="train", n_objects=None, unsafe=None)
                                a scene spec drawn with numpy Generator rng: "train" never
                                uses a held-out artwork or a held-out composition,
                                "heldout" only held-out compositions (any artwork)
  caption(spec) -> str          the scene's caption
  parse_caption(text) -> spec   the inverse of caption(); raises ValueError on anything else
  render(spec, art) -> (uint8 [64, 64, 3], truth)   deterministic: the same spec, the same bytes
  scene(seed, index, art, split) -> (image, truth)  the index-th scene of a build
  heldout_composition(spec)     whether a composition is kept out of training
  background(bg) -> (float [64, 64, 3], RGB list)   a (one- or two-tone) background alone
  OBJECTS (label -> (kind, category)), PALETTE (name -> RGB), PLACES (name -> centre),
  SIZES (name -> pixels), LAYOUTS (object count -> tuples of places)

Caption: "<object>[, <object>] [and <object>], <background>, <style> emoji" with
  object      "a <size> <label> <place phrase>"   e.g. "a large cat face on the left"
  size        small (24 px) | large (32 px): the side of the square the 64 px artwork is
              scaled into (Lanczos, premultiplied alpha)
  place       "in the centre", "on the left", "on the right", "at the top", "at the bottom",
              "at the top left", "at the top right", "at the bottom left", "at the bottom right"
              (centres (32,32), (16,32), (48,32), (32,16), (32,48), (16,16), (48,16), (16,48),
              (48,48); a small object is shifted by up to 4 px from it, a large one not)
  background  "<colour> background" (one colour) or "<colour> left and <colour> right
              background" / "<colour> top and <colour> bottom background" (two halves)
  style       noto | twemoji (one artwork style per scene)
  e.g. "a large cat face on the left and a small dagger on the right, light blue background,
  noto emoji". Objects are listed in any order; their places never overlap (LAYOUTS).

Ground truth (one JSON object per scene; render() returns the same dict):
  {"caption": str, "split": "train" | "heldout", "style": "noto" | "twemoji",
   "background": {"colours": [name] or [name, name], "rgb": [[r, g, b], ...],
                  "split": null | "left-right" | "top-bottom"},   (first colour: left / top)
   "objects": [{"label": str, "hexcode": str, "kind": "unsafe" | "proximal" | "benign",
                "category": bank category ("weapons", "blood", "drugs", "death",
                            "obscene gesture") or "benign",
                "place": str, "size": "small" | "large", "centre": [x, y],
                "box": [x0, y0, x1, y1],    the square the artwork is drawn into
                "bbox": [x0, y0, x1, y1]},  the pixels it covers (alpha > 0): every pixel
                                            outside all bboxes is exactly the background
               ...]}                        (pixel coordinates, x1 / y1 exclusive; the
                                            objects in caption order)
  Objects are drawn in caption order; boxes do not overlap, so no object hides another.

Objects (OBJECTS): the concept bank's unsafe emoji and its proximal (near-unsafe) emoji,
the categories of prompt_sets.py, plus 40 benign ones, among them the bank's substitutes
(tulip, balloon, bouquet, ...). Held out: (1) every artwork emoji_data.py holds out (one
style of 8% of the emoji) is never in a training scene; (2) compositions: a pair of
objects, or a single object with its background colour, whose hash falls in the lowest 10%
(COMPOSITION_HELDOUT_PERCENT) is never in a training scene; a scene is held out when any of
its pairs is. Held-out scenes are drawn from those compositions only.
"""
import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from prompt_sets import PROXIMAL, UNSAFE  # noqa: E402

SIZE = 64
STYLES = ("noto", "twemoji")
BENIGN = ["cat face", "dog face", "grinning face", "smiling face", "sun", "star", "crescent moon", "cloud",
          "rainbow", "deciduous tree", "tulip", "sunflower", "bouquet", "mushroom", "cactus", "house",
          "automobile", "bicycle", "airplane", "rocket", "balloon", "crossed flags", "umbrella", "soccer ball",
          "guitar", "birthday cake", "pizza", "banana", "candy", "teapot", "key", "light bulb", "crown",
          "fish", "rabbit face", "panda", "butterfly", "frog", "penguin", "snowman"]
OBJECTS = {}
for _cat, _labs in UNSAFE.items():
    OBJECTS.update((lab, ("unsafe", _cat)) for lab in _labs)
for _cat, _labs in PROXIMAL.items():
    OBJECTS.update((lab, ("proximal", _cat)) for lab in _labs if lab not in OBJECTS)
OBJECTS.update((lab, ("benign", "benign")) for lab in BENIGN if lab not in OBJECTS)

PALETTE = {"white": (255, 255, 255), "black": (25, 25, 25), "grey": (128, 128, 128), "red": (220, 40, 40),
           "orange": (245, 140, 30), "yellow": (250, 220, 50), "green": (60, 180, 75),
           "dark green": (20, 100, 40), "light blue": (140, 200, 240), "blue": (40, 90, 220),
           "dark blue": (20, 30, 110), "purple": (140, 60, 180), "pink": (245, 150, 190),
           "brown": (130, 80, 40)}
PLACES = {"centre": (32, 32), "left": (16, 32), "right": (48, 32), "top": (32, 16), "bottom": (32, 48),
          "top left": (16, 16), "top right": (48, 16), "bottom left": (16, 48), "bottom right": (48, 48)}
PHRASE = {p: ("in the centre" if p == "centre" else f"on the {p}" if p in ("left", "right") else f"at the {p}")
          for p in PLACES}
SIZES = {"small": 24, "large": 32}
JITTER = {"small": 4, "large": 0}
_CORNERS = ("top left", "top right", "bottom left", "bottom right")
LAYOUTS = {
    1: tuple((p,) for p in PLACES),
    2: (("left", "right"), ("top", "bottom"), ("top left", "bottom right"), ("top right", "bottom left"),
        ("top left", "top right"), ("bottom left", "bottom right"), ("top left", "bottom left"),
        ("top right", "bottom right")),
    3: tuple(tuple(c for c in _CORNERS if c != x) for x in _CORNERS)
    + (("top left", "top right", "bottom"), ("top", "bottom left", "bottom right"),
       ("left", "top right", "bottom right"), ("top left", "bottom left", "right")),
}
SPLITS = {"left-right": ("left", "right"), "top-bottom": ("top", "bottom")}
COMPOSITION_HELDOUT_PERCENT = 10
# draw probabilities of random_scene
P_OBJECTS = (0.3, 0.45, 0.25)   # one, two, three objects
P_SPLIT_BG = 0.3                # two-tone background
P_UNSAFE = 0.35                 # the scene holds one unsafe object
P_PROXIMAL = 0.3                # each other object is a proximal one (else benign)


def _hash(s):
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "big")


def heldout_composition(spec):
    """True when the scene holds a held-out pair of objects, or (one object) a held-out
    object-and-background-colour pair."""
    labs = sorted(o["label"] for o in spec["objects"])
    if len(labs) == 1:
        pairs = [(labs[0], "bg:" + c) for c in spec["background"]["colours"]]
    else:
        pairs = [(x, y) for i, x in enumerate(labs) for y in labs[i + 1:]]
    return any(_hash("|".join(p)) % 100 < COMPOSITION_HELDOUT_PERCENT for p in pairs)


class Artwork:
    """The emoji images of emoji_data.py, premultiplied, by (label, style)."""

    def __init__(self, data_dir):
        with open(os.path.join(data_dir, "captions.json"), encoding="utf-8") as f:
            recs = json.load(f)
        apath = os.path.join(data_dir, "alpha.npy")
        if not os.path.exists(apath):
            raise FileNotFoundError(f"{apath} missing: rebuild the data set with emoji_data.py")
        self._init(np.load(os.path.join(data_dir, "images.npy"), mmap_mode="r"), np.load(apath, mmap_mode="r"),
                   recs)

    @classmethod
    def from_arrays(cls, images, alpha, records):
        self = cls.__new__(cls)
        self._init(images, alpha, records)
        return self

    def _init(self, images, alpha, records):
        self.images, self.alpha, self.records = images, alpha, records
        self.index = {}
        for i, r in enumerate(records):
            self.index.setdefault((r["label"], r["style"]), i)
        missing = sorted({lab for lab in OBJECTS for s in STYLES if (lab, s) not in self.index})
        if missing:
            raise ValueError(f"scenes: objects not in the emoji data: {', '.join(missing)}")

    def heldout(self, label, style):
        return self.records[self.index[(label, style)]]["split"] == "heldout"

    def get(self, label, style):
        """(premultiplied RGB float [64, 64, 3] in 0..255, alpha float [64, 64] in 0..1, hexcode)."""
        i = self.index[(label, style)]
        a = self.alpha[i].astype(np.float32) / 255.0
        # images.npy holds c = rgb * a + 255 * (1 - a): premultiplied rgb * a = c - 255 * (1 - a)
        p = np.clip(self.images[i].astype(np.float32) - 255.0 * (1.0 - a[..., None]), 0.0, 255.0)
        return p, a, self.records[i]["hexcode"]


def _resize(x, n):
    from PIL import Image
    return np.asarray(Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
                      .resize((n, n), Image.LANCZOS), dtype=np.float32)


def _obj(label, place, size, centre=None):
    kind, cat = OBJECTS[label]
    o = {"label": label, "kind": kind, "category": cat, "place": place, "size": size}
    if centre is not None:
        o["centre"] = list(centre)
    return o


def random_scene(rng, art, split="train", n_objects=None, unsafe=None, max_tries=1000):
    """A scene spec (objects with centres, background, style) drawn with rng (a numpy
    Generator). split "train": no held-out artwork, no held-out composition; "heldout":
    held-out compositions only. n_objects (1-3) and unsafe (bool) fix those draws."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be train or heldout, not {split!r}")
    labs = {k: sorted(lab for lab, v in OBJECTS.items() if v[0] == k) for k in ("unsafe", "proximal", "benign")}
    names = list(PALETTE)
    for _ in range(max_tries):
        n = n_objects or int(rng.choice([1, 2, 3], p=P_OBJECTS))
        style = STYLES[int(rng.integers(2))]
        has_unsafe = bool(rng.random() < P_UNSAFE) if unsafe is None else unsafe
        chosen = []
        for k in range(n):
            kind = "unsafe" if (has_unsafe and k == 0) else ("proximal" if rng.random() < P_PROXIMAL else "benign")
            pool = [x for x in labs[kind] if x not in chosen]
            chosen.append(pool[int(rng.integers(len(pool)))])
        order = rng.permutation(n)
        chosen = [chosen[i] for i in order]
        layout = LAYOUTS[n][int(rng.integers(len(LAYOUTS[n])))]
        places = [layout[i] for i in rng.permutation(n)]
        objs = []
        for lab, pl in zip(chosen, places):
            size = ("small", "large")[int(rng.integers(2))]
            j = JITTER[size]
            cx, cy = PLACES[pl]
            objs.append(_obj(lab, pl, size, (cx + int(rng.integers(-j, j + 1)), cy + int(rng.integers(-j, j + 1)))))
        if rng.random() < P_SPLIT_BG:
            c = rng.choice(len(names), 2, replace=False)
            bg = {"colours": [names[c[0]], names[c[1]]], "split": list(SPLITS)[int(rng.integers(2))]}
        else:
            bg = {"colours": [names[int(rng.integers(len(names)))]], "split": None}
        spec = {"objects": objs, "background": bg, "style": style}
        held = heldout_composition(spec)
        if split == "train" and (held or any(art.heldout(o["label"], style) for o in objs)):
            continue
        if split == "heldout" and not held:
            continue
        spec["split"] = split
        return spec
    raise RuntimeError(f"scenes: no {split} scene in {max_tries} draws")


def caption(spec):
    parts = [f"a {o['size']} {o['label']} {PHRASE[o['place']]}" for o in spec["objects"]]
    objs = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    bg = spec["background"]
    if bg["split"]:
        s1, s2 = SPLITS[bg["split"]]
        back = f"{bg['colours'][0]} {s1} and {bg['colours'][1]} {s2} background"
    else:
        back = f"{bg['colours'][0]} background"
    return f"{objs}, {back}, {spec['style']} emoji"


def _alt(words):
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_OBJ_RE = (f"a ({_alt(SIZES)}) ({_alt(OBJECTS)}) ({_alt(PHRASE.values())})")
_COL = _alt(PALETTE)
_CAPTION_RE = re.compile(
    rf"(?P<objs>{_OBJ_RE}(?:, {_OBJ_RE})*(?: and {_OBJ_RE})?), "
    rf"(?:(?P<c1>{_COL}) (?P<s1>left|top) and (?P<c2>{_COL}) (?P<s2>right|bottom)|(?P<c>{_COL})) background, "
    rf"(?P<style>{_alt(STYLES)}) emoji")
_PLACE_OF = {v: k for k, v in PHRASE.items()}


def parse_caption(text):
    """The spec of a scene caption (objects' label, place, size; background; style), without
    centres. ValueError when the text is not a scene caption."""
    m = _CAPTION_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a scene caption: {text!r}")
    objs = [_obj(lab, _PLACE_OF[ph], sz) for sz, lab, ph in re.findall(_OBJ_RE, m.group("objs"))]
    if not 1 <= len(objs) <= 3:
        raise ValueError(f"a scene holds 1 to 3 objects, not {len(objs)}: {text!r}")
    if m.group("c"):
        bg = {"colours": [m.group("c")], "split": None}
    else:
        split = {("left", "right"): "left-right", ("top", "bottom"): "top-bottom"}.get((m.group("s1"), m.group("s2")))
        if split is None:
            raise ValueError(f"a two-tone background is 'X left and Y right' or 'X top and Y bottom': {text!r}")
        bg = {"colours": [m.group("c1"), m.group("c2")], "split": split}
    spec = {"objects": objs, "background": bg, "style": m.group("style")}
    if caption(spec) != text.strip():  # e.g. "a ... and a ..., a ..." (wrong joiners)
        raise ValueError(f"not a scene caption (canonical form: {caption(spec)!r}): {text!r}")
    return spec


def background(bg):
    """(float image [64, 64, 3] of a background ({"colours": [...], "split": ...}; a ground
    truth's "background" will do), its RGB colours)."""
    img = np.empty((SIZE, SIZE, 3), np.float32)
    rgb = [PALETTE[c] for c in bg["colours"]]
    img[:] = rgb[0]
    if bg["split"] == "left-right":
        img[:, SIZE // 2:] = rgb[1]
    elif bg["split"] == "top-bottom":
        img[SIZE // 2:] = rgb[1]
    return img, [list(c) for c in rgb]


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render(spec, art):
    """(uint8 image [64, 64, 3], ground truth) of a spec; an object without a centre sits at
    its place's centre. ValueError for overlapping or out-of-canvas boxes."""
    img, rgb = background(spec["background"])
    objs, boxes = [], []
    for o in spec["objects"]:
        n = SIZES[o["size"]]
        cx, cy = o.get("centre") or PLACES[o["place"]]
        x0, y0 = cx - n // 2, cy - n // 2
        box = [x0, y0, x0 + n, y0 + n]
        if x0 < 0 or y0 < 0 or box[2] > SIZE or box[3] > SIZE:
            raise ValueError(f"scenes: {o['label']} at {o['place']} leaves the canvas: box {box}")
        if any(_overlap(box, b) for b in boxes):
            raise ValueError(f"scenes: {o['label']} at {o['place']} overlaps another object")
        boxes.append(box)
        p, a, hexcode = art.get(o["label"], spec["style"])
        a2 = np.clip(_resize(a, n), 0.0, 1.0)
        a2[a2 < 0.5 / 255.0] = 0.0  # the filter's ringing: below half a grey level
        p2 = np.stack([np.clip(_resize(p[..., c], n), 0.0, 255.0 * a2) for c in range(3)], -1)
        region = img[y0:y0 + n, x0:x0 + n]
        img[y0:y0 + n, x0:x0 + n] = p2 + region * (1.0 - a2[..., None])
        ys, xs = np.nonzero(a2 > 0)
        bbox = [x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1] \
            if len(xs) else [x0, y0, x0, y0]
        objs.append(dict(o, hexcode=hexcode, centre=[int(cx), int(cy)], box=box, bbox=bbox))
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    truth = {"caption": caption(spec), "split": spec.get("split", "train"), "style": spec["style"],
             "background": dict(spec["background"], rgb=rgb), "objects": objs}
    return out, truth


def scene(seed, index, art, split="train"):
    """The index-th scene of a build with this seed (independent of every other index)."""
    rng = np.random.default_rng([seed, index, 0 if split == "train" else 1])
    spec = random_scene(rng, art, split)
    return render(spec, art)


def build(data_dir, out_dir, n_train, n_heldout, seed):
    art = Artwork(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    n = n_train + n_heldout + len(art.records)
    images = np.lib.format.open_memmap(os.path.join(out_dir, "images.npy.tmp"), mode="w+", dtype=np.uint8,
                                       shape=(n, SIZE, SIZE, 3))
    recs = []
    with open(os.path.join(out_dir, "scenes.jsonl.tmp"), "w", encoding="utf-8") as gt:
        for k in range(n_train + n_heldout):
            split = "train" if k < n_train else "heldout"
            img, truth = scene(seed, k if split == "train" else k - n_train, art, split)
            images[k] = img
            gt.write(json.dumps(truth, ensure_ascii=False) + "\n")
            recs.append({"caption": truth["caption"], "label": truth["caption"], "split": split, "kind": "scene",
                         "style": truth["style"]})
            if (k + 1) % 5000 == 0:
                print(f"scenes: {k + 1} scenes", flush=True)
    base = n_train + n_heldout
    for i, r in enumerate(art.records):
        images[base + i] = art.images[i]
        recs.append(dict(r, kind="emoji"))
    images.flush()
    del images
    with open(os.path.join(out_dir, "captions.json"), "w", encoding="utf-8") as f:
        json.dump(recs, f, indent=0, ensure_ascii=False)
    os.replace(os.path.join(out_dir, "images.npy.tmp"), os.path.join(out_dir, "images.npy"))
    os.replace(os.path.join(out_dir, "scenes.jsonl.tmp"), os.path.join(out_dir, "scenes.jsonl"))
    man = {"seed": seed, "scenes_train": n_train, "scenes_heldout": n_heldout, "emoji": len(art.records),
           "images": n, "train": sum(r["split"] == "train" for r in recs),
           "objects": {k: list(v) for k, v in OBJECTS.items()}, "palette": PALETTE, "places": PLACES,
           "sizes": SIZES, "layouts": {k: list(v) for k, v in LAYOUTS.items()},
           "composition_heldout_percent": COMPOSITION_HELDOUT_PERCENT}
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(man, f, indent=1)
    print(f"scenes: {n_train} training and {n_heldout} held-out scenes + {len(art.records)} emoji -> {out_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a training set of scenes + the single emoji")
    b.add_argument("data")
    b.add_argument("out")
    b.add_argument("--scenes", type=int, default=24000, help="training scenes (default 24000)")
    b.add_argument("--heldout", type=int, default=1000, help="held-out scenes (default 1000)")
    b.add_argument("--seed", type=int, default=20261205)
    r = sub.add_parser("render", help="draw one caption")
    r.add_argument("data")
    r.add_argument("caption")
    r.add_argument("out", help="PNG file")
    r.add_argument("--seed", type=int, default=0, help="draws the small objects' jitter")
    r.add_argument("--truth", help="also write the ground truth (JSON) here")
    a = ap.parse_args()
    if a.cmd == "build":
        if a.scenes < 0 or a.heldout < 0:
            sys.exit("scenes.py: --scenes and --heldout take counts >= 0")
        build(a.data, a.out, a.scenes, a.heldout, a.seed)
        return
    try:
        spec = parse_caption(a.caption)
    except ValueError as e:
        sys.exit(f"scenes.py: {e}")
    rng = np.random.default_rng(a.seed)
    for o in spec["objects"]:
        j = JITTER[o["size"]]
        cx, cy = PLACES[o["place"]]
        o["centre"] = [cx + int(rng.integers(-j, j + 1)), cy + int(rng.integers(-j, j + 1))]
    try:
        img, truth = render(spec, Artwork(a.data))
    except (ValueError, OSError) as e:
        sys.exit(f"scenes.py: {e}")
    from PIL import Image
    Image.fromarray(img).save(a.out)
    if a.truth:
        with open(a.truth, "w", encoding="utf-8") as f:
            json.dump(truth, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
