#!/usr/bin/env bash
# The learned detector's corpus generator (tools/learned/corpus.py), on a small corpus:
#  - the same seed gives the same bytes, another seed other prompts;
#  - the held-out concepts (the SHA-256 rule) are the ones in data/learned/split/manifest.json
#    (the split model; the shipped model's manifest holds none: it is trained on all) and
#    none of their inventory lines (words, phrases, euphemisms, twins, foreign words, and the
#    fragments of tools/learned/foreign_lines.tsv) reaches the training or validation prompts;
#    the held-out evaluation sets are not in them either; the other-language fragments of the
#    training concepts and the ordinary other-language prompts are there (unsafe, twin and
#    benign sources) with the right labels, and none of them is in the calibration sets;
#  - every training concept yields prompts, with its categories as labels; every benign source
#    (plain, sdstyle.py's ordinary SD prompts, hard negatives) is there, unlabelled;
#  - hard negatives are n-gram neighbours of a trigger word and never its inflections;
#  - a line of the other-language fragments naming an unknown concept or without its LANG:
#    prefix is refused (exit 1, with the line number), as is an English line (english_lines.tsv)
#    not marked en: or of another kind; with --english-lines (measured, not shipped) the
#    English lines of held-out concepts are left out with the rest of their lines and those of
#    training concepts are in the corpus, without it none is;
#  - an inventory whose euphemism holds a trigger word of its category is refused (exit 1,
#    naming the concept), as is an unknown category;
#  - train.py's calibration rule equals src/safety/calibrate.h's on a tie case, and
#    --recalibrate reads the sizes of the file it recalibrates.
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
W="$TMP/learned_tools"; rm -rf "$W"; mkdir -p "$W"
C="$SRC/tools/learned/corpus.py"
expect_rc 0 "corpus, seed 7" "$PYTHON" "$C" --out "$W/a" --seed 7 --per-concept 30 --benign 300
expect_rc 0 "corpus, seed 7 again" "$PYTHON" "$C" --out "$W/b" --seed 7 --per-concept 30 --benign 300
expect_rc 0 "corpus, seed 8" "$PYTHON" "$C" --out "$W/c" --seed 8 --per-concept 30 --benign 300
for f in train.tsv val.tsv heldout_generated.tsv split.txt calib_unsafe.txt calib_benign.txt; do
  cmp -s "$W/a/$f" "$W/b/$f" && ok || bad "$f differs between two runs with one seed"
done
cmp -s "$W/a/train.tsv" "$W/c/train.tsv" && bad "seeds 7 and 8 gave the same corpus" || ok
# the same with the English lines (--english-lines, measured and not shipped)
expect_rc 0 "corpus, English lines" "$PYTHON" "$C" --out "$W/en" --seed 7 --per-concept 30 --benign 300 \
  --english-lines "$SRC/tools/learned/english_lines.tsv"
for d in a en; do
"$PYTHON" - "$SRC" "$W/$d" "$d" <<'PY' && ok || bad "$d: held-out concepts leak into the corpus, a concept or source is missing, or other-language fragments reach the calibration sets"
import json, os, sys
src, out, with_en = sys.argv[1], sys.argv[2], sys.argv[3] == "en"
sys.path.insert(0, os.path.join(src, "tools/learned"))
import corpus, features
inv = corpus.load_inventory(os.path.join(src, "tools/learned/concepts.txt"))
corpus.load_foreign_lines(os.path.join(src, "tools/learned/foreign_lines.tsv"), [c for c in inv if c.cats])
english = {l.rstrip("\n").split("\t")[2][3:] for l in open(os.path.join(src, "tools/learned/english_lines.tsv"), encoding="utf-8")
           if l.strip() and not l.startswith("#")}
if with_en:
    assert corpus.load_english_lines(os.path.join(src, "tools/learned/english_lines.tsv"), [c for c in inv if c.cats],
                                     features.Tables.build()) == len(english) > 500
train, held = corpus.split(inv)
split = [l for l in open(os.path.join(out, "split.txt")).read().split("\n") if l and not l.startswith("#")]
man = json.load(open(os.path.join(src, "data/learned/split/manifest.json")))
assert split == [c.id for c in held] == man["heldout_concepts"], (split, man["heldout_concepts"])
assert json.load(open(os.path.join(src, "data/learned/manifest.json")))["heldout_concepts"] == []
text = open(os.path.join(out, "train.tsv"), encoding="utf-8").read() + open(os.path.join(out, "val.tsv"), encoding="utf-8").read()
srcs = {l.split("\t")[1].split(":")[0] for l in text.split("\n") if l}
for c in held:
    assert c.id not in srcs and not any(c.id in s for s in srcs), c.id
    for k in ("phrases", "euphemisms", "twins"):
        for x in c.items[k]:
            assert x not in text, (c.id, k, x)
    for k in ("fphrases", "ftwins"):
        for _, x in c.items[k]:
            assert x not in text, (c.id, k, x)
