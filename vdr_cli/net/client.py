"""One HTTP client factory and one request function with retries.

Retries: connection errors, 429 and 5xx, with exponential backoff and full
jitter, honouring `Retry-After` (capped).  A per-host semaphore keeps vdr
polite to any one server even when a call fans out to many URLs.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from vdr_cli import __version__
from vdr_cli.net.errors import ConnectFailed, HttpStatusError, RateLimited
from vdr_cli.net.urls import public_url

USER_AGENT = f"Mozilla/5.0 (compatible; vdr/{__version__}; +https://pypi.org/project/vdr-cli/)"
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class RetryPolicy:
    attempts: int = 3  # total tries, the first included
    base_delay: float = 0.5
    max_delay: float = 8.0  # also caps Retry-After: a tool call must not hang for minutes

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def make_client(
    *,
    timeout: float = 20.0,
    connect_timeout: float = 10.0,
    max_connections: int = 32,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient with vdr's timeouts, limits and user agent; proxies from the environment."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=follow_redirects,
        trust_env=True,
        transport=transport,
    )


class HostLimiter:
    """At most `per_host` requests in flight to one host at a time."""

    def __init__(self, per_host: int = 4) -> None:
        self.per_host = per_host
        self._sems: dict[str, asyncio.Semaphore] = {}

    def __call__(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(url).netloc.lower()
        if host not in self._sems:
            self._sems[host] = asyncio.Semaphore(self.per_host)
        return self._sems[host]


def retry_after_seconds(value: str | None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    retry: RetryPolicy | None = None,
    limiter: HostLimiter | None = None,
    raise_for_status: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request (body read whole), retrying transient failures.

    Raises `ConnectFailed`, `RateLimited` or `HttpStatusError` (one line,
    naming the endpoint without its query) once the retries are spent.
    """
    retry = retry or RetryPolicy()
    last: Exception | None = None
    for attempt in range(retry.attempts):
        try:
            if limiter is not None:
                async with limiter(url):
                    response = await client.request(method, url, **kwargs)
            else:
                response = await client.request(method, url, **kwargs)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            last = exc
            if attempt + 1 < retry.attempts:
                await asyncio.sleep(retry.delay(attempt, None))
                continue
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else f"connection failed ({type(exc).__name__})"
            raise ConnectFailed(f"{public_url(url)}: {kind}", url=public_url(url)) from None
        if response.status_code in RETRY_STATUSES and attempt + 1 < retry.attempts:
            await asyncio.sleep(retry.delay(attempt, retry_after_seconds(response.headers.get("Retry-After"))))
            continue
        if raise_for_status and response.status_code >= 400:
            cls = RateLimited if response.status_code == 429 else HttpStatusError
            reason = response.reason_phrase or ""
            raise cls(f"{public_url(url)}: HTTP {response.status_code} {reason}".rstrip(), url=public_url(url), status=response.status_code)
        return response
    raise ConnectFailed(f"{public_url(url)}: failed after {retry.attempts} tries ({last})", url=public_url(url))  # pragma: no cover
