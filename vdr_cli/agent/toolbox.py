"""The model's tools, wired to vdr's search, browse and crop libraries.

Each call returns a `ToolOutcome`: the text the model is shown (in the
reference's format) and the typed records (`hit`, `page`, `crop`, `error`)
for the trace.  Failures (dead host, no key, rate limit) become text the
model can react to; the session goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vdr_cli.errors import VdrError

if TYPE_CHECKING:
    from vdr_cli.agent.crop_search import HitSummariser

Summariser = Callable[[str, str], "str | Awaitable[str]"]


@dataclass(frozen=True)
class SessionImage:
    """An image of the session: the model names it by `id` (image_1, …)."""

    id: str
    path: Path
    sha256: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "sha256": self.sha256, "width": self.width, "height": self.height}


@dataclass
class ToolOutcome:
    content: str
    ok: bool = True
    data: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cached: bool = False
    images: list[Path] = field(default_factory=list)  # crops shown to the model (zoom)


class Toolbox(Protocol):
    async def call(self, tool: str, args: dict[str, Any]) -> ToolOutcome: ...


@dataclass
class ToolSettings:
    search_provider: str | None = None  # None: from config
    image_provider: str | None = None
    results: int | None = None
    use_cache: bool = True
    allow_private: bool = False
    max_chars: int | None = None
    crop_dir: Path | None = None
    hits_to_read: int = 3  # reverse-search hits whose pages are read (the reference keeps 3)
    max_urls: int = 5  # URLs per visit call, as the reference
    max_boxes: int = 0  # boxes per crop_and_search call (0: all, as the reference)
    max_queries: int = 10  # queries per search call: each is a provider request (billed, with a key)
    deadline: float | None = None  # seconds one search call may take, every try included; None: net.timeout
    python_limits: Any = None  # tools.sandbox.Limits; None: its defaults (the reference's 50 s)

    def __post_init__(self) -> None:
        from vdr_cli import config

        if self.max_chars is None:  # pages are cut where `vdr browse` cuts them (the reference: 120,000)
            self.max_chars = int(config.current().get("browse.max_chars"))
        if self.deadline is None:
            self.deadline = float(config.current().get("net.timeout"))
        if self.python_limits is None:
            from vdr_cli.tools.sandbox import Limits

            self.python_limits = Limits()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and str(v).strip()]
    return []


class WebToolbox:
    """search, visit, crop_and_search (and opt-in zoom) on the live web."""

    def __init__(self, images: list[SessionImage], settings: ToolSettings, summarise: Summariser | None = None,
                 zoom: bool = False, python: bool = False,
                 summarise_hit: "HitSummariser | None" = None) -> None:
        self.images = {img.id: img for img in images}
        self.settings = settings
        self.summarise = summarise
        self.summarise_hit = summarise_hit  # crop_and_search's multimodal page summaries
        self.zoom_enabled = zoom
        self.python_enabled = python  # PythonInterpreter in the prompt (a sandbox is available)
        self._sources: dict[str, Any] = {}  # image id -> opened Source: read and hashed once a session

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[ToolOutcome]]]:
        handlers = {"search": self.search, "visit": self.visit, "crop_and_search": self.crop_and_search}
        if self.zoom_enabled:
            handlers["zoom"] = self.zoom
        if self.python_enabled:
            handlers["PythonInterpreter"] = self.python
        return handlers

    def names(self) -> list[str]:
        """The tools this toolbox runs, in the order of the reference's tool registry."""
        from vdr_cli.agent.prompt import registry_order

        return registry_order(self._handlers())

    async def call(self, tool: str, args: dict[str, Any]) -> ToolOutcome:
        from vdr_cli.agent.prompt import tool_error, tool_not_found

        # PythonInterpreter answers "not available" itself when off, as the reference does.
        handler = self.python if tool == "PythonInterpreter" else self._handlers().get(tool)
        if handler is None:
            return ToolOutcome(tool_not_found(tool, self.names()), ok=False, error="unknown tool")
        try:
            return await handler(args)
        except VdrError as exc:
            return ToolOutcome(tool_error(tool, exc.message), ok=False, error=exc.message)

    # --- search ----------------------------------------------------------------

    async def search(self, args: dict[str, Any]) -> ToolOutcome:
        from vdr_cli.agent.tool_text import format_search, search_error
        from vdr_cli.tools.search.run import run_queries

        queries = _strings(args.get("query"))
        if not queries:
            return ToolOutcome("[Search] Invalid request format: Input must be a JSON object containing 'query' field",
                               ok=False, error="no query")
        dropped = max(0, len(queries) - self.settings.max_queries)
        queries = queries[: self.settings.max_queries]
        try:
            # One deadline for the call: a stalled provider costs it once, not once per try.
            results = await asyncio.wait_for(
                run_queries(queries, provider=self.settings.search_provider, n=self.settings.results,
                            cache=None if self.settings.use_cache else False), self.settings.deadline)
        except asyncio.TimeoutError:
            message = f"search timed out after {self.settings.deadline:g} s"
            return ToolOutcome(f"[Search] {message}; try again or use fewer queries", ok=False, error=message)
        data = [ev for r in results for ev in r.events()]
        shown = [(r.where, [h.to_event() for h in r.hits] if r.ok else search_error(r.where, r.error)) for r in results]
        errors = [str(r.error) for r in results if not r.ok]
        content = format_search(shown)
        if dropped:
            content += f"\n\n[Search] Only the first {self.settings.max_queries} queries were run; {dropped} more were dropped."
        return ToolOutcome(content, ok=any(r.ok for r in results), data=data, error="; ".join(errors) or None,
                           cached=all(getattr(r, "cached", False) for r in results))

    # --- visit -----------------------------------------------------------------

    async def visit(self, args: dict[str, Any]) -> ToolOutcome:
        from vdr_cli.agent.tool_text import format_visit

        urls = _strings(args.get("url"))[: self.settings.max_urls]
        goal = str(args.get("goal") or "").strip()
        if not urls:
            return ToolOutcome("[Visit] Invalid request format: Input must be a JSON object containing 'url' field",
                               ok=False, error="no url")
        pages = await self._browse(urls, goal)
        ok = any(p.get("type") == "page" and not p.get("challenge") for p in pages)
        return ToolOutcome(format_visit([as_visit_page(p) for p in pages], goal), ok=ok, data=pages,
                           error=None if ok else "no page could be read")

    async def _browse(self, urls: list[str], goal: str) -> list[dict[str, Any]]:
        from vdr_cli.tools.browse import browse

        cache = None
        if self.settings.use_cache:
            from vdr_cli.cache import Cache

            cache = Cache()
        # Model-chosen URLs: agent mode (no private targets unless allowed).
        return await browse(urls, goal=goal or None, mode="agent", summarise=self.summarise,
                            max_chars=self.settings.max_chars, cache=cache, allow_private=self.settings.allow_private)

    # --- crop_and_search ---------------------------------------------------------

    def _image(self, image_id: Any) -> SessionImage:
        image = self.images.get(str(image_id)) if image_id is not None else None
        if image is None and len(self.images) == 1:
            # The reference always crops the session's image whatever id the
            # model wrote; a model-supplied path is never opened.
            image = next(iter(self.images.values()))
        if image is None:
            raise VdrError(f"unknown image_id {image_id!r}; the images are {', '.join(self.images) or 'none'}")
        return image

    def _source(self, image: SessionImage) -> Any:
        from vdr_cli.tools.images import open_source, read_bytes

        source = self._sources.get(image.id)
        if source is None:
            # Checked against the pixel limit when the session loaded it.
            source = self._sources[image.id] = open_source(read_bytes(str(image.path)), str(image.path), 10**9)
        return source

    def _crop(self, image: SessionImage, box: list[float], scale: float = 1.0) -> dict[str, Any]:
        from vdr_cli.paths import cache_dir
        from vdr_cli.tools.crop import BoxError, CropOptions, make_crops
        x1, y1, x2, y2 = box
        short = min(abs(x2 - x1) * image.width, abs(y2 - y1) * image.height) / 1000
        # Small regions are enlarged (LANCZOS) before reverse search, as the reference does (2x).
        opts = CropOptions(out_dir=self.settings.crop_dir or cache_dir() / "crops", units="1000", scales=[scale],
                           min_side=int(min(1024, max(64, 2 * short))), max_side=1024)
        source = self._source(image)
        [item] = list(make_crops(source, [tuple(box)], opts))
        if isinstance(item, BoxError):
            raise item
        item["image_id"] = image.id
        return item

    async def crop_and_search(self, args: dict[str, Any]) -> ToolOutcome:
        from vdr_cli.agent.crop_search import CropSearchSettings, bbox_list, search_region
        from vdr_cli.agent.tool_text import format_crop_and_search
        from vdr_cli.paths import cache_dir

        image = self._image(args.get("image_id"))
        boxes = bbox_list(args.get("bbox"))
        goal = str(args.get("goal") or "").strip()
        if boxes is None:
            return ToolOutcome(format_crop_and_search([]), ok=False, error="no bbox")
        if self.settings.max_boxes:
            boxes = boxes[: self.settings.max_boxes]
        source = await asyncio.to_thread(self._source, image)
        cs = CropSearchSettings(crop_dir=self.settings.crop_dir or cache_dir() / "crops",
                                image_provider=self.settings.image_provider, results=self.settings.results,
                                use_cache=self.settings.use_cache, allow_private=self.settings.allow_private,
                                hits_to_read=self.settings.hits_to_read)
        regions = await asyncio.gather(*(search_region(source, image.id, box, goal, cs, self.summarise_hit)
                                         for box in boxes))
        data = [ev for region in regions for ev in region["events"]]
        ok = any(region["hits"] for region in regions)
        return ToolOutcome(format_crop_and_search(regions), ok=ok, data=data,
                           error=None if ok else "no visual matches found")

    # --- PythonInterpreter ----------------------------------------------------------

    async def python(self, args: dict[str, Any]) -> ToolOutcome:
        from vdr_cli.agent import prompt
        from vdr_cli.agent.python_text import EXECUTION_ERROR, format_python_run
        from vdr_cli.tools.sandbox import SandboxError, availability, run_python

        code = args.get("code")
        if not isinstance(code, str):  # the call had no <code>...</code>
            return ToolOutcome(prompt.PYTHON_FORMAT_ERROR, ok=False, error="no <code>...</code> in the call")
        if not self.python_enabled:
            return ToolOutcome(prompt.PYTHON_NOT_AVAILABLE, ok=False, error="PythonInterpreter is off")
        limits = self.settings.python_limits
        try:
            run = await asyncio.to_thread(run_python, code, limits)
        except SandboxError as exc:
            return ToolOutcome(EXECUTION_ERROR.format(error=exc), ok=False, error=str(exc))
        record = {"type": "python", "exit": run.exit_code, "timed_out": run.timed_out, "truncated": run.truncated,
                  "signal": run.signal, "ms": round(run.ms, 1), "sandbox": availability().mechanism}
        failed = run.timed_out or bool(run.stderr) or run.signal is not None
        return ToolOutcome(format_python_run(run, limits.wall_s, limits.output_bytes), ok=not failed, data=[record],
                           error="the code failed or was stopped" if failed else None)

    # --- zoom (opt-in) -----------------------------------------------------------

    async def zoom(self, args: dict[str, Any]) -> ToolOutcome:
        image = self._image(args.get("image_id"))
        boxes = _boxes(args.get("bbox"))[:4]
        if not boxes:
            return ToolOutcome("[zoom] Invalid request format: 'bbox' must be a list of [x1, y1, x2, y2]", ok=False, error="no bbox")
        crops = [await asyncio.to_thread(self._crop, image, box) for box in boxes]
        from vdr_cli.agent.tool_text import format_zoom

        return ToolOutcome(format_zoom(image.id, crops), data=crops, images=[Path(c["path"]) for c in crops])


def as_visit_page(ev: dict[str, Any]) -> dict[str, Any]:
    """A browse event as `tool_text.format_visit` reads it: summary and evidence, or an error.

    A challenge page is reported as unreadable, never summarised as content.
    """
    if ev.get("type") == "error":
        return {"url": ev.get("where") or ev.get("url") or "", "error": ev.get("message") or "unreadable"}
    if ev.get("challenge"):
        return {"url": ev.get("url", ""), "error": f"the site answered with an anti-bot page ({ev['challenge']}), not content"}
    summary = ev.get("summary")
    if isinstance(summary, dict):
        summary = summary.get("summary")
    evidence = ev.get("evidence") or summary  # extractive summaries are evidence themselves
    return {"url": ev.get("url", ""), "evidence": evidence or "", "summary": summary or "", "text": ev.get("text") or ""}


def _boxes(value: Any) -> list[list[float]]:
    """bbox as the model writes it: one box or a list of boxes, numbers 0-1000."""
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        value = [value]
    boxes = []
    for box in value if isinstance(value, list) else []:
        if isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            x1, y1, x2, y2 = (float(v) for v in box)
            # Corners given in the wrong order still name a region; only an empty one is refused.
            boxes.append([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)])
    return boxes
