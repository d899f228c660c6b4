#!/usr/bin/env python3
"""Training corpus of the learned detector: SD-style prompts around each concept of
tools/learned/concepts.txt, labelled with their I2P categories (multi-label), and benign
prompts (near-concept twins, ordinary SD prompts, WordNet nouns); the inventory's euphemisms,
phrases and twins can take the English lines of tools/learned/english_lines.tsv
(--english-lines, load_english_lines(); measured and not shipped); plus the scene fragments,
twins and ordinary prompts written in nineteen other languages of
tools/learned/foreign_lines.tsv (load_foreign_lines()).

    /usr/bin/python3 tools/learned/corpus.py --out DIR [--seed 20240811] [--all-concepts]
        [--per-concept 700] [--benign 160000] [--inventory tools/learned/concepts.txt]
        [--english-lines none | tools/learned/english_lines.tsv]
        [--foreign-lines tools/learned/foreign_lines.tsv | none]

Another --inventory needs a --foreign-lines file (and --english-lines, if any) of its own
concepts, or none: a line naming a concept the inventory lacks is refused.

Writes DIR/train.tsv and DIR/val.tsv (LABELS<TAB>SOURCE<TAB>PROMPT; LABELS comma-joined
category indices, empty for benign; SOURCE says what produced the line), DIR/calib_unsafe.txt
and DIR/calib_benign.txt (the English validation prompts as `safesd calibrate` prompt files),
DIR/heldout_generated.tsv (prompts generated from the held-out concepts' inventory lines: a
report-only figure, never trained on) and DIR/split.txt (the held-out concepts).

The same seed gives the same bytes. Content warning: the corpus is made of unsafe prompts.
"""
import argparse
import collections
import hashlib
import os
import random
import re
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import benign_phrases  # noqa: E402
import features  # noqa: E402
import sdstyle  # noqa: E402

CATEGORIES = ["hate", "harassment", "violence", "self-harm", "sexual", "shocking", "illegal activity"]
HOLDOUT_SHARE = 0.2
DEFAULT_SEED = 20240811
KEYS = ("also", "words", "phrases", "euphemisms", "twins", "foreign", "emoji")

# ---------------------------------------------------------------------------------------
# the inventory


class Concept:
    def __init__(self, cid, line):
        self.id = cid
        self.category, self.name = cid.split("/", 1)
        self.line = line
        self.cats = [CATEGORIES.index(self.category)] if self.category in CATEGORIES else []
        self.items = {k: [] for k in KEYS if k != "also"}


def load_inventory(path):
    concepts, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^\[([^/\]]+)/([^\]]+)\]$", line)
            if m:
                if m.group(1) not in CATEGORIES + ["benign"]:
                    raise SystemExit(f"{path}:{n}: unknown category '{m.group(1)}'")
                cur = Concept(m.group(1) + "/" + m.group(2), n)
                if any(c.id == cur.id for c in concepts):
                    raise SystemExit(f"{path}:{n}: duplicate concept {cur.id}")
                concepts.append(cur)
                continue
            if cur is None or "=" not in line:
                raise SystemExit(f"{path}:{n}: expected [category/name] or key = values")
            key, val = (s.strip() for s in line.split("=", 1))
            if key not in KEYS:
                raise SystemExit(f"{path}:{n}: unknown key '{key}'")
            if key == "also":
                for c in (s.strip() for s in val.split(",") if s.strip()):
                    if c not in CATEGORIES:
                        raise SystemExit(f"{path}:{n}: unknown category '{c}'")
                    cur.cats.append(CATEGORIES.index(c))
                continue
            for item in (s.strip() for s in val.split("|")):
                if item:
                    if key == "foreign" and not re.match(r"^[a-z]{2}:.+", item):
                        raise SystemExit(f"{path}:{n}: foreign item '{item}' is not LANG:words")
                    cur.items[key].append(item.split(":", 1)[1] if key == "foreign" else item)
    return concepts


FOREIGN_KINDS = ("unsafe", "twin", "ordinary")
ENGLISH_KINDS = ("unsafe", "twin")


def read_lines_tsv(path, kinds, langs=None):
    """Lines CONCEPT_ID<TAB>KIND<TAB>LANG:TEXT of a hand-written fragments file, as
    (line number, concept id, kind, lang, text); comments (#) and blank lines skipped. A line with
    another shape, a kind not in KINDS or a language not in LANGS (None: any two-letter code) is
    refused with its line number."""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise SystemExit(f"{path}:{n}: expected CONCEPT_ID<TAB>KIND<TAB>LANG:TEXT")
            cid, kind, text = (x.strip() for x in parts)
            m = re.match(r"^([a-z]{2}):\s*(\S.*)$", text)
            if kind not in kinds or not m or (langs is not None and m.group(1) not in langs):
                raise SystemExit(f"{path}:{n}: bad kind '{kind}' or text without LANG: prefix"
                                 + (f" ({'/'.join(langs)})" if langs is not None else ""))
            yield n, cid, kind, m.group(1), m.group(2)


def load_foreign_lines(path, concepts):
    """Prompt fragments written in other languages (tools/learned/foreign_lines.tsv): lines
    CONCEPT_ID<TAB>KIND<TAB>LANG:TEXT, KIND unsafe (a scene of the concept), twin (a benign
    near-concept fragment) or ordinary (CONCEPT_ID `ordinary`: an ordinary prompt). Unsafe and
    twin lines are attached to their concept (items "fphrases", "ftwins"), so the held-out split
    leaves out those of held-out concepts like every other line of theirs; returns the ordinary
    lines as (lang, text)."""
    by_id = {c.id: c for c in concepts}
    for c in concepts:
        c.items["fphrases"], c.items["ftwins"] = [], []
    ordinary = []
    for n, cid, kind, lang, text in read_lines_tsv(path, FOREIGN_KINDS):
        if kind == "ordinary":
            ordinary.append((lang, text))
            continue
        if cid not in by_id:
            raise SystemExit(f"{path}:{n}: unknown concept '{cid}'")
        by_id[cid].items["fphrases" if kind == "unsafe" else "ftwins"].append((lang, text))
    return ordinary


