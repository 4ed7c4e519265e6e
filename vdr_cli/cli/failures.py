"""The one place that turns exceptions into messages and exit statuses.

Every command body runs inside `reports(name)`: an expected failure
(`VdrError`) prints `vdr NAME: error: …` (and a hint when there is a fix) on
stderr and exits with its documented status; Ctrl-C exits 130; a closed
downstream pipe exits 0 quietly; anything else is an internal error whose
traceback `VDR_DEBUG=1` shows.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vdr_cli.errors import ExitStatus, VdrError
from vdr_cli.render.output import say
from vdr_cli.trace.jsonl import PipeClosed

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("VDR_DEBUG", "") not in ("", "0")


def exit_status_of(exc: VdrError) -> ExitStatus:
    """The documented status for an expected failure (never an HTTP status)."""
    status = getattr(exc, "exit_status", ExitStatus.ERROR)
    return status if isinstance(status, ExitStatus) else ExitStatus.ERROR


def report(command: str, exc: VdrError) -> None:
    say(command, "error", exc.message)
    if exc.hint:
        say(command, "hint", exc.hint)


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def reports(command: str) -> Callable[[F], F]:
    """Decorator for command bodies: maps every failure to one line and a status."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                status = fn(*args, **kwargs)
            except typer.Exit:
                raise
            except (PipeClosed, BrokenPipeError):
                silence_stdout()
                raise typer.Exit(ExitStatus.OK) from None
            except KeyboardInterrupt:
                say(command, "error", "interrupted")
                raise typer.Exit(ExitStatus.INTERRUPTED) from None
            except VdrError as exc:
                if debug_enabled():
                    raise
                report(command, exc)
                raise typer.Exit(exit_status_of(exc)) from None
            except Exception as exc:  # an internal error: a bug, not a user mistake
                if debug_enabled():
                    raise
                say(command, "error", f"internal error: {type(exc).__name__}: {exc}")
                say(command, "hint", "run again with VDR_DEBUG=1 for the traceback, and report it")
                raise typer.Exit(ExitStatus.ERROR) from None
            if status:
                raise typer.Exit(int(status))
            return None

        return wrapper  # type: ignore[return-value]

    return decorate
