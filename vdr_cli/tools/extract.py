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
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .extract_meta import decode_html, detect_challenge, page_meta, visible_text
from .extract_render import Renderer, is_data_table

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
_JUNK_TAGS = [
    "script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas",
    "link", "meta", "button", "input", "select", "textarea", "dialog", "nav", "aside", "footer",
]
# Page furniture by role/state; checked against text share before removal (see _drop).
_FURNITURE_SEL = (
    "header, [role=navigation], [role=banner], [role=contentinfo], [role=complementary], "
    "[role=dialog], [role=alertdialog], [hidden], [aria-hidden=true], "
    '[style*="display:none"], [style*="display: none"], [style*="visibility:hidden"]'
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
_WS = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"\.( |$)")


def _text(node: LexborNode) -> str:
    return " ".join((node.text() or "").split())


def _tlen(node: LexborNode) -> int:
    # strip=True trims each text node: cheap, and indentation no longer counts as text.
    return len(node.text(strip=True) or "")


def _class_weight(node: LexborNode, cache: dict[LexborNode, int] | None = None) -> int:
    if cache is not None and node in cache:
        return cache[node]
    attrs = node.attributes
    weight = 0
    for name in ("class", "id"):
        value = attrs.get(name)
        if value:
            if _NEGATIVE.search(value):
                weight -= 25
            if _POSITIVE.search(value):
                weight += 25
            if _UNLIKELY.search(value) and not _MAYBE_OK.search(value):
                weight -= 25
    if cache is not None:
        cache[node] = weight
    return weight


def _link_density(node: LexborNode, text_len: int) -> float:
    if not text_len:
        return 0.0
    link_len = sum(len(a.text(strip=True) or "") for a in node.css("a"))
    return min(link_len / text_len, 1.0)


def _drop(nodes: list[LexborNode], total: int, guard: re.Pattern[str] | None = None) -> None:
    """Remove furniture nodes, but never one holding most of the page's text (a wrapper)."""
    for node in nodes:
        if node.tag in ("html", "body", "article", "main"):
            continue
        if guard is not None:
            attrs = node.attributes
            if guard.search(f"{attrs.get('class') or ''} {attrs.get('id') or ''}"):
                continue
        if total and _tlen(node) > total * 0.4:
            continue
        node.decompose()


