"""Fetch one web page safely: redirects checked hop by hop, bodies capped, charsets guessed.

- Redirects are followed here, not by httpx, so that the URL policy sees every hop, loops
  are named, and the chain is reported.
- The body is streamed raw and decompressed here with zlib's `max_length`, so a gzip bomb
  never inflates past the cap (httpx's own decoder inflates a whole network chunk, which
  can be a thousand times its size). Only gzip and deflate are asked for.
- Size cap: text (HTML, JSON, XML, plain) stops reading at `max_bytes` and is marked
  `truncated` (the first megabytes of a page are what a reader needs); images, which are
  useless cut short, raise `TooLarge`.
- Retries follow `net.client.request`: connection errors, 429 and 5xx, backoff with
  jitter, `Retry-After` honoured up to the retry policy's cap.
- Charset: BOM, then the Content-Type header, then <meta>/<?xml?>, then UTF-8. The BOM
  comes first as in browsers (a BOM cannot be wrong, a header can). Bytes declared (or
  assumed) UTF-8 that are not UTF-8 and hold no UTF-8 sequence at all are decoded as
  windows-1252: that is what such pages almost always are. Nothing here raises on bad bytes.
"""

from __future__ import annotations

import asyncio
import codecs
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from vdr_cli.net.client import RETRY_STATUSES, HostLimiter, RetryPolicy, retry_after_seconds
from vdr_cli.net.charset import decode_body
from vdr_cli.net.errors import BlockedUrl, ConnectFailed, HttpStatusError, NetError, RateLimited, TooLarge, Unsupported
from vdr_cli.net.policy import UrlPolicy

