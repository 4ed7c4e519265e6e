"""Main-content extraction from web pages, built on selectolax (lexbor).

A Readability-style scorer: paragraphs score by length and commas, scores flow to their
ancestors, class/id hints and link density adjust them, the best node plus qualifying
siblings is the article, then link-heavy or off-topic blocks inside it are pruned. Whole-tree
work is left to lexbor's C code (tag stripping, CSS matching, text joins) so that the Python
part only touches paragraphs and a few candidate containers: this is what makes it fast
(see bench/extraction.py).

Pure functions, no network. Entry points: `extract` and `detect_challenge`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from vdr_cli.tools.html_bounds import bound_nesting

from vdr_cli.net.charset import sniff_encoding

from .extract_meta import absolute, detect_challenge, page_meta
from .extract_render import Rendered, is_data_table, render
from .extract_score import (
    MAYBE_OK,
    class_weight,
    link_density,
    score_paragraphs,
    squash_text,
    tlen,
    top_candidate,
    unlikely,
    with_siblings,
)

__all__ = ["Extracted", "extract", "detect_challenge"]


@dataclass
class Extracted:
    """What `extract` finds in a page. `text` is the main content as light Markdown; `links`
    ({"url", "text"}) and `images` ({"src", "alt"}) come from the main content, with absolute
    addresses; `challenge` labels an anti-bot or consent page ("cloudflare", "captcha", ...)."""

    title: str = ""
    text: str = ""
    links: list[dict[str, str]] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    challenge: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Never content, and cheap to strip in C (one tree walk per tag, so the list is short).
_JUNK_TAGS = ["script", "style", "noscript", "template", "svg", "iframe"]
# Page furniture by tag, role or state. Each term of a selector list costs a tree walk's
# share of time in lexbor, so the list is short and attribute values are checked in Python.
_FURNITURE_TAGS = frozenset("nav aside footer header button select textarea".split())
_FURNITURE_ROLES = frozenset("navigation banner contentinfo complementary dialog alertdialog search menu".split())
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_FURNITURE_SEL = ", ".join(sorted(_FURNITURE_TAGS)) + ', [role], [hidden], [style*="none" i], [style*="hidden" i]'
# Only comment threads: long enough to outscore an article, so they must go before scoring;
# other furniture (related lists, sidebars, share bars) is pruned after selection.
_EARLY_WORDS = ("comment",)
_EARLY_SEL = _FURNITURE_SEL + ", " + ", ".join(f'[class*="{w}" i], [id*="{w}" i]' for w in _EARLY_WORDS)
_EARLY = re.compile("|".join(_EARLY_WORDS), re.I)
# Visible text of a page above which it is not treated as a challenge page.
_CHALLENGE_MAX_CHARS = 5000
# Tuned choices (cross-validated by bench/extraction.py): main text shorter than this gets
# a lenient second pass; a block inside the article whose text is more than this share
# links is pruned (Readability: 0.33, 0.5 for a positively named block).
LENIENT_BELOW = 500
LINK_SHARE_MAX = 0.33
# Ad labels and "continue" prompts left where an ad or a widget was, as whole lines of the
# text: page furniture on any site, never prose (one pass over the text, not over the tree).
_LABEL_LINE = re.compile(r"^\W*(advert(isement)?s?|ad|sponsored( content)?|comments?|(story|article) continues below( advertisement)?|"
                         r"continue reading( below)?|scroll to continue( with content)?|this slideshow requires javascript)\W*$\n*",
                         re.I | re.M)
# A block with this many <article> teasers (or one more linked headings) lists other
# articles; 0 turns the rule off.
LISTING_MIN = 2


def _is_furniture(node: LexborNode, strict: bool) -> bool:
    """Decide on a node matched by _FURNITURE_SEL/_EARLY_SEL (the selector is coarse)."""
    attrs = node.attrs
    if node.tag in _FURNITURE_TAGS or "hidden" in attrs:
        return True
    role = attrs.get("role")
    if role and role.lower() in _FURNITURE_ROLES:
        return True
    style = attrs.get("style")
    if style and _HIDDEN_STYLE.search(style):
        return True
    if strict:
        names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}"
        # Readability's "maybe a candidate" words veto a class-word match.
        return bool(_EARLY.search(names)) and not MAYBE_OK.search(names)
    return False


class _Share:
    """Is a node a large share of a container's text? The container's length is costly
    (a text join over the whole page), so it is measured only when a node is big enough
    to matter."""

    def __init__(self, container: list[LexborNode], total: int = -1, share: float = 0.4) -> None:
        self.container = container
        self.share = share
        self.total = total

    def large(self, node: LexborNode) -> bool:
        n = tlen(node)
        if n < 200:
            return False
        if self.total < 0:
            self.total = sum(tlen(c) for c in self.container)
        return n > self.total * self.share


def _drop(nodes: list[LexborNode], body: LexborNode, total: int, strict: bool) -> None:
    """Remove furniture nodes, except a layout wrapper ("has-sidebar") around the article:
    one holding much of the page's text together with the headline or an <article>."""
    share = _Share([body], total)
    for node in nodes:
        if node.tag in ("html", "body", "article", "main") or node.parent is None:
            continue
        if not _is_furniture(node, strict):
            continue
        if (
            node.tag not in ("button", "select", "textarea")
            and node.css_first("h1, article, main, [itemprop=articleBody]") is not None
            and share.large(node)
        ):
            continue
        node.decompose()


