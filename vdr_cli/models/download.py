"""Fetching model files from a model hub: streamed, resumable, verified, atomic.

A transfer writes `FILE.part`; an interrupted one resumes from the part's
size with an HTTP Range request.  The SHA-256 is checked against the catalog
or the hub's `X-Linked-Etag` before the part is renamed into place, so a
model file is either complete and verified or absent.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from vdr_cli.errors import VdrError

ProgressFn = Callable[[int, "int | None"], None]  # (bytes so far, total or None)
CHUNK = 1 << 20
_SHA = re.compile(r'^"?([0-9a-f]{64})"?$')


class DownloadError(VdrError):
    """A model file could not be fetched or verified."""


@dataclass
class Fetched:
    path: Path
    bytes: int
    sha256: str
    resumed_from: int
    verified: bool  # False when neither the catalog nor the hub gave a checksum


def hub_url(hub: str, repo: str, revision: str, filename: str) -> str:
    return f"{hub.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def _hash_existing(path: Path) -> tuple["hashlib._Hash", int]:
    digest = hashlib.sha256()
    size = 0
    if path.exists():
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return digest, size


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    token: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
) -> Fetched:
    """Download `url` to `dest` (resuming `dest.part`), verify, and rename into place."""
    import httpx

    from vdr_cli.net.client import USER_AGENT

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest, have = _hash_existing(part)
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"  # httpx drops it on cross-origin redirects
    if have:
        headers["Range"] = f"bytes={have}-"
    where = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{urlsplit(url).path}"
    resumed_from = have
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True, trust_env=True) as client:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and have:
                    total = have  # the part is already whole; verify it below
                else:
                    if response.status_code in (401, 403):
                        raise DownloadError(f"{where}: HTTP {response.status_code} (access denied)",
                                            hint="set HF_TOKEN if the repository is gated or private")
                    if response.status_code == 404:
                        raise DownloadError(f"{where}: HTTP 404 (no such repository or file)",
                                            hint="check the name, or download the file yourself and use `vdr model add`")
                    if response.status_code >= 400:
                        raise DownloadError(f"{where}: HTTP {response.status_code}")
                    if response.status_code == 200 and have:
                        digest, have, resumed_from = hashlib.sha256(), 0, 0  # server ignored Range: start over
                    expected = sha256 or _linked_sha(response.headers)
                    length = response.headers.get("Content-Length")
                    total = have + int(length) if length and length.isdigit() else None
                    with open(part, "ab" if have else "wb") as fh:
                        for chunk in response.iter_bytes():  # as received: an interruption keeps all of it
                            fh.write(chunk)
                            digest.update(chunk)
                            have += len(chunk)
                            if progress:
                                progress(have, total)
                    if total is not None and have < total:
                        raise DownloadError(f"{where}: connection closed at {have} of {total} bytes",
                                            hint="run the same command again to resume")
                    sha256 = expected
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"cannot download {where}: {type(exc).__name__}" + (f" after {have} bytes" if have else ""),
            hint="run the same command again to resume; offline, download the file yourself and use `vdr model add NAME --gguf FILE`",
        ) from None
    got = digest.hexdigest()
    if sha256 and got != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{dest.name}: checksum mismatch (expected sha256 {sha256[:12]}…, got {got[:12]}…); the partial file was removed")
    os.replace(part, dest)
    return Fetched(path=dest, bytes=have, sha256=got, resumed_from=resumed_from, verified=bool(sha256))


def _linked_sha(headers) -> str | None:
    # The hub sends the LFS object's SHA-256 as X-Linked-Etag on resolve URLs.
    for name in ("X-Linked-Etag", "ETag"):
        value = headers.get(name)
        if value:
            match = _SHA.match(value.strip().removeprefix("W/"))
            if match:
                return match.group(1)
    return None