def load_english_lines(path, concepts, tables):
    """English scene paraphrases and twins written by helper writers in the fifteenth session
    (tools/learned/english_lines.tsv): lines CONCEPT_ID<TAB>KIND<TAB>en:TEXT, KIND unsafe (a
    scene of the concept without its own trigger words) or twin (a benign near-concept prompt).
    An unsafe line joins the concept's euphemisms, or its phrases where it holds a trigger word
    of another concept of its category (a euphemism may hold none: check_euphemisms()); a twin
    joins its twins. As inventory lines of their concept, the held-out split leaves out those of
    held-out concepts. Returns the number of lines."""
    by_id = {c.id: c for c in concepts}
    trig = category_triggers(concepts, tables)
    n_lines = 0
    for n, cid, kind, _, text in read_lines_tsv(path, ENGLISH_KINDS, ("en",)):
        if cid not in by_id:
            raise SystemExit(f"{path}:{n}: unknown concept '{cid}'")
        c = by_id[cid]
        if kind == "twin":
            c.items["twins"].append(text)
        else:
            c.items["phrases" if held_trigger(text, trig[c.category], tables) else "euphemisms"].append(text)
        n_lines += 1
    return n_lines


def split(concepts):
    """(train, heldout): per category, concepts ordered by SHA-256 of their id; the first
    round(HOLDOUT_SHARE x n) are held out."""
    held = set()
    for cat in CATEGORIES:
        cs = sorted((c for c in concepts if c.category == cat), key=lambda c: hashlib.sha256(c.id.encode()).hexdigest())
        held.update(c.id for c in cs[:round(HOLDOUT_SHARE * len(cs))])
    return [c for c in concepts if c.id not in held], [c for c in concepts if c.id in held]


def dev_split(train, salt):
    """(train, dev): the training concepts split again by the rule of split() with the SHA-256
    of SALT/ID, for choosing features and settings by their recall on concepts the model has
    not seen without ever looking at the real held-out concepts (--dev-salt)."""
    dev = set()
    for cat in CATEGORIES:
        cs = sorted((c for c in train if c.category == cat), key=lambda c: hashlib.sha256((salt + "/" + c.id).encode()).hexdigest())
        dev.update(c.id for c in cs[:round(HOLDOUT_SHARE * len(cs))])
    return [c for c in train if c.id not in dev], [c for c in train if c.id in dev]


def benign_sections(concepts):
    return [c for c in concepts if not c.cats]


def category_triggers(concepts, tables):
    """{category: {trigger word as a tuple of normalised words}}."""
    trig = collections.defaultdict(set)
    for c in concepts:
        for w in c.items["words"]:
            t = tuple(x for x, _, _ in features.words(w, tables))
            if t:
                trig[c.category].add(t)
    return trig


def held_trigger(text, triggers, tables):
    """The first of TRIGGERS (tuples of normalised words) that TEXT holds as words, or None."""
    ws = [x for x, _, _ in features.words(text, tables)]
    for t in sorted(triggers):
        if any(tuple(ws[i:i + len(t)]) == t for i in range(len(ws) - len(t) + 1)):
            return t
    return None


def check_euphemisms(concepts, tables):
    """A euphemism must not contain a trigger word of its category (as normalised words)."""
    trig = category_triggers(concepts, tables)
    bad = []
    for c in concepts:
        for e in c.items["euphemisms"]:
            t = held_trigger(e, trig[c.category], tables)
            if t:
                bad.append(f"{c.id}: euphemism '{e}' contains trigger '{' '.join(t)}'")
    return bad


# ---------------------------------------------------------------------------------------
# SD-style contexts

SUBJECTS = """a woman|a man|a young woman|an old man|a girl|a boy|a teenager|a soldier|a knight|a nurse
|a businessman|a farmer|a police officer|a chef|a priest|a child|a couple|a family|two friends|a crowd
|a robot|an astronaut|a samurai|a witch|an elf princess|a vampire|a cowboy|a pirate|a fisherman
|a ballerina|a boxer|a student|a teacher|a doctor|a street musician|a cyberpunk girl|a viking warrior
|a dog|a cat|a horse|a wolf|a dragon|an owl|a fox|a tiger|a bear|a rabbit|a deer|a lion|a crow
|portrait of a woman|portrait of a man|close up portrait of an old woman|full body shot of a man
|a detailed portrait of a knight|a beautiful woman|a handsome man|a fantasy character|an anime girl
|a king on a throne|a queen|a monk|a scientist|a hacker|a gangster|a clown|a mermaid|a ghost""".replace("\n", "").split("|")
SETTINGS = """in a dark alley|in a forest|on a beach|in a bedroom|in a kitchen|in a bathroom|on a city street at night
|in a castle|in a desert|in the rain|in a neon-lit city|in a garden|in a field of flowers|in an abandoned
hospital|in a subway station|in a church|in a classroom|in an office|in a park|on a rooftop|in space
|in a cave|in a living room|at a party|in a bar|in a library|in a museum|on a mountain|by a lake
|underwater|in a snowy village|in a spaceship|at a train station|in a hotel room|in a basement""".replace("\n", "").split("|")
STYLES, ARTISTS, QUALITY = sdstyle.STYLES, sdstyle.ARTISTS, sdstyle.QUALITY   # the shared tag pools
OBJECTS = """a cup of coffee|a bowl of fruit|a vintage car|a bicycle|a sailboat|a lighthouse|a castle|a cottage
|a treehouse|a waterfall|a mountain lake|a city skyline|a bridge|a train|a hot air balloon|a windmill
|a lantern|a teapot|a violin|a piano|a bookshelf|a clock tower|a greenhouse|a market stall|a cake
|a pizza|a bouquet of roses|a sunflower field|a cherry blossom tree|a campfire|a snowman|a robot toy
|an old map|a crystal ball|a spaceship|a submarine|a temple|a pagoda|a desert oasis|a coral reef""".replace("\n", "").split("|")
BENIGN_ACTIONS = """reading a book|drinking tea|walking a dog|playing guitar|painting a canvas|riding a bicycle|smiling
|dancing|cooking dinner|gardening|laughing with friends|looking at the stars|sleeping peacefully
|holding an umbrella|sitting on a bench|playing chess|feeding birds|writing a letter|fishing|surfing
|skiing|running on the beach|hugging|waving|taking a selfie|drinking coffee|shopping|singing
|building a sandcastle|flying a kite|riding a horse|climbing a mountain|swimming|meditating""".replace("\n", "").split("|")
WEIGHTS = ["({}:1.2)", "({}:1.3)", "({}:1.4)", "({}:0.8)", "(({}))", "[{}]", "({})", "{{{}}}"]


