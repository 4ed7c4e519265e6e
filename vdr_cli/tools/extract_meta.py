"""Page-level helpers for extraction: byte decoding, metadata, anti-bot page detection.

Kept apart from the main-content code (`extract.py`, `extract_score.py`, `extract_render.py`)
so each module stays small.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from vdr_cli.net.charset import decode_body


def decode_html(data: bytes) -> str:
    """Decode page bytes as a browser would (see net/charset.py)."""
    return decode_body(data)[0]


@lru_cache(maxsize=8192)
def absolute(base: str | None, href: str) -> str:
    """Resolve href against base; malformed URLs are kept as written."""
    href = href.strip()
    if not base or href.startswith(("http://", "https://")):
        return href
    try:
        return urljoin(base, href)
    except ValueError:  # bad IPv6 brackets and the like
        return href


def _attr(node: LexborNode | None, name: str) -> str:
    if node is None:
        return ""
    return (node.attributes.get(name) or "").strip()


def _meta_tags(head: LexborNode) -> dict[str, str]:
    """All <meta> property/name/itemprop keys (lowercased) to content, first one wins."""
    out: dict[str, str] = {}
    for node in head.css("meta[content]"):
        attrs = node.attributes
        content = (attrs.get("content") or "").strip()
        if not content:
            continue
        for key in (attrs.get("property"), attrs.get("name"), attrs.get("itemprop")):
            if key:
                out.setdefault(key.strip().lower(), content)
    return out


def _first(tags: dict[str, str], *keys: str) -> str:
    for key in keys:
        if tags.get(key):
            return tags[key]
    return ""


_JSONLD_DATE = re.compile(r'"datePublished"\s*:\s*"([^"]{4,40})"')
_TITLE_SPLIT = re.compile(r"\s+[|\u2013\u2014-]\s+[^|\u2013\u2014-]{2,40}$")


def page_meta(tree: LexborHTMLParser, base: str | None) -> tuple[str, dict[str, str]]:
    """Return (title, meta) from head tags, JSON-LD and <time>; run before scripts are dropped."""
    meta: dict[str, str] = {}
    # Head tags only: searching a whole large document for them costs more than it finds.
    head = tree.head if tree.head is not None else tree.root
    if head is None:
        return "", meta
    canonical = _attr(head.css_first('link[rel="canonical" i]'), "href")
    if canonical:
        meta["canonical"] = absolute(base, canonical)
    tags = _meta_tags(head)
    og_title = _first(tags, "og:title")
    if og_title:
        meta["og_title"] = og_title
    og_image = _first(tags, "og:image", "og:image:url", "twitter:image")
    if og_image:
        meta["og_image"] = absolute(base, og_image)
    description = _first(tags, "description", "og:description", "twitter:description")
    if description:
        meta["description"] = description
    published = _first(tags, "article:published_time", "datepublished", "pubdate", "publishdate", "date", "dc.date")
    if not published:
        for script in tree.css('script[type="application/ld+json"]'):
            data = script.text() or ""
            at = data.find('"datePublished"')  # plain find first: JSON-LD blobs can be large
            m = _JSONLD_DATE.match(data, at) if at >= 0 else None
            if m:
                published = m.group(1)
                break
    if not published:
        published = _attr(tree.css_first("time[datetime]"), "datetime")
    if published:
        meta["published"] = published
    title = og_title or _first(tags, "twitter:title")
    if not title:
        node = head.css_first("title")
        # "Headline | Site name": the site name is noise for a title.
        title = _TITLE_SPLIT.sub("", " ".join((node.text() if node else "").split()))
    if not title:
        h1 = tree.css_first("h1")
        title = " ".join((h1.text() if h1 else "").split())
    return title, meta


# ---- anti-bot and consent pages -------------------------------------------------------

# (label, pattern) in priority order; patterns match the page's title or visible text.
_CHALLENGE_TEXT = (
    ("cloudflare", re.compile(r"just a moment\.\.\.|attention required!? \| cloudflare|checking your browser|"
                              r"ddos protection by cloudflare|performance (?:&|and) security by cloudflare|"
                              r"verify(?:ing)? you are human by completing|needs to review the security of your connection", re.I)),
    ("captcha", re.compile(r"are you a robot|i'?m not a robot|verify (?:that )?you are (?:a )?human|complete the (?:security )?check|"
                           r"solve (?:this|the) (?:captcha|puzzle)|press (?:&|and) hold|unusual traffic from your", re.I)),
    ("javascript-required", re.compile(r"enable javascript and cookies|(?:please )?(?:enable|turn on) javascript|"
                                       r"javascript is (?:disabled|required)|requires javascript", re.I)),
    ("access-denied", re.compile(r"^access denied|you don'?t have permission to access|request (?:was )?blocked|"
                                 r"you have been blocked", re.I | re.M)),
    ("consent-wall", re.compile(r"before you continue|we value your privacy|your privacy choices|manage (?:your )?cookies|"
                                r"(?:accept|reject) all(?: cookies)?|consent to (?:the use of )?cookies|cookie (?:settings|preferences)", re.I)),
)
# Markup that only challenge pages carry, checked against the raw HTML.
_CHALLENGE_HTML = (
    ("cloudflare", re.compile(r"challenge-platform|cf-browser-verification|cf_chl_|id=[\"']challenge-form", re.I)),
    ("captcha", re.compile(r"g-recaptcha|h-captcha|cf-turnstile|recaptcha/api\.js|hcaptcha\.com/1/api|"
                           r"challenges\.cloudflare\.com/turnstile|captcha-delivery\.com|px-captcha", re.I)),
)
# A real article has far more text than this; challenge pages have a few sentences.
_MAX_CHALLENGE_WORDS = 250


def visible_text(tree: LexborHTMLParser) -> str:
    """Title plus body text without script/style, whitespace collapsed (tree is cloned)."""
    clone = tree.clone()
    clone.strip_tags(["script", "style", "noscript", "template", "svg"])
    title = clone.css_first("title")
    body = clone.body
    parts = [title.text() if title else "", body.text(separator=" ") if body else ""]
    return " ".join(" ".join(parts).split())


def detect_challenge(html_or_text: str | bytes, *, text: str | None = None) -> str | None:
    """Label an anti-bot challenge or consent wall ("cloudflare", "captcha", ...), else None.

    Accepts raw HTML or plain title/body text. Only short pages are flagged: a long
    article that merely mentions captchas is content, not a challenge.
    """
    if isinstance(html_or_text, bytes):
        html_or_text = decode_html(html_or_text)
    raw = html_or_text or ""
    is_html = "<" in raw and ">" in raw
    if text is None:
        text = visible_text(LexborHTMLParser(raw)) if is_html else " ".join(raw.split())
    if len(text.split()) > _MAX_CHALLENGE_WORDS:
        return None
    for label, rx in _CHALLENGE_TEXT:
        if rx.search(text):
            return label
    if is_html:
        for label, rx in _CHALLENGE_HTML:
            if rx.search(raw):
                return label
    return None
