"""Read web pages: fetch, extract the main text, summarise for a goal. One `page` or `error`
event per URL.

URLs run concurrently (bounded overall and per host), so a call's wall time is its slowest
page. Without a model, a goal gets an extractive summary (`tools.relevance`); with one, the
caller passes `summarise(page_text, goal) -> str` (sync or async) that returns the
reference's JSON, parsed tolerantly by `summary_format`. Tools never import models.

Caching: the extracted page is cached by (normalised URL, max_chars), never an error, an
empty page or a challenge page. A model summary is cached only when the summariser says
who it is (a `cache_key` attribute, e.g. the model name): without one, two different
models would share answers.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from vdr_cli.errors import VdrError
from vdr_cli.trace.events import Event, error_event, event

if TYPE_CHECKING:
    import httpx

    from vdr_cli.cache import Cache
    from vdr_cli.net.client import RetryPolicy

Summariser = Callable[[str, str], "str | Awaitable[str]"]
NAMESPACE = "browse"
SUMMARY_NAMESPACE = "browse-summary"
DEFAULT_MAX_CHARS = 120_000  # the reference truncates each page at 120,000 characters
CHALLENGE_MESSAGE = "anti-bot challenge page ({label}), not the page's content"


def normalise_url(url: str) -> str:
    """The cache's idea of "the same URL": scheme and host lower case, default port and fragment dropped."""
    import httpx

    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):
        return url.strip()
    port = u.port if u.port not in (None, 80 if u.scheme == "http" else 443 if u.scheme == "https" else -1) else None
    return str(u.copy_with(scheme=u.scheme.lower(), host=u.host.lower().rstrip(".") if u.host else u.host,
                           port=port, fragment=None))


async def browse(urls: Sequence[str], **options: Any) -> list[Event]:
    """Browse every URL; events in the order of `urls` (`options`: those of `browse_iter`)."""
    out: list[Event | None] = [None] * len(urls)
    async for i, ev in browse_iter(urls, **options):
        out[i] = ev
    return [ev for ev in out if ev is not None]


async def browse_iter(
    urls: Sequence[str],
    *,
    goal: str | None = None,
    mode: str | Sequence[str] = "user",
    summarise: Summariser | None = None,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    cache: "Cache | None" = None,
    client: "httpx.AsyncClient | None" = None,
    allow_private: bool = False,
    max_bytes: int = 5_000_000,
    timeout: float | None = 20.0,
    concurrency: int = 8,
    retry: "RetryPolicy | None" = None,
) -> AsyncIterator[tuple[int, Event]]:
    """Yield (index in `urls`, event) as each URL finishes.

    `mode` is "user" (a person chose the URL: any host) or "agent" (the model or web
    content chose it: public addresses only, unless `allow_private`), for all URLs or one
    per URL. `client` is used for user-mode URLs only; agent-mode URLs always get a guarded
    client, because the address check lives in its transport.
    """
    from vdr_cli.net.client import HostLimiter
    from vdr_cli.net.policy import UrlPolicy

    modes = [mode] * len(urls) if isinstance(mode, str) else list(mode)
    if len(modes) != len(urls):
        raise ValueError("one mode per URL")
    policies = {m: UrlPolicy(mode=m, allow_private=allow_private) for m in set(modes)}  # type: ignore[arg-type]
    clients: dict[str, Any] = {}
    owned = []
    for m, pol in policies.items():
        if m == "user" and client is not None:
            clients[m] = client
        else:
            clients[m] = pol.make_client(timeout=timeout or 20.0)
            owned.append(clients[m])
    sem = asyncio.Semaphore(max(1, concurrency))
    limiter = HostLimiter(per_host=4)
    reader = _Reader(goal=goal, summarise=summarise, max_chars=max_chars, cache=cache, max_bytes=max_bytes,
                     timeout=timeout, retry=retry, limiter=limiter)

    async def one(i: int) -> tuple[int, Event]:
        async with sem:
            m = modes[i]
            return i, await reader.read(urls[i], clients[m], policies[m])

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(urls))]
    try:
        for done in asyncio.as_completed(tasks):
            yield await done
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in owned:
            await c.aclose()


