#!/usr/bin/env python3
"""The safety detectors measured on prompt sets, the way issue 16 states its targets: how many
I2P prompts they flag (all, `hard`, per category), how many ordinary SD prompts they flag by
mistake, recall on further unsafe sets and false positives on further benign sets, and the
throughput of `safesd check -f` (prompts per second, one thread: the detectors never use more).

    detectors.py --safesd BUILD/safesd [-m MODEL] [--detectors LIST] [--i2p CSV]
                 [--benign FILE ...] [--unsafe FILE ...] [--learned FILE]
                 [--learned-threshold T] [--json OUT]

Defaults: I2P from ../shared/data/i2p/i2p_benchmark.csv (skipped with a note when absent), the
ordinary-prompt set data/prompts/sd_ordinary.txt as benign, the default detectors and bank
(no -m). --learned FILE runs the CLI with another learned-detector weights file in place of
data/learned/detector.safetensors (through a temporary $SAFESD_DATA_DIR whose other entries
link to data/): the held-out figures of issue 16 are those of the split model,
data/learned/split/detector.safetensors. --learned-threshold T runs the same with a copy of the
weights file whose calibrated threshold (metadata `threshold`) is T: an operating point of the
default list other than the shipped one, measured exactly as users would get it (gates
included), for the threshold sweep of docs/safety-detectors.md. Prompt files: one prompt per line (blank and '#' lines skipped) or a CSV with a
`prompt` column. Prints Markdown tables; --json writes the figures. Everything goes through
the public CLI (`safesd check -f FILE --json`), so it measures exactly what users get.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    """[(prompt, row dict)] from a .csv with a `prompt` column, or a plain prompt file."""
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            return [(" ".join(r["prompt"].split()), r) for r in csv.DictReader(f) if r.get("prompt", "").strip()]
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\r\n")
            if p.strip() and not p.lstrip().startswith("#"):
                out.append((p, {}))
    return out


def check(args, prompts):
    """(list of check results in order, seconds of the check run)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for p, _ in prompts:
            # one line per prompt; spaces inside a line are kept as written ("n u d e  w o m a n":
            # two spaces part the spaced words, docs/safety-detectors.md)
            f.write(p.replace("\r", " ").replace("\n", " ") + "\n")
        name = f.name
    cmd = [args.safesd, "check", "-f", name, "--json"]
    if args.model:
        cmd += ["-m", args.model]
    if args.detectors:
        cmd += ["--detectors", args.detectors]
    if args.concepts:
        cmd += ["--concepts", args.concepts]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=args.env)
    dt = time.perf_counter() - t0
    os.unlink(name)
    if res.returncode != 0:
        sys.exit(f"detectors.py: {' '.join(cmd)} failed: {res.stderr.strip()}")
    out = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    if len(out) != len(prompts):
        sys.exit(f"detectors.py: {len(prompts)} prompts in, {len(out)} results out")
    return out, dt


def learned_env(learned, threshold=None):
    """The environment of a `safesd` run whose learned weights are the file `learned` (with its
    metadata `threshold` set to `threshold` when given): $SAFESD_DATA_DIR is a temporary folder,
    removed at exit, whose other entries link to data/."""
    import atexit
    import shutil
    tmp = tempfile.mkdtemp(prefix="safesd-data-")
    atexit.register(shutil.rmtree, tmp, True)
    data = os.path.join(ROOT, "data")
    for e in os.listdir(data):
        if e != "learned":
            os.symlink(os.path.join(data, e), os.path.join(tmp, e))
    os.mkdir(os.path.join(tmp, "learned"))
    dst = os.path.join(tmp, "learned", "detector.safetensors")
    if threshold is not None:
        with_threshold(learned, dst, threshold)
    else:
        os.symlink(os.path.abspath(learned), dst)
    return dict(os.environ, SAFESD_DATA_DIR=tmp)


def with_threshold(src, dst, threshold):
    """Copy the safetensors file src to dst with its metadata `threshold` set (header rewritten,
    tensors unchanged)."""
    import struct
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    if "__metadata__" not in header or "threshold" not in header["__metadata__"]:
        sys.exit(f"detectors.py: {src}: no metadata threshold to replace")
    header["__metadata__"]["threshold"] = repr(float(threshold))
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


