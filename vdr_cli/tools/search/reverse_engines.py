"""Keyless reverse image search through `picimagesearch` (Bing, Yandex, Google Lens).

picimagesearch is a maintained library (MIT, on httpx) that uploads an image file to
an engine's own reverse-search endpoint and parses the answer.  The crop's bytes go
to that engine only: no public bucket, no third-party uploader.

Seams used, narrowest first: `Yandex(base_url=…)` and `GoogleLens(base_url=…)` take
their host (tests point them at loopback); `Bing` hard-codes https://www.bing.com in
its constructor, so vdr sets the engine's `base_url` attribute afterwards, which every
one of its requests is built from.  Every engine sends through `_send_request`; vdr
subclasses it to see each response's status and final URL, so a rate limit, a captcha
or a consent page becomes an error (and the next engine in `search.image_provider`
is tried) instead of an empty or garbled result.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from vdr_cli.tools.search.base import (
    BadResponse,
    BaseProvider,
    Blocked,
    Context,
    Hit,
    ImageInput,
    NotSupported,
    ProviderError,
    RateLimitedError,
    text_of,
)

BLOCK_HINT = "wait a while, or list other engines in search.image_provider"


def _web_url(value: Any) -> str | None:
    """An http(s) URL, or None (inline data: thumbnails are not worth an event field)."""
    text = str(value or "").strip()
    if text.startswith("//"):
        text = "https:" + text
    return text if text.startswith(("http://", "https://")) else None


class PicImageEngine(BaseProvider):
    """One picimagesearch engine; subclasses build it and turn its answer into hits."""

    text = False
    reverse = True
    engine = ""  # class name in PicImageSearch
    block_url_markers: tuple[str, ...] = ()  # a final URL containing one of these is a bot check

    def build(self, cls: type, ctx: Context, client: Any) -> Any:
        return cls(base_url=self.base_url(ctx), client=client)

    def hits(self, response: Any) -> list[Hit]:
        raise NotImplementedError

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        if image.data is None and not image.url:
            raise self.error(NotSupported, f"{image.name}: nothing to search by")
        import httpx
        from PicImageSearch.exceptions import ParsingError
        from PicImageSearch.network import DEFAULT_HEADERS

        from vdr_cli.net.client import make_client

        base = importlib.import_module("PicImageSearch")
        # Engines serve their result pages to browsers; the library's own user agent is one.
        async with make_client(timeout=float(ctx.get("net.timeout")), follow_redirects=True,
                               headers={"User-Agent": DEFAULT_HEADERS["User-Agent"]}) as client:
            engine = self.build(self._checked(getattr(base, self.engine)), ctx, client)
            try:
                if image.data is not None:
                    response = await engine.search(file=image.data)
                else:
                    response = await engine.search(url=image.url)
            except ProviderError:
                raise
            except ParsingError as exc:
                reason = str(exc).split("\n")[0].removeprefix(f"[{exc.engine}] ")
                raise self.error(BadResponse, f"results page not understood ({reason})",
                                 hint="the engine may have changed its page; try another engine") from None
            except httpx.TimeoutException:
                raise self.error(ProviderError, f"{urlsplit(self.base_url(ctx)).netloc}: timed out") from None
            except httpx.HTTPError as exc:
                raise self.error(ProviderError, f"{urlsplit(self.base_url(ctx)).netloc}: connection failed ({type(exc).__name__})",
                                 hint=f"is {urlsplit(self.base_url(ctx)).netloc} reachable?") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise self.error(BadResponse, f"unexpected answer ({type(exc).__name__}: {exc})") from None
        return [h for h in self.hits(response) if h.url][: max(n, 0)]

    def _checked(self, cls: type) -> type:
        provider = self

        class Checked(cls):  # type: ignore[misc, valid-type]
            async def _send_request(self, *args: Any, **kwargs: Any) -> Any:
                response = await super()._send_request(*args, **kwargs)
                provider.check(response)
                return response

        return Checked

    def check(self, response: Any) -> None:
        """Raise for a status or final URL that means "no results for you"."""
        status, url = int(response.status_code), str(response.url)
        if status == 429:
            raise self.error(RateLimitedError, "rate-limited (HTTP 429)", hint=BLOCK_HINT)
        if status in (202, 403, 418) or any(m in url for m in self.block_url_markers):
            raise self.error(Blocked, f"rate-limited or bot-checked (HTTP {status}, {urlsplit(url).path or '/'})", hint=BLOCK_HINT)
        if status >= 400:
            raise self.error(ProviderError, f"HTTP {status} from {urlsplit(url).netloc}")


class Bing(PicImageEngine):
    name = "bing"
    engine = "Bing"
    url_setting = "search.bing_url"

    def build(self, cls: type, ctx: Context, client: Any) -> Any:
        engine = cls(client=client)
        engine.base_url = self.base_url(ctx)  # hard-coded in Bing.__init__; every request is built from it
        return engine

    def hits(self, response: Any) -> list[Hit]:
        # Pages that include this very image first, then visually similar ones.
        items = list(response.pages_including) + list(response.visual_search)
        guess = text_of(response.best_guess)
        return [Hit(query="", rank=i, title=text_of(item.name), url=str(item.url or ""), provider=self.name,
                    snippet=f"Bing's best guess for the image: {guess}" if guess else "",
                    image_url=_web_url(item.image_url), thumbnail_url=_web_url(item.thumbnail))
                for i, item in enumerate(items, 1)]


class Yandex(PicImageEngine):
    name = "yandex"
    engine = "Yandex"
    url_setting = "search.yandex_url"
    block_url_markers = ("showcaptcha",)

    def hits(self, response: Any) -> list[Hit]:
        out = []
        for i, item in enumerate(response.raw, 1):
            original = item.origin.get("originalImage") if isinstance(item.origin, dict) else None
            out.append(Hit(query="", rank=i, title=text_of(item.title), url=str(item.url or ""), snippet=text_of(item.content),
                           provider=self.name, source=text_of(item.source) or None,
                           image_url=_web_url(original.get("url")) if isinstance(original, dict) else None,
                           thumbnail_url=_web_url(item.thumbnail)))
        return out


class GoogleLens(PicImageEngine):
    name = "lens"
    engine = "GoogleLens"
    url_setting = "search.lens_url"
    block_url_markers = ("/sorry/", "consent.google")

    def hits(self, response: Any) -> list[Hit]:
        return [Hit(query="", rank=i, title=text_of(item.title), url=str(item.url or ""), provider=self.name,
                    source=text_of(item.site_name) or None, thumbnail_url=_web_url(item.thumbnail))
                for i, item in enumerate(response.raw, 1)]