class _Reader:
    """Reads one URL into one event; holds what every URL of a call shares."""

    def __init__(self, *, goal: str | None, summarise: Summariser | None, max_chars: int | None,
                 cache: "Cache | None", max_bytes: int, timeout: float | None, retry: Any, limiter: Any) -> None:
        self.goal = goal or None
        self.summarise = summarise
        self.max_chars = max_chars
        self.cache = cache
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retry = retry
        self.limiter = limiter

    async def read(self, url: str, client: Any, policy: Any) -> Event:
        start = time.monotonic()
        try:
            page = await self._page(url, client, policy)
        except VdrError as exc:
            return error_event(exc.message, url, url=url, **({"status": exc.status} if getattr(exc, "status", None) else {}))
        except Exception as exc:  # a bug in extraction must cost one URL, not the whole call
            return error_event(f"{url}: {type(exc).__name__}: {exc}", url, url=url)
        if page.get("challenge"):
            page["summary"] = None
            page["error"] = CHALLENGE_MESSAGE.format(label=page["challenge"])
        elif self.goal:
            await self._summarise(page)
        page["ms"] = int((time.monotonic() - start) * 1000)
        return page

    async def _page(self, url: str, client: Any, policy: Any) -> Event:
        from vdr_cli.net.fetch import fetch

        key = {"url": normalise_url(url), "max_chars": self.max_chars}
        cached = self.cache.get(NAMESPACE, key) if self.cache is not None else None
        if isinstance(cached, dict) and cached.get("type") == "page":
            if policy.guarded:
                # A page a person fetched must not reach the model past the policy: the
                # URL asked for, where it redirected, and where it ended up.
                for seen in _visited(url, cached):
                    await _recheck(seen, policy)
            return {**cached, "url": url, "goal": self.goal, "summary": None, "cached": True}
        result = await fetch(url, client=client, policy=policy, max_bytes=self.max_bytes, timeout=self.timeout,
                             retry=self.retry, limiter=self.limiter, raise_for_status=False)
        # Off the event loop, under a deadline: other URLs, --max-time and Ctrl-C go on
        # while a big page is extracted (html_bounds keeps each extraction short).
        deadline = self.timeout or 20.0
        try:
            page = await asyncio.wait_for(asyncio.to_thread(_to_page, url, result, self.max_chars), deadline)
        except asyncio.TimeoutError:
            raise VdrError(f"{url}: extracting the page took longer than {deadline:g} s") from None
        page["goal"] = self.goal
        if result.status >= 400 and not page.get("challenge"):
            from vdr_cli.net.errors import HttpStatusError, RateLimited

            cls = RateLimited if result.status == 429 else HttpStatusError
            raise cls(f"{result.final_url}: HTTP {result.status} {_phrase(result.status)}".rstrip(), url=url, status=result.status)
        if self.cache is not None and not page.get("challenge") and page["text"].strip() \
                and await _cacheable(url, page, policy):
            stored = {k: v for k, v in page.items() if k not in ("goal", "summary", "cached")}
            self.cache.put(NAMESPACE, key, stored)
        page["cached"] = False
        return page

    async def _summarise(self, page: Event) -> None:
        text, goal = page.get("text") or "", self.goal or ""
        if not text.strip():
            page["summary"] = None
            return
        if self.summarise is None:
            page["summary"] = _extractive(text, goal)
            return
        from vdr_cli.tools.summary_format import parse_summary

        who = getattr(self.summarise, "cache_key", None)
        key = {"url": normalise_url(page["url"]), "goal": goal, "by": who, "max_chars": self.max_chars}
        if self.cache is not None and who:
            hit = self.cache.get(SUMMARY_NAMESPACE, key)
            if isinstance(hit, dict) and hit.get("summary"):
                page.update(rational=hit.get("rational", ""), evidence=hit.get("evidence", ""), summary=hit["summary"])
                return
        try:
            raw = self.summarise(text, goal)
            if inspect.isawaitable(raw):
                raw = await raw
        except VdrError as exc:
            # The model failing is not the page failing: fall back to the extractive summary.
            page.update(summary=_extractive(text, goal), summary_error=exc.message)
            return
        parsed = parse_summary(str(raw))
        page.update(rational=parsed["rational"], evidence=parsed["evidence"], summary=parsed["summary"])
        if self.cache is not None and who and parsed["parsed"] and parsed["summary"]:
            self.cache.put(SUMMARY_NAMESPACE, key, {k: parsed[k] for k in ("rational", "evidence", "summary")})


