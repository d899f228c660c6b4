"""Features of the learned detector: text normalisation, words and hashed n-grams.

This is the definition that src/safety/learned.c follows bit for bit (docs/safety-detectors.md,
"Learned detector"). The normalisation tables are built here from Python's unicodedata and
shipped inside the weights file, so the C side never consults a Unicode library of its own and
both sides agree whatever their Unicode versions.

Pipeline for a prompt (UTF-8 bytes):

1. Decode. Invalid UTF-8 bytes become U+FFFD (a separator). Every code point keeps the byte
   span it came from.
2. Map each code point through the `norm` table (absent: unchanged). The table holds, for
   every code point below U+30000 whose image differs from itself: NFKD, case folding, NFKD
   again, combining marks (Mn, Me) removed, Latin small capitals (by name) to their letter;
   Hangul syllables are kept whole. The image may be empty (the code point is dropped).
3. Classify each mapped code point with the `class` table (ranges): 0 separator, 1 word
   character (letters, marks, numbers), 2 symbol (So: emoji, each its own word), 3 ignored
   (format characters such as ZWJ, soft hyphen, zero-width space; skin-tone modifiers):
   dropped without ending the word. The ASCII leet symbols @ $ ! are word characters.
4. Words: maximal runs of word characters; a symbol is a one-code-point word. Leading and
   trailing leet symbols are stripped from a word ("wow!" -> "wow"); an empty word is none.
5. Spelled runs: >= 3 consecutive one-code-point words of class 1 whose gaps are 1 to 3 code
   points, each of ' ' '.' '-' '_' '*' '~', are joined into one word ("n u d e", "b.l.o.o.d").
6. Per word: runs of >= 3 identical code points collapse to one (unless the run is the whole
   word: "xxx" stays); confusable letters
   (`confusable` table: Cyrillic and Greek look-alikes of Latin letters) are folded when the
   word holds an ASCII letter or consists only of confusable letters; then, when one of
   0 1 3 4 5 7 8 9 @ $ ! follows a letter (class 1, not an ASCII digit or leet symbol) in the
   word, leetspeak is undone in the whole word (0o 1i 3e 4a 5s 7t 8b 9g @a $s !i: "s3x",
   "k1ll"; "1girl", "8k", "1990s" stay); a word of ASCII digits only is dropped; a word is
   cut to its first 64 code points. (U+FFFD is a separator.)
7. Features of word j (code points w): the character n-grams, n = NGRAM_MIN..NGRAM_MAX, of
   '<' + w + '>' (kind 'c'), the word itself (kind 'w'), in a version 2 file with the `glove`
   extension its pretrained word vector's row (2^BUCKETS_LOG2 + its index, glove.py), with the
   `senses` extension its WordNet sense features (kind 's', senses.py) and, for j >= 1, the previous word,
   a space and the word (kind 'b', the bigram "owned" by word j). A feature's index is
   FNV-1a 32 over the kind byte followed by the UTF-8 bytes of its text, masked to the
   table size (2^BUCKETS_LOG2).

The model (train.py) sums embeddings per word, u_j (n-grams and word) and g_j (bigram), and
scores windows of WINDOW consecutive words; see train.py and learned.h.
"""
import unicodedata

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
MAX_WORD = 64
SPELL_GAP = frozenset(" .-_*~")
LEET_SYMBOLS = frozenset("@$!")
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "a", "$": "s", "!": "i"}
CP_LIMIT = 0x30000          # the norm table covers code points below this
# Scripts written without spaces between words (extension "cjk" of a version 2 file): with it,
# each of these code points is a word of its own, so that a clause is read as a sequence of
# characters (their pairs are the bigram features) and not as one long word
CJK_RANGES = ((0x3005, 0x3007), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
              (0xF900, 0xFAFF), (0x20000, 0x2FFFF))


def is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in CJK_RANGES)
CLASS_SEP, CLASS_WORD, CLASS_SYMBOL, CLASS_IGNORE = 0, 1, 2, 3

# Cyrillic and Greek letters that look like a Latin letter (lower case; upper case is folded
# by step 2 first). Hand-listed from the glyphs.
CONFUSABLES = {
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i",
    "ј": "j", "к": "k", "ӏ": "l", "м": "m", "п": "n", "о": "o", "р": "p", "ԛ": "q", "г": "r",
    "ѕ": "s", "т": "t", "у": "y", "ѵ": "v", "ԝ": "w", "х": "x", "н": "h", "ь": "b",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ѡ": "w", "ɡ": "g", "ı": "i", "ȷ": "j",
}


