"""DuckDuckGo's HTML endpoint: keyless, unofficial, the default text provider.

`POST {search.ddg_url}` with form `q`; results are `div.result` blocks.  Links
come wrapped in `//duckduckgo.com/l/?uddg=<target>` redirects (unwrapped here)
and ads point at `duckduckgo.com/y.js` (dropped).  DuckDuckGo signals rate
limiting with HTTP 202 and an "anomaly" page (or 403/418/429), never with an
API error: those become one clear `Blocked` error instead of zero results.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from vdr_cli.tools.search.base import BaseProvider, Blocked, Context, Hit, ProviderError, text_of

# Markers of DuckDuckGo's bot check; any one on a page means "no results to trust".
ANOMALY_MARKERS = ("anomaly-modal", "challenge-form", "bots use duckduckgo too", "please complete the following challenge")
BLOCK_STATUSES = {202, 403, 418, 429}


class DuckDuckGo(BaseProvider):
    name = "duckduckgo"
    url_setting = "search.ddg_url"

    def base_url(self, ctx: Context) -> str:
        return str(ctx.get(self.url_setting))  # an endpoint, not a base: keep its trailing slash

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        if images:
            raise self.error(ProviderError, "image search is not supported (it needs a vqd token)",
                             hint="use --provider searxng, serper or brave for --images")
        response = await self.send(ctx, "POST", self.base_url(ctx), data={"q": query, "b": ""},
                                   headers={"Referer": "https://html.duckduckgo.com/"}, raise_for_status=False)
        html = response.text
        if response.status_code in BLOCK_STATUSES or is_anomaly(html):
            raise self.error(
                Blocked,
                f"rate-limited or bot-checked (HTTP {response.status_code}{', anomaly page' if is_anomaly(html) else ''})",
                hint="wait a few minutes, or use another --provider (searxng, serper, brave)",
            )
        if response.status_code >= 400:
            raise self.error(ProviderError, f"HTTP {response.status_code} from {urlsplit(self.base_url(ctx)).netloc}")
        return parse_results(html, query, self.name)


def is_anomaly(html: str) -> bool:
    head = html[:200_000].lower()
    return any(marker in head for marker in ANOMALY_MARKERS)


def unwrap(href: str) -> str:
    """The target of a `duckduckgo.com/l/?uddg=…` redirect; other links as they are."""
    if href.startswith("//"):
        href = "https:" + href
    parts = urlsplit(href)
    if parts.netloc.endswith("duckduckgo.com") and parts.path.startswith("/l/"):
        target = parse_qs(parts.query).get("uddg", [""])[0]
        return target or href
    return href


def is_ad(href: str) -> bool:
    parts = urlsplit(href if not href.startswith("//") else "https:" + href)
    return parts.netloc.endswith("duckduckgo.com") and parts.path.startswith("/y.js")


def parse_results(html: str, query: str, provider: str = "duckduckgo") -> list[Hit]:
    """Hits from DuckDuckGo's HTML results page, ads skipped, links unwrapped."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    hits: list[Hit] = []
    for node in tree.css("div.result"):
        classes = (node.attributes.get("class") or "").split()
        if "result--ad" in classes:
            continue
        link = node.css_first("a.result__a")
        if link is None:
            continue
        href = (link.attributes.get("href") or "").strip()
        if not href or is_ad(href):
            continue
        url = unwrap(href)
        if not url.startswith(("http://", "https://")):
            continue
        snippet_node = node.css_first(".result__snippet")
        hits.append(Hit(
            query=query,
            rank=len(hits) + 1,
            title=text_of(link.text(separator="")),
            url=url,
            snippet=text_of(snippet_node.text(separator="")) if snippet_node is not None else "",
            provider=provider,
        ))
    return hits
