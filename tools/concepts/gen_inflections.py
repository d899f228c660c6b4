#!/usr/bin/env python3
"""Write the inflected forms of the concept bank's Polish and Ukrainian terms: libstemmer has
no stemmer for either language, so the lexical detector matches their terms as written, and
"krew" (blood) alone would miss "krwi", "krwią", "krwawe". In every category of
data/concepts/default.bank, the `terms.pl` / `terms.uk` lines between "# >>> inflections" and
"# <<< inflections" (a block after the category's other lines of those languages) hold the
forms Hunspell's affix rules give for each one-word term that is a dictionary entry, where they
differ from the terms already listed.

    gen_inflections.py [--bank data/concepts/default.bank] [--hunspell /usr/share/hunspell]

Uses `unmunch` (Debian hunspell-tools) with the pl_PL and uk_UA dictionaries (Debian
hunspell-pl, hunspell-uk). Run it after editing a `terms.pl` or `terms.uk` line. A term
written "=word" (as written) and multi-word terms are not inflected; negated forms ("nie-",
"не-": "niekrwawy", bloodless) are left out unless the term is one, forms under 4 letters
are left out, and so are English words (WordNet lemmas: "sperm") and the forms that read as one listed in SKIP below (accents dropped, as
the detector drops them): reviewed by hand as another word's form or an ordinary word of a
bank language (the check of docs/safety-detectors.md, "Other
languages", run again on the generated block). The output is deterministic: dictionary
order of the forms, duplicates dropped.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bank_lines import lang_terms, read_without_blocks, term_lines, write_bank  # noqa: E402

BEGIN, END = "# >>> inflections", "# <<< inflections"
DICTS = {"pl": "pl_PL", "uk": "uk_UA"}
NEG = {"pl": "nie", "uk": "не"}
# forms that are another word, or an ordinary word of a bank language (reviewed by hand)
SKIP = {
    # goli: "they shave", and found inside Goliat, goliardia; goła: Italian gola (throat); ruchań:
    # Turkish rüçhan; zabita: Turkish zabıta (municipal police); ścięć: ściec (to drip off);
    # bójko: the surname Bojko
    "pl": {"goli", "goła", "ruchań", "zabita", "ścięć", "bójko"},
    # криваво: криваво-червоний, blood-red (a colour)
    "uk": {"криваво"},
}


def english_words(wordnet="/usr/share/wordnet"):
    """WordNet's one-word lemmas: a generated form that is one ("sperm", a Polish genitive
    plural) is left out, since the detector reads an English word as English."""
    out = set()
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(wordnet, "index." + pos)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                out.update(ln.split(" ", 1)[0] for ln in f if not ln.startswith(" "))
    return out


def fold(s):
    """s without its accents, as the detector reads it ("zabitą" and Turkish "zabıta" are both
    "zabita"): SKIP compares forms this way."""
    s = unicodedata.normalize("NFKD", s.replace("ł", "l").replace("ı", "i"))
    return "".join(c for c in s if not unicodedata.combining(c))


def read_dic(path, enc):
    """{word: [flag strings]} of a Hunspell .dic file."""
    entries = {}
    with open(path, encoding=enc, errors="replace") as f:
        next(f)  # the entry count
        for ln in f:
            ln = ln.rstrip("\n")
            if not ln or ln.startswith("\t"):
                continue
            word, _, flags = ln.partition("/")
            flags = flags.split("\t")[0].split(" ")[0]
            entries.setdefault(word, []).append(flags)
    return entries


def aff_encoding(path):
    with open(path, "rb") as f:
        for ln in f:
            m = re.match(rb"SET\s+(\S+)", ln)
            if m:
                return m.group(1).decode()
    return "UTF-8"


def expand(words, lang, hunspell):
    """{term: [forms]} for the terms that are dictionary entries."""
    base = os.path.join(hunspell, DICTS[lang])
    if not os.path.exists(base + ".dic"):
        sys.exit(f"gen_inflections: {base}.dic not found (apt install hunspell-{lang})")
    enc = aff_encoding(base + ".aff")
    dic = read_dic(base + ".dic", enc)
    out = {}
    for w in words:
        if w not in dic:
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".dic", delete=False, encoding=enc) as f:
            f.write(f"{len(dic[w])}\n")
            for fl in dic[w]:
                f.write(f"{w}/{fl}\n" if fl else f"{w}\n")
            name = f.name
        try:
            res = subprocess.run(["unmunch", name, base + ".aff"], capture_output=True, check=True).stdout
        except FileNotFoundError:
            sys.exit("gen_inflections: unmunch not found (apt install hunspell-tools)")
        finally:
            os.unlink(name)
        forms = []
        for x in res.decode(enc, errors="replace").split("\n"):
            x = x.strip()
            if x and x not in forms:
                forms.append(x)
        out[w] = forms
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", default=os.path.join(REPO, "data", "concepts", "default.bank"))
    ap.add_argument("--hunspell", default="/usr/share/hunspell")
    a = ap.parse_args()
    lines = read_without_blocks(a.bank, BEGIN, END)
    sections = lang_terms(lines, ("pl", "uk"))
    english = english_words()
    total = 0
    for cat in sorted(sections, key=lambda c: -sections[c]["last"]):  # insert from the bottom up
        sec = sections[cat]
        block = [f"{BEGIN} (generated by tools/concepts/gen_inflections.py: Hunspell's forms)"]
        for lang in ("pl", "uk"):
            terms = sec[lang]
            have = {t.lstrip("=") for t in terms}
            single = [t for t in terms if not t.startswith("=") and " " not in t]
            forms = []
            skip = {fold(s) for s in SKIP[lang]}
            for t, fs in expand(single, lang, a.hunspell).items():
                for x in fs:
                    neg = NEG[lang]  # the dictionaries' negated forms ("niekrwawy": bloodless)
                    if x.startswith(neg) and not t.startswith(neg):
                        continue
                    if len(x) >= 4 and x not in have and x.lower() == x and fold(x) not in skip and \
                            fold(x) not in english:
                        have.add(x)
                        forms.append(x)
            block += term_lines(f"terms.{lang}", forms)
            total += len(forms)
        block.append(END)
        lines[sec["last"] + 1:sec["last"] + 1] = block
    write_bank(a.bank, lines)
    print(f"gen_inflections: {total} forms in {len(sections)} categories -> {a.bank}")


if __name__ == "__main__":
    main()
