"""`vdr cache`: where the network cache is, what it holds, and emptying it."""

from __future__ import annotations

from typing import Optional

import typer

from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports

HELP = """\
The disk cache of network results (pages, search results).

One SQLite file in the cache folder. Entries expire after cache.ttl seconds;
only successful, non-empty results are stored. `vdr browse --no-cache` (and
cache.enabled=false) bypass it.
"""


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help=HELP, epilog=epilog("cache"), no_args_is_help=True, rich_markup_mode=None)
    sub.command("path", help="Print the cache file's path.", epilog=epilog("cache path"))(path_command)
    sub.command("stats", help="Entries, sizes and entries per namespace.", epilog=epilog("cache stats"))(stats_command)
    sub.command("clear", help="Remove every entry, or one namespace's.", epilog=epilog("cache clear"))(clear_command)
    app.add_typer(sub, name="cache", short_help="Inspect or clear the network cache.")


@reports("cache")
def path_command() -> None:
    from vdr_cli.cache import default_path

    typer.echo(str(default_path()))


@reports("cache")
def stats_command(
    json_out: bool = typer.Option(False, "--json", "-j", help="Write one JSON object even on a terminal."),
) -> None:
    from vdr_cli.cache import Cache
    from vdr_cli.render.output import json_mode, print_line, stdout_writer

    stats = Cache().stats()
    stats.pop("hits"), stats.pop("misses")  # this process made none: noise here
    if json_mode(json_out):
        stdout_writer().write(stats)
        return
    print_line(f"path     {stats['path']}")
    print_line(f"entries  {stats['entries']} ({stats['expired']} expired)")
    print_line(f"size     {stats['bytes']:,} bytes of values, {stats['file_bytes']:,} bytes on disk")
    for ns, n in stats["namespaces"].items():
        print_line(f"  {ns:<20} {n}")


@reports("cache")
def clear_command(
    namespace: Optional[str] = typer.Option(None, "--namespace", "-n", help="Only this namespace (see `vdr cache stats`).", show_default=False),
) -> None:
    from vdr_cli.cache import Cache
    from vdr_cli.render.output import say

    cache = Cache()
    n = cache.clear(namespace)
    if cache.removed_corrupt:
        say("cache", "info", f"removed the unreadable cache database {cache.path}")
        return
    say("cache", "info", f"removed {n} entr{'y' if n == 1 else 'ies'}")
