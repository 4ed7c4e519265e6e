"""What every search provider shares: the hit record, the error types, the
provider protocol, one request helper that maps HTTP failures to provider
errors, and the registry by name.

Providers are small: build a request from settings, send it through
`net.client.request` (retries, backoff, Retry-After), parse the documented
response shape into `Hit`s.  Everything else (concurrency, dedupe, `-n`,
caching, error isolation) lives in `run.py` so each provider is testable alone.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vdr_cli.errors import InputError, UsageError, VdrError
from vdr_cli.trace.events import Event, event

Getter = Callable[[str], Any]


@dataclass
class Hit:
    """One search result; `to_event()` is the `hit` event of DESIGN.md."""

    query: str
    rank: int
    title: str
    url: str  # the page the result points at (for image hits: the source page)
    snippet: str = ""
    provider: str = ""
    image_url: str | None = None
    thumbnail_url: str | None = None
    date: str | None = None
    source: str | None = None  # site name, when the provider gives one
    # Reverse-search hits of a crop name it as the caller does: its image id and box.
    image_id: str | None = None
    box: list[float] | None = None

    @property
    def is_image(self) -> bool:
        return bool(self.image_url or self.thumbnail_url)

    def to_event(self) -> Event:
        fields: dict[str, Any] = {
            "query": self.query,
            "rank": self.rank,
            "title": self.title,
            "url": self.url,
            "snippet": self.snippet,
            "provider": self.provider,
        }
        if self.is_image:
            fields["image_url"] = self.image_url
            fields["thumbnail_url"] = self.thumbnail_url
        if self.date:
            fields["date"] = self.date
        if self.source:
            fields["source"] = self.source
        if self.image_id is not None:
            fields["image_id"] = self.image_id
        if self.box is not None:
            fields["box"] = self.box
        return event("hit", **fields)

    to_dict = to_event  # lets trace.jsonl.dumps serialise a Hit directly

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


# --- errors -----------------------------------------------------------------


class ProviderError(VdrError):
    """A provider could not answer one query; becomes one `error` event."""

    def __init__(self, message: str, hint: str | None = None, *, provider: str = "") -> None:
        super().__init__(message, hint)
        self.provider = provider


class MissingKey(ProviderError):
    """The provider needs an API key and none is configured."""


class AuthFailed(ProviderError):
    """The provider refused the key (HTTP 401/403)."""


class RateLimitedError(ProviderError):
    """HTTP 429 after the retries were spent."""


class Blocked(ProviderError):
    """An anomaly, captcha or challenge page instead of results."""


class BadResponse(ProviderError):
    """A response that is not the documented shape (malformed JSON, wrong type)."""


class NotSupported(ProviderError):
    """The provider cannot do this kind of search (or not with this input)."""


# --- images for reverse search ----------------------------------------------


@dataclass
class ImageInput:
    """An image to reverse-search: bytes (file or stdin) and/or a public URL."""

    name: str  # what error events and hits name it by: a path, URL or <stdin>
    data: bytes | None = None
    url: str | None = None  # a public http(s) URL, when the user gave one
    path: str | None = None  # the local file, when there is one (for an uploader)
    description: str | None = None  # what the image shows, when a record said (describe provider)
    image_id: str | None = None  # a crop's image id and box: what its hits are named by
    box: list[float] | None = None
    _sha: str | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str | None:
        if self.data is None:
            return None
        if self._sha is None:
            self._sha = hashlib.sha256(self.data).hexdigest()
        return self._sha

    @property
    def mime(self) -> str:
        from vdr_cli.tools.images import sniff_mime

        return sniff_mime(self.data or b"") or mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def cache_identity(self) -> dict[str, Any]:
        # The image's content, never a temporary upload URL or image_id: those
        # change on every run and would make the cache useless.
        if self.sha256:
            return {"sha256": self.sha256}
        return {"url": self.url}

    @classmethod
    def from_spec(cls, spec: str) -> ImageInput:
        """A path or an http(s) URL (bytes are read now, so errors name the file)."""
        if spec.startswith(("http://", "https://")):
            return cls(name=spec, url=spec)
        if spec.startswith("data:"):
            raise InputError(f"{spec[:30]}…: data: URLs are not accepted", hint="save the image to a file and pass its path")
        from vdr_cli.tools.images import read_bytes

        return cls.from_bytes(read_bytes(spec), spec, path=spec)

    @classmethod
    def from_crop(cls, record: dict[str, Any]) -> ImageInput:
        """A `crop` event's file, named by its image id (or source file name) and box, never its cache path.

        The box is the one the caller asked for (`requested`, in the caller's units:
        0-1000 for the agent), else the pixel box.
        """
        import os

        path = str(record["path"])
        image_id = record.get("image_id") or os.path.basename(str(record.get("source") or "")) or None
        box = record.get("requested") or record.get("box")
        box = [round(float(v), 2) if float(v) % 1 else int(v) for v in box] if isinstance(box, list) and len(box) == 4 else None
        name = " ".join(part for part in (str(image_id or ""), "[" + ",".join(map(str, box)) + "]" if box else "") if part) or path
        from vdr_cli.tools.images import read_bytes

        img = cls.from_bytes(read_bytes(path), name, path=path)
        img.image_id, img.box = (str(image_id) if image_id else None), box
        if isinstance(record.get("description"), str):
            img.description = record["description"]
        return img

    @classmethod
    def from_bytes(cls, data: bytes, name: str, path: str | None = None) -> ImageInput:
        if not data:
            raise InputError(f"{name}: empty file, not an image")
        # Checked here (header only, no decode) so a wrong file is reported as
        # such instead of being uploaded to a provider that rejects it.
        from vdr_cli import config
        from vdr_cli.tools.images import open_source

        open_source(data, name, int(config.current().get("crop.max_pixels")))
        return cls(name=name, data=data, path=path)


# --- providers --------------------------------------------------------------


@dataclass
class Context:
    """What a provider needs to send a request: client, settings, politeness."""

    client: Any  # httpx.AsyncClient (typed loosely so importing this module stays cheap)
    get: Getter
    limiter: Any = None  # net.client.HostLimiter
    retry: Any = None  # net.client.RetryPolicy

    def secrets(self) -> list[str]:
        from vdr_cli.settings import SETTINGS

        values = []
        for key, setting in SETTINGS.items():
            if setting.secret:
                try:
                    value = self.get(key)
                except VdrError:
                    continue
                if isinstance(value, str) and len(value) >= 4:
                    values.append(value)
        return values

    def scrub(self, text: str) -> str:
        """Remove every configured secret from a message (belt and braces)."""
        for secret in self.secrets():
            text = text.replace(secret, "****")
        return text


class Provider(Protocol):
    name: str
    text: bool
    images: bool
    reverse: bool

    def identity(self, ctx: Context) -> str: ...

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]: ...

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]: ...


class BaseProvider:
    """Shared plumbing; subclasses set the class attributes and override search/reverse."""

    name = ""
    text = True
    images = False
    reverse = False
    url_setting = ""
    key_setting = ""  # e.g. "keys.serper"

    def base_url(self, ctx: Context) -> str:
        return str(ctx.get(self.url_setting)).rstrip("/")

    def identity(self, ctx: Context) -> str:
        # Part of the cache key: two instances of a provider may answer differently.
        return self.base_url(ctx) if self.url_setting else self.name

    def key(self, ctx: Context) -> str:
        value = ctx.get(self.key_setting)
        if not value:
            from vdr_cli.settings import SETTINGS

            env = SETTINGS[self.key_setting].env_var
            raise MissingKey(
                f"{self.name}: no API key configured (setting {self.key_setting}, environment variable {env})",
                hint=f"set {env}=… or run `vdr config set {self.key_setting} KEY`",
                provider=self.name,
            )
        return str(value)

    def error(self, cls: type[ProviderError], message: str, hint: str | None = None) -> ProviderError:
        return cls(f"{self.name}: {message}", hint, provider=self.name)

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        raise self.error(NotSupported, "text search is not supported")

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        raise self.error(NotSupported, "reverse image search is not supported", hint="use --provider bing, yandex, lens, serpapi or serper")

    async def send(self, ctx: Context, method: str, url: str, *, raise_for_status: bool = True, **kwargs: Any) -> Any:
        """`net.client.request`, with its failures renamed for this provider."""
        from vdr_cli.net.client import request
        from vdr_cli.net.errors import ConnectFailed, HttpStatusError, RateLimited

        try:
            return await request(ctx.client, method, url, retry=ctx.retry, limiter=ctx.limiter,
                                 raise_for_status=raise_for_status, **kwargs)
        except RateLimited as exc:
            raise self.error(RateLimitedError, f"rate-limited ({exc.message})", hint="wait a while, or use another --provider") from None
        except HttpStatusError as exc:
            if exc.status in (401, 403) and self.key_setting:
                from vdr_cli.settings import SETTINGS

                env = SETTINGS[self.key_setting].env_var
                raise self.error(AuthFailed, f"API key rejected (HTTP {exc.status})",
                                 hint=f"check {env} or `vdr config get {self.key_setting}`") from None
            raise self.error(ProviderError, exc.message) from None
        except ConnectFailed as exc:
            raise self.error(ProviderError, exc.message, hint=f"is {self.identity(ctx)} reachable?") from None

    def json(self, response: Any) -> dict[str, Any]:
        """The body as a JSON object, or `BadResponse` (never quoting the body)."""
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            ctype = response.headers.get("content-type", "?").split(";")[0]
            raise self.error(BadResponse, f"malformed response (HTTP {response.status_code}, {ctype}, not JSON)") from None
        if not isinstance(data, dict):
            raise self.error(BadResponse, f"malformed response (expected a JSON object, got {type(data).__name__})")
        return data

    def items(self, data: dict[str, Any], *path: str) -> list[dict[str, Any]]:
        """A list of objects at `path`, tolerating absence; a wrong type is `BadResponse`."""
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return []
        if not isinstance(node, list):
            raise self.error(BadResponse, f"malformed response ({'.'.join(path)} is not a list)")
        return [item for item in node if isinstance(item, dict)]


def text_of(value: Any) -> str:
    """A field as one line of text (providers send None, numbers, nested HTML-free strings)."""
    if value is None:
        return ""
    return " ".join(str(value).split())


# Registry by name: modules are imported only when a provider is used.
PROVIDERS: dict[str, str] = {
    "duckduckgo": "vdr_cli.tools.search.web_engines:DuckDuckGo",
    "brave-web": "vdr_cli.tools.search.web_engines:BraveWeb",
    "mojeek": "vdr_cli.tools.search.web_engines:Mojeek",
    "bing": "vdr_cli.tools.search.reverse_engines:Bing",
    "yandex": "vdr_cli.tools.search.reverse_engines:Yandex",
    "lens": "vdr_cli.tools.search.reverse_engines:GoogleLens",
    "searxng": "vdr_cli.tools.search.searxng:Searxng",
    "serper": "vdr_cli.tools.search.serper:Serper",
    "brave": "vdr_cli.tools.search.brave:Brave",
    "serpapi": "vdr_cli.tools.search.serpapi:SerpApi",
    "describe": "vdr_cli.tools.search.describe:Describe",
}
ALIASES = {"ddg": "duckduckgo", "searx": "searxng", "googlelens": "lens", "google-lens": "lens"}


def get_provider(name: str) -> Provider:
    """The provider registered as `name` (a `UsageError` names the known ones)."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    target = PROVIDERS.get(key)
    if target is None:
        raise UsageError(f"unknown search provider {name!r}", hint="known providers: " + ", ".join(PROVIDERS))
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()


def get_chain(spec: str | Provider) -> list[Provider]:
    """The providers of a fallback list ("bing,yandex,lens"), in the order to try them."""
    if not isinstance(spec, str):
        return [spec]
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise UsageError("no search provider given", hint="known providers: " + ", ".join(PROVIDERS))
    return [get_provider(name) for name in names]


def providers_that(capability: str) -> list[str]:
    """Names of the providers with `capability` ("text", "images" or "reverse")."""
    return [name for name in PROVIDERS if getattr(get_provider(name), capability)]
