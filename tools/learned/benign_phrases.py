"""Benign phrases that hold words of unsafe concepts, for the learned detector's corpus
(corpus.py's 'benign:phrase' source; tenth session).

The model reads words and bigrams; a word such as "naked", "blood", "shooting" or "sixties"
(read as "sixty-nine") made it fire on "naked mole rats", "a dragon's blood tree", "a film
crew shooting a scene", "a woman in her sixties". These phrases put such words in their
benign senses into ordinary prompts:

- the default bank's English `safe` phrases: the benign senses the lexical detector already
  knows ("blood orange", "photo shoot", "killer whale", the identity words of [hate]);
- WordNet's multi-word noun lemmas from benign lexicographer files (animals, plants, foods,
  places, natural objects and phenomena, shapes, times) without an unsafe ancestor, that
  hold a word of an unsafe concept ("naked mole rat", "pistol shrimp", "death cap");
- ages and decades ("a woman in her sixties", "1960s fashion");
- text written in the picture (signs, posters, t-shirts) with ordinary slogans ("a protest
  sign saying save the bees"): the model had read "a poster saying ..." as hate.

A phrase that holds a word of a held-out concept is left out of the split model's corpus
(`held_words`), so that its held-out near-concept figures stay unseen.
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# WordNet lexicographer files whose lemmas name benign things: animal, food, location, natural
# object, phenomenon, plant, shape, time (artifacts and acts hold weapons, drugs and crimes)
LEXNAMES = {5, 13, 15, 17, 19, 20, 25, 28}

PEOPLE = ["a woman", "a man", "an elegant woman", "a handsome man", "a grandmother", "a grandfather",
          "a couple", "a lady", "a gentleman", "a fisherman", "a farmer", "a teacher", "a nurse", "an artist"]
POSSESSIVE = {"a couple": "their"}
DECADES = ["twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties"]
SLOGANS = ["save the bees", "peace and love", "welcome home", "make love not war", "coffee first",
           "good vibes only", "open 24 hours", "free hugs", "no more plastic", "protect our oceans",
           "climate justice now", "vote", "happy birthday", "just married", "hello world",
           "keep calm and carry on", "eat more vegetables", "live laugh love", "hope", "believe",
           "beware of the dog", "danger high voltage", "do not enter", "fresh bread daily", "sale",
           "equal pay now", "education for all", "love is love", "refugees welcome", "black lives matter",
           "save the whales", "books not bombs", "kindness matters", "stay wild", "go team",
           "closed for the season", "rooms available", "welcome to the jungle", "be kind", "home sweet home"]
HOLDERS = ["a sign", "a protest sign", "a poster", "a banner", "a t-shirt", "a neon sign", "a chalkboard",
           "a billboard", "a coffee mug", "a vintage poster", "a wooden sign", "a handwritten note"]
SAYS = ["that says", "saying", "reading", "with the text", "with the words", "that reads"]


def bank_safe_phrases(path=None):
    """The default bank's English `safe` phrases, lower-case, in file order."""
    out = []
    with open(path or os.path.join(ROOT, "data/concepts/default.bank"), encoding="utf-8") as f:
        for line in f:
            if re.match(r"^safe\s*=", line):
                out += [t.strip().lower() for t in line.split("=", 1)[1].split(",") if t.strip()]
    return out


# never taught as benign: drug plants, and names that are also slang or slurs
DENY = {"cannabis", "opium", "coca", "peyote", "psilocybin", "marijuana", "slave", "anal", "attack", "cock"}


def wordnet_compounds(words, unsafe_ancestors, synsets):
    """Multi-word WordNet noun lemmas of LEXNAMES, without an ancestor in unsafe_ancestors,
    that hold one of `words` (lower-case single words). synsets: corpus.read_synsets("noun")."""
    parents, lemmas, lex = synsets
    memo = {}

    def unsafe(off, depth=0):
        if off in memo:
            return memo[off]
        r = depth <= 30 and (any(w in unsafe_ancestors for w in lemmas.get(off, []))
                             or any(unsafe(q, depth + 1) for q in parents.get(off, [])))
        memo[off] = r
        return r

    out = set()
    for off, ws in lemmas.items():
        if lex[off] not in LEXNAMES:
            continue
        for w in ws:
            if "_" not in w or not re.fullmatch(r"[a-z'_-]{5,40}", w):
                continue
            parts = re.split(r"[_-]", w)
            if any(x in words for x in parts) and not DENY & set(parts) and not unsafe(off):
                out.add(w.replace("_", " "))
    return sorted(out)


def ages_and_decades():
    out = []
    for p in PEOPLE:
        pos = POSSESSIVE.get(p, "her" if any(x in p for x in ("woman", "grandmother", "lady", "nurse")) else "his")
        for d in DECADES:
            out.append(f"{p} in {pos} {d}")
    for d in DECADES:
        out += [f"{d} fashion", f"{d} style", f"a {d} diner", f"{d} hairstyle"]
    for y in range(1920, 2000, 10):
        out += [f"{y}s fashion", f"a {y}s photograph", f"{y}s style", f"{str(y)[2:]}s aesthetic"]
    return out


def signs():
    return [f"{h} {s} {q}" for h in HOLDERS for s in SAYS for q in SLOGANS]


GROUPS = (("bank", 0.4), ("wordnet", 0.3), ("signs", 0.2), ("ages", 0.1))


def phrases(words, unsafe_ancestors, synsets, held_words=()):
    """{group: sorted phrases} for GROUPS, less the phrases holding a word in held_words."""
    held = set(held_words)
    groups = {"bank": bank_safe_phrases(), "wordnet": wordnet_compounds(words, unsafe_ancestors, synsets),
              "signs": signs(), "ages": ages_and_decades()}
    return {g: sorted({p for p in ps if not (held & set(re.split(r"[\s'_-]+", p)))}) for g, ps in groups.items()}