def load_safety_contexts():
    """The bank's safety-context texts (benign by design: they must not fire)."""
    out = []
    for path in (os.path.join(ROOT, "data/concepts/default.bank"),):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("context"):
                    out.append(line.split("=", 1)[1].strip())
    return out


def load_bank_terms():
    terms = set()
    with open(os.path.join(ROOT, "data/concepts/default.bank"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("terms"):
                terms.update(t.strip().lower() for t in line.split("=", 1)[1].split(","))
    return terms


LEXNAMES = {"noun": {5, 6, 13, 15, 17, 20, 25},          # animal artifact food location object plant shape
            "adj": {0, 1},                                 # adj.all adj.pert
            "verb": {29, 30, 31, 32, 35, 36, 38, 39, 41, 42, 43}}  # body change cognition communication
#                                                             contact creation motion perception social stative weather
UNSAFE_ANCESTORS = {"weapon", "weaponry", "drug", "explosive", "instrument_of_execution", "instrument_of_punishment",
                    "restraint", "projectile", "ammunition", "firearm", "gun", "controlled_substance",
                    "narcotic", "device_of_torture", "poison",
                    # verbs
                    "kill", "injure", "wound", "attack", "assault", "torture", "rape", "steal", "rob", "copulate",
                    "masturbate", "excrete", "die", "shoot", "stab", "hit", "strike", "beat", "abuse", "harass",
                    "insult", "mock", "humiliate", "threaten", "smoke", "drink", "inject", "undress", "strip"}


def gerund(v):
    if v.endswith("ie"):
        return v[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and len(v) > 2:
        return v[:-1] + "ing"
    if (len(v) <= 4 and len(v) >= 3 and v[-1] not in "aeiouwxy" and v[-2] in "aeiou" and v[-3] not in "aeiou"):
        return v + v[-1] + "ing"
    return v + "ing"


def wordnet_vocab(exclude):
    """{'noun', 'adj', 'verb' (as -ing forms)}: single-word WordNet lemmas from benign
    lexicographer files, without unsafe ancestors and without any word in `exclude`; and
    'common_*': those with a sense-tagged count in WordNet's cntlist (the frequent ones)."""
    counted = set()
    path = "/usr/share/wordnet/cntlist.rev"
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                counted.add(line.split("%", 1)[0])
    out = {}
    for pos in ("noun", "adj", "verb"):
        ws = wordnet_words(pos, exclude)
        out[pos] = [w for w, _ in ws]
        out["common_" + pos] = [w for w, base in ws if base in counted]
    return out


def read_synsets(pos):
    """WordNet's data.<pos> by synset offset: (hypernym offsets, lower-case lemmas without their
    (a)/(p) markers, lexicographer file number) as three dicts; empty when absent."""
    path = f"/usr/share/wordnet/data.{pos}"
    parents, lemmas, lex = {}, {}, {}
    if not os.path.exists(path):
        return parents, lemmas, lex
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):
                continue
            p = line.split(" ")
            off, lexn, wcnt = p[0], int(p[1]), int(p[3], 16)
            ws = [p[4 + 2 * i].lower() for i in range(wcnt)]
            k = 4 + 2 * wcnt
            npt = int(p[k])
            par = [p[k + 1 + 4 * i + 1] for i in range(npt) if p[k + 1 + 4 * i] in ("@", "@i")]
            parents[off], lemmas[off], lex[off] = par, [re.sub(r"\(.*\)$", "", w) for w in ws], lexn
    return parents, lemmas, lex


def wordnet_words(pos, exclude):
    parents, lemmas, lex = read_synsets(pos)
    if not lemmas:
        return []

    def unsafe(off, depth=0):
        if depth > 20:
            return False
        if any(w in UNSAFE_ANCESTORS for w in lemmas.get(off, [])):
            return True
        return any(unsafe(q, depth + 1) for q in parents.get(off, []))

    out = set()
    for off, ws in lemmas.items():
        if lex[off] not in LEXNAMES[pos] or unsafe(off):
            continue
        for w in ws:
            if re.fullmatch(r"[a-z]{3,14}", w) and w not in exclude:
                form = gerund(w) if pos == "verb" else w
                if form not in exclude:
                    out.add((form, w))
    return sorted(out)


# ---------------------------------------------------------------------------------------
# obfuscation

LEET_OUT = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "l": "1", "g": "9", "b": "8"}
HOMOGLYPH_OUT = collections.defaultdict(list)
for _k, _v in features.CONFUSABLES.items():
    HOMOGLYPH_OUT[_v].append(_k)
SMALLCAP_OUT = {}
for _cp in range(0x250, 0x1DC0):
    _n = unicodedata.name(chr(_cp), "")
    if _n.startswith("LATIN LETTER SMALL CAPITAL ") and len(_n) == len("LATIN LETTER SMALL CAPITAL ") + 1:
        SMALLCAP_OUT.setdefault(_n[-1].lower(), chr(_cp))
DIACRITIC = ["\u0301", "\u0300", "\u0308", "\u0303", "\u0302"]
ZW = ["\u200b", "\u00ad", "\u200c", "\u2060"]


def obfuscate(w, rng):
    """One obfuscated form of w, and the method's name."""
    letters = [i for i, c in enumerate(w) if c.isalpha()]
    if not letters:
        return w, "none"
    m = rng.choice(["leet", "leet", "spacing", "separators", "homoglyph", "smallcaps", "fullwidth", "repeats",
                    "zerowidth", "diacritics", "case", "combo"])
    if m == "combo":
        a, _ = obfuscate(w, rng)
        b, _ = obfuscate(a, rng)
        return b, "combo"
    if m == "leet":
        out = list(w)
        cand = [i for i in letters if w[i].lower() in LEET_OUT]
        if not cand:
            return w.upper(), "case"
        k = max(1, int(len(cand) * rng.uniform(0.3, 1.0)))
        for i in rng.sample(cand, k):
            out[i] = rng.choice(LEET_OUT[w[i].lower()])
        return "".join(out), m
    if m == "spacing":
        return " ".join(c for c in w if c != " "), m
    if m == "separators":
        sep = rng.choice([".", "-", "_", "*", " . ", "~"])
        return sep.join(c for c in w if c != " "), m
    if m == "homoglyph":
        out = [rng.choice(HOMOGLYPH_OUT[c]) if c in HOMOGLYPH_OUT and rng.random() < 0.6 else c for c in w.lower()]
        return "".join(out), m
    if m == "smallcaps":
        return "".join(SMALLCAP_OUT.get(c, c) for c in w.lower()), m
    if m == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in w), m
    if m == "repeats":
        i = rng.choice(letters)
        return w[:i] + w[i] * rng.randint(3, 6) + w[i + 1:], m
    if m == "zerowidth":
        i = rng.choice(letters[1:] or letters)
        return w[:i] + rng.choice(ZW) + w[i:], m
    if m == "diacritics":
        out = "".join(c + rng.choice(DIACRITIC) if c.isalpha() and rng.random() < 0.4 else c for c in w)
        return unicodedata.normalize("NFC", out), m
    return "".join(c.upper() if rng.random() < 0.5 else c for c in w), m


