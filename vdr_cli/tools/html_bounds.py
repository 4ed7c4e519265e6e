"""Bounds on HTML before it is parsed: nesting depth decides extraction time.

Extraction walks the tree recursively, so its time grows with the square of the
nesting depth (20,000 nested <div>s took 10 s, a 3 MB page minutes). Real pages
nest a few dozen levels, a few hundred at worst; a page nesting deeper is cut
where it first passes `MAX_DEPTH`, so what comes before the pathological part
is still read. The scan is one regular-expression pass, before any parsing.
"""

from __future__ import annotations

import re

MAX_DEPTH = 512
# Tags that never hold others, or that HTML closes implicitly (so an unclosed one
# does not nest): counting them would make old-style pages look deep.
_FLAT = frozenset(b"area base br col embed hr img input link meta param source track wbr "
                  b"p li dt dd tr td th option thead tbody tfoot colgroup rp rt".split())
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]{0,40})[^<>]*?(/?)>")


def bound_nesting(html: str | bytes, max_depth: int = MAX_DEPTH) -> tuple[str | bytes, bool]:
    """`html` cut before the tag that first opens level `max_depth + 1`; (html, cut)."""
    data = html.encode("utf-8", "surrogatepass") if isinstance(html, str) else html
    if data.count(b"<") <= max_depth:
        return html, False  # cannot nest that deep
    depth = 0
    for m in _TAG.finditer(data):
        name = m.group(2).lower()
        if name in _FLAT or m.group(3):
            continue
        if m.group(1):
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > max_depth:
            cut = data[: m.start()]
            return (cut.decode("utf-8", "surrogatepass") if isinstance(html, str) else cut), True
    return html, False
