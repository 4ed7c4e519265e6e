"""Readability-style scoring for `extract`: which container holds the article.

Paragraph-like nodes score by length and commas; the score flows to their parent,
grandparent and great-grandparent, each container starting from a tag base and a class/id
hint; link density scales the best few; near-best candidates under one ancestor promote it;
then qualifying siblings join the winner.
"""

from __future__ import annotations

import re
from functools import lru_cache

from selectolax.lexbor import LexborNode

# Readability's "unlikely candidate" words plus consent/share/newsletter furniture.
_UNLIKELY_WORDS = (
    "-ad-", "ai2html", "banner", "breadcrumb", "combx", "comment", "community", "cover-wrap", "disqus",
    "extra", "gdpr", "legends", "menu", "related", "remark", "replies", "rss", "shoutbox",
    "sidebar", "skyscraper", "social", "sponsor", "supplemental", "ad-break", "agegate", "pagination",
    "pager", "popup", "yom-remote", "cookie", "consent", "newsletter", "share", "sharing", "subscribe",
    "recommend", "outbrain", "taboola", "most-popular", "mostpopular", "trending", "signup", "paywall",
    "byline", "author-bio", "tags", "read-more", "readmore", "footer", "masthead", "toolbar", "modal",
)
_UNLIKELY = re.compile("|".join(re.escape(w) for w in _UNLIKELY_WORDS), re.I)
# Readability's "maybe a candidate" words, which veto an unlikely-word match ("comment-body").
MAYBE_OK = re.compile(r"and|article|body|column|content|main|shadow|story", re.I)
_POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story", re.I)
_NEGATIVE = re.compile(
    r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|footer|gdpr|masthead|media|meta|"
    r"outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping|tags|widget|newsletter|"
    r"subscribe|recommend|social|byline|author|credit",
    re.I,
)
# Readability's starting score of a candidate container, by tag.
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
_SENTENCE_END = re.compile(r"\.( |$)")
# The tuned choices (bench/extraction.py cross-validates them over the development pages):
# a sibling joins the article at this share of the winner's score (Readability: 0.2), and a
# candidate within this share of the best counts as a near-best alternative (0.75).
SIBLING_SHARE = 0.2
NEAR_BEST = 0.75


def squash_text(node: LexborNode) -> str:
    return " ".join((node.text() or "").split())


def tlen(node: LexborNode) -> int:
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
    if _UNLIKELY.search(value) and not MAYBE_OK.search(value):
        weight -= 25
    return weight


def class_weight(node: LexborNode) -> int:
    """Readability's class/id hint: +25 per positive, -25 per negative attribute."""
    cls, ident = node.attrs.get("class"), node.id
    return (_weigh(cls) if cls else 0) + (_weigh(ident) if ident else 0)


def link_density(node: LexborNode, text_len: int) -> float:
    if not text_len:
        return 0.0
    link_len = sum(len(a.text(strip=True) or "") for a in node.css("a"))
    return min(link_len / text_len, 1.0)


def score_paragraphs(body: LexborNode, weigh_classes: bool) -> tuple[dict[LexborNode, float], set[int]]:
    """Score paragraph-like nodes into their ancestors; also return the paragraphs' ids."""
    scores: dict[LexborNode, float] = {}
    para_ids: set[int] = set()
    # Divs without block children are paragraphs too (sites that never use <p>), and a div
    # with <br>-separated text of its own counts by that own text.
    paras = [(n, n.text(strip=True) or "") for n in body.css(f"p, pre, td, blockquote, div:not(:has({_CHILD_BLOCKS}))")]
    if sum(1 for _, text in paras if len(text) >= 80) < 5:
        # Few real paragraphs: maybe an old-style "text<br><br>text" page (the query is
        # costly, so modern pages skip it).
        paras += [(n, n.text(deep=False, strip=True) or "") for n in body.css(f"div:has(> br):has({_CHILD_BLOCKS})")]
    for para, text in paras:
        para_ids.add(para.mem_id)
        if len(text) < 25:
            continue
        score = 1 + text.count(",") + text.count("\uff0c") + min(len(text) // 100, 3)
        node = para.parent
        level = 0
        while node is not None and level < 3:  # parent, grandparent, great-grandparent
            tag = node.tag
            if tag in ("html", None) or tag[0] == "#":
                break
            if node not in scores:
                scores[node] = _TAG_BASE.get(tag, 0) + (class_weight(node) if weigh_classes else 0)
            scores[node] += score / (1 if level == 0 else 2 if level == 1 else level * 3)
            node = node.parent
            level += 1
    return scores, para_ids


def top_candidate(scores: dict[LexborNode, float]) -> tuple[LexborNode | None, float]:
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    final: list[tuple[LexborNode, float]] = []
    best = float("-inf")
    for node, score in ranked[:10]:
        # Link density only lowers a score, so candidates whose raw score is below 3/4 of
        # the best adjusted one can neither win nor count as near-best alternatives.
        if score < best * NEAR_BEST:
            break
        adjusted = score * (1 - link_density(node, tlen(node)))
        final.append((node, adjusted))
        best = max(best, adjusted)
    final.sort(key=lambda kv: kv[1], reverse=True)
    if not final:
        return None, 0.0
    top, top_score = final[0]
    # Several near-best candidates under one ancestor: the ancestor is the article.
    alts = [n for n, s in final[1:6] if s >= top_score * NEAR_BEST]
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


def with_siblings(top: LexborNode, top_score: float, scores: dict[LexborNode, float],
                  para_ids: frozenset[int] | set[int] = frozenset()) -> list[LexborNode]:
    """Readability's sibling step: the article may be split across sibling blocks. A long
    paragraph-like block (a <div> of text, as sites without <p> write) counts as a <p>."""
    parent = top.parent
    if parent is None or parent.tag in ("html", None):
        return [top]
    threshold = max(10.0, top_score * SIBLING_SHARE)
    top_class = top.attrs.get("class") or ""
    top_id = top.mem_id
    picked = []
    for sib in parent.iter():
        if sib.mem_id == top_id:
            picked.append(sib)
            continue
        score = scores.get(sib)
        if score is not None:
            bonus = top_score * SIBLING_SHARE if top_class and sib.attrs.get("class") == top_class else 0
            # Link density only lowers a score, so it is computed only when it could matter.
            if score + bonus >= threshold and score * (1 - link_density(sib, tlen(sib))) + bonus >= threshold:
                picked.append(sib)
        elif sib.tag == "p" or sib.mem_id in para_ids:
            text = squash_text(sib)
            density = link_density(sib, tlen(sib))
            if sib.tag != "p" and len(text.split()) < 20:
                continue  # a div of text is prose when it is a sentence or two, not a URL or a notice
            if (len(text) > 80 and density < 0.25) or (
                    sib.tag == "p" and 0 < len(text) <= 80 and density == 0 and _SENTENCE_END.search(text)):
                picked.append(sib)
    return picked


@lru_cache(maxsize=4096)
def unlikely(class_and_id: str) -> bool:
    return bool(_UNLIKELY.search(class_and_id)) and not MAYBE_OK.search(class_and_id)
