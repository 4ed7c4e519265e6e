"""`vdr config`: where the config is, and reading and writing its settings."""

from __future__ import annotations

from typing import Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.render.output import say

HELP = """\
Read and write settings.

Precedence: a command-line flag > a VDR_* environment variable > the config
file > the default. The file is written with mode 0600 because it may hold
API keys; keys are shown masked unless --reveal is given.
"""

FOLDERS = ("config", "data", "cache")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help=HELP, epilog=epilog("config"), no_args_is_help=True, rich_markup_mode=None)
    sub.command("path", help="Print the config file's path, or the data or cache folder.", epilog=epilog("config path"))(path_command)
    sub.command("list", help="Every setting: value, where it came from, environment variable.", epilog=epilog("config list"))(list_command)
    sub.command("get", help="Print one setting's effective value.", epilog=epilog("config get"))(get_command)
    sub.command("set", help="Write a setting to the config file (type-checked first).", epilog=epilog("config set"))(set_command)
    sub.command("unset", help="Remove a setting from the config file (the default applies again).", epilog=epilog("config unset"))(unset_command)
    app.add_typer(sub, name="config", short_help="Read and write settings.")


@reports("config")
def path_command(
    which: str = typer.Argument("config", autocompletion=complete.folders, help="config (the file), data or cache (the folders)."),
) -> None:
    from vdr_cli import paths

    if which not in FOLDERS:
        from vdr_cli.errors import UsageError

        raise UsageError(f"unknown folder {which!r}", hint="use config, data or cache")
    target = {"config": paths.config_file, "data": paths.data_dir, "cache": paths.cache_dir}[which]()
    typer.echo(str(target))


@reports("config")
def list_command(
    reveal: bool = typer.Option(False, "--reveal", help="Show secrets unmasked."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON Lines even on a terminal."),
) -> None:
    from vdr_cli import config
    from vdr_cli.render.output import json_mode, print_line, stdout_writer
    from vdr_cli.settings import SETTINGS

    cfg = config.current()
    rows = [cfg.resolve(key) for key in SETTINGS]
    if json_mode(json_out):
        writer = stdout_writer()
        for r in rows:
            value = r.shown(reveal) if r.setting.secret else r.value
            writer.write({"key": r.setting.key, "value": value, "source": r.source, "env": r.setting.env_var, "doc": r.setting.doc})
        return
    width = max(len(r.setting.key) for r in rows)
    for r in rows:
        print_line(f"{r.setting.key:<{width}}  {r.shown(reveal):<24}  ({r.source}; ${r.setting.env_var})")


@reports("config")
def get_command(
    key: str = typer.Argument(..., autocompletion=complete.setting_keys, help="Setting name, e.g. search.provider."),
    reveal: bool = typer.Option(False, "--reveal", help="Show a secret unmasked."),
) -> None:
    from vdr_cli import config

    typer.echo(config.current().resolve(key).shown(reveal))


@reports("config")
def set_command(
    key: str = typer.Argument(..., autocompletion=complete.setting_keys, help="Setting name, e.g. search.provider."),
    value: Optional[str] = typer.Argument(None, help="New value (checked against the setting's type); - or nothing reads it from stdin, or from a hidden prompt on a terminal, so a key stays out of shell history.", show_default=False),
) -> None:
    from vdr_cli import config

    cfg = config.current()
    setting = config.lookup(key)
    if value is None or value == "-":
        value = _read_value(key, setting.secret)
    cfg.set(key, value)
    env = cfg.resolve(key)
    if env.source == "env":
        say("config", "warning", f"${env.setting.env_var} is set and overrides the file")


@reports("config")
def unset_command(
    key: str = typer.Argument(..., autocompletion=complete.setting_keys, help="Setting name."),
) -> Optional[int]:
    from vdr_cli import config

    if not config.current().unset(key):
        say("config", "warning", f"{key} was not set in {config.current().path}")
    return None


def _read_value(key: str, secret: bool) -> str:
    """A value from stdin (one line), or typed at a prompt that does not echo a secret."""
    import sys

    from vdr_cli.errors import UsageError

    if sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.readline().strip()
    else:
        import getpass

        try:
            value = getpass.getpass(f"{key}: ") if secret else input(f"{key}: ")
        except EOFError:
            value = ""
    if not value:
        raise UsageError(f"no value given for {key}", hint=f"vdr config set {key} VALUE, or printf '%s' VALUE | vdr config set {key} -")
    return value