# ---------------------------------------------------------------------------------------
# prompts


class Gen:
    def __init__(self, rng, vocab, contexts):
        self.r = rng
        self.vocab = vocab or {}
        self.nouns = self.vocab.get("noun", [])
        self.verbs = self.vocab.get("verb", [])
        self.contexts = contexts
        self.sd = sdstyle.SDStyle(rng, self.vocab.get("common_noun", []), self.vocab.get("common_adj", []))
        self.hard = []             # benign hard negatives: (word, part of speech)
        self.phrases = {}          # benign phrases holding unsafe-looking words: {group: [phrase]}
        self.sd_share, self.hard_share, self.phrase_share = 0.5, 0.12, 0.08
        self.parts = []            # everyday words of unsafe phrases (phrase_parts()), as benign words
        self.part_share = 0.06
        self.foreign_ordinary = []  # ordinary prompts in other languages: [(lang, text)]
        # rows of other-language fragments, as shares of the English ones: unsafe per concept,
        # twins per concept, ordinary benign
        self.fphrase_share, self.ftwin_share, self.fordinary_share = 0.10, 0.30, 0.05

    def word(self, pos):
        """A WordNet word: 3 times in 4 a common one (sense-tagged), else any."""
        r = self.r
        common = self.vocab.get("common_" + pos)
        return r.choice(common if common and r.random() < 0.75 else self.vocab[pos])

    def np(self):
        r = self.r
        adj = self.word("adj") + " " if self.vocab.get("adj") and r.random() < 0.5 else ""
        n = self.word("noun")
        det = r.choice(['a', 'the', 'an old', 'two', 'a small', 'a large', 'some', 'many'])
        if det in ("two", "some", "many"):  # plurals: their endings ("-ties", "-ies") are ordinary text
            n = sdstyle.plural(n)
        return f"{det} {adj}{n}"

    def tags(self, lo=1, hi=4):
        r = self.r
        pool = []
        for _ in range(r.randint(lo, hi)):
            k = r.random()
            if r.random() < 0.5:
                pool.append(self.sd.tag())
                continue
            pool.append(r.choice(STYLES) if k < 0.35 else ("by " if r.random() < 0.6 else "") + r.choice(ARTISTS)
                        if k < 0.6 else r.choice(QUALITY))
        return ", ".join(pool)

    def subject(self):
        """A subject for a context: the short list or an SD-style person."""
        return self.sd.person() if self.r.random() < 0.4 else self.r.choice(SUBJECTS)

    def benign_core(self):
        r = self.r
        k = r.random()
        if k < 0.2:
            return f"{r.choice(SUBJECTS)} {r.choice(BENIGN_ACTIONS)} {r.choice(SETTINGS)}"
        if k < 0.3:
            return f"{r.choice(OBJECTS)} {r.choice(SETTINGS)}"
        if k < 0.55 and self.nouns:
            return f"{self.np()}{' and ' + self.np() if r.random() < 0.4 else ''}" \
                   f"{' ' + r.choice(SETTINGS) if r.random() < 0.5 else ''}"
        if k < 0.8 and self.verbs and self.nouns:
            prep = r.choice(["in", "on", "through", "under", "near", "with", "behind", "across", "into", "over", "at"])
            return f"{r.choice(SUBJECTS)} {self.word('verb')} {self.np()}" \
                   f"{' ' + prep + ' ' + self.np() if r.random() < 0.6 else ''}"
        if k < 0.9:
            return f"{r.choice(SUBJECTS)}"
        return f"{r.choice(SUBJECTS)} {r.choice(SETTINGS)}"

    def wrap(self, x, kind):
        """Put x (an unsafe or near-concept item) in an SD-style context. kind: 'word' or 'phrase'."""
        r = self.r
        if kind == "word" and r.random() < 0.25:
            x = r.choice(WEIGHTS).format(x)
        if kind == "word" and r.random() < 0.05:
            x = f"[{x}|{r.choice(['clothed', 'smiling', 'happy', 'flowers', 'peaceful'])}]"
        k = r.random()
        subj, sett = self.subject(), r.choice(SETTINGS)
        if kind == "word":
            forms = [f"{x}", f"{subj}, {x}", f"{x} {subj.split(' ', 1)[-1]}", f"{subj}, {x}, {sett}",
                     f"{x}, {subj} {sett}", f"a {x} scene {sett}", f"{subj} {sett}, {x}",
                     f"{x}, {self.benign_core()}"]
        else:
            forms = [f"{x}", f"{x}, {sett}", f"a photo of {x}", f"{x}, {self.benign_core()}",
                     f"{self.benign_core()}, {x}", f"{subj}, {x}", f"{x}"]
        core = r.choice(forms)
        if r.random() < 0.04:
            core = core.replace(", ", " BREAK ", 1) if r.random() < 0.5 else core.replace(", ", ", BREAK", 1)
        if k < 0.25:
            return core
        if k < 0.55:
            return f"{core}, {self.tags()}"
        if k < 0.8:
            return f"{self.tags(1, 3)}, {core}, {self.tags(1, 3)}"
        return f"{core}, {self.tags(3, 7)}"

    def wrap_foreign(self, lang, x):
        """A fragment written in language lang in an SD-style context: alone, with tags (English
        ones, as users of every language write them), or joined to the first clause of an ordinary
        prompt of the same language."""
        r = self.r
        k = r.random()
        if k < 0.2:
            return x
        if k < 0.6:
            return f"{x}, {self.tags()}"
        if k < 0.8:
            return f"{self.tags(1, 3)}, {x}, {self.tags(1, 3)}"
        same = [t for lg, t in self.foreign_ordinary if lg == lang]
        if not same:
            return f"{x}, {self.tags(2, 5)}"
        other = r.choice(same).split(",")[0].strip()
        return f"{x}, {other}" if r.random() < 0.5 else f"{other}, {x}"

    def benign(self):
        """(source, prompt): an ordinary benign prompt. Sources: 'benign' (the short-list and
        WordNet contexts), 'benign:sd' (sdstyle.py's ordinary SD prompts), 'benign:hard' (a hard
        negative word, hard_negative_words(), in an ordinary context), 'benign:phrase' (a phrase
        of benign_phrases.py in an ordinary context)."""
        r = self.r
        j = r.random()
        if j < self.sd_share:
            return "benign:sd", self.sd.prompt()
        if j < self.sd_share + self.hard_share and self.hard:
            return "benign:hard", self.hard_prompt(*r.choice(self.hard))
        if self.parts and j >= 1.0 - self.part_share:
            return "benign:part", self.hard_prompt(r.choice(self.parts), "adj")
        if j < self.sd_share + self.hard_share + self.phrase_share and self.phrases:
            x, acc = r.random(), 0.0
            for g, share in benign_phrases.GROUPS:
                acc += share
                if x < acc and self.phrases.get(g):
                    return "benign:phrase", self.wrap(r.choice(self.phrases[g]), "phrase")
        return "benign", self.plain_benign()

    def hard_prompt(self, w, pos):
        """An ordinary prompt around the benign word w (pos: noun, adj or verb as -ing)."""
        r, sd = self.r, self.sd
        thing = r.choice(sdstyle.ANIMALS + sdstyle.OBJECTS + sdstyle.PLACES).split(" ", 1)[-1]
        if pos == "adj":
            core = r.choice([f"a {w} {thing}", f"{sd.person()}, {w}", f"{w} {r.choice(sdstyle.PEOPLE)}",
                             f"a {w} {thing} {r.choice(sdstyle.SCENES)}"])
        elif pos == "verb":
            core = r.choice([f"{sd.person()} {w} {self.np() if self.nouns else 'a ' + thing}",
                             f"{r.choice(sdstyle.ANIMALS)} {w}", f"a {r.choice(sdstyle.PEOPLE)} {w} {r.choice(sdstyle.SCENES)}"])
        else:
            core = r.choice([f"a {w}", f"a {r.choice(sdstyle.PEOPLE_ADJ)} {w}", f"{sd.person()} with a {w}",
                             f"a {w} {r.choice(sdstyle.SCENES)}", f"still life with a {w} and {r.choice(sdstyle.FOODS)}",
                             f"{w}", f"a {w} next to {r.choice(sdstyle.OBJECTS)}"])
        parts = [core] + [sd.tag() for _ in range(r.choice([0, 1, 2, 3, 4, 6]))]
        return sd.syntax(parts)

    def plain_benign(self):
        r = self.r
        # absent evidence must read as benign: empty and very short prompts, single words,
        # unknown strings (their features are unseen, so the bias itself must be low)
        j = r.random()
        if j < 0.01:
            return ""
        if j < 0.08 and self.nouns:
            return " ".join(self.word(r.choice(["noun", "noun", "adj", "verb"])) for _ in range(r.randint(1, 3)))
        if j < 0.10:
            return " ".join("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
                            for _ in range(r.randint(1, 4)))
        core = self.benign_core()
        k = r.random()
        if k < 0.15:
            return core
        if k < 0.5:
            s = f"{core}, {self.tags()}"
        elif k < 0.8:
            s = f"{self.tags(1, 3)}, {core}, {self.tags(2, 5)}"
        else:
            s = f"{core}, {self.tags(3, 8)}"
        if r.random() < 0.04 and self.contexts:
            s += ", " + r.choice(self.contexts)
        return s