def _teaser_counts(node: LexborNode) -> dict[int, list[int]]:
    """For each block inside `node`: how many <article> teasers and linked headings it holds
    (one pass over the teasers and their ancestors, not a query per block)."""
    counts: dict[int, list[int]] = {}
    for t in node.css("article, h2 > a[href], h3 > a[href], h4 > a[href], h5 > a[href]"):
        if t.tag == "a" and (t.attributes.get("href") or "").startswith("#"):
            continue
        kind = 0 if t.tag == "article" else 1
        p = t.parent
        while p is not None and p.mem_id != node.mem_id:
            counts.setdefault(p.mem_id, [0, 0])[kind] += 1
            p = p.parent
    return counts


def _is_listing(el: LexborNode, counts: dict[int, list[int]], share: _Share) -> bool:
    """A list of other articles ("More in …", related stories): several <article> teasers, or
    several headings that are each one link to another page. Not when the block is most of
    the article (a listing page, or a round-up whose sections are linked headings)."""
    n_articles, n_linked = counts.get(el.mem_id, (0, 0))
    return (n_articles >= LISTING_MIN or n_linked >= LISTING_MIN + 1) and not share.large(el)


def _clean(node: LexborNode, title: str, strict: bool, para_ids: set[int]) -> None:
    """Prune blocks inside the chosen article that look like furniture (Readability's
    "clean conditionally"): link lists, lists of other articles, image galleries without
    text, short snippets. Innermost first, so a wrapper is judged on what is left inside it."""
    share = _Share([node], share=0.5)
    counts = _teaser_counts(node) if LISTING_MIN else {}
    for el in reversed(node.css("div, section, ul, ol, table, form, figure, header")):
        if el.mem_id in para_ids or el.parent is None or el.mem_id == node.mem_id:
            continue  # paragraphs are content, however short; the node itself was chosen
        tag = el.tag
        if counts and tag in ("div", "section", "ul", "ol") and _is_listing(el, counts, share):
            el.decompose()
            continue
        if tag == "table" and is_data_table(el):
            continue
        text = el.text(strip=True) or ""
        if text.count(",") >= 10:
            continue
        weight = class_weight(el) if strict else 0
        if weight < 0 and len(text) < 2000:
            el.decompose()
            continue
        links_and_images = el.css("a, img")  # one C call for both counts
        n_img = sum(1 for n in links_and_images if n.tag == "img")
        if tag not in ("ul", "ol") and len(text) < 25:
            if not n_img:
                el.decompose()
            continue
        link_len = sum(len(n.text(strip=True) or "") for n in links_and_images if n.tag == "a")
        if text and link_len / len(text) > (0.5 if weight >= 25 else LINK_SHARE_MAX):
            el.decompose()
            continue
        if n_img > 1 and tag != "figure":
            # An image gallery without text. Paragraph-like divs count as paragraphs, as
            # Readability turns them into <p>.
            n_p = sum(1 for n in el.css("p, div") if n.tag == "p" or (n.mem_id in para_ids and n.mem_id != el.mem_id))
            if n_p / n_img < 0.5:
                el.decompose()
    for p in node.css("p:has(a)"):
        # A short paragraph that is all link is a teaser for another page ("Read more: ..").
        n = tlen(p)
        if n < 150 and link_density(p, n) > 0.8:
            p.decompose()
    norm_title = " ".join(title.split()).lower()
    for h in node.css("h1, h2"):
        text = squash_text(h).lower()
        # The headline is reported as `title`; repeating it in the text is noise. Titles
        # often carry a site-name suffix, hence containment with similar lengths.
        same = bool(norm_title) and (text in norm_title or norm_title in text) and (
            min(len(text), len(norm_title)) >= 0.6 * max(len(text), len(norm_title)))
        if not text or same or (strict and class_weight(h) < 0):
            h.decompose()


def _furniture_filter(nodes: list[LexborNode]) -> Callable[[LexborNode], bool]:
    """A predicate for the renderer: skip comment/share/related/... blocks inside the
    article (checked while rendering, to avoid a separate pass over the subtree)."""
    share = _Share(nodes)  # measured lazily: most pages never need it

    def skip(node: LexborNode) -> bool:
        cls, ident = node.attrs.get("class"), node.id
        if not (cls or ident) or not unlikely(f"{cls or ''} {ident or ''}"):
            return False
        return node.tag not in ("body", "article", "main") and not share.large(node)

    return skip


