#!/usr/bin/env python3
"""How often the safety detectors fire on the bundled model's prompt sets, with the
semantic detector's built-in (uncalibrated) threshold and with a threshold calibrated by
`safesd calibrate` on a separate half of the prompts.

    detectors_bundled.py --safesd BUILD/safesd [--model models/safesd-emoji] [--target-fpr 0.05]
                         [--write-bank]

Prompt sets (MODEL/safety/*.csv): unsafe (the bank's emoji, by label), paraphrases (the
same emoji described by keywords only), proximal (near-unsafe benign emoji), benign (200
other emoji). Calibration: the even rows of unsafe and of benign+proximal; the figures
are reported on the odd rows (held out from calibration) and on all rows. --write-bank
stores the calibrated threshold in the model's bank ([thresholds], tied to the model).
Prints Markdown tables.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile


def rows(model, name):
    with open(os.path.join(model, "safety", name + ".csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check(safesd, model, prompts, threshold=None):
    """{prompt: {"lexical": bool, "semantic": bool, "semantic_score": float}}"""
    out = {}
    for s in range(0, len(prompts), 64):
        cmd = [safesd, "check", "--json", "-m", model, "--detectors", "lexical,semantic"]
        if threshold is not None:
            cmd += ["--semantic-threshold", repr(threshold)]
        res = subprocess.run(cmd + prompts[s:s + 64], check=True, capture_output=True, text=True).stdout
        dec, pos = json.JSONDecoder(), 0
        while pos < len(res):
            while pos < len(res) and res[pos].isspace():
                pos += 1
            if pos >= len(res):
                break
            o, pos = dec.raw_decode(res, pos)
            d = {x["detector"]: x for x in o["detectors"]}
            out[o["prompt"]] = {"lexical": d["lexical"]["fired"], "semantic": d["semantic"]["fired"],
                                "semantic_score": d["semantic"]["score"], "semantic_threshold": d["semantic"]["threshold"]}
    return out


def share(res, prompts, key):
    if key == "either":
        k = sum(res[p]["lexical"] or res[p]["semantic"] for p in prompts)
    else:
        k = sum(res[p][key] for p in prompts)
    return f"{k}/{len(prompts)} = {100.0 * k / len(prompts):.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--safesd", required=True)
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "..", "models", "safesd-emoji"))
    ap.add_argument("--target-fpr", type=float, default=0.05)
    ap.add_argument("--write-bank", action="store_true")
    a = ap.parse_args()
    sets = {n: [r["prompt"] for r in rows(a.model, n)] for n in ("unsafe", "paraphrases", "proximal", "benign")}
    neg = sets["benign"] + sets["proximal"]
    cal_u, cal_b = sets["unsafe"][0::2], neg[0::2]
    with tempfile.TemporaryDirectory() as td:
        fu, fb = os.path.join(td, "u.txt"), os.path.join(td, "b.txt")
        open(fu, "w", encoding="utf-8").write("\n".join(cal_u) + "\n")
        open(fb, "w", encoding="utf-8").write("\n".join(cal_b) + "\n")
        cmd = [a.safesd, "calibrate", "-m", a.model, "--detectors", "semantic", "--unsafe", fu, "--benign", fb,
               "--target-fpr", str(a.target_fpr)]
        cal_out = os.path.join(td, "cal.txt")
        r = subprocess.run(cmd + ["--out", cal_out], check=True, capture_output=True, text=True)
        print("```\n" + r.stdout.strip() + "\n```\n")
        thr, section = None, None
        for line in open(cal_out, encoding="utf-8"):
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "semantic" and line.startswith("threshold ="):
                thr = float(line.split("=", 1)[1])
        if thr is None:
            sys.exit("detectors_bundled: no semantic threshold in the calibration output")
        if a.write_bank:
            subprocess.run(cmd + ["--write-bank"], check=True, capture_output=True, text=True)
    allp = sorted({p for v in sets.values() for p in v})
    dflt = check(a.safesd, a.model, allp, 0.10)
    cal = check(a.safesd, a.model, allp, thr)
    print(f"| prompt set | n | lexical | semantic, default 0.10 | semantic, calibrated {thr:.4g} | "
          f"either (calibrated) |")
    print("|---|---|---|---|---|---|")
    for name in ("unsafe", "paraphrases", "proximal", "benign"):
        for part, ps in (("all", sets[name]), ("held out", sets[name][1::2] if name in ("unsafe",) else None)):
            if ps is None:
                continue
            print(f"| {name} ({part}) | {len(ps)} | {share(dflt, ps, 'lexical')} | {share(dflt, ps, 'semantic')} | "
                  f"{share(cal, ps, 'semantic')} | {share(cal, ps, 'either')} |")
    ho = neg[1::2]
    print(f"| benign+proximal (held out) | {len(ho)} | {share(dflt, ho, 'lexical')} | {share(dflt, ho, 'semantic')} | "
          f"{share(cal, ho, 'semantic')} | {share(cal, ho, 'either')} |")
    only_sem = [p for p in sets["paraphrases"] if cal[p]["semantic"] and not cal[p]["lexical"]]
    print(f"\nparaphrases caught by the semantic detector alone (calibrated): {len(only_sem)}")
    for p in only_sem:
        print(f"  {p}  (score {cal[p]['semantic_score']:.3f})")
    missed = [p for p in sets["paraphrases"] if not cal[p]["semantic"] and not cal[p]["lexical"]]
    print(f"paraphrases missed by both: {len(missed)}")
    for p in missed:
        print(f"  {p}  (semantic score {cal[p]['semantic_score']:.3f})")
    def auc(pos, negs):
        """P(score of a positive > score of a negative), ties counted half."""
        sp = [cal[p]["semantic_score"] for p in pos]
        sn = [cal[p]["semantic_score"] for p in negs]
        return sum((x > y) + 0.5 * (x == y) for x in sp for y in sn) / (len(sp) * len(sn))
    print(f"semantic score AUC against benign+proximal: unsafe {auc(sets['unsafe'], neg):.3f}, "
          f"paraphrases {auc(sets['paraphrases'], neg):.3f}")
    fp = [p for p in neg if cal[p]["semantic"] or cal[p]["lexical"]]
    print(f"benign/proximal prompts flagged (calibrated): {len(fp)}")
    for p in fp:
        print(f"  {p}  (lexical {cal[p]['lexical']}, semantic score {cal[p]['semantic_score']:.3f})")


if __name__ == "__main__":
    main()
