"""`vdr`: the top-level command.  Subcommands live in one module each.

Only typer is imported here; each subcommand imports what it needs inside
its body, so `vdr --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Optional

import typer

from vdr_cli import __version__
from vdr_cli.cli import ask, browse, cache_cmd, completion, config_cmd, crop, model_cmd, replay, search
from vdr_cli.cli import eval as eval_cmd  # not to shadow the builtin
from vdr_cli.cli.docs import epilog

HELP = """\
A multimodal deep-research agent on your own machine.

Every tool of the agent is also a subcommand, and every subcommand reads and
writes JSON Lines (one event per line, with a "type"), so vdr composes with
pipes, jq and shell scripts. Records go to stdout, messages to stderr.

Exit status: 0 ok, 1 error, 2 usage, 3 partial (some inputs failed), 130 interrupted.
"""


def make_app() -> typer.Typer:
    app = typer.Typer(
        name="vdr",
        help=HELP,
        epilog=epilog("vdr"),
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,  # plain help: rich costs ~50 ms of start-up
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def show_version(value: Optional[bool]) -> None:
        if value:
            typer.echo(f"vdr {__version__}")
            raise typer.Exit()

    @app.callback()
    def main(
        version: Optional[bool] = typer.Option(
            None, "--version", "-V", help="Print the version and exit.", is_eager=True, callback=show_version
        ),
    ) -> None:
        pass

    ask.register(app)
    crop.register(app)
    search.register(app)
    browse.register(app)
    replay.register(app)
    eval_cmd.register(app)
    model_cmd.register(app)
    config_cmd.register(app)
    cache_cmd.register(app)
    completion.register(app)
    return app


def run() -> None:
    """Console-script entry point."""
    if "_VDR_COMPLETE" in os.environ:
        # The shell asks for candidates: register typer's completion classes
        # (skipped otherwise, being import cost nobody else needs).
        from typer._completion_classes import completion_init

        completion_init()
    make_app()(prog_name="vdr")
