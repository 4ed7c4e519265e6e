"""Running searches: many queries at once, each isolated, deduplicated, cached.

A call with several queries (the model's multi-entity `search`) runs them
concurrently on one HTTP client, so its wall time is its slowest query.  A
query that fails becomes one `error` result; the others are unaffected.
Successful non-empty answers are cached by provider + normalised request (a
reverse search by the image's sha256), so a replay costs no network.
"""

from __future__ import annotations

import asyncio
import inspect
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vdr_cli.errors import VdrError
from vdr_cli.tools.search.base import Context, Getter, Hit, ImageInput, Provider, ProviderError, get_chain
from vdr_cli.trace.events import Event, error_event

CACHE_NAMESPACE = "search"  # + ":provider", as vdr_cli.cache suggests
CACHE_VERSION = 1  # bump when the stored hit shape changes


@dataclass
class QueryResult:
    """The outcome of one query (or one reverse-searched image)."""

    where: str  # the query text, or the image's path/URL
    provider: str
    hits: list[Hit]
    error: VdrError | None = None
    cached: bool = False
    # Engines of a fallback list that were tried first and failed: (provider, message).
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def not_reverse(self) -> bool:
        """The answer came from `describe`: a text search for a description, not a reverse image search."""
        return self.provider == "describe"

    @property
    def ok(self) -> bool:
        return self.error is None

    def error_event(self) -> Event:
        assert self.error is not None
        fields: dict[str, Any] = {"provider": self.provider}
        if self.error.hint:
            fields["hint"] = self.error.hint
        return error_event(self.error.message, self.where, **fields)

    def events(self) -> list[Event]:
        return [h.to_event() for h in self.hits] if self.ok else [self.error_event()]


