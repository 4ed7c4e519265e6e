"""crop_and_search, step by step as the reference eval runs it.

Osilly/Vision-DeepResearch rllm/eval/tools.py @ 67af60f, CropAndSearchTool: for each box
(`call`: one box or a list of boxes), cut it (`_crop_image_by_bbox`, here
`tools.crop.reference_crop`), reverse-search the crop (`_image_search`: the top 3 hits),
then read every hit (`_handle_single_url`): the page's text, and a summary by an extractor
model shown the crop, the hit's main image and thumbnail, the page text and up to 10 of
the page's images (`_summarize_with_vllm`); when that answer is no JSON, a text-only retry
(`_summarize_with_vllm_only_text`). The texts are `tool_text`'s.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdr_cli.errors import VdrError

# (system, user parts) -> the model's text; parts as in `summarise.side_chat`.
HitSummariser = Callable[[str, Sequence[dict[str, Any]]], "str | Awaitable[str]"]


@dataclass
class CropSearchSettings:
    crop_dir: Path
    image_provider: str | None = None
    results: int | None = None
    use_cache: bool = True
    allow_private: bool = False
    hits_to_read: int = 3  # CropAndSearchTool._image_search: `search_results[:3]`
    max_images: int = 10  # _summarize_with_vllm(max_images=10)


def bbox_list(value: Any) -> list[Any] | None:
    """The boxes of a call as `CropAndSearchTool.call` reads them: a list whose first item is
    a list is a list of boxes, another non-empty list is one box; anything else is None
    ("[CropAndSearch] Invalid bbox format")."""
    if isinstance(value, list) and value:
        return value if isinstance(value[0], list) else [value]
    return None


def _numbers(box: Any) -> list[float] | None:
    if isinstance(box, list) and len(box) >= 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in box[:4]):
        return list(box[:4])  # the reference reads bbox[0..3] and ignores the rest
    return None


async def search_region(source: Any, image_id: str, box: Any, goal: str, settings: CropSearchSettings,
                        summarise: HitSummariser | None) -> dict[str, Any]:
    """One box: a region for `tool_text.format_region` with its trace events."""
    from vdr_cli.tools.crop import reference_crop
    from vdr_cli.tools.search.run import reverse_search

    region: dict[str, Any] = {"bbox": box, "hits": [], "pages": [], "events": [], "error": None}
    numbers = _numbers(box)
    try:
        if numbers is None:
            raise VdrError(f"box {box!r} is not four numbers")
        crop = await asyncio.to_thread(reference_crop, source, numbers, settings.crop_dir)
    except VdrError as exc:
        region["error"] = f"crop failed: {exc.message}"
        region["events"].append({"type": "error", "message": exc.message, "where": f"{image_id} {box}"})
        return region
    crop["image_id"] = image_id
    region["crop"] = crop
    region["events"].append(crop)
    # The crop event itself: its hits are named by image id and box, not by the crop's cache path.
    found = await reverse_search(crop, provider=settings.image_provider, description=goal or None,
                                 n=settings.results, cache=None if settings.use_cache else False)
    hits = [h for h in found if not isinstance(h, dict)]
    region["events"].extend(h.to_event() for h in hits)
    region["events"].extend(e for e in found if isinstance(e, dict))
    if not hits and found:
        region["error"] = found[0].get("message")
    hits = [h for h in hits if h.url][: settings.hits_to_read]
    region["hits"] = [h.to_event() for h in hits]
    if hits:
        pages = await _read_pages([h.url for h in hits], settings)
        region["events"].extend(pages)
        region["pages"] = await asyncio.gather(*(
            _hit_page(hit, page, Path(crop["path"]), goal, settings, summarise) for hit, page in zip(hits, pages)))
    return region


async def _read_pages(urls: list[str], settings: CropSearchSettings) -> list[dict[str, Any]]:
    from vdr_cli.tools.browse import browse

    cache = None
    if settings.use_cache:
        from vdr_cli.cache import Cache

        cache = Cache()
    # No goal: the page is summarised here, with its images, not by browse's text summary.
    return await browse(urls, goal=None, mode="agent", cache=cache, allow_private=settings.allow_private)


async def _hit_page(hit: Any, page: dict[str, Any], crop: Path, goal: str, settings: CropSearchSettings,
                    summarise: HitSummariser | None) -> dict[str, Any]:
    """What `tool_text.format_hit_page` needs for one hit: content, description, extract."""
    from vdr_cli.agent import tool_text

    out: dict[str, Any] = {"url": hit.url, "final_url": page.get("final_url")}
    if page.get("type") != "page" or page.get("challenge"):
        out["error"] = page.get("message") or page.get("error") or "unreadable"
        return out
    content = tool_text.crop_page_content(str(page.get("text") or ""), bool(page.get("truncated")))
    out.update(content=content, description=(page.get("meta") or {}).get("description") or "", extract=None)
    if summarise is not None:
        out["extract"] = await summarise_hit(summarise, hit, page, content, crop, goal, settings)
    return out


async def summarise_hit(summarise: HitSummariser, hit: Any, page: dict[str, Any], content: str, crop: Path,
                        goal: str, settings: CropSearchSettings) -> dict[str, Any] | None:
    """The extractor's parsed answer for one hit, or None (the reference's fallbacks)."""
    from vdr_cli.agent import tool_text
    from vdr_cli.models.base import ImageInput
    from vdr_cli.tools.fetch_images import fetch_images

    page_images = [(str(img.get("alt") or ""), str(img.get("src") or "")) for img in page.get("images") or []]
    page_images = [(alt, src) for alt, src in page_images if src.lower().startswith(("http://", "https://"))]
    page_images = page_images[: settings.max_images]  # `image_matches[:max_images]`, before fetching
    previews = [hit.image_url or "", hit.thumbnail_url or ""]
    got = await fetch_images(previews + [src for _, src in page_images], allow_private=settings.allow_private)
    image = lambda i, data: ImageInput(f"hit_image_{i}", data=data) if data else None  # noqa: E731
    parts = tool_text.crop_extractor_content(
        goal, content, title=hit.title, source=hit.source or "",
        query_image=ImageInput("crop", path=crop), main_image=image(0, got[0]), thumbnail=image(1, got[1]),
        page_images=[(alt, image(i + 2, data)) for i, ((alt, _), data) in enumerate(zip(page_images, got[2:])) if data])
    try:
        parsed = tool_text.parse_crop_extract(await _call(summarise, tool_text.CROP_EXTRACTOR_PROMPT, parts))
    except VdrError:
        parsed = None
    if parsed is not None:
        return parsed
    try:
        return tool_text.parse_crop_text_only(await _call(summarise, tool_text.CROP_TEXT_ONLY_PROMPT,
                                                          tool_text.crop_text_only_content(goal, content)))
    except VdrError:
        return None


async def _call(summarise: HitSummariser, system: str, parts: Sequence[dict[str, Any]]) -> str:
    result = await asyncio.to_thread(summarise, system, parts)
    if inspect.isawaitable(result):
        result = await result
    return str(result)
