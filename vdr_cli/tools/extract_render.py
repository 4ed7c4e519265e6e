"""Render a cleaned HTML subtree as plain text with light Markdown.

Headings become `#` lines, paragraphs are separated by blank lines, list items start with
`- `, data tables become `| a | b |` rows, code blocks are fenced. Links and images met on
the way are collected with absolute addresses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from selectolax.lexbor import LexborNode

from .extract_meta import absolute

BLOCK_TAGS = frozenset(
    "address article aside blockquote center dd details dialog div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section summary table tbody "
    "thead tfoot tr td th ul caption body html".split()
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Blocks that hold only inline content once the parser is done: their text can be taken in
# one C call instead of walking every inline node in Python.
_FLAT_BLOCKS = frozenset("p h1 h2 h3 h4 h5 h6 figcaption dt caption summary".split())
_NESTED = "br, div, p, ul, ol, table, pre, blockquote, h1, h2, h3, h4, h5, h6, figure, section, li, dl"
_SKIP_TAGS = frozenset("script style noscript template svg head title button select input textarea option iframe".split())
_SKIP_HREF = re.compile(r"^\s*(?:javascript:|mailto:|tel:|data:|#)", re.I)


def is_data_table(table: LexborNode) -> bool:
    """Tell a data table from a layout table (old sites lay pages out with tables)."""
    if (table.attributes.get("role") or "").lower() in ("presentation", "none"):
        return False
    return table.css_first("table, p, div div, h1, h2, h3") is None


def _squash(text: str | None) -> str:
    return " ".join((text or "").split())


class Renderer:
    """Walks nodes in document order and accumulates Markdown blocks, links and images."""

    def __init__(self, base: str | None, skip: Callable[[LexborNode], bool] | None = None) -> None:
        self.base = base
        self.skip = skip
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.links: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.list_depth = 0

    def flush(self) -> None:
        text = _squash("".join(self.line))
        self.line = []
        if text:
            self.blocks.append(self.prefix + text)
        self.prefix = ""

    def text(self) -> str:
        out: list[str] = []
        prev_item = False
        for block in self.blocks:
            item = block.lstrip(" ").startswith("- ")
            # List items stay on consecutive lines; other blocks get a blank line between.
            out.append(("\n" if prev_item and item else "\n\n") + block if out else block)
            prev_item = item
        return "".join(out)

    def render(self, node: LexborNode) -> None:
        tag = node.tag
        if tag == "-text":
            self.line.append(node.text_content or "")
            return
        if tag is None or tag[0] in "-#!" or tag in _SKIP_TAGS:
            return  # comments, doctype
        if self.skip is not None and self.skip(node):
            return
        if tag == "br":
            if self.prefix or self.list_depth:
                self.line.append(" ")  # keep list items and headings on one line
            else:
                self.flush()
            return
        if tag == "img":
            self.image(node)
            return
        if tag == "a":
            self.link(node)
        elif tag == "table" and is_data_table(node):
            self.flush()
            self.table(node)
            return
        elif tag == "pre":
            self.flush()
            code = (node.text() or "").strip("\n")
            if code.strip():
                self.blocks.append("```\n" + code + "\n```")
            return
        if tag not in BLOCK_TAGS:
            self.children(node)
            return
        self.flush()
        if tag in _HEADINGS:
            self.prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self.prefix = "  " * max(self.list_depth - 1, 0) + "- "
        elif tag == "blockquote":
            self.prefix = "> "
        if tag in _FLAT_BLOCKS and node.css_first(_NESTED) is None:
            self.line.append(node.text() or "")
            for el in node.css("a, img"):
                self.link(el) if el.tag == "a" else self.image(el)
        elif tag in ("ul", "ol"):
            self.list_depth += 1
            self.children(node)
            self.list_depth -= 1
        else:
            self.children(node)
        self.flush()

    def children(self, node: LexborNode) -> None:
        child = node.child
        while child is not None:
            self.render(child)
            child = child.next

    def link(self, node: LexborNode) -> None:
        href = node.attributes.get("href")
        if not href or _SKIP_HREF.match(href):
            return
        url = absolute(self.base, href)
        if url not in self.links:
            self.links[url] = _squash(node.text())

    def image(self, node: LexborNode) -> None:
        attrs = node.attributes
        src = attrs.get("src") or ""
        if not src or src.startswith("data:"):
            # Lazy-loading pages keep the real address in a data attribute.
            src = attrs.get("data-src") or attrs.get("data-lazy-src") or attrs.get("data-original") or ""
        src = src.strip()
        if not src or src.startswith("data:"):
            return
        url = absolute(self.base, src)
        if url not in self.images:
            self.images[url] = (attrs.get("alt") or "").strip()

    def table(self, table: LexborNode) -> None:
        caption = table.css_first("caption")
        if caption is not None and _squash(caption.text()):
            self.blocks.append(_squash(caption.text()))
        rows = []
        for row in table.css("tr"):
            cells = [_squash(c.text()).replace("|", "\\|") for c in row.css("th, td")]
            if any(cells):
                rows.append("| " + " | ".join(cells) + " |")
                if len(rows) == 1:  # header separator, so the table is valid Markdown
                    rows.append("|" + " --- |" * len(cells))
        if rows:
            self.blocks.append("\n".join(rows))
        for el in table.css("a, img"):
            self.link(el) if el.tag == "a" else self.image(el)
