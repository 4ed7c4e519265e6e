"""`vdr completion SHELL`: print a shell completion script."""

from __future__ import annotations

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports

SHELLS = ("bash", "zsh", "fish")


def register(app: typer.Typer) -> None:
    app.command(
        "completion",
        help="Print a completion script for bash, zsh or fish (the scripts ask vdr itself for candidates).",
        epilog=epilog("completion"),
    )(completion_command)


def script(shell: str) -> str:
    """The completion script for `shell`, as typer/click generate it for `vdr`."""
    from typer._completion_classes import completion_init
    from typer._completion_shared import get_completion_script

    completion_init()
    return get_completion_script(prog_name="vdr", complete_var="_VDR_COMPLETE", shell=shell).rstrip("\n") + "\n"


@reports("completion")
def completion_command(
    shell: str = typer.Argument(..., autocompletion=complete.shells, help="bash, zsh or fish."),
) -> None:
    if shell not in SHELLS:
        from vdr_cli.errors import UsageError

        raise UsageError(f"unknown shell {shell!r}", hint="use bash, zsh or fish")
    typer.echo(script(shell), nl=False)