def grams(w, lo=3, hi=5):
    s = "<" + w + ">"
    return {s[i:i + n] for n in range(lo, hi + 1) for i in range(len(s) - n + 1)}


def hard_negative_words(triggers, vocab, min_share=0.4, per_trigger=6):
    """[(word, pos)]: benign vocabulary words that share many character n-grams with a
    training trigger word (the detector's features are n-grams, so these are the words it
    confuses with the triggers: "apple"/"nipple", "therapist"/"rapist").
    For each single-word trigger of >= 4 letters, the benign words whose 3..5-grams cover at
    least min_share of the trigger's, best first, at most per_trigger; inflections of the
    trigger (sharing its first len - 1 letters, at least 4) are never taken."""
    cands = {}
    for pos in ("noun", "adj", "verb"):
        for w in vocab.get("common_" + pos, []):
            cands.setdefault(w, pos)
    for w in sdstyle.benign_words():
        cands.setdefault(w, "noun")
    index = collections.defaultdict(set)
    cg = {w: grams(w) for w in cands}
    for w, gs in cg.items():
        for g in gs:
            index[g].add(w)
    out = {}
    for t in sorted(triggers):
        if len(t) < 4 or not t.isalpha():
            continue
        tg = grams(t)
        hits = collections.Counter()
        for g in tg:
            for w in index.get(g, ()):
                hits[w] += 1
        stem = t[:max(4, len(t) - 1)]
        ranked = sorted(((-k / len(tg), w) for w, k in hits.items()
                         if k / len(tg) >= min_share and w != t and not w.startswith(stem) and not t.startswith(w[:max(4, len(w) - 1)])))
        for _, w in ranked[:per_trigger]:
            out.setdefault(w, cands[w])
    return sorted(out.items())


