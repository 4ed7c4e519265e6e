"""Main-content extraction from web pages, built on selectolax (lexbor).

A Readability-style scorer: paragraphs score by length and commas, scores flow to parent
and grandparent, class/id hints and link density adjust them, the best node plus qualifying
siblings is the article, then link-heavy or off-topic blocks inside it are pruned. Whole-tree
work is left to lexbor's C code (tag stripping, CSS matching, text joins) so that the Python
part only touches paragraphs and a few candidate containers: this is what makes it fast.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from collections.abc import Callable
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .extract_meta import absolute, detect_challenge, page_meta, sniff_encoding
from .extract_render import Rendered, is_data_table, render

__all__ = ["Extracted", "extract", "detect_challenge"]


@dataclass
class Extracted:
    title: str = ""
    text: str = ""
    links: list[dict[str, str]] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    challenge: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Never content; removed with lexbor's C-level strip before any scoring.
# Never content, and cheap to strip in C (one tree walk per tag, so the list is short).
_JUNK_TAGS = ["script", "style", "noscript", "template", "svg", "iframe"]
# Page furniture by tag, role or state: one selector pass, see _drop.
_FURNITURE_TAGS = frozenset("nav aside footer header button select textarea input dialog form object embed".split())
_FURNITURE_SEL = (
    ", ".join(sorted(_FURNITURE_TAGS - {"form"})) + ", [role=navigation], [role=banner], "
    "[role=contentinfo], [role=complementary], [role=dialog], [role=alertdialog], [hidden], "
    '[aria-hidden=true], [style*="display:none"], [style*="display: none"], [style*="visibility:hidden"]'
)
# Readability's "unlikely candidate" words plus consent/share/newsletter furniture.
_UNLIKELY_WORDS = (
    "-ad-", "ai2html", "banner", "breadcrumb", "combx", "comment", "community", "cover-wrap", "disqus",
    "extra", "gdpr", "legends", "menu", "related", "remark", "replies", "rss", "shoutbox",
    "sidebar", "skyscraper", "social", "sponsor", "supplemental", "ad-break", "agegate", "pagination",
    "pager", "popup", "yom-remote", "cookie", "consent", "newsletter", "share", "sharing", "subscribe",
    "recommend", "outbrain", "taboola", "most-popular", "mostpopular", "trending", "signup", "paywall",
    "byline", "author-bio", "tags", "read-more", "readmore", "footer", "masthead", "toolbar", "modal",
)
_UNLIKELY_SEL = ", ".join(f'[class*="{w}" i], [id*="{w}" i]' for w in _UNLIKELY_WORDS)
# The few furniture words worth a whole-page pass before scoring: comment threads and
# link lists are long enough to outscore a short article.
_EARLY_SEL = _FURNITURE_SEL + ", " + ", ".join(
    f'[class*="{w}" i], [id*="{w}" i]' for w in ("comment", "disqus", "related", "sidebar"))
_UNLIKELY = re.compile("|".join(re.escape(w) for w in _UNLIKELY_WORDS), re.I)
_MAYBE_OK = re.compile(r"and|article|body|column|content|main|shadow|story|text|post", re.I)
_POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story", re.I)
_NEGATIVE = re.compile(
    r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|footer|gdpr|masthead|media|meta|"
    r"outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping|tags|widget|newsletter|"
    r"subscribe|recommend|social|byline|author|caption|credit",
    re.I,
)
_TAG_BASE = {
    "div": 5, "article": 8, "main": 5, "section": 3, "pre": 3, "td": 3, "blockquote": 3,
    "address": -3, "ol": -3, "ul": -3, "dl": -3, "dd": -3, "dt": -3, "li": -3, "form": -3,
    "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5, "h6": -5, "th": -5,
}
_BLOCKS = (
    "address, article, blockquote, dl, div, figure, footer, form, h1, h2, h3, h4, h5, h6, header, "
    "li, ol, p, pre, section, table, ul"
)
_CHILD_BLOCKS = ", ".join("> " + t for t in _BLOCKS.split(", "))
_WS = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"\.( |$)")


def _text(node: LexborNode) -> str:
    return " ".join((node.text() or "").split())


def _tlen(node: LexborNode) -> int:
    # strip=True trims each text node: cheap, and indentation no longer counts as text.
    return len(node.text(strip=True) or "")


@lru_cache(maxsize=4096)
def _weigh(value: str) -> int:
    # Pages repeat the same class strings many times: cache by string.
    weight = 0
    if _NEGATIVE.search(value):
        weight -= 25
    if _POSITIVE.search(value):
        weight += 25
    if _UNLIKELY.search(value) and not _MAYBE_OK.search(value):
        weight -= 25
    return weight


def _class_weight(node: LexborNode) -> int:
    """Readability's class/id hint: +25 per positive, -25 per negative attribute."""
    attrs = node.attributes
    cls, ident = attrs.get("class"), attrs.get("id")
    return (_weigh(cls) if cls else 0) + (_weigh(ident) if ident else 0)


