#!/usr/bin/env python3
"""Build the bundled model's training set from openly licensed emoji packages.

    emoji_data.py OUT_DIR [--tarballs DIR]

Runs `npm pack` of the pinned packages below (or takes the .tgz files from --tarballs),
reads them with Python's tarfile and Pillow (Debian python3-pil; nothing is installed), and writes:

  OUT_DIR/images.npy     uint8 [N, 64, 64, 3]: the 64x64 PNGs composited on white
  OUT_DIR/alpha.npy      uint8 [N, 64, 64]: each PNG's alpha channel (scenes.py composites
                         the artwork on other backgrounds with it)
  OUT_DIR/captions.json  one record per image: hexcode, label, tags, group, style,
                         caption, split ("train" or "heldout")
  OUT_DIR/manifest.json  packages (name, version, integrity, licence of the artwork),
                         counts, the caption template and the split rule

Artwork: Noto Emoji (Google) is Apache-2.0, Twemoji (Twitter) is CC-BY-4.0; the npm
packages' own code is MIT. Apple and Facebook sets are never read (not licensed for this).
Labels and keywords come from emojibase-data (MIT). See NOTICE in the repository root.

Captions: "<label>, <style> emoji, <up to 4 keywords>", style "noto" or "twemoji".
Held-out split: for every base emoji whose label hash falls in the lowest 8%, one of its
two artworks (alternating by hash) is held out; the same concept is therefore seen in
training only in the other style, and held-out images are never trained on.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np

PACKAGES = [
    ("emoji-datasource-google", "16.0.0", "google", "noto", "Apache-2.0 (Noto Emoji artwork)"),
    ("emoji-datasource-twitter", "16.0.0", "twitter", "twemoji", "CC-BY-4.0 (Twemoji artwork)"),
]
LABELS = ("emojibase-data", "17.0.0")
HELDOUT_PERCENT = 8
MAX_TAGS = 4


def npm_pack(name, version, dest):
    out = subprocess.run(["npm", "pack", "--json", f"{name}@{version}"], cwd=dest, check=True,
                         capture_output=True, text=True)
    info = json.loads(out.stdout)[0]
    return os.path.join(dest, info["filename"]), info.get("integrity", "")


def find_tarball(dirpath, name, version):
    path = os.path.join(dirpath, f"{name}-{version}.tgz")
    if not os.path.isfile(path):
        sys.exit(f"emoji_data: {path} not found (run `npm pack {name}@{version}` there)")
    with open(path, "rb") as f:
        digest = hashlib.sha512(f.read()).digest()
    import base64
    return path, "sha512-" + base64.b64encode(digest).decode()


def norm_hex(h):
    return "-".join(p for p in h.upper().split("-") if p != "FE0F")


def stable_hash(s):
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "big")


def load_png_rgba(data):
    """Decode a PNG (any colour type): (RGB composited on white, alpha), both uint8."""
    from PIL import Image
    im = Image.open(io.BytesIO(data)).convert("RGBA")
    px = np.asarray(im, dtype=np.float32)
    a = px[..., 3:4] / 255.0
    comp = px[..., :3] * a + 255.0 * (1 - a)
    return np.clip(np.rint(comp), 0, 255).astype(np.uint8), px[..., 3].astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--tarballs", help="folder holding the .tgz files of `npm pack` (default: run npm pack)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tdir = a.tarballs or os.path.join(a.out, "npm")
    os.makedirs(tdir, exist_ok=True)
    get = (lambda n, v: find_tarball(tdir, n, v)) if a.tarballs else (lambda n, v: npm_pack(n, v, tdir))

    lpath, lint = get(*LABELS)
    with tarfile.open(lpath) as tf:
        ebase = json.load(tf.extractfile("package/en/data.json"))
        groups = json.load(tf.extractfile("package/en/messages.json"))["groups"]
    gname = {g["order"]: g["message"] for g in groups}
    meta = {}
    for e in ebase:
        rec = {"label": e["label"], "tags": e.get("tags", []), "group": gname.get(e.get("group"), "")}
        meta[norm_hex(e["hexcode"])] = (rec, e["hexcode"])
        for s in e.get("skins", []) or []:
            meta[norm_hex(s["hexcode"])] = ({"label": s["label"], "tags": e.get("tags", []),
                                             "group": rec["group"]}, e["hexcode"])

    images, alphas, records, manifest_pk = [], [], [], []
    for name, ver, setname, style, lic in PACKAGES:
        path, integ = get(name, ver)
        manifest_pk.append({"name": name, "version": ver, "integrity": integ, "artwork_licence": lic})
        with tarfile.open(path) as tf:
            listing = json.load(tf.extractfile("package/emoji.json"))
            members = {m.name: m for m in tf.getmembers()}
            entries = []
            for e in listing:
                entries.append(e)
                for v in (e.get("skin_variations") or {}).values():
                    entries.append(v)
            for e in entries:
                if not e.get(f"has_img_{setname}"):
                    continue
                key = norm_hex(e["unified"])
                if key not in meta:
                    continue
                m = members.get(f"package/img/{setname}/64/{e['image']}")
                if m is None:
                    continue
                rec, base = meta[key]
                if rec["label"].startswith("regional indicator"):
                    continue
                img, alpha = load_png_rgba(tf.extractfile(m).read())
                if img.shape != (64, 64, 3):
                    continue
                tags = [t for t in rec["tags"] if t.lower() not in rec["label"].lower()][:MAX_TAGS]
                cap = f"{rec['label']}, {style} emoji" + ("".join(", " + t for t in tags))
                hb = stable_hash(norm_hex(base))
                held = (hb % 100) < HELDOUT_PERCENT and (hb // 100) % 2 == (0 if style == "noto" else 1)
                images.append(img)
                alphas.append(alpha)
                records.append({"hexcode": key, "base": norm_hex(base), "label": rec["label"],
                                "tags": rec["tags"], "group": rec["group"], "style": style,
                                "caption": cap, "split": "heldout" if held else "train"})
        print(f"emoji_data: {name}@{ver}: {sum(r['style'] == style for r in records)} images", flush=True)
    arr = np.stack(images)
    np.save(os.path.join(a.out, "images.npy"), arr)
    np.save(os.path.join(a.out, "alpha.npy"), np.stack(alphas))
    with open(os.path.join(a.out, "captions.json"), "w") as f:
        json.dump(records, f, indent=0, ensure_ascii=False)
    man = {"packages": manifest_pk,
           "labels": {"name": LABELS[0], "version": LABELS[1], "integrity": lint, "licence": "MIT"},
           "images": len(records), "train": sum(r["split"] == "train" for r in records),
           "heldout": sum(r["split"] == "heldout" for r in records),
           "caption_template": "<label>, <style> emoji, <up to 4 keywords not in the label>",
           "heldout_rule": f"base emoji with sha256(hex)[0:4] % 100 < {HELDOUT_PERCENT}: one artwork held out"}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(f"emoji_data: {man['images']} images ({man['train']} train, {man['heldout']} held out) -> {a.out}")


if __name__ == "__main__":
    main()