def fnv1a32(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def _strip_marks(s: str) -> str:
    return "".join(c for c in s if unicodedata.category(c) not in ("Mn", "Me"))


def _image(cp: int) -> str:
    s = chr(cp)
    if 0xAC00 <= cp <= 0xD7A3:            # Hangul syllables stay whole
        return s
    t = _strip_marks(unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", s).casefold()))
    out = []
    for c in t:
        name = unicodedata.name(c, "")
        if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == len("LATIN LETTER SMALL CAPITAL ") + 1:
            c = name[-1].lower()
        out.append(c)
    return "".join(out)


def build_norm_table():
    """(from[], offsets[], to[]) of every code point below CP_LIMIT whose image differs."""
    frm, off, to = [], [0], []
    for cp in range(CP_LIMIT):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        img = _image(cp)
        # apply until stable (the image of an image is itself for every entry we keep)
        for _ in range(3):
            nxt = "".join(_image(ord(c)) if ord(c) < CP_LIMIT else c for c in img)
            if nxt == img:
                break
            img = nxt
        if img != chr(cp):
            frm.append(cp)
            to.extend(ord(c) for c in img)
            off.append(len(to))
    return frm, off, to


def _class_of(cp: int) -> int:
    c = chr(cp)
    if c in LEET_SYMBOLS:
        return CLASS_WORD
    if cp == 0xFFFD:                      # what invalid UTF-8 decodes to
        return CLASS_SEP
    cat = unicodedata.category(c)
    if cat[0] in "LN" or cat[0] == "M":
        return CLASS_WORD
    if cat == "So":
        return CLASS_SYMBOL
    if cat == "Cf" or (cat == "Sk" and 0x1F3FB <= cp <= 0x1F3FF):
        return CLASS_IGNORE
    return CLASS_SEP


def build_class_table():
    """Ranges covering 0..0x10FFFF: start[i] begins a range of class kind[i]."""
    start, kind = [], []
    prev = None
    for cp in range(0x110000):
        k = CLASS_SEP if 0xD800 <= cp <= 0xDFFF else _class_of(cp)
        if k != prev:
            start.append(cp)
            kind.append(k)
            prev = k
    return start, kind


class Tables:
    """The normalisation tables, built here or read back from a weights file."""

    def __init__(self, norm_from, norm_off, norm_to, class_start, class_kind, conf_from, conf_to):
        self.norm = {}
        for i, cp in enumerate(norm_from):
            self.norm[cp] = "".join(chr(c) for c in norm_to[norm_off[i]:norm_off[i + 1]])
        self.class_start = list(class_start)
        self.class_kind = list(class_kind)
        self.conf = {chr(a): chr(b) for a, b in zip(conf_from, conf_to)}
        self.arrays = dict(norm_from=list(norm_from), norm_off=list(norm_off), norm_to=list(norm_to),
                           class_start=list(class_start), class_kind=list(class_kind),
                           conf_from=list(conf_from), conf_to=list(conf_to))
        self._class_cache = {}

    @classmethod
    def build(cls):
        nf, no, nt = build_norm_table()
        cs, ck = build_class_table()
        cf = sorted(ord(k) for k in CONFUSABLES)
        ct = [ord(CONFUSABLES[chr(c)]) for c in cf]
        return cls(nf, no, nt, cs, ck, cf, ct)

    def cls(self, cp: int) -> int:
        k = self._class_cache.get(cp)
        if k is None:
            import bisect
            k = self.class_kind[bisect.bisect_right(self.class_start, cp) - 1]
            self._class_cache[cp] = k
        return k


def _decode(b: bytes):
    """Code points with their byte spans; invalid bytes -> U+FFFD of one byte each.
    Follows the C decoder (learned.c): strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF)."""
    out = []
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            out.append((c, i, i + 1))
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            ln, cp, lo, hi = 2, c & 0x1F, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            ln, cp = 3, c & 0x0F
            lo, hi = (0xA0, 0xBF) if c == 0xE0 else (0x80, 0x9F) if c == 0xED else (0x80, 0xBF)
        elif 0xF0 <= c <= 0xF4:
            ln, cp = 4, c & 0x07
            lo, hi = (0x90, 0xBF) if c == 0xF0 else (0x80, 0x8F) if c == 0xF4 else (0x80, 0xBF)
        else:
            out.append((0xFFFD, i, i + 1))
            i += 1
            continue
        ok = i + ln <= n
        if ok:
            for k in range(1, ln):
                x = b[i + k]
                if not ((lo if k == 1 else 0x80) <= x <= (hi if k == 1 else 0xBF)):
                    ok = False
                    break
                cp = (cp << 6) | (x & 0x3F)
        if not ok:
            out.append((0xFFFD, i, i + 1))
            i += 1
            continue
        out.append((cp, i, i + ln))
        i += ln
    return out


def _is_letter(tables, ch):
    return tables.cls(ord(ch)) == CLASS_WORD and not ("0" <= ch <= "9") and ch not in LEET_SYMBOLS


def words(text, tables, cjk=False):
    """The prompt's words: list of (word, byte_start, byte_end). text: str or bytes.
    cjk: every code point of CJK_RANGES (after the norm table) is a word of its own, never
    joined into a spelled run (extension "cjk")."""
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    # steps 1-3: mapped stream of (char, class, start, end)
    stream = []
    for cp, s, e in _decode(b):
        img = tables.norm.get(cp, chr(cp)) if cp < CP_LIMIT else chr(cp)
        for ch in img:
            stream.append((ch, tables.cls(ord(ch)), s, e))
    # step 4: raw words with the gap text before them
    raw = []        # [chars, start, end, gap_before]
    cur, cs, ce = [], 0, 0
    gap = []

    def flush():
        nonlocal cur, gap
        if not cur:
            return
        chars = cur
        # strip leading/trailing leet symbols
        a, z = 0, len(chars)
        while a < z and chars[a][0] in LEET_SYMBOLS:
            a += 1
        while z > a and chars[z - 1][0] in LEET_SYMBOLS:
            z -= 1
        if a < z:
            raw.append([[c[0] for c in chars[a:z]], chars[a][1], chars[z - 1][2], gap])
            gap = []
        else:
            gap = gap + [c[0] for c in chars]
        cur = []

    for ch, k, s, e in stream:
        if k == CLASS_IGNORE:
            continue
        if k == CLASS_WORD and not (cjk and is_cjk(ord(ch))):
            cur.append((ch, s, e))
        elif k == CLASS_SYMBOL or k == CLASS_WORD:      # a symbol, or a CJK character (cjk)
            flush()
            raw.append([[ch], s, e, gap])
            gap = []
        else:
            flush()
            gap = gap + [ch]
    flush()
    # step 5: spelled runs
    merged = []
    def spelled(c):     # a one-character word that may join a spelled run
        return tables.cls(ord(c)) == CLASS_WORD and not (cjk and is_cjk(ord(c)))

    i = 0
    while i < len(raw):
        j = i
        if len(raw[i][0]) == 1 and spelled(raw[i][0][0]):
            while (j + 1 < len(raw) and len(raw[j + 1][0]) == 1 and spelled(raw[j + 1][0][0])
                   and 1 <= len(raw[j + 1][3]) <= 3 and all(g in SPELL_GAP for g in raw[j + 1][3])):
                j += 1
        if j - i + 1 >= 3:
            merged.append(([raw[k][0][0] for k in range(i, j + 1)], raw[i][1], raw[j][2]))
            i = j + 1
        else:
            merged.append((raw[i][0], raw[i][1], raw[i][2]))
            i += 1
    # step 6
    out = []
    for chars, s, e in merged:
        w = []
        for ch in chars:                       # runs of >= 3 collapse to one
            w.append(ch)
        cw = []
        k = 0
        while k < len(w):
            r = k
            while r < len(w) and w[r] == w[k]:
                r += 1
            cw.extend(w[k:r] if r - k < 3 or r - k == len(w) else [w[k]])
            k = r
        w = cw
        if any(ch in tables.conf for ch in w):
            has_ascii = any("a" <= ch <= "z" for ch in w)
            letters = [ch for ch in w if _is_letter(tables, ch)]
            if has_ascii or all(ch in tables.conf for ch in letters):
                w = [tables.conf.get(ch, ch) for ch in w]
        first = next((k for k, ch in enumerate(w) if _is_letter(tables, ch)), None)
        if first is not None and any(ch in LEET for ch in w[first + 1:]):
            w = [LEET.get(ch, ch) for ch in w]
        if all("0" <= ch <= "9" for ch in w):
            continue
        out.append(("".join(w[:MAX_WORD]), s, e))
    return out


class Hasher:
    """senses: a senses.SenseTable (weights file version 2: WordNet sense features, kind 's')
    or None (version 1)."""

    def __init__(self, buckets_log2, ngram_min, ngram_max, senses=None, glove=None, cjk=False):
        self.cjk = cjk          # extension "cjk": words() splits CJK text into characters
        self.mask = (1 << buckets_log2) - 1
        self.nb = 1 << buckets_log2
        self.nmin, self.nmax = ngram_min, ngram_max
        self.senses = senses
        self.glove = glove
        self._memo = {}

    def index(self, kind: str, text: str) -> int:
        key = kind + text
        v = self._memo.get(key)
        if v is None:
            v = fnv1a32(key.encode("utf-8")) & self.mask
            if len(self._memo) < 4_000_000:
                self._memo[key] = v
        return v

    def word_features(self, w: str):
        s = "<" + w + ">"
        f = []
        for n in range(self.nmin, self.nmax + 1):
            for i in range(len(s) - n + 1):
                f.append(self.index("c", s[i:i + n]))
        f.append(self.index("w", w))
        if self.glove is not None:
            g = self.glove.index(w)
            if g >= 0:
                f.append(self.nb + g)
        if self.senses is not None:
            f.extend(self.index("s", t) for t in self.senses.feature_texts(w))
        return f

    def prompt(self, text, tables):
        """(words, u, g): u[j] = feature indices of word j, g[j] = its bigram index (None for j = 0)."""
        ws = words(text, tables, self.cjk)
        u, g = [], []
        for j, (w, _, _) in enumerate(ws):
            u.append(self.word_features(w))
            g.append(self.index("b", ws[j - 1][0] + " " + w) if j else None)
        return ws, u, g
