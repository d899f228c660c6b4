#!/usr/bin/env python3
"""How much of I2P a prompt reader can flag at all: a blind, hand-labelled sample.

I2P's labels come from the images SD 1.4 drew, not from the prompts' words. This tool measures
how many of its prompts *say* something unsafe, so that a detector's I2P figure can be read
against that ceiling, and how well the detectors do on the prompts that do.

    i2p_ceiling.py sample [--part test|dev] [--i2p CSV] [--ordinary FILE] --out SAMPLE.tsv
    i2p_ceiling.py score  --safesd BUILD/safesd [--part test|dev] [--i2p CSV] [--ordinary FILE]
                          [--labels data/prompts/i2p_ceiling/labels.tsv] [--learned FILE]
                          [--detectors LIST] [--concepts BANK] [--json OUT]

`sample` draws 400 I2P rows and 100 ordinary SD prompts (data/prompts/sd_ordinary.txt), each
set ranked by SHA-256 of "i2p-ceiling-v1:" + its key, and writes them shuffled the same way
(ranked by SHA-256 of "i2p-ceiling-v1-order:" + key) as `item<TAB>prompt`, the item numbers
1..500 hiding which set a prompt came from. Judges label each item (the rubric is
data/prompts/i2p_ceiling/README.md) without seeing the detectors' verdicts, each other's labels
or where an item came from. `--part dev` draws the next 400 I2P rows of the same ranking
instead (no control): a development sample, labelled the same way
(tools/lexical/dev9_i2p_labels.tsv), so that rules can be tried on real prompts without
reading the test sample.

`score` reads the labels file (`key<TAB>sha<TAB>LABEL:CATEGORY` once per judge: key `i2p:ROW`
is the 0-based data row of the I2P CSV, `ord:LINE` the 1-based line of the ordinary file; sha the
first 12 hex digits of SHA-256 of the prompt as written to the judges, checked; LABEL U, B or
N, CATEGORY the judge's I2P category or `-`), takes the
majority label of each prompt, and prints with Wilson 95% intervals: the share of I2P (all,
`hard`) whose words are unsafe (U) and unsafe or borderline (U+B), the judges' rate on the
ordinary prompts, the agreement between judges, and the default detector list's flag rate on
each label class (through `safesd check -f --json`, as tools/bench/detectors.py; --detectors,
--concepts and --learned as there).
"""
import argparse
import collections
import csv
import hashlib
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detectors as dbench  # noqa: E402  (its check() and learned_env(): one way to run safesd)
N_I2P, N_ORD = 400, 100
LABELS = ("U", "B", "N")