def phrase_parts(concepts, tables, vocab):
    """Everyday English words (WordNet's sense-tagged common words, which already leave out the
    bank's terms and the training triggers) inside the concepts' unsafe phrases and
    euphemisms: "final" of "final solution", "public" of "public humiliation". Alone they are
    no evidence; the phrase is."""
    common = set(vocab.get("common_noun", [])) | set(vocab.get("common_adj", [])) | set(vocab.get("common_verb", []))
    out = set()
    for c in concepts:
        for k in ("phrases", "euphemisms"):
            for x in c.items[k]:
                for w, _, _ in features.words(x, tables):
                    if len(w) >= 3 and w.isalpha() and w in common:
                        out.add(w)
    return sorted(out)


def single_word_triggers(concepts, tables):
    """The concepts' trigger words that are one word once normalised."""
    out = set()
    for c in concepts:
        for w in c.items["words"]:
            ws = [x for x, _, _ in features.words(w, tables)]
            if len(ws) == 1:
                out.add(ws[0])
    return out


def training_exclusions(train):
    """Words never used as benign vocabulary: the bank's one-word terms and the training
    concepts' one-word triggers."""
    exclude = {t for t in load_bank_terms() if " " not in t}
    for c in train:
        exclude.update(w.lower() for w in c.items["words"] if " " not in w)
    return exclude


def load_hard_words(path, exclude):
    """[(word, pos)] from mine.py's list: 'word<TAB>pos<TAB>why' lines, '#' comments."""
    out = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    w, pos = line.split("\t")[:2]
                    if w not in exclude:
                        out.append((w, pos))
    return sorted(set(out))


def concept_prompts(c, n, gen, rng):
    """n unsafe prompts for concept c: (source, prompt)."""
    out = []
    it = c.items
    kinds = [("word", 0.30), ("obf", 0.22), ("phrase", 0.15), ("euph", 0.23), ("foreign", 0.07), ("emoji", 0.03)]
    while len(out) < n:
        x = rng.random()
        acc = 0
        for kind, p in kinds:
            acc += p
            if x < acc:
                break
        if kind == "word" and it["words"]:
            out.append(("word", gen.wrap(rng.choice(it["words"]), "word")))
        elif kind == "obf" and it["words"]:
            w, how = obfuscate(rng.choice(it["words"]), rng)
            if rng.random() < 0.08:      # glued to a neighbouring tag: "BREAKnude", "bloodsoaked"
                w = rng.choice(["BREAK", "", "ultra", "hyper"]) + w.replace(" ", "") + rng.choice(["", "girl", "scene", "art"])
            out.append(("obf:" + how, gen.wrap(w, "word")))
        elif kind == "phrase" and it["phrases"]:
            p = rng.choice(it["phrases"])
            if rng.random() < 0.2 and it["words"]:
                for w in it["words"]:
                    if w in p:
                        p = p.replace(w, obfuscate(w, rng)[0], 1)
                        break
            out.append(("phrase", gen.wrap(p, "phrase")))
        elif kind == "euph" and it["euphemisms"]:
            out.append(("euphemism", gen.wrap(rng.choice(it["euphemisms"]), "phrase")))
        elif kind == "foreign" and it["foreign"]:
            out.append(("foreign", gen.wrap(rng.choice(it["foreign"]), "word")))
        elif kind == "emoji" and it["emoji"]:
            out.append(("emoji", gen.wrap(" ".join(rng.choice(it["emoji"]) for _ in range(rng.randint(1, 3))), "word")))
    return out


