"""Render a cleaned HTML subtree as plain text with light Markdown.

Headings become `#` lines, paragraphs are separated by blank lines, list items start with
`- `, data tables become `| a | b |` rows. Links and images met on the way are collected.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from selectolax.lexbor import LexborNode

BLOCK_TAGS = frozenset(
    "address article aside blockquote center dd details dialog div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section summary table tbody "
    "thead tfoot tr td th ul caption body html".split()
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SKIP_TAGS = frozenset("script style noscript template svg head title button select input textarea option iframe".split())
_WS = re.compile(r"\s+")
_SKIP_HREF = re.compile(r"^\s*(?:javascript:|mailto:|tel:|data:|#)", re.I)


def is_data_table(table: LexborNode) -> bool:
    """Tell a data table from a layout table (old sites lay pages out with tables)."""
    attrs = table.attributes
    if (attrs.get("role") or "").lower() in ("presentation", "none"):
        return False
    if table.css_first("table, p, div div, h1, h2, h3") is not None:
        return False
    return True


class Renderer:
    """Walks nodes in document order and accumulates Markdown blocks, links and images."""

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.links: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.list_depth = 0

    # -- output helpers
    def flush(self) -> None:
        text = _WS.sub(" ", "".join(self.line)).strip()
        self.line = []
        if text:
            self.blocks.append(self.prefix + text)
        self.prefix = ""

    def url(self, href: str) -> str:
        href = href.strip()
        if not self.base:
            return href
        try:
            return urljoin(self.base, href)
        except ValueError:  # malformed URLs (bad IPv6 brackets, ...) are kept as written
            return href

    def text(self) -> str:
        return "\n\n".join(self.blocks)

    # -- traversal
    def render(self, node: LexborNode) -> None:
        tag = node.tag
        if tag == "-text":
            self.line.append(node.text_content or "")
            return
        if tag is None or tag.startswith("-") or tag in _SKIP_TAGS:
            return  # comments, doctype, leftovers
        if tag == "br":
            self.line.append("\n")
            if self.prefix or self.list_depth:
                return
            self.flush()
            return
        if tag == "img":
            self.image(node)
            return
        if tag == "a":
            self.link(node)
        if tag == "table" and is_data_table(node):
            self.flush()
            self.table(node)
            return
        if tag == "pre":
            self.flush()
            code = (node.text(deep=True) or "").strip("\n")
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
        if tag in ("ul", "ol"):
            self.list_depth += 1
            self.children(node)
            self.list_depth -= 1
        elif tag in ("li", "blockquote") or tag in _HEADINGS:
            # Keep the prefix for the first line of the block only.
            self.children(node)
        else:
            self.children(node)
        self.flush()

    def children(self, node: LexborNode) -> None:
        child = node.child
        while child is not None:
            self.render(child)
            child = child.next

    def link(self, node: LexborNode) -> None:
        href = node.attributes.get("href") or ""
        if not href or _SKIP_HREF.match(href):
            return
        url = self.url(href)
        if url not in self.links:
            self.links[url] = _WS.sub(" ", node.text() or "").strip()

    def image(self, node: LexborNode) -> None:
        attrs = node.attributes
        src = attrs.get("src") or ""
        if not src or src.startswith("data:"):
            # Lazy-loading pages keep the real address in a data attribute.
            src = attrs.get("data-src") or attrs.get("data-lazy-src") or attrs.get("data-original") or ""
        src = src.strip()
        if not src or src.startswith("data:"):
            return
        url = self.url(src)
        if url not in self.images:
            self.images[url] = (attrs.get("alt") or "").strip()

    def table(self, table: LexborNode) -> None:
        for row in table.css("tr"):
            cells = [_WS.sub(" ", c.text() or "").strip().replace("|", "\\|") for c in row.css("th, td")]
            if any(cells):
                self.blocks.append("| " + " | ".join(cells) + " |")
        for cell in table.css("a, img"):
            self.link(cell) if cell.tag == "a" else self.image(cell)
        caption = table.css_first("caption")
        if caption is not None:
            text = _WS.sub(" ", caption.text() or "").strip()
            if text:
                self.blocks.append(text)