def _score_paragraphs(body: LexborNode, weigh_classes: bool) -> dict[LexborNode, float]:
    scores: dict[LexborNode, float] = {}
    paras = body.css("p, pre, td, blockquote")
    # Divs and sections with their own text (no <p>: "<div>text<br>text</div>") count too.
    paras += [n for n in body.css("div, section, article") if len((n.text(deep=False) or "").strip()) >= 25]
    for para in paras:
        text = para.text(strip=True) or ""
        if len(text) < 25:
            continue
        score = 1 + text.count(",") + text.count("\uff0c") + min(len(text) // 100, 3)
        node = para.parent
        level = 0
        while node is not None and level < 5:
            tag = node.tag
            if tag in ("html", None) or (tag or "").startswith("#"):
                break
            if node not in scores:
                scores[node] = _TAG_BASE.get(tag, 0) + (_class_weight(node) if weigh_classes else 0)
            scores[node] += score / (1 if level == 0 else 2 if level == 1 else level * 3)
            node = node.parent
            level += 1
    return scores


def _top_candidate(scores: dict[LexborNode, float]) -> tuple[LexborNode | None, float]:
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    final: list[tuple[LexborNode, float]] = []
    best = float("-inf")
    for node, score in ranked[:10]:
        # Link density only lowers a score: past the best adjusted one nothing can win.
        if score <= best:
            break
        adjusted = score * (1 - _link_density(node, _tlen(node)))
        final.append((node, adjusted))
        best = max(best, adjusted)
    final.sort(key=lambda kv: kv[1], reverse=True)
    if not final:
        return None, 0.0
    top, top_score = final[0]
    # Several near-best candidates under one ancestor: the ancestor is the article.
    alts = [n for n, s in ranked[1:6] if s >= top_score * 0.75]
    if len(alts) >= 3:
        parent = top.parent
        while parent is not None and parent.tag not in ("body", "html", None):
            if sum(1 for a in alts if _is_ancestor(parent, a)) >= 3:
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


def _is_ancestor(anc: LexborNode, node: LexborNode) -> bool:
    p = node.parent
    while p is not None:
        if p == anc:
            return True
        p = p.parent
    return False


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
    parent = top.parent
    if parent is None or parent.tag in ("html", None):
        return [top]
    threshold = max(10.0, top_score * 0.2)
    top_class = top.attributes.get("class") or ""
    picked = []
    for sib in _element_children(parent):
        if sib == top:
            picked.append(sib)
            continue
        bonus = top_score * 0.2 if top_class and sib.attributes.get("class") == top_class else 0
        if sib in scores and scores[sib] + bonus >= threshold:
            picked.append(sib)
        elif sib.tag == "p":
            text = _text(sib)
            density = _link_density(sib, _tlen(sib))
            if (len(text) > 80 and density < 0.25) or (0 < len(text) <= 80 and density == 0 and _SENTENCE_END.search(text)):
                picked.append(sib)
    return picked


def _clean(node: LexborNode, title: str, strict: bool) -> None:
    """Prune blocks inside the chosen article that look like furniture (Readability's
    "clean conditionally"): link lists, image galleries without text, forms, short snippets."""
    if strict:
        _drop(node.css(_UNLIKELY_SEL), _tlen(node), guard=_MAYBE_OK)
    for el in reversed(node.css("div, section, ul, ol, table, form, figure, header")):
        if el.parent is None:
            continue
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
        density = _link_density(el, len(text))
        if density > (0.5 if weight >= 25 else 0.33):
            el.decompose()
            continue
        n_p = len(el.css("p"))
        n_img = len(el.css("img"))
        if (n_img > 1 and n_p / n_img < 0.5 and tag != "figure") or (not is_list and len(el.css("li")) - 100 > n_p):
            el.decompose()
    norm_title = " ".join(title.split()).lower()
    for h in node.css("h1, h2"):
        text = _text(h).lower()
        # The headline is reported as `title`; repeating it in the text is noise.
        if not text or (norm_title and (text in norm_title or norm_title in text)) or (strict and _class_weight(h) < 0):
            h.decompose()


def _base_url(tree: LexborHTMLParser, url: str | None) -> str | None:
    base = tree.css_first("base[href]")
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    if href:
        try:
            return urljoin(url, href) if url else href
        except ValueError:
            return url
    return url


def _main_nodes(tree: LexborHTMLParser, title: str, strict: bool) -> list[LexborNode]:
    body = tree.body
    if body is None:
        return []
    total = _tlen(body)
    _drop(body.css(_FURNITURE_SEL), total)
    scores = _score_paragraphs(body, weigh_classes=strict)
    top, top_score = _top_candidate(scores)
    if top is None:
        return [body]
    nodes = _with_siblings(top, top_score, scores)
    for n in nodes:
        _clean(n, title, strict)
    return nodes


def _render(nodes: list[LexborNode], base: str | None) -> Renderer:
    r = Renderer(base)
    for n in nodes:
        r.render(n)
        r.flush()
    return r


def extract(html: str | bytes, url: str | None = None, max_chars: int | None = None) -> Extracted:
    """Extract title, main text (light Markdown), links, images and metadata from a page."""
    if isinstance(html, bytes):
        html = decode_html(html)
    html = html or ""
    if not html.strip():
        return Extracted()
    tree = LexborHTMLParser(html)
    base = _base_url(tree, url)
    title, meta = page_meta(tree, base)
    tree.strip_tags(_JUNK_TAGS)
    # A second, lenient pass (no unlikely-candidate removal, no class weights) rescues
    # pages whose article container carries an "unlikely" class name.
    r = _render(_main_nodes(tree, title, strict=True), base)
    text = r.text()
    if len(text) < 500:
        tree = LexborHTMLParser(html)
        tree.strip_tags(_JUNK_TAGS)
        r2 = _render(_main_nodes(tree, title, strict=False), base)
        if len(r2.text()) > len(text) * 2:
            r, text = r2, r2.text()
    out = Extracted(
        title=title,
        text=text,
        links=[{"url": u, "text": t} for u, t in r.links.items()],
        images=[{"src": s, "alt": a} for s, a in r.images.items()],
        meta=meta,
    )
    if len(text.split()) < 250:
        out.challenge = detect_challenge(html, text=visible_text(LexborHTMLParser(html)))
    if max_chars is not None and len(out.text) > max_chars:
        out.text = out.text[: max(max_chars, 0)].rstrip()
        out.truncated = True
    return out
