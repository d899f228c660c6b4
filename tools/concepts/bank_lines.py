"""Shared by the tools/concepts generators: a list of terms as bank lines."""


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