def _link_density(node: LexborNode, text_len: int) -> float:
    if not text_len:
        return 0.0
    link_len = sum(len(a.text(strip=True) or "") for a in node.css("a"))
    return min(link_len / text_len, 1.0)


def _drop(nodes: list[LexborNode], total: int) -> None:
    """Remove furniture nodes, except a layout wrapper ("has-sidebar") around the article:
    one holding much of the page's text together with the headline or an <article>."""
    for node in nodes:
        tag = node.tag
        if tag in ("html", "body", "article", "main") or node.parent is None:
            continue
        attrs = node.attrs
        if tag not in _FURNITURE_TAGS and not (attrs.get("role") or "hidden" in attrs or "aria-hidden" in attrs or "style" in attrs):
            # Matched by a class/id word: Readability's "maybe a candidate" words veto it.
            if _MAYBE_OK.search(f"{attrs.get('class') or ''} {attrs.get('id') or ''}"):
                continue
        if _tlen(node) > total * 0.4 and node.css_first("h1, article, main, [itemprop=articleBody]") is not None:
            continue
        node.decompose()


def _score_paragraphs(body: LexborNode, weigh_classes: bool) -> tuple[dict[LexborNode, float], set[int]]:
    """Score paragraph-like nodes into their ancestors; also return the paragraphs' ids."""
    scores: dict[LexborNode, float] = {}
    para_ids: set[int] = set()
    # Divs without block children are paragraphs too (sites that never use <p>), and a div
    # with <br>-separated text of its own counts by that own text.
    paras = [(n, n.text(strip=True) or "") for n in body.css(f"p, pre, td, blockquote, div:not(:has({_CHILD_BLOCKS}))")]
    paras += [(n, n.text(deep=False, strip=True) or "") for n in body.css(f"div:has(> br):has({_CHILD_BLOCKS})")]
    for para, text in paras:
        para_ids.add(para.mem_id)
        if len(text) < 25:
            continue
        score = 1 + text.count(",") + text.count("\uff0c") + min(len(text) // 100, 3)
        node = para.parent
        level = 0
        while node is not None and level < 5:
            tag = node.tag
            if tag in ("html", None) or tag[0] == "#":
                break
            if node not in scores:
                scores[node] = _TAG_BASE.get(tag, 0) + (_class_weight(node) if weigh_classes else 0)
            scores[node] += score / (1 if level == 0 else 2 if level == 1 else level * 3)
            node = node.parent
            level += 1
    return scores, para_ids


def _top_candidate(scores: dict[LexborNode, float]) -> tuple[LexborNode | None, float]:
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    final: list[tuple[LexborNode, float]] = []
    best = float("-inf")
    for node, score in ranked[:10]:
        # Link density only lowers a score, so candidates whose raw score is below 3/4 of
        # the best adjusted one can neither win nor count as near-best alternatives.
        if score < best * 0.75:
            break
        adjusted = score * (1 - _link_density(node, _tlen(node)))
        final.append((node, adjusted))
        best = max(best, adjusted)
    final.sort(key=lambda kv: kv[1], reverse=True)
    if not final:
        return None, 0.0
    top, top_score = final[0]
    # Several near-best candidates under one ancestor: the ancestor is the article.
    alts = [n for n, s in final[1:6] if s >= top_score * 0.75]
    if len(alts) >= 3:
        alt_ancestors = [_ancestor_ids(a) for a in alts]
        parent = top.parent
        while parent is not None and parent.tag not in ("body", "html", None):
            if sum(1 for ids in alt_ancestors if parent.mem_id in ids) >= 3:
                top = parent
                break
            parent = parent.parent
    # Climb while the parent scores higher: the article was split into several blocks.
    last = scores.get(top, top_score)
    parent = top.parent
    while parent is not None and parent.tag not in ("body", "html", None):
        if parent not in scores:
            parent = parent.parent
            continue
        pscore = scores[parent]
        if pscore < last / 3:
            break
        if pscore > last:
            top = parent
            break
        last = pscore
        parent = parent.parent
    # A lone child says nothing: its parent frames the same content.
    while top.parent is not None and top.parent.tag not in ("body", "html", None):
        if len(_element_children(top.parent)) != 1:
            break
        top = top.parent
    return top, scores.get(top, top_score)


def _ancestor_ids(node: LexborNode) -> set[int]:
    ids = set()
    p = node.parent
    while p is not None:
        ids.add(p.mem_id)
        p = p.parent
    return ids


def _element_children(node: LexborNode) -> list[LexborNode]:
    out = []
    child = node.child
    while child is not None:
        tag = child.tag
        if tag and not tag.startswith("-") and not tag.startswith("#"):
            out.append(child)
        child = child.next
    return out


def _with_siblings(top: LexborNode, top_score: float, scores: dict[LexborNode, float]) -> list[LexborNode]:
    """Readability's sibling step: the article may be split across sibling blocks."""
    parent = top.parent
    if parent is None or parent.tag in ("html", None):
        return [top]
    threshold = max(10.0, top_score * 0.2)
    top_class = top.attrs.get("class") or ""
    top_id = top.mem_id
    picked = []
    for sib in parent.iter():
        if sib.mem_id == top_id:
            picked.append(sib)
            continue
        score = scores.get(sib)
        if score is not None:
            bonus = top_score * 0.2 if top_class and sib.attrs.get("class") == top_class else 0
            # Link density only lowers a score, so it is computed only when it could matter.
            if score + bonus >= threshold and score * (1 - _link_density(sib, _tlen(sib))) + bonus >= threshold:
                picked.append(sib)
        elif sib.tag == "p":
            text = _text(sib)
            density = _link_density(sib, _tlen(sib))
            if (len(text) > 80 and density < 0.25) or (0 < len(text) <= 80 and density == 0 and _SENTENCE_END.search(text)):
                picked.append(sib)
    return picked


def _clean(node: LexborNode, title: str, strict: bool, para_ids: set[int]) -> None:
    """Prune blocks inside the chosen article that look like furniture (Readability's
    "clean conditionally"): link lists, image galleries without text, short snippets.
    Innermost first, so a wrapper is judged on what is left inside it."""
    for el in reversed(node.css("div, section, ul, ol, table, form, figure, header")):
        if el.mem_id in para_ids or el.parent is None or el.mem_id == node.mem_id:
            continue  # paragraphs are content, however short; the node itself was chosen
        tag = el.tag
        if tag == "table" and is_data_table(el):
            continue
        text = el.text(strip=True) or ""
        if text.count(",") >= 10:
            continue
        weight = _class_weight(el) if strict else 0
        if weight < 0 and len(text) < 2000:
            el.decompose()
            continue
        is_list = tag in ("ul", "ol")
        if not is_list and len(text) < 25:
            if el.css_first("img") is None:
                el.decompose()
            continue
        if _link_density(el, len(text)) > (0.5 if weight >= 25 else 0.33):
            el.decompose()
            continue
        inner = el.css("p, img, li, div")
        tags = [n.tag for n in inner]
        n_img = tags.count("img")
        # Paragraph-like divs count as paragraphs, as Readability turns them into <p>.
        n_p = tags.count("p") + sum(1 for n in inner if n.tag == "div" and n.mem_id in para_ids and n.mem_id != el.mem_id)
        # Image galleries without text, and (as Readability) divs holding >100 list items.
        if (n_img > 1 and n_p / n_img < 0.5 and tag != "figure") or (not is_list and tags.count("li") - 100 > n_p):
            el.decompose()
    norm_title = " ".join(title.split()).lower()
    for h in node.css("h1, h2"):
        text = _text(h).lower()
        # The headline is reported as `title`; repeating it in the text is noise. Titles
        # often carry a site-name suffix, hence containment with similar lengths.
        same = bool(norm_title) and (text in norm_title or norm_title in text) and (
            min(len(text), len(norm_title)) >= 0.6 * max(len(text), len(norm_title)))
        if not text or same or (strict and _class_weight(h) < 0):
            h.decompose()


@lru_cache(maxsize=4096)
def _unlikely(class_and_id: str) -> bool:
    return bool(_UNLIKELY.search(class_and_id)) and not _MAYBE_OK.search(class_and_id)


def _furniture_filter(total: int) -> Callable[[LexborNode], bool]:
    """A predicate for the renderer: skip comment/share/related/... blocks inside the
    article (checked while rendering, to avoid a separate pass over the subtree)."""

    def skip(node: LexborNode) -> bool:
        cls, ident = node.attrs.get("class"), node.id
        if not (cls or ident) or not _unlikely(f"{cls or ''} {ident or ''}"):
            return False
        return node.tag not in ("body", "article", "main") and _tlen(node) <= total * 0.4

    return skip


def _base_url(tree: LexborHTMLParser, url: str | None) -> str | None:
    base = tree.head.css_first("base[href]") if tree.head is not None else None
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    return absolute(url, href) if href else url


def _main_nodes(body: LexborNode, title: str, strict: bool, total: int) -> tuple[list[LexborNode], int]:
    """Return the article's nodes (best candidate plus qualifying siblings), cleaned, and
    their text length. `total` is the page's text length, for the wrapper guard."""
    _drop(body.css(_EARLY_SEL if strict else _FURNITURE_SEL), total)
    scores, para_ids = _score_paragraphs(body, weigh_classes=strict)
    top, top_score = _top_candidate(scores)
    nodes = _with_siblings(top, top_score, scores) if top is not None else [body]
    for n in nodes:
        _clean(n, title, strict, para_ids)
    return nodes, sum(_tlen(n) for n in nodes)


def _render(body: LexborNode, title: str, base: str | None, strict: bool, total: int) -> Rendered:
    nodes, main_total = _main_nodes(body, title, strict, total)
    return render(nodes, base, skip=_furniture_filter(main_total) if strict else None)


def extract(html: str | bytes, url: str | None = None, max_chars: int | None = None) -> Extracted:
    """Extract title, main text (light Markdown), links, images and metadata from a page."""
    if isinstance(html, bytes):
        enc, skip = sniff_encoding(html)
        # lexbor reads UTF-8 bytes itself (invalid bytes become U+FFFD): skip a Python decode.
        html = html[skip:] if enc in (None, "utf-8") else html[skip:].decode(enc, errors="replace")
    if not html or not html.strip():
        return Extracted()
    tree = LexborHTMLParser(html)
    base = _base_url(tree, url)
    title, meta = page_meta(tree, base)
    title_node = tree.head.css_first("title") if tree.head is not None else None
    tree.strip_tags(_JUNK_TAGS)
    body = tree.body
    if body is None:
        return Extracted(title=title, meta=meta)
    # Visible text before any pruning: the wrapper guard's yardstick and the input to
    # challenge detection (consent banners are pruned later).
    visible = body.text(separator=" ", strip=True) or ""
    r = _render(body, title, base, strict=True, total=len(visible))
    if len(r.text) < 500:
        # A lenient second pass (no unlikely-class removal, no class weights) rescues
        # pages whose article container carries an "unlikely" class name.
        tree = LexborHTMLParser(html)
        tree.strip_tags(_JUNK_TAGS)
        if tree.body is not None:
            r2 = _render(tree.body, title, base, strict=False, total=len(visible))
            if len(r2.text) > len(r.text) * 2:
                r = r2
    text = r.text
    out = Extracted(
        title=title,
        text=text,
        links=[{"url": u, "text": t} for u, t in r.links.items()],
        images=[{"src": s, "alt": a} for s, a in r.images.items()],
        meta=meta,
    )
    if len(text) < 3000 and len(text.split()) < 250:
        raw = html if isinstance(html, str) else html.decode("utf-8", errors="replace")
        page_title = title_node.text() if title_node is not None else ""
        out.challenge = detect_challenge(raw, text=f"{page_title} {visible}")
    if max_chars is not None and len(out.text) > max_chars:
        out.text = out.text[: max(max_chars, 0)].rstrip()
        out.truncated = True
    return out
