"""Images a person names that are not local files: `-` (bytes on stdin) and http(s) URLs.

Both become a file in the cache folder named by content (stdin) or by URL
(downloads), so a session's trace points at a file that stays, a re-run does
not download again, and every later step (crop, resume, replay --html)
reads a plain path.  Downloads go through the URL policy in "user" mode (a
person's URL may be any host, as in a browser) with the image size cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

from vdr_cli.errors import InputError, UsageError
from vdr_cli.tools.images import EXTENSIONS as _EXT, MAX_BYTES, sniff_mime


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def inputs_dir() -> Path:
    from vdr_cli.paths import cache_dir

    return cache_dir() / "inputs"


def _store(data: bytes, name: str, where: str) -> Path:
    mime = sniff_mime(data)
    if mime is None:
        raise InputError(f"{where}: not an image (no JPEG, PNG, GIF, BMP or WebP signature)")
    folder = inputs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name + _EXT[mime])
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target


def image_from_stdin() -> Path:
    """`-` as an image: read its bytes from stdin."""
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("`-` reads an image from stdin, but stdin is a terminal", hint="curl -s URL | vdr ask - 'QUESTION'")
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InputError(f"<stdin>: over {MAX_BYTES // 2**20} MiB, too large to be an image vdr will open")
    if not data:
        raise InputError("<stdin>: empty, not an image")
    return _store(data, hashlib.sha256(data).hexdigest()[:24], "<stdin>")


def image_from_url(url: str, timeout: float = 30.0) -> Path:
    """Download an image a person gave as a URL (cached by URL, capped at the image size limit)."""
    from vdr_cli.net.errors import NetError
    from vdr_cli.net.fetch import fetch
    from vdr_cli.net.policy import UrlPolicy

    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    folder = inputs_dir()
    for ext in _EXT.values():
        if (folder / (key + ext)).is_file():
            return folder / (key + ext)
    policy = UrlPolicy(mode="user")

    async def get() -> bytes:
        async with policy.make_client(timeout=timeout) as client:
            result = await fetch(url, client=client, policy=policy, max_bytes=MAX_BYTES, timeout=timeout,
                                 accept=frozenset({"image"}))
            return result.body

    try:
        data = asyncio.run(get())
    except NetError as exc:
        raise InputError(f"{url}: cannot download the image ({exc})") from None
    return _store(data, key, url)
