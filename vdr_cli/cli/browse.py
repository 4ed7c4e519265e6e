"""`vdr browse`: read web pages, one `page` (or `error`) event per URL."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.errors import UsageError
from vdr_cli.render.output import RecordSink, say

HELP = """\
Fetch web pages, extract their main text and, with --goal, summarise them.

URLs come from the arguments, or from stdin: plain lines (one URL each) or
JSON Lines records with a "url" (hit events from `vdr search` work).

URLs you type (arguments, plain lines) may reach any host. URLs in JSONL
records came from another program or from web content, so they are treated
like the model's choices: private, loopback and link-local addresses are
refused unless --allow-private (or net.allow_private) says otherwise.
Plain lines count as typed, whatever wrote them: `jq -r .url` between
`vdr search` and `vdr browse -` gives web-chosen URLs your reach; pipe
the hit records themselves to keep the model's rules. Redirects into
cloud-metadata space are refused even for typed URLs, and a page whose
redirects left the public web is not cached under the URL asked for.

Each page is capped in size and time (net.max_bytes, net.timeout), only
http(s) is fetched, and PDFs are not read. Anti-bot challenge pages are
reported with "challenge" set and no summary, and count as failures.
Pages are cached on disk (cache.ttl); --no-cache skips the cache.

Exit status: 0 all pages read, 3 some failed, 1 all failed, 2 usage.
"""


def register(app: typer.Typer) -> None:
    app.command("browse", help=HELP, epilog=epilog("browse"),
                short_help="Fetch pages, extract their main text and summarise them for a goal.")(browse_command)


@reports("browse")
def browse_command(
    urls: Optional[List[str]] = typer.Argument(None, help="URLs to read; none or - reads stdin (lines or JSONL).", show_default=False),
    goal: Optional[str] = typer.Option(None, "--goal", "-g", help="What to look for: adds a summary of the passages that answer it."),
    max_chars: Optional[int] = typer.Option(None, "--max-chars", help="Characters of text kept per page [config browse.max_chars].", show_default=False),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the disk cache."),
    allow_private: bool = typer.Option(False, "--allow-private", help="Let URLs from JSONL records reach private and loopback addresses."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds allowed per page [config net.timeout].", show_default=False),
    concurrency: int = typer.Option(8, "--concurrency", "-c", min=1, max=64, help="Pages fetched at once."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON Lines even on a terminal."),
) -> int:
    import asyncio

    from vdr_cli import config as config_mod
    from vdr_cli.cache import open_cache
    from vdr_cli.render.output import json_mode

    cfg = config_mod.current()
    sink = _Sink(json_mode(json_out))
    targets = _targets(urls or [], sink)
    if not targets:
        if sink.failed:
            return sink.finish()
        raise UsageError("no URL given", hint="vdr browse URL... (or pipe URLs or JSONL records with \"url\" on stdin)")
    limit = cfg.get("browse.max_chars", max_chars)
    if limit is not None and limit <= 0:
        raise UsageError(f"--max-chars {limit}: must be a positive number")
    options = dict(
        goal=goal,
        max_chars=limit,
        cache=open_cache(False if no_cache else None),
        allow_private=bool(cfg.get("net.allow_private", True if allow_private else None)),
        max_bytes=int(cfg.get("net.max_bytes")),
        timeout=float(cfg.get("net.timeout", timeout)),
        concurrency=concurrency,
    )
    asyncio.run(_run(targets, options, sink))
    return sink.finish()


def _targets(args: list[str], sink: "_Sink") -> list[tuple[str, str]]:
    """(url, mode) pairs, duplicates dropped: arguments, else stdin lines or JSONL records."""
    from vdr_cli.tools.browse import normalise_url

    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(url: str, mode: str) -> None:
        key = normalise_url(url)
        if key not in seen:
            seen.add(key)
            out.append((url, mode))

    from_stdin = not args or args == ["-"]
    for a in args:
        if a != "-":
            add(a.strip(), "user")
    if not from_stdin:
        return out
    if sys.stdin is None or sys.stdin.isatty():
        return out
    import io

    from vdr_cli.trace.jsonl import LineError, parse_line

    text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            add(line, "user")
            continue
        rec = parse_line(line, "<stdin>", lineno)
        if isinstance(rec, LineError):
            sink.fail(str(rec), f"<stdin>:{lineno}")
            continue
        if rec.get("type") == "error":
            continue  # the upstream command already reported it
        url = rec.get("url") or rec.get("link")
        if not isinstance(url, str) or not url.strip():
            sink.fail(f"<stdin>:{lineno}: record has no \"url\"", f"<stdin>:{lineno}")
            continue
        add(url.strip(), "agent")
    return out


async def _run(targets: list[tuple[str, str]], options: dict[str, Any], sink: "_Sink") -> None:
    from contextlib import aclosing

    from vdr_cli.tools.browse import browse_iter

    urls = [u for u, _ in targets]
    modes = [m for _, m in targets]
    # Events are written in input order, each as soon as everything before it is done.
    ready: dict[int, dict[str, Any]] = {}
    next_i = 0
    async with aclosing(browse_iter(urls, mode=modes, **options)) as events:
        async for i, ev in events:
            ready[i] = ev
            while next_i in ready:
                sink.emit(ready.pop(next_i))
                next_i += 1


class _Sink(RecordSink):
    """Page events (JSONL) or a reading for people."""

    command = "browse"

    def emit(self, ev: dict[str, Any]) -> None:
        if ev.get("type") == "error":
            self.fail(ev["message"], ev.get("where") or "", ev=ev)
            return
        if ev.get("challenge"):
            self.failed += 1
            say("browse", "error", f"{ev['url']}: {ev.get('error') or 'challenge page'}")
        else:
            self.ok += 1
            if ev.get("truncated"):
                say("browse", "warning", f"{ev['url']}: text truncated")
        if self.writer:
            self.writer.write(ev)
        else:
            self._render(ev)

    def _render(self, ev: dict[str, Any]) -> None:
        from vdr_cli.render.output import print_line

        title = ev.get("title") or "(untitled)"
        where = ev["url"] if ev.get("final_url") in (None, ev["url"]) else f"{ev['url']} -> {ev['final_url']}"
        print_line(title)
        print_line(where + ("  (cached)" if ev.get("cached") else ""))
        if ev.get("challenge"):
            print_line(f"[{ev.get('error')}]")
        else:
            body = ev.get("summary") or ev.get("text") or ""
            body = body if ev.get("summary") or len(body) <= 1200 else body[:1200].rstrip() + " …"
            print_line("")
            print_line(body)
        print_line("")