def _to_page(url: str, result: Any, max_chars: int | None) -> Event:
    """A page event from a fetch result: HTML is extracted, JSON/XML/plain text kept as text."""
    fields: dict[str, Any] = dict(title="", text="", links=[], images=[], meta={}, challenge=None)
    truncated = result.truncated
    if result.kind == "html" or (result.kind == "xml" and "html" in result.content_type):
        from vdr_cli.tools.extract import extract

        ex = extract(result.text, url=result.final_url, max_chars=max_chars)
        fields.update(title=ex.title, text=ex.text, links=ex.links, images=ex.images, meta=ex.meta, challenge=ex.challenge)
        truncated = truncated or ex.truncated
    else:
        text = result.text
        if max_chars is not None and len(text) > max_chars:
            text, truncated = text[:max_chars], True
        fields["text"] = text
    if result.status >= 400 and result.kind == "html" and not fields["challenge"]:
        from vdr_cli.tools.extract import detect_challenge

        # Error statuses with little text are where challenge pages hide (403/503 from a CDN).
        fields["challenge"] = detect_challenge(result.text)
    return event(
        "page", url=url, final_url=result.final_url, status=result.status, title=fields["title"],
        text=fields["text"], links=fields["links"], images=fields["images"], goal=None, summary=None,
        truncated=truncated, meta=fields["meta"], challenge=fields["challenge"],
        content_type=result.content_type, redirects=result.redirects,
    )


def _visited(url: str, page: Event) -> list[str]:
    hops = [h.get("url") for h in page.get("redirects") or [] if isinstance(h, dict)]
    final = page.get("final_url")
    return list(dict.fromkeys(u for u in [url, *hops, final] if isinstance(u, str) and u))


async def _cacheable(url: str, page: Event, policy: Any) -> bool:
    """A page whose redirects left the public web is not cached under the URL asked
    for: the model may ask for that URL later, and must not get a private page."""
    if policy.guarded or not page.get("redirects"):
        return True
    from vdr_cli.net.errors import BlockedUrl
    from vdr_cli.net.policy import UrlPolicy

    agent = UrlPolicy(mode="agent", allow_private=policy.allow_private)
    try:
        for seen in _visited(url, page)[1:]:
            await _recheck(seen, agent)
    except BlockedUrl:
        return False
    return True


async def _recheck(url: str, policy: Any) -> None:
    import httpcore
    import httpx

    target = httpx.URL(policy.check(url))
    from vdr_cli.net.errors import BlockedUrl

    try:
        await policy.resolve(target.host, target.port or (443 if target.scheme == "https" else 80))
    except httpcore.ConnectError:
        pass  # unresolvable now: nothing private to protect
    except BlockedUrl as exc:
        raise BlockedUrl(f"{url}: {exc.message}", exc.hint, url=url) from None


def _extractive(text: str, goal: str) -> str:
    from vdr_cli.tools.relevance import extractive_summary

    return extractive_summary(text, goal)


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