def rate(k, n):
    return f"{k}/{n} = {100.0 * k / n:.1f}%" if n else "0/0"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--safesd", required=True)
    ap.add_argument("-m", "--model")
    ap.add_argument("--detectors")
    ap.add_argument("--concepts")
    ap.add_argument("--i2p", default=os.path.join(ROOT, "..", "shared", "data", "i2p", "i2p_benchmark.csv"))
    ap.add_argument("--benign", nargs="*", default=[os.path.join(ROOT, "data", "prompts", "sd_ordinary.txt")])
    ap.add_argument("--unsafe", nargs="*", default=[])
    ap.add_argument("--show", type=int, default=0, help="print up to N misses / false positives per set")
    ap.add_argument("--learned", help="another learned-detector weights file in place of the shipped one")
    ap.add_argument("--learned-threshold", type=float,
                    help="the learned detector's threshold in place of the weights file's calibrated one")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.learned_threshold is not None and not 0.0 <= args.learned_threshold <= 1.0:
        sys.exit("detectors.py: --learned-threshold must lie in [0, 1]")
    args.env = None
    figures = {"detectors": args.detectors or "default", "model": args.model or "none (default bank)"}
    if args.learned or args.learned_threshold is not None:
        if not args.learned:
            args.learned = os.path.join(ROOT, "data", "learned", "detector.safetensors")
        if not os.path.isfile(args.learned):
            sys.exit(f"detectors.py: --learned {args.learned}: no such file")
        args.env = learned_env(args.learned, args.learned_threshold)
        if args.learned_threshold is not None:
            figures["learned_threshold"] = args.learned_threshold
        figures["learned"] = os.path.relpath(os.path.abspath(args.learned), ROOT)
    total_n, total_s = 0, 0.0

    print(f"detectors: {figures['detectors']}; model: {figures['model']}"
          + (f"; learned weights: {figures['learned']}" if args.learned else "")
          + (f"; learned threshold: {args.learned_threshold}" if args.learned_threshold is not None else "") + "\n")
    if os.path.exists(args.i2p):
        rows = load(args.i2p)
        res, dt = check(args, rows)
        total_n += len(rows)
        total_s += dt
        flagged = [r["flagged"] for r in res]
        hard = [f for f, (_, row) in zip(flagged, rows) if row.get("hard") == "1"]
        cats = {}
        for f, (_, row) in zip(flagged, rows):
            for c in [c.strip() for c in row.get("categories", "").split(",") if c.strip()]:
                k, n = cats.get(c, (0, 0))
                cats[c] = (k + f, n + 1)
        beyond = sum(1 for r in res if r.get("beyond_window"))
        figures["i2p"] = {"all": [sum(flagged), len(flagged)], "hard": [sum(hard), len(hard)],
                          "categories": cats, "beyond_window": beyond}
        print("| I2P | flagged |\n|---|---|")
        print(f"| all | {rate(sum(flagged), len(flagged))} |")
        print(f"| hard | {rate(sum(hard), len(hard))} |")
        for c in sorted(cats):
            print(f"| {c} | {rate(*cats[c])} |")
        print(f"\n({beyond} I2P prompts run past the encoder's window; what lies beyond is not judged.)\n")
        if args.show:
            miss = [p for f, (p, _) in zip(flagged, rows) if not f][: args.show]
            print("missed, first %d:\n%s\n" % (len(miss), "\n".join("  " + m for m in miss)))
    else:
        print(f"I2P: {args.i2p} is absent, skipped\n")

    print("| set | kind | n | flagged |\n|---|---|---|---|")
    for kind, files in (("benign", args.benign), ("unsafe", args.unsafe)):
        for path in files:
            rows = load(path)
            res, dt = check(args, rows)
            total_n += len(rows)
            total_s += dt
            k = sum(r["flagged"] for r in res)
            figures.setdefault(kind, {})[os.path.relpath(path, ROOT)] = [k, len(rows)]
            print(f"| {os.path.relpath(path, ROOT)} | {kind} | {len(rows)} | {rate(k, len(rows))} |")
            if args.show:
                want = kind == "unsafe"
                odd = [(p, r) for (p, _), r in zip(rows, res) if r["flagged"] != want][: args.show]
                for p, r in odd:
                    print(f"  {'missed' if want else 'flagged'}: {p}  [{r['categories']}]")
    if total_s > 0:
        figures["prompts_per_second"] = total_n / total_s
        print(f"\nthroughput: {total_n} prompts in {total_s:.2f} s = {total_n / total_s:.0f} prompts/s "
              "(`safesd check -f --json`, process start and bank load included, one thread)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
