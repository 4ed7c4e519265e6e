"""Where output goes: records on stdout, people's text on stderr.

A shared service (below the commands and the agent), so a session runner
writes the same way a command does.

When stdout is a terminal a command renders for people; when it is piped it
writes JSON Lines; `--json` forces JSON Lines.  Records never pass through
rich.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from vdr_cli.trace.jsonl import JsonlWriter, PipeClosed


# Text for people comes from web pages, models and files: on a terminal an escape
# sequence in a page title or an answer could set the window title, clear the
# screen or rewrite what is shown. Control characters (C0 but tab and newline,
# DEL, C1) are dropped from everything written for people; JSONL records keep
# their strings as they are (JSON escapes them).
_CONTROLS = dict.fromkeys([*range(0, 9), *range(11, 32), *range(127, 160)])


def clean(text: Any) -> str:
    """`text` safe to show on a terminal: the one sanitiser for human-facing output."""
    return str(text).translate(_CONTROLS)


def _paint(text: str, code: str) -> str:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or not sys.stderr.isatty():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


_QUIET = False


def set_quiet(value: bool = True) -> None:
    """`--quiet`: no info lines, progress or live view; warnings and errors still."""
    global _QUIET
    _QUIET = value


def is_quiet() -> bool:
    return _QUIET


def say(command: str, level: str, message: str) -> None:
    """One diagnostic line on stderr: `vdr crop: warning: …` (info lines not under --quiet)."""
    if _QUIET and level == "info":
        return
    color = {"error": "31;1", "warning": "33", "hint": "36", "info": "32"}.get(level, "0")
    prefix = f"vdr {command}: " if command else "vdr: "
    first_line = " ".join(clean(message).split("\n")[0].split()) if message else ""
    try:
        sys.stderr.write(f"{prefix}{_paint(level + ':', color)} {first_line}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def json_mode(flag: bool) -> bool:
    """True when records should be written as JSONL on stdout."""
    return flag or not sys.stdout.isatty()


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except ValueError:
        return False


def stdout_writer() -> JsonlWriter:
    return JsonlWriter(sys.stdout)


def print_line(text: str) -> None:
    """Plain text for people on stdout (terminal mode), control characters dropped."""
    try:
        sys.stdout.write(clean(text) + "\n")
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise PipeClosed() from exc


def stderr_console() -> Any:
    """A rich console on stderr (NO_COLOR respected by rich itself)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class RecordSink:
    """Where a multi-input command's records go: JSONL on stdout, or (subclasses)
    text for people; counts successes and failures for the exit status."""

    command = ""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.writer = stdout_writer() if as_json else None
        self.ok = 0
        self.failed = 0

    def fail(self, message: str, where: str, hint: str | None = None, ev: dict[str, Any] | None = None) -> None:
        """One input failed: a line on stderr, and an `error` event in JSONL mode."""
        self.failed += 1
        say(self.command, "error", message)
        if hint:
            say(self.command, "hint", hint)
        if self.writer:
            from vdr_cli.trace.events import error_event

            self.writer.write(ev or error_event(message, where))

    def finish(self) -> int:
        from vdr_cli.errors import ExitStatus

        return ExitStatus.for_outcome(self.ok, self.failed)


def animated() -> bool:
    """True when stderr is a terminal that can redraw (progress bars, spinners):
    not when it is piped, nor under TERM=dumb."""
    return stderr_is_terminal() and os.environ.get("TERM", "") not in ("dumb", "unknown")


def human_bytes(n: float) -> str:
    """1234567 → '1.2 MB' (decimal units, as the hub shows sizes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_seconds(s: float) -> str:
    """75.2 → '1m15s'."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