for c in train:
    assert c.id in srcs, c.id
assert sum(len(c.items["fphrases"]) for c in held) > 0     # the check above checked something
# the English lines of held-out concepts were checked above; those of the training concepts are
# in the corpus (unsafe as euphemisms or phrases, twins) only with --english-lines
assert not with_en or sum(x in english for c in held for k in ("phrases", "euphemisms", "twins") for x in c.items[k]) > 50
found = sum(1 for x in english if "\t" + x + "\n" in text or ", " + x in text or x + "," in text)
assert (found > 30) if with_en else (found == 0), found
# the hand-written held-out sets are not in the corpus
for f in os.listdir(os.path.join(src, "data/prompts/learned")):
    if f.endswith(".txt"):
        for l in open(os.path.join(src, "data/prompts/learned", f), encoding="utf-8"):
            l = l.strip()
            if l and not l.startswith("#") and len(l) > 25:
                assert "\t" + l + "\n" not in text, (f, l)
# labels: a training concept's prompts carry its categories
rows = [l.split("\t") for l in open(os.path.join(out, "train.tsv"), encoding="utf-8").read().split("\n") if l]
want = {c.id: ",".join(str(i) for i in sorted(set(c.cats))) for c in train}
for lab, s, p in rows:
    cid = s.split(":")[0]
    twin = s.split(":")[-1] in ("twin", "ftwin")
    if cid in want and not twin:
        assert lab == want[cid], (lab, s, p)
    if twin or s.split(":")[0] == "benign":
        assert lab == "", (lab, s)
assert {"benign", "benign:sd", "benign:hard", "benign:foreign"} <= {s for _, s, _ in rows}, "a benign source is missing"
kinds = {s.split(":")[-1] for _, s, _ in rows}
assert {"fphrase", "ftwin"} <= kinds, "no other-language fragments in the corpus"
# a concept's fragment draws grow with its lines (30 unsafe prompts a concept here: at least
# 30 x share, and its lines x 30 / 700)
for c in train:
    n = sum(1 for _, s, _ in rows if s == c.id + ":fphrase")
    fp = c.items.get("fphrases", [])
    assert n == (max(round(30 * 0.10), round(len(fp) * 30 / 700)) if fp else 0), (c.id, n)
assert any(round(len(c.items.get("fphrases", [])) * 30 / 700) > 3 for c in train)  # the second term decided somewhere
# the calibration sets are the English validation prompts: no other-language fragment there
vrows = [l.split("\t") for l in open(os.path.join(out, "val.tsv"), encoding="utf-8").read().split("\n") if l]
calib = set(open(os.path.join(out, "calib_unsafe.txt"), encoding="utf-8").read().split("\n")) | \
    set(open(os.path.join(out, "calib_benign.txt"), encoding="utf-8").read().split("\n"))
foreign = [p for _, s, p in vrows if s.split(":")[-1] in ("fphrase", "ftwin") or s == "benign:foreign"]
assert foreign and not any(p in calib for p in foreign), len(foreign)
assert any(p in calib for _, s, p in vrows if s.split(":")[-1] == "twin")
PY
done
# benign text carries plural nouns and people's ages (the fifth release: without them "-ties"
# was evidence of "titties"): sdstyle.plural's spelling rules and WordNet's irregular forms,
# and both kinds in the generated benign prompts
"$PYTHON" - "$SRC" "$W/a" <<'PY' && ok || bad "plurals or ages missing from the benign corpus"
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tools/learned"))
import sdstyle
want = {"party": "parties", "property": "properties", "day": "days", "box": "boxes", "church": "churches",
        "wolf": "wolves", "mouse": "mice", "red fox": "red foxes", "twenty": "twenties"}