TEXT = frozenset({"html", "text", "json", "xml"})
_HOP_POLICY = UrlPolicy(mode="agent", allow_private=True)  # what redirects of person-typed URLs may not reach
WITH_IMAGES = TEXT | {"image"}
REDIRECTS = {301, 302, 303, 307, 308}
KEPT_HEADERS = ("content-type", "content-length", "content-encoding", "content-language", "last-modified",
                "etag", "date", "server", "retry-after", "cache-control")
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,application/json;q=0.9,text/plain;q=0.8,*/*;q=0.5"
ACCEPT_IMAGES = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8," + ACCEPT


class RedirectError(NetError):
    """A redirect loop, too many redirects, or a redirect without a usable Location."""


@dataclass
class FetchResult:
    url: str  # as asked
    final_url: str  # after redirects
    status: int
    headers: dict[str, str]  # a safe subset (never cookies)
    content_type: str  # media type, lower case, no parameters
    charset: str | None  # the encoding the text was decoded with (None for images)
    body: bytes
    text: str  # decoded body ("" for images)
    truncated: bool
    elapsed_ms: int
    redirects: list[dict[str, Any]] = field(default_factory=list)  # [{url, status}] hops before final_url

    @property
    def kind(self) -> str:
        return media_kind(self.content_type) or "unknown"

    def to_dict(self) -> dict[str, Any]:
        """Everything but the body bytes (JSON-able)."""
        d = asdict(self)
        d.pop("body")
        return d


def media_kind(media_type: str) -> str | None:
    """html, xml, json, text, image, pdf, or None for anything else."""
    t = media_type.lower()
    if t in ("text/html", "application/xhtml+xml"):
        return "html"
    if t == "application/pdf" or t == "application/x-pdf":
        return "pdf"
    if t in ("application/xml", "text/xml") or t.endswith("+xml"):
        return "xml"
    if t == "application/json" or t.endswith("+json"):
        return "json"
    if t.startswith("text/"):
        return "text"
    if t.startswith("image/"):
        return "image"
    return None


async def fetch(
    url: str,
    *,
    client: httpx.AsyncClient,
    policy: UrlPolicy,
    max_bytes: int = 5_000_000,
    max_redirects: int = 5,
    timeout: float | None = 20.0,
    accept: frozenset[str] = TEXT,
    retry: RetryPolicy | None = None,
    limiter: HostLimiter | None = None,
    raise_for_status: bool = True,
) -> FetchResult:
    """GET `url` under `policy`; raises a `NetError` subclass naming the URL on failure.

    `client` must come from `policy.make_client()` (agent mode needs its guarded transport
    for the connect-time address check). `timeout` bounds the whole fetch, retries and
    redirects included; the client's own timeouts bound each read. With
    `raise_for_status=False` a 4xx/5xx answer is returned (challenge pages come as 403/503).
    """
    if policy.guarded and not isinstance(getattr(client, "_transport", None), _guarded_types()):
        raise ValueError("agent-mode fetches need a client from policy.make_client()")
    work = _fetch(url, client, policy, max_bytes, max_redirects, accept, retry or RetryPolicy(), limiter, raise_for_status)
    if timeout is None:
        return await work
    try:
        return await asyncio.wait_for(work, timeout)
    except asyncio.TimeoutError:
        raise ConnectFailed(f"{_short(url)}: timed out after {timeout:g} s", url=url) from None


def _guarded_types() -> tuple[type, ...]:
    from vdr_cli.net.policy import GuardedTransport

    return (GuardedTransport,)


async def _fetch(url: str, client: httpx.AsyncClient, policy: UrlPolicy, max_bytes: int, max_redirects: int,
                 accept: frozenset[str], retry: RetryPolicy, limiter: HostLimiter | None,
                 raise_for_status: bool) -> FetchResult:
    start = time.monotonic()
    current = policy.check(url)
    seen = {current}
    chain: list[dict[str, Any]] = []
    while True:
        hop = await _get(client, current, url, accept, max_bytes, retry, limiter)
        if isinstance(hop, _Redirect):
            chain.append({"url": current, "status": hop.status})
            try:
                target = urljoin(current, hop.location)
            except ValueError:
                raise RedirectError(f"{_short(url)}: redirect to an invalid URL {hop.location!r}", url=url) from None
            if len(chain) > max_redirects:
                raise RedirectError(f"{_short(url)}: more than {max_redirects} redirects", url=url)
            try:
                nxt = policy.check(target)
                if not policy.guarded:
                    # A person typed the first URL, not where it redirects: a hop into
                    # cloud-metadata space is refused even then.
                    _HOP_POLICY.check(target)
            except BlockedUrl as exc:
                raise BlockedUrl(f"{exc.message} (redirected from {_short(current)})", exc.hint, url=target) from None
            if nxt in seen:
                raise RedirectError(f"{_short(url)}: redirect loop at {_short(nxt)}", url=url)
            seen.add(nxt)
            current = nxt
            continue
        status, headers, body, truncated = hop
        break
    media, declared = _content_type(headers.get("content-type", ""))
    kind = media_kind(media) if media and media != "application/octet-stream" else None
    if kind is None or kind in ("html", "text"):
        kind = _sniff(body, kind, media, current)
    if status < 400:
        _check_kind(kind, media, accept, current, final=True)
    if status >= 400 and raise_for_status:
        cls = RateLimited if status == 429 else HttpStatusError
        raise cls(f"{_short(current)}: HTTP {status} {_reason(status)}".rstrip(), url=current, status=status)
    if kind == "image":
        if truncated:
            raise TooLarge(f"{_short(current)}: image larger than {max_bytes:,} bytes", url=current)
        text, charset = "", None
    else:
        text, charset = decode_body(body, declared, html=kind in ("html", "xml"))
    kept = {k: headers[k] for k in KEPT_HEADERS if k in headers}
    return FetchResult(
        url=url, final_url=current, status=status, headers=kept, content_type=media or _SNIFFED.get(kind, ""),
        charset=charset, body=body, text=text, truncated=truncated,
        elapsed_ms=int((time.monotonic() - start) * 1000), redirects=chain,
    )


_SNIFFED = {"html": "text/html", "text": "text/plain"}


@dataclass
class _Redirect:
    status: int
    location: str


async def _get(client: httpx.AsyncClient, url: str, asked: str, accept: frozenset[str], max_bytes: int,
               retry: RetryPolicy, limiter: HostLimiter | None) -> _Redirect | tuple[int, httpx.Headers, bytes, bool]:
    """One hop, with retries: a redirect, or (status, headers, body, truncated)."""
    headers = {"Accept": ACCEPT_IMAGES if "image" in accept else ACCEPT, "Accept-Encoding": "gzip, deflate"}
    for attempt in range(retry.attempts):
        last_try = attempt + 1 >= retry.attempts
        try:
            if limiter is not None:
                async with limiter(url):
                    result = await _send(client, url, headers, accept, max_bytes, last_try)
            else:
                result = await _send(client, url, headers, accept, max_bytes, last_try)
        except BlockedUrl as exc:
            # Raised by the guarded transport at connect time: name the URL, not just the host.
            raise BlockedUrl(f"{_short(url)}: {exc.message}", exc.hint, url=url) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            if not last_try:
                await asyncio.sleep(retry.delay(attempt, None))
                continue
            raise ConnectFailed(f"{_short(url)}: {_describe(exc)}", url=url) from None
        if isinstance(result, float):  # a retryable status: Retry-After (or backoff)
            await asyncio.sleep(retry.delay(attempt, result if result >= 0 else None))
            continue
        return result
    raise ConnectFailed(f"{_short(url)}: failed after {retry.attempts} tries", url=url)  # pragma: no cover


async def _send(client: httpx.AsyncClient, url: str, headers: dict[str, str], accept: frozenset[str],
                max_bytes: int, last_try: bool) -> _Redirect | float | tuple[int, httpx.Headers, bytes, bool]:
    request = client.build_request("GET", url, headers=headers)
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        status = response.status_code
        if status in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise RedirectError(f"{_short(url)}: HTTP {status} redirect without a Location", url=url)
            return _Redirect(status, location)
        if status in RETRY_STATUSES and not last_try:
            after = retry_after_seconds(response.headers.get("retry-after"))
            return -1.0 if after is None else after
        media, _ = _content_type(response.headers.get("content-type", ""))
        kind = media_kind(media)
        if status < 400:
            _check_kind(kind, media, accept, url, final=False)
        elif kind not in ("html", "text", "json", "xml"):
            return status, response.headers, b"", False  # an error page we would not read anyway
        body, truncated = await _read_capped(response, max_bytes, url)
        return status, response.headers, body, truncated
    finally:
        await response.aclose()


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> tuple[bytes, bool]:
    """Read at most `max_bytes` decoded bytes; (body, truncated). Never inflates past the cap."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = _Inflater.for_encoding(encoding, url)
    body = bytearray()
    async for raw in response.aiter_raw():
        room = max_bytes - len(body)
        out = decoder.feed(raw, room + 1) if decoder else raw[: room + 1]
        if len(out) > room:
            body += out[:room]
            return bytes(body), True
        body += out
    return bytes(body), False


class _Inflater:
    """gzip/deflate decompression with a bound on output per call."""

    def __init__(self, wbits: int) -> None:
        self.wbits = wbits
        self.z = zlib.decompressobj(wbits)
        self.sniff = wbits == zlib.MAX_WBITS  # "deflate" is zlib-wrapped or raw, depending on the server

    @classmethod
    def for_encoding(cls, encoding: str, url: str) -> "_Inflater | None":
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return cls(zlib.MAX_WBITS)
        raise Unsupported(f"{_short(url)}: content encoding {encoding!r} is not supported", url=url)

    def feed(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        while data and len(out) < limit:
            try:
                piece = self.z.decompress(data, limit - len(out))
            except zlib.error:
                if self.sniff:
                    self.sniff = False
                    self.z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise httpx.DecodingError("corrupt compressed body") from None
            self.sniff = False
            out += piece
            if self.z.eof and self.z.unused_data:  # concatenated gzip members
                data = self.z.unused_data
                self.z = zlib.decompressobj(self.wbits)
            else:
                data = self.z.unconsumed_tail
        return bytes(out)


def _content_type(value: str) -> tuple[str, str | None]:
    """('text/html', 'utf-8') from 'text/html; charset="UTF-8"'."""
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return media.strip().lower(), charset


def _sniff(body: bytes, kind: str | None, media: str, url: str) -> str | None:
    """Correct a missing or lying type from the first bytes: PDFs and binary as HTML happen."""
    head = body[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if kind is not None:
        return kind
    if not head:
        return "text"
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    low = head[:512].lower()
    return "html" if (b"<html" in low or b"<!doctype html" in low or b"<body" in low or b"<p" in low) else "text"


def _check_kind(kind: str | None, media: str, accept: frozenset[str], url: str, *, final: bool) -> None:
    if not final and media in ("", "application/octet-stream"):
        return  # no real type: decided after sniffing the first bytes
    if kind == "pdf":
        raise Unsupported(f"{_short(url)}: PDF is not supported", url=url)
    if kind is None or kind not in accept:
        raise Unsupported(f"{_short(url)}: content type {media or 'unknown (binary)'} is not supported", url=url)


# -- messages ---------------------------------------------------------------------------------

def _describe(exc: Exception) -> str:
    # httpx wraps httpcore which wraps the OSError: the useful words are at the bottom.
    causes: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(causes) < 6:
        causes.append(cur)
        cur = cur.__cause__ or cur.__context__
    if any(isinstance(c, ConnectionResetError) for c in causes):
        return "connection reset by the server"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    text = next((str(c) for c in causes if str(c) and str(c) != type(c).__name__), type(exc).__name__)
    low = text.lower()
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "reset" in low or "errno 104" in low:
        return "connection reset by the server"
    if "refused" in low or "errno 111" in low:
        return "connection refused"
    if "resolve" in low or "name or service not known" in low or "nodename" in low:
        return f"cannot resolve host ({text})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke the connection ({text})"
    if isinstance(exc, httpx.DecodingError):
        return f"undecodable body ({text})"
    return f"connection failed ({type(exc).__name__}: {text})"


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"
