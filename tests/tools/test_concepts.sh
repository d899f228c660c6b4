#!/usr/bin/env bash
# tools/concepts/gen_inflections.py, the generator of the Polish and Ukrainian inflections in
# data/concepts/default.bank:
#  - the committed blocks are what the generator writes now (a terms.pl / terms.uk line edited
#    without running it, or a block edited by hand, fails here; so a second run changes
#    nothing);
#  - its rules hold in the output: no negated form ("niekrwawy", bloodless) of a term that is
#    not one, nothing that reads as a SKIP form (Turkish "zabıta" read as Polish "zabita").
# Needs unmunch (hunspell-tools) and the pl/uk dictionaries (tools/install-deps.sh): without
# them it says SKIP.
source "$(dirname "$0")/../conformance/lib.sh"
if ! command -v unmunch >/dev/null || [ ! -f /usr/share/hunspell/pl_PL.dic ] || [ ! -f /usr/share/hunspell/uk_UA.dic ]; then
  echo "SKIP: unmunch or the pl_PL/uk_UA Hunspell dictionaries are absent (apt install hunspell-tools hunspell-pl hunspell-uk)"
  exit 77
fi
W="$TMP/concepts"; rm -rf "$W"; mkdir -p "$W"
BANK="$SRC/data/concepts/default.bank"
cp "$BANK" "$W/a.bank"
"$PYTHON" "$SRC/tools/concepts/gen_inflections.py" --bank "$W/a.bank" >/dev/null && ok || bad "gen_inflections.py failed"
cmp -s "$BANK" "$W/a.bank" && ok || bad "the bank's inflection blocks are stale: run tools/concepts/gen_inflections.py ($(diff "$BANK" "$W/a.bank" | head -4))"
"$PYTHON" - "$SRC" "$W/a.bank" <<'PY' && ok || bad "the generated blocks break the generator's rules"
import re, sys
sys.path.insert(0, sys.argv[1] + "/tools/concepts")
import gen_inflections as g
block, forms, terms = False, {"pl": [], "uk": []}, {"pl": [], "uk": []}
for ln in open(sys.argv[2], encoding="utf-8"):
    if ln.startswith(g.BEGIN): block = True
    m = re.match(r"terms\.(pl|uk) = (.*)", ln)
    if m:
        items = [x.strip() for x in m.group(2).split(",")]
        (forms if block else terms)[m.group(1)].extend(items)
    if ln.startswith(g.END): block = False
assert len(forms["pl"]) > 500 and len(forms["uk"]) > 500, {k: len(v) for k, v in forms.items()}
for lang in ("pl", "uk"):
    skip = {g.fold(s) for s in g.SKIP[lang]}
    for f in forms[lang]:
        assert g.fold(f) not in skip, f
        assert not f.startswith(g.NEG[lang]) or any(t.lstrip("=").startswith(g.NEG[lang]) for t in terms[lang]), f
        assert len(f) >= 4 and f == f.lower(), f
assert "krwi" in terms["pl"] + forms["pl"] and "krwawego" in forms["pl"] and "вбила" in forms["uk"]
PY
summary