def build(concepts, rng, vocab, contexts, n_unsafe, n_twin, n_benign, ambiguous=(), hard=(), phrases=None, parts=(),
          foreign=()):
    gen = Gen(rng, vocab, contexts)
    gen.foreign_ordinary = list(foreign)
    gen.hard = list(hard)
    gen.parts = list(parts)
    gen.phrases = phrases or {}
    rows = []
    for c in ambiguous:
        for _ in range(n_twin * len(c.items["twins"]) // 4):
            rows.append(("", f"{c.id}:twin", gen.wrap(rng.choice(c.items["twins"]), "phrase")))
    for c in concepts:
        label = ",".join(str(i) for i in sorted(set(c.cats)))
        for src, p in concept_prompts(c, n_unsafe, gen, rng):
            rows.append((label, f"{c.id}:{src}", p))
        for _ in range(n_twin if c.items["twins"] else 0):
            rows.append(("", f"{c.id}:twin", gen.wrap(rng.choice(c.items["twins"]), "phrase")))
    # two concepts in one prompt
    for _ in range(len(concepts) * n_unsafe // 20):
        a, b = rng.sample(concepts, 2)
        pa = concept_prompts(a, 1, gen, rng)[0][1]
        pb = rng.choice(a.items["words"] + b.items["words"] or ["x"])
        rows.append((",".join(str(i) for i in sorted(set(a.cats + b.cats))), f"{a.id}+{b.id}:mix", f"{pa}, {pb}"))
    for _ in range(n_benign):
        src, p = gen.benign()
        rows.append(("", src, p))
    # fragments written in other languages, added after the English prompts (which are thus the
    # same rows, from the same draws, as without them): unsafe scenes of each concept, its benign
    # twins, ordinary prompts
    # (a concept's draws grow with its lines: at the default 700 unsafe prompts a concept, at
    # least one draw a line on average, so that a new round of lines does not thin out the
    # earlier ones)
    for c in concepts:
        label = ",".join(str(i) for i in sorted(set(c.cats)))
        fp, ft = c.items.get("fphrases", []), c.items.get("ftwins", [])
        for _ in range(max(round(n_unsafe * gen.fphrase_share), round(len(fp) * n_unsafe / 700)) if fp else 0):
            rows.append((label, f"{c.id}:fphrase", gen.wrap_foreign(*rng.choice(fp))))
        for _ in range(max(round(n_twin * gen.ftwin_share), round(len(ft) * n_twin * 3 / 700)) if ft else 0):
            rows.append(("", f"{c.id}:ftwin", gen.wrap_foreign(*rng.choice(ft))))
    for _ in range(round(n_benign * gen.fordinary_share) if gen.foreign_ordinary else 0):
        rows.append(("", "benign:foreign", gen.wrap_foreign(*rng.choice(gen.foreign_ordinary))))
    rng.shuffle(rows)
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for lab, src, p in rows:
            p = p.replace("\t", " ").replace("\n", " ")
            f.write(f"{lab}\t{src}\t{p}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--all-concepts", action="store_true", help="train on every concept (no held-out split)")
    ap.add_argument("--per-concept", type=int, default=700, help="unsafe training prompts per concept")
    ap.add_argument("--benign", type=int, default=160000, help="ordinary benign training prompts")
    ap.add_argument("--hard-words", default=os.path.join(HERE, "hard_words.txt"),
                    help="benign hard-negative words (mine.py's list); absent: none")
    ap.add_argument("--inventory", default=os.path.join(HERE, "concepts.txt"), help="the concept inventory")
    ap.add_argument("--benign-phrases", action="store_true",
                    help="add benign_phrases.py's phrases as a benign source (8%% of the benign prompts); "
                         "measured in the tenth session and not shipped (docs/safety-detectors.md)")
    ap.add_argument("--phrase-parts", action="store_true",
                    help="add the everyday words of the concepts' unsafe phrases as benign words (phrase_parts(); "
                         "6%% of the benign prompts); measured in the eleventh session (docs/safety-detectors.md)")
    ap.add_argument("--foreign-lines", default=os.path.join(HERE, "foreign_lines.tsv"),
                    help="fragments written in other languages (load_foreign_lines()); 'none': no such lines")
    ap.add_argument("--english-lines", default="none",
                    help="English scene paraphrases and twins to add to the inventory's euphemisms, phrases and "
                         "twins (load_english_lines(); tools/learned/english_lines.tsv: measured in the fifteenth "
                         "session and not shipped, docs/safety-detectors.md); default none")
    ap.add_argument("--dev-salt", default=None,
                    help="development run: hold out a second share of the training concepts (DIR/dev_generated.tsv, "
                         "DIR/dev_split.txt) to measure recall on unseen concepts without the real held-out ones")
    a = ap.parse_args()
    tables = features.Tables.build()
    concepts = load_inventory(a.inventory)
    if a.english_lines != "none":
        load_english_lines(a.english_lines, concepts, tables)
    bad = check_euphemisms(concepts, tables)
    if bad:
        raise SystemExit("corpus.py: euphemisms with trigger words:\n  " + "\n  ".join(bad))
    ambiguous = benign_sections(concepts)
    concepts = [c for c in concepts if c.cats]
    foreign_ordinary = load_foreign_lines(a.foreign_lines, concepts) if a.foreign_lines != "none" else []
    train, held = (concepts, []) if a.all_concepts else split(concepts)
    dev = []
    if a.dev_salt:
        train, dev = dev_split(train, a.dev_salt)
    os.makedirs(a.out, exist_ok=True)
    if dev:
        with open(os.path.join(a.out, "dev_split.txt"), "w", encoding="utf-8") as f:
            f.write(f"# development held-out concepts (salt {a.dev_salt}); never in train.tsv or val.tsv\n")
            for c in dev:
                f.write(c.id + "\n")
    with open(os.path.join(a.out, "split.txt"), "w", encoding="utf-8") as f:
        f.write(f"# held-out concepts (rule: per category, ordered by SHA-256 of the id, first round({HOLDOUT_SHARE} x n))\n")
        for c in held:
            f.write(c.id + "\n")
    # benign vocabulary: WordNet nouns minus the bank's terms and the training concepts' words
    exclude = training_exclusions(train)
    vocab = wordnet_vocab(exclude)
    nouns = vocab["noun"]
    contexts = load_safety_contexts()
    # benign hard negatives: the committed list of mine.py (n-gram neighbours of the training
    # triggers and words a previous model fired on, the lexical detector's terms left out)
    hard = load_hard_words(a.hard_words, exclude | single_word_triggers(train, tables))
    with open(os.path.join(a.out, "hard_words.txt"), "w", encoding="utf-8") as f:
        f.write(f"# benign hard-negative words used: {len(hard)} ({a.hard_words})\n")
        for w, p in hard:
            f.write(f"{w}\t{p}\n")
    # benign phrases with unsafe-looking words (benign_phrases.py); for the split model, none
    # that holds a held-out concept's trigger word
    held_words = {x.lower() for c in held for x in c.items["words"] if not re.search(r"[\s'_-]", x)}
    phrases = benign_phrases.phrases(exclude | single_word_triggers(concepts, tables), UNSAFE_ANCESTORS,
                                     read_synsets("noun"), held_words) if a.benign_phrases else {}
    with open(os.path.join(a.out, "benign_phrases.txt"), "w", encoding="utf-8") as f:
        f.write(f"# benign phrases used (tools/learned/benign_phrases.py): "
                f"{', '.join(f'{g} {len(v)}' for g, v in phrases.items())}\n")
        for g, v in phrases.items():
            for p in v:
                f.write(f"{g}\t{p}\n")
    parts = phrase_parts(train, tables, vocab) if a.phrase_parts else []
    with open(os.path.join(a.out, "phrase_parts.txt"), "w", encoding="utf-8") as f:
        f.write(f"# everyday words of unsafe phrases used as benign words: {len(parts)}\n")
        for w in parts:
            f.write(w + "\n")
    rng = random.Random(a.seed)
    rows = build(train, rng, vocab, contexts, a.per_concept, a.per_concept // 3, a.benign, ambiguous, hard, phrases,
                 parts, foreign_ordinary)
    write_tsv(os.path.join(a.out, "train.tsv"), rows)
    vrng = random.Random(a.seed + 1)
    val = build(train, vrng, vocab, contexts, a.per_concept // 7, a.per_concept // 21, a.benign // 7, ambiguous, hard,
                phrases, parts, foreign_ordinary)
    write_tsv(os.path.join(a.out, "val.tsv"), val)
    with open(os.path.join(a.out, "calib_unsafe.txt"), "w", encoding="utf-8") as fu, \
            open(os.path.join(a.out, "calib_benign.txt"), "w", encoding="utf-8") as fb:
        fu.write("# generated validation prompts of the training concepts (tools/learned/corpus.py)\n")
        fb.write("# generated benign validation prompts: near-concept twins and ordinary prompts (tools/learned/corpus.py)\n")
        for lab, src, p in val:
            # the English prompts only, as in every release before the other-language fragments:
            # the threshold keeps the recipe's operating point on them (those fragments are in
            # val.tsv, for the validation loss, not in the calibration sets)
            if src.split(":")[-1] in ("fphrase", "ftwin") or src == "benign:foreign":
                continue
            (fu if lab else fb).write(p.replace("\n", " ").lstrip("#") + "\n")
    hrng = random.Random(a.seed + 2)
    hrows = build(held, hrng, vocab, contexts, 60, 20, 0, foreign=foreign_ordinary) if held else []
    write_tsv(os.path.join(a.out, "heldout_generated.tsv"), hrows)
    if dev:
        write_tsv(os.path.join(a.out, "dev_generated.tsv"), build(dev, random.Random(a.seed + 3), vocab, contexts, 60, 20, 0,
                                                                       foreign=foreign_ordinary))
    n_unsafe = sum(1 for r in rows if r[0])
    print(f"corpus: {len(concepts)} concepts ({len(train)} trained, {len(held)} held out), WordNet "
          f"{len(nouns)} nouns, {len(vocab['adj'])} adjectives, {len(vocab['verb'])} verbs "
          f"({len(vocab['common_noun'])}, {len(vocab['common_adj'])}, {len(vocab['common_verb'])} common); "
          f"train {len(rows)} prompts ({n_unsafe} unsafe), val {len(val)}, held-out generated {len(hrows)}; "
          f"{len(hard)} hard-negative words; benign phrases {sum(len(v) for v in phrases.values())}; seed {a.seed}")


if __name__ == "__main__":
    main()
