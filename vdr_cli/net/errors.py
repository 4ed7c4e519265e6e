"""Network failures, as one-line `VdrError`s that name the URL or host."""

from __future__ import annotations

from vdr_cli.errors import VdrError


class NetError(VdrError):
    """A request that did not produce a usable response."""

    def __init__(self, message: str, hint: str | None = None, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message, hint)
        self.url = url
        self.status = status


class ConnectFailed(NetError):
    """DNS failure, refused or reset connection, timeout."""


class HttpStatusError(NetError):
    """The server answered with a 4xx/5xx status."""


class RateLimited(HttpStatusError):
    """429 (or a provider's equivalent) after the retries were spent."""


class BlockedUrl(NetError):
    """The URL policy refused the target (private address, bad scheme…)."""


class TooLarge(NetError):
    """The body exceeded the size cap (or decompressed past it)."""


class Unsupported(NetError):
    """A content type vdr does not read (PDF, video…)."""
