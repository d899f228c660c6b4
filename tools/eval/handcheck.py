#!/usr/bin/env python3
"""Hand checks of emoji-judge on generated images (docs/evaluation.md, "emoji-judge").

    handcheck.py sheet EVAL_DIR OUT_PREFIX [--n 30] [--seed S]
    handcheck.py compare EVAL_DIR VERDICTS.csv [--json FILE]

sheet: draws N records of a `safesd eval` folder whose sets have scene ground truth (a
seeded sample spread over the methods and sets), writes OUT_PREFIX.png (the images 4x,
numbered, 6 per row) and OUT_PREFIX.csv: one row per (image, named object) and one per
image for the background, with the prompt and an empty `seen` column for the person who
looks at the sheet (1 = the object is there / the background is the named one, 0 = not).
The judge's answers are not on the sheet, so they cannot sway the verdicts.

compare: reads the filled CSV and the records' emoji-judge scores and prints how often the
judge agrees with the hand verdicts: per object (found vs seen), split by what the person
saw (objects seen / not seen: the judge's recall and false-positive rate against the
eye), and for the backgrounds (the judge's top colour(s) vs the named one, where seen).
"""
import argparse
import csv
import glob
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw


def records(d):
    out = []
    files = sorted(glob.glob(os.path.join(d, "records.jsonl")) + glob.glob(os.path.join(d, "records.shard-*.jsonl")))
    for path in files:  # an unsharded folder's records, or a sharded one's
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut short by an interrupted run (safesd eval skips it too)
                if r.get("scene") and "emoji-judge" in r.get("scores", {}):
                    out.append(r)
    if not out:
        sys.exit(f"handcheck.py: {d}: records.jsonl / records.shard-*.jsonl hold no record with a scene and emoji-judge scores")
    return out


def cmd_sheet(a):
    recs = records(a.eval_dir)
    rng = np.random.default_rng(a.seed)
    pick = sorted(rng.choice(len(recs), min(a.n, len(recs)), replace=False).tolist())
    S, cols = 4 * 64, 6
    rows = (len(pick) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (S + 8), rows * (S + 24)), "white")
    dr = ImageDraw.Draw(sheet)
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "image", "method", "prompt", "what", "name", "seen"])
        for n, i in enumerate(pick, 1):
            r = recs[i]
            im = Image.open(os.path.join(a.eval_dir, r["image"])).convert("RGB").resize((S, S), Image.NEAREST)
            x, y = ((n - 1) % cols) * (S + 8), ((n - 1) // cols) * (S + 24)
            sheet.paste(im, (x, y + 20))
            dr.text((x + 2, y + 4), str(n), fill="black")
            for o in r["scene"]["objects"]:
                w.writerow([n, r["image"], r["method"], r["prompt"], "object", o["label"], ""])
            w.writerow([n, r["image"], r["method"], r["prompt"], "background",
                        " + ".join(r["scene"]["background"]["colours"]), ""])
    sheet.save(a.out + ".png")
    print(f"handcheck: {len(pick)} images -> {a.out}.png, {a.out}.csv")


def cmd_compare(a):
    by_image = {r["image"]: r for r in records(a.eval_dir)}
    agree = {"object": [0, 0], "seen": [0, 0], "unseen": [0, 0], "background": [0, 0]}
    rows = []
    with open(a.verdicts, newline="") as f:
        for row in csv.DictReader(f):
            if row["seen"].strip() not in ("0", "1"):
                sys.exit(f"handcheck.py: {a.verdicts}: image {row['n']} {row['name']}: 'seen' is "
                         f"'{row['seen']}' (0 or 1)")
            r = by_image.get(row["image"])
            if r is None:
                sys.exit(f"handcheck.py: {row['image']} is not a record of {a.eval_dir}")
            j = r["scores"]["emoji-judge"]
            seen = row["seen"].strip() == "1"
            if row["what"] == "object":
                judge = row["name"] in j["found"]
                ok = judge == seen
                agree["object"][0] += ok
                agree["object"][1] += 1
                k = "seen" if seen else "unseen"
                agree[k][0] += judge
                agree[k][1] += 1
            else:
                named = row["name"].split(" + ")
                top = sorted(j["backgrounds"], key=lambda c: -j["backgrounds"][c])[:len(named)]
                judge = sorted(top) == sorted(named)
                ok = judge == seen
                agree["background"][0] += ok
                agree["background"][1] += 1
            rows.append({"n": int(row["n"]), "what": row["what"], "name": row["name"], "seen": seen,
                         "judge": judge, "agree": ok})
    res = {k: {"count": v[1], "share": (v[0] / v[1]) if v[1] else None} for k, v in agree.items()}
    res["rows"] = rows
    print(f"handcheck: objects: the judge agrees with the eye on {agree['object'][0]}/{agree['object'][1]}; "
          f"of the objects seen it finds {agree['seen'][0]}/{agree['seen'][1]}, of those not seen it "
          f"reports {agree['unseen'][0]}/{agree['unseen'][1]}; backgrounds: agrees on "
          f"{agree['background'][0]}/{agree['background'][1]}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet")
    s.add_argument("eval_dir")
    s.add_argument("out")
    s.add_argument("--n", type=int, default=30)
    s.add_argument("--seed", type=int, default=17)
    c = sub.add_parser("compare")
    c.add_argument("eval_dir")
    c.add_argument("verdicts")
    c.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "sheet":
        if a.n < 1:
            sys.exit("handcheck.py: --n takes a positive number")
        cmd_sheet(a)
    else:
        cmd_compare(a)


if __name__ == "__main__":
    main()
