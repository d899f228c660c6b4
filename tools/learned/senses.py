"""WordNet sense features of the learned detector (weights file version 2).

A word's sense features name the WordNet synsets it may mean and their ancestors, so that a
word the corpus never used still shares features with the words of its kind that it did use
("noose" and "gallows" with "instrument of execution", "cannabis" with "drug of abuse",
"unclothed" with "naked"). This is the definition that src/safety/learned_sense.c follows
bit for bit (docs/safety-detectors.md, "Learned detector").

The table is built here from the WordNet database of Debian's `wordnet-base`
(/usr/share/wordnet, WordNet 3.0) and shipped inside the weights file, so the C side needs no
WordNet and both sides agree.

Table:
- words: every single-word lemma of index.noun, index.verb and index.adj of 3 to 32
  letters a-z, and every inflected form of the .exc files of such a lemma; a word's senses are
  the first NOUN_SENSES noun, VERB_SENSES verb and ADJ_SENSES adjective synsets of its
  lemmas (index order: most frequent first; an inflected form takes its base forms' senses),
  in that order, without repeats. A word is keyed by FNV-1a 32 of its bytes (no kind byte);
  the build refuses two words with one key.
- synsets: each has a code (1e8 x part of speech (1 noun, 2 verb, 3 adjective) + its byte
  offset in WordNet's data file) and its parents: hypernyms and instance hypernyms (@, @i)
  for nouns and verbs; the head adjective (&) for a satellite adjective.

Lookup of word w (the learned detector's normalised word, after leetspeak etc.):
1. w must be 3..32 characters a-z; else no sense features.
2. Candidates, in this order: w itself, then w with each DETACH rule (suffix, replacement)
   whose suffix w ends with and whose stem (w without the suffix) has >= 2 letters, in the
   rule order; a candidate equal to an earlier one is skipped.
3. Start set: the senses of every candidate found in the table, in candidate order, the
   table's order within a candidate, without repeats.
4. Ancestors, level by level (DEPTH levels): the next level is the parents of the current
   level's synsets, in order, that are not yet in the set; the set stops growing at
   MAX_SENSE synsets (the rest of a level is dropped).
5. Features: for each synset in the set, in order, the hash (kind 's') of its code written
   in decimal ("100001740"), masked like every other feature.
"""
import os
import re

WORDNET_DIR = "/usr/share/wordnet"
NOUN_SENSES, VERB_SENSES, ADJ_SENSES = 2, 2, 1
DEPTH = 5
MAX_SENSE = 32
MIN_LEN, MAX_LEN = 3, 32
POS_CODE = {"n": 1, "v": 2, "a": 3}
# morphy's detachment rules (nouns, verbs, adjectives), and the doubled-consonant -ing/-ed forms
DETACH = [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
          ("er", ""), ("est", ""), ("er", "e"), ("est", "e")]
_WORD = re.compile(r"^[a-z]{%d,%d}$" % (MIN_LEN, MAX_LEN))


def fnv1a32(data: bytes, h: int = 2166136261) -> int:
    for b in data:
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


FILES = {"n": "noun", "v": "verb", "a": "adj"}


def _lines(kind, pos, wndir):
    """The lines of WordNet's data.<pos> / index.<pos> / <pos>.exc, license header skipped."""
    name = f"{kind}.{FILES[pos]}" if kind != "exc" else f"{FILES[pos]}.exc"
    with open(os.path.join(wndir, name), encoding="latin-1") as f:
        for line in f:
            if not line.startswith("  "):
                yield line


def _data(pos, wndir):
    """offset -> (ss_type, parent (pos, offset) list) of data.<pos>."""
    out = {}
    for line in _lines("data", pos, wndir):
        t = line.split(" ")
        off, ss = int(t[0]), t[2]
        k = 4 + 2 * int(t[3], 16)
        np_ = int(t[k])
        k += 1
        par = []
        for _ in range(np_):
            sym, toff, tpos = t[k], int(t[k + 1]), t[k + 2]
            k += 4
            tpos = "a" if tpos == "s" else tpos
            if (pos in ("n", "v") and sym in ("@", "@i")) or (pos == "a" and ss == "s" and sym == "&"):
                par.append((tpos, toff))
        out[off] = (ss, par)
    return out


def _index(pos, wndir):
    """lemma -> synset offsets (most frequent first) of index.<pos>."""
    out = {}
    for line in _lines("index", pos, wndir):
        t = line.split()
        cnt, pcnt = int(t[2]), int(t[3])
        out[t[0]] = [int(x) for x in t[4 + pcnt + 2:4 + pcnt + 2 + cnt]]
    return out


def _exc(pos, wndir):
    out = {}
    for line in _lines("exc", pos, wndir):
        t = line.split()
        if len(t) >= 2:
            out.setdefault(t[0], []).extend(t[1:])
    return out