got = {w: sdstyle.plural(w) for w in want}
assert got == want, got
benign = [l.split("\t")[2] for l in open(os.path.join(out, "train.tsv"), encoding="utf-8") if l.startswith("\t")]
ages = [p for p in benign if re.search(r"\b(in (her|his) (early |late )?(twenties|thirties|forties|fifties|sixties|seventies|eighties|[2-8]0s)|aged [2-8][0-9]|[2-8][0-9] years old)\b", p)]
plurals = [p for p in benign if re.search(r"\b(two|some|many) (\w+ )?\w+(ies|es|s)\b", p)]
assert len(ages) >= 3 and len(plurals) >= 40, (len(ages), len(plurals))  # before: 0 and 19
PY
# --all-concepts (the shipped model's corpus): every concept, the held-out ones included, yields
# prompts and split.txt names none; --dev-salt: a second share of the training concepts is
# left out of train.tsv and val.tsv and only generated into dev_generated.tsv
expect_rc 0 "corpus, all concepts" "$PYTHON" "$C" --out "$W/all" --seed 7 --per-concept 30 --benign 300 --all-concepts
expect_rc 0 "corpus, dev split" "$PYTHON" "$C" --out "$W/dev" --seed 7 --per-concept 30 --benign 300 --dev-salt t1
"$PYTHON" - "$SRC" "$W" <<'PY' && ok || bad "--all-concepts or --dev-salt corpus"
import os, sys
src, w = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tools/learned"))
import corpus
inv = [c for c in corpus.load_inventory(os.path.join(src, "tools/learned/concepts.txt")) if c.cats]
def srcs(d, f="train.tsv"):
    return {l.split("\t")[1].split(":")[0] for l in open(os.path.join(w, d, f), encoding="utf-8") if l.strip()}
a = srcs("all")
assert all(c.id in a for c in inv), [c.id for c in inv if c.id not in a]
assert [l for l in open(os.path.join(w, "all", "split.txt")) if not l.startswith("#")] == []
dev = [l.strip() for l in open(os.path.join(w, "dev", "dev_split.txt")) if l.strip() and not l.startswith("#")]
train, held = corpus.split(inv)
assert dev and not set(dev) & {c.id for c in held}, dev
t = srcs("dev") | srcs("dev", "val.tsv")
assert not set(dev) & t, set(dev) & t
assert set(dev) <= srcs("dev", "dev_generated.tsv")
assert {c.id for c in train} - set(dev) <= t
PY
# --benign-phrases (benign_phrases.py, measured and not shipped): the phrase source is there,
# unlabelled; the split corpus holds no phrase with a held-out concept's one-word trigger,
# while the all-concepts corpus does ("naked mole rat": nudity is held out)
expect_rc 0 "corpus, benign phrases" "$PYTHON" "$C" --out "$W/ph" --seed 7 --per-concept 30 --benign 3000 --benign-phrases
expect_rc 0 "corpus, benign phrases, all" "$PYTHON" "$C" --out "$W/pha" --seed 7 --per-concept 30 --benign 300 --all-concepts --benign-phrases
"$PYTHON" - "$SRC" "$W" <<'PY' && ok || bad "--benign-phrases corpus"
import os, re, sys
src, w = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tools/learned"))
import corpus
inv = [c for c in corpus.load_inventory(os.path.join(src, "tools/learned/concepts.txt")) if c.cats]
train, held = corpus.split(inv)
held_words = {x.lower() for c in held for x in c.items["words"] if not re.search(r"[\s'_-]", x)}
def phrases(d):
    return [l.rstrip("\n").split("\t")[1] for l in open(os.path.join(w, d, "benign_phrases.txt"), encoding="utf-8")
            if not l.startswith("#")]
split_ph, all_ph = phrases("ph"), phrases("pha")
assert len(split_ph) > 1000 and "naked mole rat" in all_ph and "naked mole rat" not in split_ph
for p in split_ph:
    assert not held_words & set(re.split(r"[\s'_-]+", p)), p