def normalise_query(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def url_key(url: str) -> str:
    """Two URLs that name the same page: scheme, `www.`, fragment and trailing `/` ignored."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    return f"{host}{path}?{parts.query}" if parts.query else f"{host}{path}"


def dedupe(hits: Sequence[Hit], n: int) -> list[Hit]:
    """First occurrence of each URL (image hits: of each image), at most `n`, ranks renumbered."""
    seen: set[str] = set()
    out: list[Hit] = []
    for hit in hits:
        key = url_key(hit.url) + ("|" + url_key(hit.image_url) if hit.image_url else "")
        if key in seen:
            continue
        seen.add(key)
        hit.rank = len(out) + 1
        out.append(hit)
        if len(out) >= n:
            break
    return out


class CacheAdapter:
    """The search module's view of the shared cache; a failing cache never fails a search.

    Accepts any object with `get(namespace, key_obj)` and `put(namespace,
    key_obj, value, ttl)`, sync or async (vdr_cli.cache.Cache, or a test double).
    """

    def __init__(self, backend: Any, ttl: int | None = None) -> None:
        self.backend = backend
        self.ttl = ttl

    @classmethod
    def default(cls, get: Getter) -> CacheAdapter | None:
        try:
            if not get("cache.enabled"):
                return None
            from vdr_cli.cache import Cache

            ttl = int(get("cache.ttl"))
            return cls(Cache(ttl=ttl), ttl=ttl)
        except Exception:
            return None

    async def get(self, namespace: str, key: dict[str, Any]) -> Any:
        try:
            value = self.backend.get(namespace, key)
            return await value if inspect.isawaitable(value) else value
        except Exception:
            return None

    async def put(self, namespace: str, key: dict[str, Any], value: Any) -> None:
        try:
            result = self.backend.put(namespace, key, value, self.ttl)
            if inspect.isawaitable(result):
                await result
        except Exception:
            pass


class Searcher:
    """One HTTP client, one cache and one politeness limiter for a batch of searches."""

    def __init__(self, *, client: Any = None, cache: Any = None, get: Getter | None = None,
                 use_cache: bool = True, retry: Any = None) -> None:
        if get is None:
            from vdr_cli import config

            get = config.current().get
        self.get = get
        self._client = client
        self._owns_client = client is None
        if not use_cache or cache is False:
            self.cache: CacheAdapter | None = None
        elif cache is None:
            self.cache = CacheAdapter.default(get)
        else:
            self.cache = cache if isinstance(cache, CacheAdapter) else CacheAdapter(cache, ttl=int(get("cache.ttl")))
        self.retry = retry
        self._limiter: Any = None

    async def __aenter__(self) -> Searcher:
        from vdr_cli.net.client import HostLimiter, make_client

        if self._client is None:
            self._client = make_client(timeout=float(self.get("net.timeout")))
        # Per-host cap: enough that a multi-query call is one round trip, few
        # enough that a burst does not look like an attack to the provider.
        self._limiter = HostLimiter(per_host=max(1, int(self.get("search.concurrency"))))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def context(self) -> Context:
        return Context(client=self._client, get=self.get, limiter=self._limiter, retry=self.retry)

    async def text(self, query: str, *, provider: str | Provider, n: int, images: bool = False) -> QueryResult:
        """One query on `provider`, or on the first engine of a fallback list ("duckduckgo,mojeek") that answers."""
        q = normalise_query(query)
        ctx = self.context()
        return await self._first(query, get_chain(provider), ctx, {"kind": "images" if images else "text", "q": q}, n,
                                 lambda prov: prov.search(ctx, q, n, images=images))

    async def image(self, image: ImageInput, *, provider: str | Provider, n: int,
                    description: str | None = None) -> QueryResult:
        """Reverse-search one image on `provider`, or down a fallback list ("bing,yandex,lens,describe")."""
        ctx = self.context()
        description = description or image.description
        # Keyed by the image's bytes, never by its path or a temporary upload URL.
        key = {"kind": "reverse", **image.cache_identity()}
        if description:
            key["description"] = normalise_query(description)
        result = await self._first(image.name, get_chain(provider), ctx, key, n,
                                   lambda prov: prov.reverse_search(ctx, image, n, description=description))
        for hit in result.hits:
            hit.image_id, hit.box = image.image_id, image.box
        return result

    async def _first(self, where: str, chain: list[Provider], ctx: Context, request: dict[str, Any], n: int,
                     call: Callable[[Provider], Awaitable[list[Hit]]]) -> QueryResult:
        """Cached answers first (any engine of the list), then each engine in order until one has hits."""
        for prov in chain:
            stored = await self._cached(where, prov, ctx, request, n)
            if stored is not None:
                return stored
        failed: list[tuple[str, str]] = []
        empty: QueryResult | None = None
        for prov in chain:
            result = await self._run(where, prov, ctx, request, n, lambda prov=prov: call(prov))
            if result.ok and result.hits:
                result.failed = failed
                return result
            if result.ok:
                empty = empty or result
            else:
                assert result.error is not None
                failed.append((prov.name, result.error.message))
        if empty is not None or len(chain) == 1:
            final = empty or result
            final.failed = failed if empty is not None else []
            return final
        # Every engine failed: one error that says what each one answered.
        message = "every engine failed: " + "; ".join(msg if msg.startswith(name) else f"{name}: {msg}" for name, msg in failed)
        return QueryResult(where, ",".join(p.name for p in chain), [], ProviderError(message, hint=result.error.hint if result.error else None), failed=failed)

    def _key(self, prov: Provider, ctx: Context, request: dict[str, Any], n: int) -> tuple[str, dict[str, Any]]:
        key = {"v": CACHE_VERSION, "provider": prov.name, "endpoint": prov.identity(ctx), "n": n, **request}
        return f"{CACHE_NAMESPACE}:{prov.name}", key

    async def _cached(self, where: str, prov: Provider, ctx: Context, request: dict[str, Any], n: int) -> QueryResult | None:
        if self.cache is None:
            return None
        try:
            namespace, key = self._key(prov, ctx, request, n)
        except VdrError:
            return None
        stored = await self.cache.get(namespace, key)
        if isinstance(stored, list) and stored:
            try:
                hits = [Hit.from_dict({**h, "query": where, "rank": i}) for i, h in enumerate(stored, 1)]
                return QueryResult(where, prov.name, dedupe(hits, n), cached=True)
            except (TypeError, ValueError):
                pass  # an entry from another version: search again
        return None

    async def _run(self, where: str, prov: Provider, ctx: Context, request: dict[str, Any], n: int,
                   call: Callable[[], Awaitable[list[Hit]]]) -> QueryResult:
        try:
            namespace, key = self._key(prov, ctx, request, n)
        except VdrError as exc:
            return QueryResult(where, prov.name, [], exc)
        try:
            hits = await call()
        except VdrError as exc:
            exc.message = ctx.scrub(exc.message)
            return QueryResult(where, prov.name, [], exc)
        except Exception as exc:  # a provider bug must cost one query, not the call
            msg = ctx.scrub(f"{prov.name}: unexpected failure ({type(exc).__name__}: {exc})")
            return QueryResult(where, prov.name, [], ProviderError(msg, provider=prov.name))
        for hit in hits:
            hit.query = where
        hits = dedupe(hits, n)
        if hits and self.cache is not None:
            skip = ("query", "rank", "image_id", "box")  # the caller's names for the image, not the engine's answer
            await self.cache.put(namespace, key, [{k: v for k, v in vars(h).items() if k not in skip} for h in hits])
        return QueryResult(where, prov.name, hits)


async def in_order(jobs: Sequence[Awaitable[QueryResult]]) -> AsyncIterator[QueryResult]:
    """Run every job at once; yield results in the order given, each as soon as it and those before it are done."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        for task in tasks:
            yield await task
    finally:
        for task in tasks:
            task.cancel()


def _resolve(get: Getter | None, provider: str | None, key: str, n: int | None) -> tuple[Getter, str, int]:
    if get is None:
        from vdr_cli import config

        get = config.current().get
    return get, provider or str(get(key)), int(n if n is not None else get("search.results"))


async def run_queries(queries: Sequence[str], *, provider: str | None = None, n: int | None = None,
                      images: bool = False, client: Any = None, cache: Any = None,
                      get: Getter | None = None) -> list[QueryResult]:
    """Every query at once; one `QueryResult` per query, in order."""
    get, name, count = _resolve(get, provider, "search.provider", n)
    async with Searcher(client=client, cache=cache, get=get) as searcher:
        return list(await asyncio.gather(*(searcher.text(q, provider=name, n=count, images=images) for q in queries)))


def flatten(results: Sequence[QueryResult]) -> list[Hit | Event]:
    out: list[Hit | Event] = []
    for result in results:
        out.extend(result.hits) if result.ok else out.append(result.error_event())
    return out


async def search_many(queries: list[str], *, provider: str | None = None, n: int | None = None,
                      images: bool = False, client: Any = None, cache: Any = None,
                      get: Getter | None = None) -> list[Hit | Event]:
    """Hits for every query (in query order), or one `error` event for a query that failed.

    `cache=None` uses the on-disk cache when enabled; `cache=False` disables it.
    """
    return flatten(await run_queries(queries, provider=provider, n=n, images=images, client=client, cache=cache, get=get))


async def reverse_search(image: str | bytes | dict[str, Any] | ImageInput, *, provider: str | None = None,
                         description: str | None = None, n: int | None = None, client: Any = None,
                         cache: Any = None, get: Getter | None = None) -> list[Hit | Event]:
    """Reverse-search one image (a path, an http(s) URL, bytes, a `crop` event or an `ImageInput`).

    A crop event's hits are named by its image id and box (`ImageInput.from_crop`).
    """
    get, name, count = _resolve(get, provider, "search.image_provider", n)
    try:
        if isinstance(image, ImageInput):
            img = image
        elif isinstance(image, dict):
            img = ImageInput.from_crop(image)
        elif isinstance(image, (bytes, bytearray)):
            img = ImageInput.from_bytes(bytes(image), "<bytes>")
        else:
            img = ImageInput.from_spec(str(image))
    except VdrError as exc:
        where = str(image) if isinstance(image, str) else str(image.get("path")) if isinstance(image, dict) else "<bytes>"
        return flatten([QueryResult(where, name, [], exc)])
    async with Searcher(client=client, cache=cache, get=get) as searcher:
        return flatten([await searcher.image(img, provider=name, n=count, description=description)])
