"""Shared by the tools/concepts generators: a list of terms as bank lines, the bank read without
one generator's blocks, its terms of some languages per category, and the bank written back."""
import os
import re


def term_lines(key, items, width=96):
    """`key = a, b, c` lines (key such as "terms.zh"), each at most about `width` characters
    of terms, in the order given."""
    out, line = [], ""
    for t in items:
        if line and len(line) + len(t) + 2 > width:
            out.append(f"{key} = {line}")
            line = ""
        line = f"{line}, {t}" if line else t
    if line:
        out.append(f"{key} = {line}")
    return out


def read_without_blocks(path, begin, end):
    """The bank file's lines with every generated block (from a line starting with `begin` to
    one starting with `end`, both included) dropped."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, skip = [], False
    for ln in lines:
        if ln.startswith(begin):
            skip = True
        if not skip:
            out.append(ln)
        if ln.startswith(end):
            skip = False
    return out


def lang_terms(lines, langs):
    """{category: {"last": index of its last `terms.LANG` line (or the end of a generated block
    that holds one), LANG: [terms]}} for the languages `langs`."""
    sections, cur, seen = {}, None, False  # seen: a line of these languages in the open block
    for i, ln in enumerate(lines):
        m = re.match(r"\s*\[(.*)\]\s*$", ln)
        if m:
            cur = m.group(1).strip()
            continue
        if ln.startswith("# >>> "):
            seen = False
        m = re.match(r"\s*terms\.(%s)\s*=" % "|".join(langs), ln)
        if cur and m:
            items = [x.strip() for x in ln.split("=", 1)[1].split(",") if x.strip()]
            sec = sections.setdefault(cur, dict({lang: [] for lang in langs}, last=i))
            sec[m.group(1)] += items
            sec["last"] = i
            seen = True
        if ln.startswith("# <<< "):
            # after another generated block that holds these languages, not inside it (a
            # block of other languages does not move it: two generators stay in place)
            if cur in sections and seen:
                sections[cur]["last"] = i
            seen = False
    return sections


def write_bank(path, lines):
    """Write the bank atomically (a temporary file renamed over it)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
