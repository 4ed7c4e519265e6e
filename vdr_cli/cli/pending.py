"""Commands whose layers are not built yet.

They are listed so the command tree (help, man pages, completions) has its
final shape, and each says plainly that it is not available in this version
instead of pretending to work.  Each moves to its own module when built.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.errors import VdrError

# name -> (one-line summary, issue number); empty while every command is built.
PENDING: dict[str, tuple[str, int]] = {}


def _make(name: str):
    summary, issue = PENDING[name]

    @reports(name)
    def command(
        args: Optional[List[str]] = typer.Argument(None, help="Arguments (not available yet).", show_default=False),
    ) -> None:
        raise VdrError(f"`vdr {name}` is not available in this version yet (planned in issue #{issue})")

    command.__name__ = f"{name}_command"
    return command


def _add(app: typer.Typer, name: str) -> None:
    summary, _ = PENDING[name]
    app.command(
        name,
        help=summary + "\n\nNot available in this version yet.",
        short_help=summary,
        epilog=epilog(name),
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(_make(name))


def register_rest(app: typer.Typer) -> None:
    for name in PENDING:
        _add(app, name)