def _base_url(tree: LexborHTMLParser, url: str | None) -> str | None:
    base = tree.head.css_first("base[href]") if tree.head is not None else None
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    return absolute(url, href) if href else url


def _main_nodes(body: LexborNode, title: str, strict: bool, total: int) -> list[LexborNode]:
    """The article's nodes: the best candidate plus qualifying siblings, cleaned."""
    _drop(body.css(_EARLY_SEL if strict else _FURNITURE_SEL), body, total, strict)
    scores, para_ids = score_paragraphs(body, weigh_classes=strict)
    top, top_score = top_candidate(scores)
    if top is None:  # no paragraph of any length: a stub page, keep all of it
        return [body]
    nodes = with_siblings(top, top_score, scores, para_ids)
    for n in nodes:
        _clean(n, title, strict, para_ids)
    return nodes


def _render(body: LexborNode, title: str, base: str | None, strict: bool, total: int) -> Rendered:
    nodes = _main_nodes(body, title, strict, total)
    r = render(nodes, base, skip=_furniture_filter(nodes) if strict else None)
    r.text = _LABEL_LINE.sub("", r.text).rstrip("\n")
    return r


def _to_parser_input(html: str | bytes) -> str | bytes:
    if isinstance(html, str):
        return html
    enc, skip = sniff_encoding(html)
    # lexbor reads UTF-8 bytes itself (invalid bytes become U+FFFD): no Python decode needed.
    return html[skip:] if enc in (None, "utf-8") else html[skip:].decode(enc, errors="replace")


def _main_text(tree: LexborHTMLParser, html: str | bytes, title: str, base: str | None) -> tuple[Rendered, str | None]:
    """Render the main content, pruning `tree`. Also return the unpruned visible text of a
    page short enough to be a challenge page (None for a longer one)."""
    tree.strip_tags(_JUNK_TAGS)
    if tree.body is None:
        return Rendered(), ""
    total = tlen(tree.body)
    visible = None
    if total < _CHALLENGE_MAX_CHARS:
        title_node = tree.head.css_first("title") if tree.head is not None else None
        visible = (title_node.text() + " " if title_node is not None else "") + tree.body.text(separator=" ")
    r = _render(tree.body, title, base, strict=True, total=total)
    if len(r.text) < LENIENT_BELOW:
        # A lenient second pass (no class-name pruning or weights) rescues pages whose
        # article container carries an "unlikely" class name.
        again = LexborHTMLParser(html)
        again.strip_tags(_JUNK_TAGS)
        if again.body is not None:
            r2 = _render(again.body, title, base, strict=False, total=total)
            if len(r2.text) > len(r.text) * 2:
                r = r2
    return r, visible


def _truncate(text: str, max_chars: int) -> str:
    cut = text[: max(max_chars, 0)]
    space = cut.rfind(" ", max(len(cut) - 80, 0))
    return (cut[:space] if space > 0 and len(text) > len(cut) else cut).rstrip()


def extract(html: str | bytes, url: str | None = None, max_chars: int | None = None) -> Extracted:
    """Extract title, main text (light Markdown), links, images and metadata from a page.

    Never raises on bad input: empty or undecodable pages give an empty result.
    """
    html = _to_parser_input(html or "")
    if not html or not html.strip():
        return Extracted()
    html, too_deep = bound_nesting(html)  # parse time grows with the square of the depth
    tree = LexborHTMLParser(html)
    base = _base_url(tree, url)
    title, meta = page_meta(tree, base)  # first: it reads JSON-LD scripts, stripped next
    r, visible = _main_text(tree, html, title, base)
    out = Extracted(
        title=title,
        text=r.text,
        links=[{"url": u, "text": t} for u, t in r.links.items()],
        images=[{"src": s, "alt": a, **({"caption": r.captions[s]} if r.captions.get(s) else {})} for s, a in r.images.items()],
        meta=meta,
    )
    # Challenge and consent pages are short; a page with much text is content even if it
    # talks about captchas.
    if visible is not None and len(out.text.split()) < 250:
        raw = html if isinstance(html, str) else html.decode("utf-8", errors="replace")
        out.challenge = detect_challenge(raw, text=" ".join(visible.split()))
        if out.challenge == "consent-wall" and len(out.text.split()) >= 50 and detect_challenge(out.text) is None:
            out.challenge = None  # a short article with a cookie banner beside it
    if max_chars is not None and len(out.text) > max_chars:
        out.text = _truncate(out.text, max_chars)
        out.truncated = True
    out.truncated = out.truncated or too_deep
    return out