def h(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def clean(p):
    return " ".join(p.split())


def load_i2p(path):
    """{key: (prompt, row)} over the data rows with a prompt."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for i, r in enumerate(csv.DictReader(f)):
            p = clean(r.get("prompt", ""))
            if p:
                out[f"i2p:{i}"] = (p, r)
    return out


def load_ordinary(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            p = line.rstrip("\r\n")
            if p.strip() and not p.lstrip().startswith("#"):
                out[f"ord:{n}"] = (clean(p), {})
    return out


def draw(i2p, ordinary, part="test"):
    """The test sample: the first N_I2P I2P rows and N_ORD ordinary prompts by the ranking;
    the dev sample: the next N_I2P I2P rows, no control."""
    ranked = sorted(i2p, key=lambda k: h("i2p-ceiling-v1:" + k))
    if part == "dev":
        return sorted(ranked[N_I2P:2 * N_I2P], key=lambda k: h("i2p-ceiling-v1-order:" + k))
    pick = ranked[:N_I2P]
    pick += sorted(ordinary, key=lambda k: h("i2p-ceiling-v1:" + k))[:N_ORD]
    return sorted(pick, key=lambda k: h("i2p-ceiling-v1-order:" + k))


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    w = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (p, max(0.0, c - w), min(1.0, c + w))


def fmt(k, n):
    p, lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * p:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def majority(labels):
    """U when most judges say U; B when most say U or B (but not most U); N otherwise."""
    n = len(labels)
    u = sum(1 for x in labels if x == "U")
    ub = sum(1 for x in labels if x in ("U", "B"))
    if 2 * u > n:
        return "U"
    if 2 * ub > n:
        return "B"
    return "N"


def fleiss(rows):
    """Fleiss' kappa over items each labelled by the same number of judges."""
    n = len(rows[0])
    N = len(rows)
    tot = collections.Counter()
    P = 0.0
    for r in rows:
        c = collections.Counter(r)
        tot.update(c)
        P += (sum(v * v for v in c.values()) - n) / (n * (n - 1))
    P /= N
    Pe = sum((v / (N * n)) ** 2 for v in tot.values())
    return (P - Pe) / (1 - Pe) if Pe < 1 else 1.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=("sample", "score"))
    ap.add_argument("--i2p", default=os.path.join(ROOT, "..", "shared", "data", "i2p", "i2p_benchmark.csv"))
    ap.add_argument("--ordinary", default=os.path.join(ROOT, "data", "prompts", "sd_ordinary.txt"))
    ap.add_argument("--part", choices=("test", "dev"), default="test",
                    help="test: the labelled test sample (default); dev: the next 400 I2P rows, "
                         "tools/lexical/dev9_i2p_labels.tsv, for development")
    ap.add_argument("--labels")
    ap.add_argument("--show", action="store_true",
                    help="print the U prompts missed and the N prompts flagged (dev sample only)")
    ap.add_argument("--out")
    ap.add_argument("--safesd")
    ap.add_argument("--learned")
    ap.add_argument("--detectors", help="a detector list for safesd check (default: its default list)")
    ap.add_argument("--concepts", help="a bank for safesd check --concepts (added to the default bank)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.exists(a.i2p):
        sys.exit(f"i2p_ceiling.py: {a.i2p} is absent (../shared/data/i2p): nothing measured")
    i2p = load_i2p(a.i2p)
    ordinary = load_ordinary(a.ordinary)
    pool = dict(i2p)
    pool.update(ordinary)
    keys = draw(i2p, ordinary, a.part)

    if not a.labels:
        a.labels = (os.path.join(ROOT, "tools", "lexical", "dev9_i2p_labels.tsv") if a.part == "dev" else
                    os.path.join(ROOT, "data", "prompts", "i2p_ceiling", "labels.tsv"))
    if a.cmd == "sample":
        if not a.out:
            sys.exit("i2p_ceiling.py: sample needs --out")
        with open(a.out, "w", encoding="utf-8") as f:
            for n, k in enumerate(keys, 1):
                f.write(f"{n}\t{pool[k][0]}\n")
        with open(a.out + ".keys", "w", encoding="utf-8") as f:
            for n, k in enumerate(keys, 1):
                f.write(f"{n}\t{k}\t{h(pool[k][0])[:12]}\n")
        print(f"{len(keys)} items written to {a.out} (keys in {a.out}.keys)")
        return

    if not a.safesd:
        sys.exit("i2p_ceiling.py: score needs --safesd")
    if a.show and a.part != "dev":
        sys.exit("i2p_ceiling.py: --show reads prompts of the dev sample only (the test sample stays unread)")
    rows = {}
    try:
        f = open(a.labels, encoding="utf-8")
    except OSError as e:
        sys.exit(f"i2p_ceiling.py: cannot read the labels file {a.labels}: {e.strerror}")
    with f:
        for ln, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                sys.exit(f"{a.labels}:{ln}: want key, sha and judge labels")
            k, sha, labs = parts[0], parts[1], [x.split(":")[0] for x in parts[2:]]
            if k not in pool:
                sys.exit(f"{a.labels}:{ln}: no prompt {k}")
            if h(pool[k][0])[:12] != sha:
                sys.exit(f"{a.labels}:{ln}: {k}'s prompt differs from the one labelled")
            if any(x not in LABELS for x in labs):
                sys.exit(f"{a.labels}:{ln}: labels are U, B or N")
            rows[k] = labs
    if set(rows) != set(keys):
        sys.exit(f"{a.labels}: {len(rows)} labelled prompts, the sample has {len(keys)}")
    nj = {len(v) for v in rows.values()}
    if len(nj) != 1 or min(nj) < 2:
        sys.exit(f"{a.labels}: every prompt needs the same number of judges, two or more")

    if a.learned and not os.path.isfile(a.learned):
        sys.exit(f"i2p_ceiling.py: --learned {a.learned}: no such file")
    a.model, a.env = None, dbench.learned_env(a.learned) if a.learned else None
    out, _ = dbench.check(a, [(pool[k][0], None) for k in keys])
    flagged = dict(zip(keys, (bool(o.get("flagged")) for o in out)))
    why = {k: "; ".join(f"{d['detector']}: " + ", ".join(e.get("matched") or "(whole prompt)" for e in d["evidence"])
                        for d in o.get("detectors", []) if d.get("fired")) for k, o in zip(keys, out)}
    maj = {k: majority(v) for k, v in rows.items()}
    res = {"judges": nj.pop(), "kappa": fleiss(list(rows.values()))}

    def group(name, ks):
        n = len(ks)
        c = collections.Counter(maj[k] for k in ks)
        fl = {lab: sum(1 for k in ks if maj[k] == lab and flagged[k]) for lab in LABELS}
        res[name] = {"n": n, "U": c["U"], "B": c["B"], "N": c["N"],
                     "flagged": sum(1 for k in ks if flagged[k]),
                     "flagged_U": fl["U"], "flagged_B": fl["B"], "flagged_N": fl["N"]}
        print(f"\n{name} ({n} prompts)")
        print(f"  words unsafe (U):               {fmt(c['U'], n)}")
        print(f"  unsafe or borderline (U+B):     {fmt(c['U'] + c['B'], n)}")
        print(f"  flagged by the detectors:       {fmt(res[name]['flagged'], n)}")
        for lab in LABELS:
            print(f"    of the {lab} prompts flagged:     {fmt(fl[lab], c[lab])}")

    ki = [k for k in keys if k.startswith("i2p:")]
    group("I2P sample", ki)
    group("I2P sample, hard", [k for k in ki if pool[k][1].get("hard", "").strip() == "1"])
    cats = collections.defaultdict(list)
    for k in ki:
        for c in pool[k][1].get("categories", "").split(","):
            if c.strip():
                cats[c.strip()].append(k)
    print("\nper I2P category (a prompt counts in each of its categories): U / U+B / flagged")
    res["categories"] = {}
    for c in sorted(cats):
        ks = cats[c]
        u = sum(1 for k in ks if maj[k] == "U")
        ub = sum(1 for k in ks if maj[k] in ("U", "B"))
        fl = sum(1 for k in ks if flagged[k])
        res["categories"][c] = {"n": len(ks), "U": u, "UB": ub, "flagged": fl}
        print(f"  {c:18s} n={len(ks):3d}  U {100 * u / len(ks):5.1f}%  U+B {100 * ub / len(ks):5.1f}%"
              f"  flagged {100 * fl / len(ks):5.1f}%")
    if a.show:
        for lab, want, what in (("U", False, "U prompt missed"), ("N", True, "N prompt flagged")):
            for k in keys:
                if k.startswith("i2p:") and majority(rows[k]) == lab and flagged[k] == want:
                    print(f"{what}: {k}: {pool[k][0][:160]}" + (f"  [{why[k]}]" if want else ""))
    if any(k.startswith("ord:") for k in keys):
        group("ordinary SD prompts (blind control)", [k for k in keys if k.startswith("ord:")])
    print(f"\nFleiss' kappa over {res['judges']} judges, 3 labels: {res['kappa']:.3f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
