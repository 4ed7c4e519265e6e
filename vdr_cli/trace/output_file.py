"""Opening the file a trace is written to (`vdr ask -o PATH`), without clobbering.

A regular file is rewritten through a temporary file renamed over it, so a
crash while rewriting (a resume keeps the recorded prefix) never loses the
session.  Anything else is written through: a FIFO, a terminal or a device
keeps being what it is, and a symlink keeps pointing where it did (its target
is the file rewritten).  A folder, a path under a file or an unwritable place
is refused with one line naming the path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from vdr_cli.errors import InputError
from vdr_cli.trace.jsonl import dumps


def _refuse(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, NotADirectoryError):
        return InputError(f"{path}: cannot write the trace: a parent of this path is a file, not a folder")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{path}: cannot write the trace: it is a folder", hint="give a file name, e.g. -o run.jsonl")
    return InputError(f"{path}: cannot write the trace ({exc.strerror or exc})")


def open_trace_output(path: Path, prefix: Iterable[dict[str, Any]] = ()) -> IO[str]:
    """A text stream positioned after `prefix` (events already written), at `path`."""
    try:
        st = os.stat(path)  # follows a symlink: what matters is what it points at
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _refuse(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _refuse(path, IsADirectoryError(path))
    lines = "".join(dumps(ev) + "\n" for ev in prefix)
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - the caller closes it
            fh.write(lines)
            fh.flush()
        except OSError as exc:
            raise _refuse(path, exc) from None
        return fh
    real = Path(os.path.realpath(path))
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _refuse(path, NotADirectoryError(path)) from None
    except OSError as exc:
        raise _refuse(path, exc) from None
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        fh = open(tmp, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise _refuse(path, exc) from None
    try:
        fh.write(lines)
        fh.flush()
        os.fsync(fh.fileno())
        # The open descriptor follows the rename, so later events append to it.
        os.replace(tmp, real)
    except OSError as exc:
        fh.close()
        Path(tmp).unlink(missing_ok=True)
        raise _refuse(path, exc) from None
    return fh
