"""`vdr`: the top-level command.  Subcommands live in one module each.

Only typer is imported here; each subcommand imports what it needs inside
its body, so `vdr --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Optional

import typer

from vdr_cli import __version__
from vdr_cli.cli import ask, browse, cache_cmd, completion, config_cmd, crop, doctor, model_cmd, replay, search
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
    doctor.register(app)
    completion.register(app)
    return app


QUIET_HELP = "No progress, live view or info lines on stderr (warnings and errors still)."


def _set_quiet(ctx, param, value: bool) -> None:  # noqa: ANN001 (click's callback signature)
    if value:
        from vdr_cli.render.output import set_quiet

        set_quiet(True)


def build_command():
    """The click command tree of `vdr`, with `--quiet` added to every command."""
    from typer.core import TyperOption

    cmd = typer.main.get_command(make_app())

    def add(c) -> None:
        if not any("--quiet" in getattr(p, "opts", ()) for p in c.params):
            c.params.append(TyperOption(param_decls=["--quiet"], is_flag=True, default=False, expose_value=False,
                                        is_eager=True, callback=_set_quiet, help=QUIET_HELP))
        for sub in getattr(c, "commands", {}).values():
            add(sub)

    add(cmd)
    return cmd


def _command_path(cmd, args: list[str]) -> str:
    """`model pull` for `vdr model pull …`: the subcommands named at the start of `args`."""
    path = []
    for arg in args:
        sub = getattr(cmd, "commands", {}).get(arg)
        if sub is None:
            if arg.startswith("-"):
                continue
            break
        path.append(arg)
        cmd = sub
    return " ".join(path)


def run() -> None:
    """Console-script entry point."""
    import sys

    from typer._click.exceptions import ClickException, UsageError

    if "_VDR_COMPLETE" in os.environ:
        # The shell asks for candidates: register typer's completion classes
        # (skipped otherwise, being import cost nobody else needs).
        from typer._completion_classes import completion_init

        completion_init()
    cmd = build_command()
    try:
        status = cmd.main(prog_name="vdr", standalone_mode=False)
    except UsageError as exc:
        # The documented form, as every other error: `vdr ask: error: …` and a hint.
        from vdr_cli.render.output import say

        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
            sys.exit(exc.exit_code)
        where = _command_path(cmd, sys.argv[1:]) if exc.ctx is None else exc.ctx.command_path.removeprefix("vdr").strip()
        message = exc.format_message()
        say(where, "error", message[:1].lower() + message[1:])
        say(where, "hint", f"vdr {where + ' ' if where else ''}--help shows the usage")
        sys.exit(exc.exit_code)
    except ClickException as exc:
        from vdr_cli.render.output import say

        say("", "error", exc.format_message())
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
