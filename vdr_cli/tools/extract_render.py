"""Render the chosen article nodes as plain text with light Markdown.

Headings become `#` lines, paragraphs are separated by blank lines, list items start with
`- `, data tables become `| a | b |` rows, code blocks are fenced. Links and images are
collected with absolute addresses.

Walking every node in Python is the slow way; instead, marker characters are inserted
around block elements (a C call each) and the text is taken in one C call, then split on
the markers. The nodes are modified in place: render them last.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from selectolax.lexbor import LexborNode

from .extract_meta import absolute

_BREAK = "\ue000"  # paragraph boundary (Unicode private use: never in real text)
_NEWLINE = "\ue001"  # a newline that whitespace folding must keep (tables, code)
_INDENT = "\ue002"  # two spaces before a nested list item, likewise
_SPACE = "\ue003"  # a space inside code, likewise
_BLOCKS = (
    "address, article, aside, blockquote, center, dd, details, div, dl, dt, fieldset, figcaption, figure, "
    "footer, form, h1, h2, h3, h4, h5, h6, header, hgroup, hr, li, main, nav, ol, p, section, summary, "
    "ul, caption"
)
_PREFIX = {"h1": "# ", "h2": "## ", "h3": "### ", "h4": "#### ", "h5": "##### ", "h6": "###### ",
           "li": "- ", "blockquote": "> "}
_SKIP_HREF = re.compile(r"^\s*(?:javascript:|mailto:|tel:|data:|#)", re.I)


def is_data_table(table: LexborNode) -> bool:
    """Tell a data table from a layout table (old sites lay pages out with tables)."""
    if (table.attributes.get("role") or "").lower() in ("presentation", "none"):
        return False
    # css() matches the node itself too, hence the id check.
    return all(n.mem_id == table.mem_id for n in table.css("table, p, div div, h1, h2, h3"))


def _squash(text: str | None) -> str:
    return " ".join((text or "").split())


def _table_text(table: LexborNode) -> str:
    for br in table.css("br"):
        br.replace_with(" ")  # a line break in a cell still separates words
    rows = []
    for row in table.css("tr"):
        cells = [_squash(c.text()).replace("|", "\\|") for c in row.css("th, td")]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
            if len(rows) == 1:  # header separator, so the table is valid Markdown
                rows.append("|" + " --- |" * len(cells))
    caption = table.css_first("caption")
    if caption is not None and _squash(caption.text()):
        rows.insert(0, _squash(caption.text()) + _BREAK)
    return _BREAK + _NEWLINE.join(rows) + _BREAK


class Rendered:
    """Text, links and images of the article nodes."""

    def __init__(self) -> None:
        self.text = ""
        self.links: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.captions: dict[str, str] = {}  # image address -> its figure's caption

    def add_link(self, node: LexborNode, base: str | None) -> None:
        href = node.attributes.get("href")
        if not href or _SKIP_HREF.match(href):
            return
        url = absolute(base, href)
        if url not in self.links:
            self.links[url] = _squash(node.text())

    def add_image(self, node: LexborNode, base: str | None) -> str | None:
        attrs = node.attributes
        src = attrs.get("src") or ""
        if not src or src.startswith("data:"):
            # Lazy-loading pages keep the real address in a data attribute.
            src = attrs.get("data-src") or attrs.get("data-lazy-src") or attrs.get("data-original") or ""
        src = src.strip()
        if src and not src.startswith("data:"):
            url = absolute(base, src)
            if url not in self.images:
                self.images[url] = (attrs.get("alt") or "").strip()
            return url
        return None


_CAPTION = re.compile(r"caption|credit", re.I)


def _is_caption(node: LexborNode) -> bool:
    """A block named as a caption or photo credit that holds no image itself (a "wp-caption"
    wrapper holds the image too, and stays)."""
    cls = node.attrs.get("class")
    return bool(cls and _CAPTION.search(cls)) and node.tag not in ("body", "article", "main") \
        and node.css_first("img, picture, video") is None and len(node.text(strip=True) or "") < 500


def render(nodes: list[LexborNode], base: str | None, skip: Callable[[LexborNode], bool] | None = None) -> Rendered:
    out = Rendered()
    parts = []
    query = "a[href], img, figcaption, [class], [id]" if skip is not None else "a[href], img"
    for node in nodes:
        last_image = None
        for el in node.css(query):  # document order: a skipped block goes before its links
            if el.parent is None:
                continue  # inside a block skipped just before
            tag = el.tag
            if el.mem_id != node.mem_id and (tag == "figcaption" or _is_caption(el)):
                # A caption describes a picture, it is not the article's prose: it goes with the
                # image (the figure's, seen just before) instead of into the text.
                if last_image is not None:
                    out.captions.setdefault(last_image, _squash(el.text()))
                el.decompose()
                continue
            if skip is not None and el.mem_id != node.mem_id and skip(el):
                el.decompose()
                continue
            if tag == "img":
                last_image = out.add_image(el, base)
            elif tag == "a":
                out.add_link(el, base)
        _mark(node)
        parts.append(node.text() or "")
        parts.append(_BREAK)
    out.text = _join(_BREAK.join(parts))
    return out


def _mark(node: LexborNode) -> None:
    """Replace tables, code and line breaks by marked text; put markers around blocks."""
    nested = None
    me = node.mem_id
    for el in node.css("table, pre, br, " + _BLOCKS):  # one C pass, dispatch here
        tag = el.tag
        if tag == "br":
            if el.parent is not None:  # not inside a table or code block replaced above
                el.replace_with(_BREAK)
        elif tag == "table":
            if el.parent is not None and el.mem_id != me and is_data_table(el):
                el.replace_with(_table_text(el))
        elif tag == "pre":
            if el.parent is not None and el.mem_id != me:
                for br in el.css("br"):
                    br.replace_with("\n")
                code = (el.text() or "").strip("\n")
                code = code.replace("\t", "    ").replace(" ", _SPACE).replace("\n", _NEWLINE)
                el.replace_with(_BREAK + "```" + _NEWLINE + code + _NEWLINE + "```" + _BREAK)
        else:
            prefix = _PREFIX.get(tag or "", "")
            if tag == "li":
                if nested is None:
                    nested = {li.mem_id for li in node.css("li li")}
                if el.mem_id in nested:
                    prefix = _INDENT + "- "
            el.insert_before(_BREAK + prefix)
            el.insert_after(_BREAK)


def _join(text: str) -> str:
    out: list[str] = []
    carry = ""
    prev_item = False
    for chunk in text.split(_BREAK):
        chunk = " ".join(chunk.split())  # markers are not whitespace, so they stay
        if not chunk:
            continue
        bare = chunk.replace(_INDENT, "")
        if bare in ("-", ">"):
            # A list or quote marker followed by a block (<li><p>..</p></li>) goes on that block.
            carry = carry or chunk + " "
            continue
        if bare.strip("#") == "":
            continue  # an empty heading
        if carry and not bare.startswith(("- ", "> ")):
            chunk = carry + chunk
            bare = chunk.replace(_INDENT, "")
        carry = ""
        item = bare.startswith("- ")
        # List items stay on consecutive lines; other blocks get a blank line between.
        if out:
            out.append("\n" if prev_item and item else "\n\n")
        out.append(chunk)
        prev_item = item
    return "".join(out).replace(_INDENT, "  ").replace(_NEWLINE, "\n").replace(_SPACE, " ")