class SenseTable:
    """The table (built from WordNet or read back from a weights file) and the lookup."""

    def __init__(self, word_hash, word_off, word_syn, syn_code, par_off, parents, depth=DEPTH, max_sense=MAX_SENSE):
        self.depth, self.max_sense = int(depth), int(max_sense)
        self.arrays = dict(word_hash=list(word_hash), word_off=list(word_off), word_syn=list(word_syn),
                           syn_code=list(syn_code), par_off=list(par_off), parents=list(parents))
        self.words = {}
        for i, h in enumerate(word_hash):
            self.words[int(h) & 0xFFFFFFFF] = [int(x) for x in word_syn[word_off[i]:word_off[i + 1]]]
        self.code = [int(c) for c in syn_code]
        self.par = [[int(x) for x in parents[par_off[i]:par_off[i + 1]]] for i in range(len(syn_code))]
        self._memo = {}

    @classmethod
    def build(cls, wndir=WORDNET_DIR):
        idx = {p: _index(p, wndir) for p in ("n", "v", "a")}
        dat = {p: _data(p, wndir) for p in ("n", "v", "a")}
        exc = {p: _exc(p, wndir) for p in ("n", "v", "a")}
        keep = {"n": NOUN_SENSES, "v": VERB_SENSES, "a": ADJ_SENSES}
        senses = {}      # word -> [(pos, offset)]

        def add(word, lemma):
            for p in ("n", "v", "a"):
                for off in idx[p].get(lemma, [])[:keep[p]]:
                    lst = senses.setdefault(word, [])
                    if (p, off) not in lst:
                        lst.append((p, off))

        for p in ("n", "v", "a"):
            for lemma in idx[p]:
                if _WORD.match(lemma):
                    add(lemma, lemma)
        for p in ("n", "v", "a"):
            for form, bases in exc[p].items():
                if not _WORD.match(form):
                    continue
                for b in bases:
                    if _WORD.match(b):
                        for off in idx[p].get(b, [])[:keep[p]]:
                            lst = senses.setdefault(form, [])
                            if (p, off) not in lst:
                                lst.append((p, off))
        # the synsets reachable from the senses
        ids, order = {}, []

        def sid(key):
            if key not in ids:
                ids[key] = len(order)
                order.append(key)
            return ids[key]

        stack = [k for w in sorted(senses) for k in senses[w]]
        seen = set()
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            stack.extend(dat[k[0]][k[1]][1])
        for k in sorted(seen, key=lambda k: (POS_CODE[k[0]], k[1])):
            sid(k)
        syn_code = [POS_CODE[p] * 100000000 + off for p, off in order]
        par_off, parents = [0], []
        for p, off in order:
            parents.extend(ids[q] for q in dat[p][off][1])
            par_off.append(len(parents))
        keyed = {}
        for w in senses:
            h = fnv1a32(w.encode())
            if h in keyed:
                raise SystemExit(f"senses.py: '{w}' and '{keyed[h]}' share the key {h:08x}")
            keyed[h] = w
        word_hash, word_off, word_syn = [], [0], []
        for h in sorted(keyed):
            word_hash.append(h)
            word_syn.extend(ids[k] for k in senses[keyed[h]])
            word_off.append(len(word_syn))
        return cls(word_hash, word_off, word_syn, syn_code, par_off, parents)

    def synsets(self, w: str):
        """The synset indices of word w (steps 1-4 of the lookup)."""
        if not _WORD.match(w):
            return []
        r = self._memo.get(w)
        if r is not None:
            return r
        cands = [w]
        for suf, rep in DETACH:
            if w.endswith(suf) and len(w) - len(suf) >= 2:
                c = w[:-len(suf)] + rep
                if c not in cands:
                    cands.append(c)
        out, inset = [], set()
        for c in cands:
            for s in self.words.get(fnv1a32(c.encode()), ()):
                if s not in inset and len(out) < self.max_sense:
                    inset.add(s)
                    out.append(s)
        level = list(out)
        for _ in range(self.depth):
            nxt = []
            for s in level:
                for q in self.par[s]:
                    if q not in inset and len(out) < self.max_sense:
                        inset.add(q)
                        out.append(q)
                        nxt.append(q)
            level = nxt
        if len(self._memo) < 1_000_000:
            self._memo[w] = out
        return out

    def feature_texts(self, w: str):
        return [str(self.code[s]) for s in self.synsets(w)]


if __name__ == "__main__":
    import sys
    t = SenseTable.build()
    print(f"{len(t.arrays['word_hash'])} words, {len(t.code)} synsets, {len(t.arrays['word_syn'])} senses, "
          f"{len(t.arrays['parents'])} parent links")
    for w in sys.argv[1:]:
        print(w, len(t.synsets(w)), t.feature_texts(w))
