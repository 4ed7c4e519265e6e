"""JSON Lines: one writer and one reader for every command and trace.

The writer emits one object per line and flushes each, so a killed process
loses at most the line being written.  A closed downstream pipe (`vdr … |
head -1`) is not an error: it raises `PipeClosed`, which the CLI turns into a
quiet exit with status 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any


class PipeClosed(Exception):
    """The reader of our stdout went away; stop writing and exit quietly."""


def dumps(obj: Any) -> str:
    """Serialise one record: UTF-8 text kept as is, no newlines inside."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    # Paths, sets and dataclasses show up in records; make them JSON, not errors.
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


class JsonlWriter:
    """Writes one JSON object per line to a text stream, flushing each."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.stream.write(dumps(record) + "\n")
            self.stream.flush()
        except BrokenPipeError as exc:
            raise PipeClosed() from exc
        self.count += 1

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)


@dataclass
class LineError:
    """A line of input that is not a JSON object; readers report it and go on."""

    source: str
    lineno: int
    message: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.lineno}: {self.message}"


def parse_line(line: str, source: str, lineno: int) -> dict[str, Any] | LineError:
    """Parse one line; a non-object or invalid JSON gives a `LineError`."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return LineError(source, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})", line)
    except RecursionError:
        return LineError(source, lineno, "not valid JSON here (nested too deeply)", line)
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        return LineError(source, lineno, f"not valid JSON here ({exc})", line)
    if not isinstance(value, dict):
        return LineError(source, lineno, f"expected a JSON object, got {type(value).__name__}", line)
    return value


def iter_lines(stream: IO[str] | Iterable[str], source: str = "<stdin>") -> Iterator[dict[str, Any] | LineError]:
    """Yield each non-blank line as a dict, or a `LineError` for a malformed one.

    Unknown `type`s (and records with no `type`) are passed through untouched
    so that pipes survive version skew.
    """
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        yield parse_line(line, source, lineno)


def read_records(stream: IO[str] | Iterable[str], source: str = "<stdin>") -> Iterator[dict[str, Any]]:
    """Strict reader: raises `InputError` naming the line at the first malformed one."""
    from vdr_cli.errors import InputError

    for item in iter_lines(stream, source):
        if isinstance(item, LineError):
            raise InputError(str(item), hint="each line must be one JSON object")
        yield item
