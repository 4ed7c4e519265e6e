"""Where output goes: records on stdout, people's text on stderr.

When stdout is a terminal a command renders for people; when it is piped it
writes JSON Lines; `--json` forces JSON Lines.  Records never pass through
rich.
"""

from __future__ import annotations

import sys
from typing import Any

from vdr_cli.trace.jsonl import JsonlWriter, PipeClosed


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
    """Plain text for people on stdout (terminal mode)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise PipeClosed() from exc


def stderr_console() -> Any:
    """A rich console on stderr (NO_COLOR respected by rich itself)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)
