"""`vdr search`: web search, image search by text, reverse image search; one `hit` event per result."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.errors import InputError, UsageError
from vdr_cli.render.output import RecordSink, say

HELP = """\
Search the web; one "hit" event per result (query, rank, title, url, snippet,
provider; image_url and thumbnail_url for image hits).

Several QUERY arguments run at once (the call takes as long as its slowest
query). Results are deduplicated by URL within a query; -n keeps N per query.
A query that fails (no key, rejected key, rate limit, captcha page, malformed
answer) gives one "error" event naming it, and the others still return: exit
3 when some failed, 1 when all did. QUERY - reads queries from stdin, one per
line (or JSONL records with "query").

Providers (--provider, default config search.provider; a comma list is a
fallback order: the next one is tried when one fails, blocks or rate-limits):
duckduckgo, brave-web, mojeek (keyless, through the ddgs library), searxng
(search.searxng_url), serper (VDR_SERPER_KEY), brave (VDR_BRAVE_KEY), serpapi
(VDR_SERPAPI_KEY). --images searches images by text (searxng, serper, brave,
serpapi).

--image PATH|URL|- runs a reverse image search (default config
search.image_provider, bing,yandex,lens,describe): bing, yandex and lens are
keyless (through the picimagesearch library; the file goes to that engine
only); serpapi uploads the file to SerpApi (key); serper needs a public URL,
or search.uploader. describe, the offline fallback, is not a reverse image
search: it searches for --describe TEXT and uploads nothing. --image - reads
image bytes, or JSONL records with "path" (crop events: one search per crop;
their hits carry the crop's image_id and box).

Successful results are cached (config cache.enabled); --no-cache skips the
cache. API keys never appear in output.
"""


def register(app: typer.Typer) -> None:
    app.command("search", help=HELP, epilog=epilog("search"),
                short_help="Search the web (text, images, reverse image search).")(search_command)


@reports("search")
def search_command(
    queries: Optional[List[str]] = typer.Argument(None, help="Search queries (several run at once), or - to read them from stdin.", show_default=False),
    num: Optional[int] = typer.Option(None, "--num", "-n", help="Results kept per query [config search.results, default 10]."),
    provider: Optional[str] = typer.Option(None, "--provider", "-p", autocompletion=complete.providers, help="duckduckgo, brave-web, mojeek, searxng, serper, brave, serpapi; with --image: bing, yandex, lens, serpapi, serper, describe. A comma list is tried in order.", show_default=False),
    images: bool = typer.Option(False, "--images", "-i", help="Search images by text (image hits with image_url)."),
    image: Optional[str] = typer.Option(None, "--image", "-I", help="Reverse image search: a file, an http(s) URL, or - for stdin.", show_default=False),
    describe: Optional[str] = typer.Option(None, "--describe", "-d", help="What the image shows (the describe provider searches for it; never uploads).", show_default=False),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the search cache."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON Lines even on a terminal."),
) -> int:
    import asyncio

    from vdr_cli import config as config_mod
    from vdr_cli.render.output import json_mode
    from vdr_cli.tools.search.base import get_chain, providers_that

    cfg = config_mod.current()
    n = int(cfg.get("search.results", num))
    if n < 1:
        raise UsageError(f"-n {n}: must be at least 1")
    queries = [q for q in (queries or []) if q.strip()]
    if image is not None:
        if queries:
            raise UsageError("give either QUERY or --image, not both", hint="describe an image with --describe TEXT")
        if images:
            raise UsageError("--images searches by text; --image searches by an image: pick one")
        name = provider or str(cfg.get("search.image_provider"))
        capability = "reverse"
    else:
        if describe:
            raise UsageError("--describe goes with --image", hint="vdr search --image crop.jpg --describe 'red brick tower'")
        if queries == ["-"] or (not queries and not sys.stdin.isatty()):
            queries = _read_queries()
        if not queries:
            raise UsageError("no query given", hint="vdr search 'QUERY' [more queries…], or --image PATH")
        name = provider or str(cfg.get("search.provider"))
        capability = "images" if images else "text"
    chain = get_chain(name)
    for prov in chain:
        if not getattr(prov, capability):
            what = {"text": "text search", "images": "image search (--images)", "reverse": "reverse image search (--image)"}[capability]
            raise UsageError(f"provider {prov.name} does not do {what}", hint="use one of: " + ", ".join(providers_that(capability)))
    names = ",".join(p.name for p in chain)
    sink = _Sink(json_mode(json_out))
    if image is not None:
        asyncio.run(_reverse(sink, names, _images(image, sink), n, describe, not no_cache))
    else:
        asyncio.run(_text(sink, names, queries, n, images, not no_cache))
    return sink.finish()


def _read_queries() -> list[str]:
    from vdr_cli.trace.jsonl import parse_line

    out: list[str] = []
    for lineno, line in enumerate(sys.stdin, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            record = parse_line(text, "<stdin>", lineno)
            value = record.get("query") if isinstance(record, dict) else None
            if isinstance(value, list):
                out.extend(str(v) for v in value if str(v).strip())
            elif isinstance(value, str) and value.strip():
                out.append(value)
            else:
                raise InputError(f"<stdin>:{lineno}: expected a record with \"query\" (or a plain line of text)")
        else:
            out.append(text)
    return out


def _images(spec: str, sink: _Sink) -> list[Any]:
    """ImageInputs from --image: a path, a URL, or stdin (bytes or JSONL records)."""
    from vdr_cli.tools.search.base import ImageInput

    if spec != "-":
        return [ImageInput.from_spec(spec)]
    head = sys.stdin.buffer.peek(64)[:64].lstrip()
    if not head.startswith(b"{"):
        return [ImageInput.from_bytes(sys.stdin.buffer.read(), "<stdin>")]
    import io

    from vdr_cli.errors import VdrError
    from vdr_cli.trace.jsonl import LineError, iter_lines

    out: list[Any] = []
    text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    for item in iter_lines(text, "<stdin>"):
        if isinstance(item, LineError):
            sink.fail(str(item), f"<stdin>:{item.lineno}")
            continue
        if item.get("type") == "error":
            sink.passthrough(item)  # an upstream failure stays visible downstream
            continue
        target = item.get("path") or item.get("image_url")
        if not isinstance(target, str) or not target:
            sink.fail(f"<stdin>:{item.get('type', 'record')}: no \"path\" or \"image_url\" to search by", "<stdin>")
            continue
        try:
            # A crop is named by its image and box (hits say which crop they answer), not its file.
            img = ImageInput.from_crop(item) if item.get("path") else ImageInput.from_spec(target)
        except VdrError as exc:
            sink.fail(exc.message, target)
            continue
        if isinstance(item.get("description"), str):
            img.description = item["description"]
        out.append(img)
    return out


async def _text(sink: _Sink, provider: str, queries: list[str], n: int, images: bool, use_cache: bool) -> None:
    from vdr_cli.tools.search.run import Searcher, in_order

    async with Searcher(use_cache=use_cache) as searcher:
        async for result in in_order([searcher.text(q, provider=provider, n=n, images=images) for q in queries]):
            sink.result(result)


async def _reverse(sink: _Sink, provider: str, images: list[Any], n: int, describe: str | None, use_cache: bool) -> None:
    from vdr_cli.tools.search.run import Searcher, in_order

    if not images:
        return
    async with Searcher(use_cache=use_cache) as searcher:
        jobs = [searcher.image(img, provider=provider, n=n, description=describe)
                for img in images]
        async for result in in_order(jobs):
            sink.result(result)


class _Sink(RecordSink):
    """Hit events (JSONL) or numbered lines for people."""

    command = "search"

    def __init__(self, as_json: bool) -> None:
        super().__init__(as_json)
        self.shown = 0

    def result(self, result: Any) -> None:
        if not result.ok:
            self.fail(result.error.message, result.where, result.error.hint, result.error_event())
            return
        self.ok += 1
        for name, message in result.failed:
            say("search", "warning", message if message.startswith(name) else f"{name}: {message}")
        if result.failed and result.hits:
            say("search", "info", f"{result.where}: answered by {result.provider}")
        if result.not_reverse and result.hits:
            from vdr_cli.tools.search.describe import NOT_REVERSE

            say("search", "info", f"{result.where}: {NOT_REVERSE}")
        if not result.hits:
            say("search", "warning", f"no results for {result.where!r} ({result.provider})")
        if self.writer:
            self.writer.write_all(h.to_event() for h in result.hits)
            return
        from vdr_cli.render.output import print_line

        if self.shown:
            print_line("")
        self.shown += 1
        print_line(f"{result.where}  ({result.provider}{', cached' if result.cached else ''})")
        for hit in result.hits:
            print_line(f"{hit.rank:>3}. {hit.title or '(no title)'}")
            print_line(f"     {hit.url}")
            if hit.image_url:
                print_line(f"     image: {hit.image_url}")
            if hit.snippet:
                print_line(f"     {hit.snippet[:300]}")

    def passthrough(self, record: dict) -> None:
        if self.writer:
            self.writer.write(record)

