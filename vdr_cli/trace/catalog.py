"""Where session traces are and how to open one: the data folder's `traces/`.

`vdr ask` writes each session to data_dir()/traces/STAMP-ID.jsonl; `vdr replay
--list` and `--last` read that folder.  Opening a trace (a path or `-`) lives
here too so every reader reports unreadable, empty or non-UTF-8 input the same
one-line way.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdr_cli.errors import InputError, UsageError
from vdr_cli.trace.jsonl import LineError, parse_line

# The writer puts "type" first with no spaces; hand-written traces may not.
# Reading the type off the line's start lets a listing skip parsing the big
# lines (results with page texts) it does not need.
_TYPE_AT_START = re.compile(r'\s*\{\s*"type"\s*:\s*"([A-Za-z_]+)"')


@dataclass
class TraceFile:
    """A trace's lines as read, each parsed to a dict or a `LineError`."""

    source: str  # the name errors use: the path, or <stdin>
    path: Path | None  # None for stdin
    lines: list[str]  # raw lines, newline stripped, blank lines included (line numbers stay true)

    def items(self) -> list[tuple[int, dict[str, Any] | LineError, str]]:
        """(line number, parsed record or error, raw text) for each non-blank line."""
        out = []
        for lineno, text in enumerate(self.lines, start=1):
            if text.strip():
                out.append((lineno, parse_line(text, self.source, lineno), text))
        return out

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the trace are looked up first."""
        return self.path.parent if self.path is not None else Path.cwd()


def traces_dir() -> Path:
    """The folder `vdr ask` writes session traces to."""
    from vdr_cli.paths import data_dir

    return data_dir() / "traces"


def open_trace(name: str) -> TraceFile:
    """Read a trace file, or stdin for `-`; one-line errors for unreadable or empty input."""
    if name == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("`-` reads a trace from stdin, but stdin is a terminal", hint="cat trace.jsonl | vdr replay -")
        data = sys.stdin.buffer.read()
        source, path = "<stdin>", None
    else:
        path = Path(name)
        source = name
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, not a trace file") from None
        except FileNotFoundError:
            raise InputError(f"{name}: no such file", hint="vdr replay --list shows the traces in the data folder") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{source}:{lineno}: not UTF-8 text (is this a trace?)") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{source}: empty trace (no events)")
    return TraceFile(source=source, path=path, lines=lines)


@dataclass
class TraceSummary:
    """One line of `vdr replay --list`."""

    path: Path
    id: str
    ts: str
    question: str
    steps: int
    calls: int
    reason: str  # the end event's reason, or "incomplete"
    mtime: float

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "id": self.id, "ts": self.ts, "question": self.question,
                "steps": self.steps, "calls": self.calls, "reason": self.reason}


def summarise(path: Path) -> TraceSummary:
    """What `--list` shows of one trace; InputError when it is not a vdr trace."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    header: dict[str, Any] | None = None
    steps = calls = 0
    reason = "incomplete"
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _TYPE_AT_START.match(line)
        kind = match.group(1) if match else None
        if header is None:
            first = parse_line(line, str(path), lineno)
            if isinstance(first, LineError) or first.get("type") != "session":
                raise InputError(f"{path}: not a vdr trace (no session header on its first line)")
            header = first
        elif kind == "step":
            steps += 1
        elif kind == "call":
            calls += 1
        elif kind == "end":
            try:
                reason = str(json.loads(line).get("reason") or "?")
            except (json.JSONDecodeError, AttributeError):
                reason = "?"
    if header is None:
        raise InputError(f"{path}: empty trace")
    return TraceSummary(path=path, id=str(header.get("id", "")), ts=str(header.get("ts", "")),
                        question=str(header.get("question", "")), steps=steps, calls=calls, reason=reason, mtime=mtime)


def list_traces(directory: Path | None = None) -> tuple[list[TraceSummary], list[str]]:
    """Summaries of every trace in the folder, newest first, and a warning per unreadable file."""
    folder = directory if directory is not None else traces_dir()
    if not folder.is_dir():
        return [], []
    found: list[TraceSummary] = []
    warnings: list[str] = []
    for path in folder.glob("*.jsonl"):
        try:
            found.append(summarise(path))
        except InputError as exc:
            warnings.append(exc.message)
    # The header's start time orders sessions; the file time breaks ties (and
    # orders traces whose header has no usable time).
    found.sort(key=lambda s: (s.ts, s.mtime, s.path.name), reverse=True)
    return found, warnings


def latest_trace(directory: Path | None = None) -> Path:
    """The newest session trace in the data folder."""
    folder = directory if directory is not None else traces_dir()
    found, _ = list_traces(folder)
    if not found:
        raise InputError(f"no session traces in {folder}", hint="`vdr ask` writes one per session (or give a trace file)")
    return found[0].path
