"""Keyless web search through the engines of `ddgs` (DuckDuckGo, Brave, Mojeek).

ddgs is a maintained metasearch library: it keeps each engine's request shape and
result XPaths up to date, and it talks through `primp`, an HTTP client that
presents a browser's TLS fingerprint, which is what keeps DuckDuckGo from
answering plain HTTP clients with its "anomaly" (bot check) page.  It replaced
vdr's hand-written DuckDuckGo scraper.

What vdr adds around it, at ddgs's own seams: the engine's `search_url` is set
from a setting (tests point it at loopback), the request is sent with the
engine's own client and payload so that its HTTP status is seen (ddgs turns a
non-200 into "no results"; vdr reports rate limits and bot checks as errors so
the next engine in `search.provider` is tried), and DuckDuckGo's redirect links
are unwrapped in `pre_process_html` before ddgs parses the page.

ddgs's Yahoo and Startpage engines build their request URL from a hard-coded host
(inside `build_payload` / a token fetch), so they cannot be pointed at a test
server and are not offered; its Bing text engine is disabled upstream.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from contextlib import nullcontext
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vdr_cli.tools.search.base import BaseProvider, Blocked, Context, Hit, NotSupported, ProviderError, RateLimitedError, text_of

BLOCK_STATUSES = {202, 403, 418}
REGION = "us-en"  # ddgs's default region; engines derive country and language from it


class DdgsEngine(BaseProvider):
    """One ddgs text engine; subclasses name it and its endpoint setting."""

    engine = ""  # "module:Class" under ddgs.engines
    block_markers: tuple[str, ...] = ("captcha",)
    block_hint = "wait a few minutes, or list other engines in search.provider"

    def base_url(self, ctx: Context) -> str:
        return str(ctx.get(self.url_setting))  # the endpoint itself (DuckDuckGo's keeps its trailing slash)

    def make_engine(self, ctx: Context) -> Any:
        module, cls = self.engine.split(":")
        engine = getattr(importlib.import_module(f"ddgs.engines.{module}"), cls)(timeout=max(1, int(float(ctx.get("net.timeout")))))
        engine.search_url = self.base_url(ctx)  # the seam ddgs offers: an attribute of every engine
        engine.pre_process_html = self.pre_process_html
        return engine

    def pre_process_html(self, html: str) -> str:
        return html

    def is_blocked(self, html: str) -> bool:
        head = html[:200_000].lower()
        return any(marker in head for marker in self.block_markers)

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        if images:
            raise self.error(NotSupported, "image search by text is not supported",
                             hint="use --provider searxng, serper or brave for --images")
        engine = self.make_engine(ctx)
        url = engine.search_url
        async with ctx.limiter(url) if ctx.limiter is not None else nullcontext():
            status, html = await asyncio.to_thread(self._fetch, engine, query)
        if status == 429:
            raise self.error(RateLimitedError, "rate-limited (HTTP 429)", hint=self.block_hint)
        results = engine.post_extract_results(engine.extract_results(html)) if status < 400 and html.strip() else []
        hits: list[Hit] = []
        for result in results:
            href = (result.href or "").strip()
            if not href.startswith(("http://", "https://")):
                continue
            hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(result.title), url=href,
                            snippet=text_of(result.body), provider=self.name))
        # A bot-check page has no results; a results page may mention "captcha" in a snippet.
        checked = not hits and self.is_blocked(html)
        if status in BLOCK_STATUSES or checked:
            page = ", bot-check page" if checked else ""
            raise self.error(Blocked, f"rate-limited or bot-checked (HTTP {status}{page})", hint=self.block_hint)
        if status >= 400:
            raise self.error(ProviderError, f"HTTP {status} from {urlsplit(url).netloc}")
        return hits

    def _fetch(self, engine: Any, query: str) -> tuple[int, str]:
        """The engine's own request (payload, method, browser-like client); status and body."""
        from ddgs.exceptions import DDGSException

        payload = engine.build_payload(query=query, region=REGION, safesearch="moderate", timelimit=None, page=1)
        key = "params" if engine.search_method == "GET" else "data"
        try:
            response = engine.http_client.request(engine.search_method, engine.search_url, **{key: payload})
        except DDGSException as exc:
            kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
            raise self.error(ProviderError, f"{urlsplit(engine.search_url).netloc}: {kind}",
                             hint=f"is {urlsplit(engine.search_url).netloc} reachable?") from None
        return response.status_code, response.text or ""


# DuckDuckGo wraps result links in a redirect: //duckduckgo.com/l/?uddg=<percent-encoded target>&rut=…
_UDDG = re.compile(r'href="(?:https:)?//duckduckgo\.com/l/\?([^"]*)"')


def unwrap(href: str) -> str:
    """The target of a `duckduckgo.com/l/?uddg=…` redirect; other links as they are."""
    if href.startswith("//"):
        href = "https:" + href
    parts = urlsplit(href)
    if parts.netloc.endswith("duckduckgo.com") and parts.path.startswith("/l/"):
        return parse_qs(parts.query).get("uddg", [""])[0] or href
    return href


def _keep_encoded_target(match: re.Match[str]) -> str:
    query = match.group(1).replace("&amp;", "&")
    for part in query.split("&"):
        if part.startswith("uddg="):
            # Still percent-encoded: ddgs unquotes every href once, giving the exact target.
            return f'href="{part[5:]}"'
    return match.group(0)


class DuckDuckGo(DdgsEngine):
    name = "duckduckgo"
    engine = "duckduckgo:Duckduckgo"
    url_setting = "search.ddg_url"
    # DuckDuckGo's bot check answers HTTP 202 (or 200) with an "anomaly" page, never an API error.
    block_markers = ("anomaly-modal", "challenge-form", "bots use duckduckgo too", "please complete the following challenge")

    def pre_process_html(self, html: str) -> str:
        return _UDDG.sub(_keep_encoded_target, html)


class BraveWeb(DdgsEngine):
    """search.brave.com's result pages (keyless; `brave` is the keyed Brave Search API)."""

    name = "brave-web"
    engine = "brave:Brave"
    url_setting = "search.brave_web_url"


class Mojeek(DdgsEngine):
    name = "mojeek"
    engine = "mojeek:Mojeek"
    url_setting = "search.mojeek_url"
    block_markers = ("captcha", "automated queries")
