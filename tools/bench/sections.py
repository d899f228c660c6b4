#!/usr/bin/env python3
"""Per-section verdicts of the safety detectors on a prompt file whose sections are marked by
`# == NAME` lines (the writer-made sets: data/prompts/heldout_writer_*.txt,
tools/lexical/dev_writer_*.txt): how many prompts of each section the default list (or the
detectors given) flags. Everything goes through the public CLI (`safesd check -f - --json`).

    sections.py --safesd BUILD/safesd FILE [--show flagged|missed] [-- CHECK_OPTIONS...]

Prints one line per section: NAME, flagged/total = percent, then the total. --show prints the
prompts flagged (or not flagged) with the detectors' scores. Exit status 1 on an error.
"""
import argparse
import collections
import json
import subprocess
import sys


def read_sections(path):
    prompts, names, sec = [], [], "all"
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# =="):
                sec = line[4:].strip()
            elif line.strip() and not line.lstrip().startswith("#"):
                prompts.append(line)
                names.append(sec)
    return prompts, names


def verdicts(safesd, prompts, extra):
    try:
        out = subprocess.run([safesd, "check", "--json", "-f", "-"] + extra, input="\n".join(prompts) + "\n",
                             capture_output=True, text=True)
    except OSError as e:
        raise SystemExit(f"sections.py: cannot run {safesd}: {e}")
    if out.returncode:
        raise SystemExit(f"sections.py: safesd check failed: {out.stderr.strip()}")
    dec, s, i, res = json.JSONDecoder(), out.stdout, 0, []
    while i < len(s):
        while i < len(s) and s[i].isspace():
            i += 1
        if i < len(s):
            d, i = dec.raw_decode(s, i)
            res.append(d)
    if len(res) != len(prompts):
        raise SystemExit(f"sections.py: {len(res)} verdicts for {len(prompts)} prompts")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--safesd", required=True)
    ap.add_argument("file")
    ap.add_argument("--show", choices=("flagged", "missed"))
    ap.add_argument("extra", nargs="*", help="further `safesd check` options (after --)")
    a = ap.parse_args()
    try:
        prompts, names = read_sections(a.file)
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"sections.py: cannot read {a.file}: {e}")
    total, flagged = collections.Counter(), collections.Counter()
    for p, sec, d in zip(prompts, names, verdicts(a.safesd, prompts, a.extra)):
        total[sec] += 1
        flagged[sec] += bool(d["flagged"])
        if a.show and bool(d["flagged"]) == (a.show == "flagged"):
            why = "; ".join(f'{x["detector"]} {x["score"]:.2f}' + (" fired" if x["fired"] else "") for x in d["detectors"])
            print(f"  [{sec}] {d['categories'] or '-'} ({why}): {p}")
    for sec in total:
        print(f"{sec:20s} {flagged[sec]:4d}/{total[sec]:4d} = {100 * flagged[sec] / total[sec]:5.1f}%")
    n, f = sum(total.values()), sum(flagged.values())
    print(f"{'total':20s} {f:4d}/{n:4d} = {100 * f / max(n, 1):5.1f}%")


if __name__ == "__main__":
    sys.exit(main())
