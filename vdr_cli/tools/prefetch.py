"""Decode an image in the background while the CLI starts.

`vdr crop PHOTO` spends ~50 ms importing and parsing before it reads the
image; Pillow's decoder releases the GIL, so decoding on a thread meanwhile
overlaps the two.  Only what is safe is prefetched: a regular file whose
header fits the default pixel limit.  The command uses the result only for
the same file, unchanged, and decodes as usual otherwise.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 200_000_000


@dataclass
class Prefetched:
    path: str
    key: tuple[int, int, int]  # (size, mtime_ns, inode): the file it was read from
    data: bytes
    image: Any  # a loaded PIL image (first frame, not yet EXIF-rotated), or None


_thread: threading.Thread | None = None
_result: Prefetched | None = None


def _key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _work(path: str) -> None:
    global _result
    try:
        key = _key(path)
        if key[0] > 512 * 1024 * 1024:
            return
        with open(path, "rb") as fh:
            data = fh.read()
        import io

        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # checked here, against the default limit
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > DEFAULT_LIMIT:
            _result = Prefetched(path, key, data, None)
            return
        img.seek(0)
        # One decode call for the whole file: Pillow releases the GIL inside it, but would
        # take it back every 64 KiB block and starve against the importing main thread.
        img.decodermaxblock = max(len(data), 65536)
        img.load()
        _result = Prefetched(path, key, data, img)
    except Exception:  # anything odd: the command reads and reports it itself
        _result = None


def start(path: str) -> None:
    """Begin reading and decoding `path` on a daemon thread (a no-op for non-files)."""
    global _thread
    if _thread is None and os.path.isfile(path):
        _thread = threading.Thread(target=_work, args=(path,), daemon=True)
        _thread.start()


def take(path: str) -> Prefetched | None:
    """The prefetched file if it is `path` and unchanged since; waits for the decode."""
    global _thread, _result
    if _thread is None:
        return None
    _thread.join()
    _thread, result, _result = None, _result, None
    try:
        if result is not None and os.path.abspath(result.path) == os.path.abspath(path) and _key(path) == result.key:
            return result
    except OSError:
        pass
    return None


def crop_target(argv: list[str]) -> str | None:
    """The image path of a `vdr crop IMAGE …` command line, if there is one."""
    if len(argv) < 3 or argv[1] != "crop":
        return None
    takes_value = {"--box", "-b", "--units", "-u", "--scale", "-s", "--min-side", "--max-side", "--format", "-f",
                   "--quality", "-q", "--out", "-o", "--max-pixels"}
    skip = False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif arg == "-":
            return None  # stdin: nothing to prefetch
        elif not arg.startswith("-"):
            return arg
    return None