rows = [l.split("\t") for l in open(os.path.join(w, "ph", "train.tsv"), encoding="utf-8") if l.strip()]
ph = [r for r in rows if r[1] == "benign:phrase"]
assert ph and all(r[0] == "" for r in ph), len(ph)
PY
# --phrase-parts (measured and not shipped, eleventh session): the everyday words of the unsafe
# phrases are listed and used, unlabelled; none is a training trigger or a bank term
expect_rc 0 "corpus, phrase parts" "$PYTHON" "$C" --out "$W/pp" --seed 7 --per-concept 30 --benign 3000 --phrase-parts
"$PYTHON" - "$SRC" "$W" <<'PY' && ok || bad "--phrase-parts corpus"
import os, sys
src, w = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tools/learned"))
import corpus, features
inv = [c for c in corpus.load_inventory(os.path.join(src, "tools/learned/concepts.txt")) if c.cats]
train, held = corpus.split(inv)
parts = [l.strip() for l in open(os.path.join(w, "pp", "phrase_parts.txt"), encoding="utf-8") if not l.startswith("#")]
bad = set(parts) & (corpus.training_exclusions(train) | corpus.single_word_triggers(train, features.Tables.build()))
assert len(parts) > 200 and not bad, (len(parts), sorted(bad)[:10])
rows = [l.split("\t") for l in open(os.path.join(w, "pp", "train.tsv"), encoding="utf-8") if l.strip()]
pp = [r for r in rows if r[1] == "benign:part"]
assert pp and all(r[0] == "" for r in pp), len(pp)
assert not [l for l in open(os.path.join(w, "a", "phrase_parts.txt"), encoding="utf-8") if not l.startswith("#")]
PY
# hard negatives: n-gram neighbours of a trigger, never its inflections
"$PYTHON" - "$SRC" <<'PY' && ok || bad "hard_negative_words"
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tools/learned"))
import corpus
got = dict(corpus.hard_negative_words({"rapist", "nipple"}, {"common_noun": ["therapist", "rapists", "apple", "tulip"]}))
assert got.get("therapist") == "noun" and "rapists" not in got and "tulip" not in got, got
PY
# a bad inventory is refused with the concept named
printf '[violence/x]\nwords = stab\neuphemisms = he tried to stab her\n' > "$W/bad.txt"
expect_rc 1 "euphemism with a trigger" "$PYTHON" "$C" --out "$W/d" --inventory "$W/bad.txt" --english-lines none
grep -q "violence/x: euphemism 'he tried to stab her' contains trigger 'stab'" <<<"$ERR" && ok || bad "message: $ERR"
printf '[violens/x]\nwords = stab\n' > "$W/bad2.txt"
expect_rc 1 "unknown category" "$PYTHON" "$C" --out "$W/d" --inventory "$W/bad2.txt"
grep -q "bad2.txt:1: unknown category 'violens'" <<<"$ERR" && ok || bad "message: $ERR"
# a bad line of the other-language fragments is refused with its line number
printf '# comment\nviolence/no-such-concept\tunsafe\tes:un hombre\n' > "$W/badf.tsv"
expect_rc 1 "fragment of an unknown concept" "$PYTHON" "$C" --out "$W/d" --foreign-lines "$W/badf.tsv"
grep -q "badf.tsv:2: unknown concept 'violence/no-such-concept'" <<<"$ERR" && ok || bad "message: $ERR"
printf 'violence/stabbing\tunsafe\tun hombre sin idioma\n' > "$W/badf2.tsv"
expect_rc 1 "fragment without LANG:" "$PYTHON" "$C" --out "$W/d" --foreign-lines "$W/badf2.tsv"
grep -q "badf2.tsv:1: bad kind 'unsafe' or text without LANG: prefix" <<<"$ERR" && ok || bad "message: $ERR"
# train.py's calibration rule is calibrate.h's: ties are not split
"$PYTHON" - "$SRC" <<'PY' && ok || bad "train.calibrate differs from calibrate.h's rule"
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "tools/learned"))
import train
t, fp, tp = train.calibrate([0.5, 0.6, 0.4], [0.5, 0.5, 0.5, 0.2, 0.1, 0.0], 1 / 6)
assert t == float(np.nextafter(np.float32(0.5), np.float32(1))) and fp == 0 and tp == 1, (t, fp, tp)
t, fp, tp = train.calibrate([0.75, 0.85], [0.1 * i for i in range(1, 11)], 0.2)
assert fp == 2 and tp == 1, (t, fp, tp)
PY
# train.py --recalibrate reads the file's sizes, not the options' defaults: a small model
# (2^10 buckets, width 4, 8 hidden) recalibrated on its own corpus gets the same threshold and
# the same bytes (before: the features were hashed into 2^18 buckets and the run failed)
T="$SRC/tools/learned/train.py"
expect_rc 0 "train a small model" "$PYTHON" "$T" --corpus "$W/a" --out "$W/m/d.safetensors" --epochs 1 --buckets-log2 10 --dim 4 --hidden 8
cp "$W/m/d.safetensors" "$W/m/r.safetensors"; cp "$W/m/manifest.json" "$W/m/r.json"
expect_rc 0 "recalibrate it" "$PYTHON" "$T" --corpus "$W/a" --out "$W/m/r.safetensors" --manifest "$W/m/r.json" --recalibrate
cmp -s "$W/m/d.safetensors" "$W/m/r.safetensors" && ok || bad "recalibrating a small model changed its file"
summary
