"""Cropping image regions: box units, multi-scale context, content-addressed files.

Boxes are interpreted in the image as displayed (after EXIF orientation).
A crop's file name is a hash of the source bytes and every option that
changes the output, so repeating a crop costs one `stat`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdr_cli.errors import InputError, UsageError
from vdr_cli.tools.images import Source, decode, normalize_mode
from vdr_cli.trace.events import Event, event

UNITS = ("px", "1000", "frac")
FORMATS = {"png": ("PNG", "png"), "jpeg": ("JPEG", "jpg"), "jpg": ("JPEG", "jpg"), "webp": ("WEBP", "webp")}

Box = tuple[float, float, float, float]
MAX_OUTPUT_SIDE = 16_384  # the longest side a crop is written at (WebP's own limit is 16,383)


class BoxError(InputError):
    """A box that selects nothing (empty, inverted or entirely outside)."""


@dataclass
class CropOptions:
    """Everything that shapes the output files."""

    out_dir: Path
    scales: Sequence[float] = (1.0,)
    units: str = "px"
    min_side: int = 0  # upscale (LANCZOS) crops whose short side is smaller
    max_side: int = 0  # downscale crops whose long side is larger (0: never)
    fmt: str = "auto"
    quality: int = 90

    def __post_init__(self) -> None:
        if self.units not in UNITS:
            raise UsageError(f"unknown units {self.units!r}", hint="use px, 1000 or frac")
        if self.fmt not in (*FORMATS, "auto"):
            raise UsageError(f"unknown format {self.fmt!r}", hint="use auto, png, jpeg or webp")
        if not self.scales or any(not (s >= 1.0 and math.isfinite(s)) for s in self.scales):
            raise UsageError("scales must be numbers >= 1 (1 is the box itself)")
        if not 1 <= self.quality <= 100:
            raise UsageError("quality must be between 1 and 100")
        if self.min_side < 0 or self.max_side < 0:
            raise UsageError("--min-side and --max-side must be >= 0")
        if max(self.min_side, self.max_side) > MAX_OUTPUT_SIDE:
            raise UsageError(f"--min-side and --max-side must be at most {MAX_OUTPUT_SIDE} pixels")


@dataclass
class Region:
    """One crop to make: a box in source pixels at one scale."""

    box: tuple[int, int, int, int]
    scale: float
    clamped: bool
    requested: Box
    out_size: tuple[int, int] = (0, 0)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_box(text: str) -> Box:
    """`x1,y1,x2,y2` (commas or spaces, brackets allowed) → four floats."""
    parts = [p for p in re.split(r"[\s,]+", text.strip().strip("[]()")) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"box {text!r}: not four numbers", hint="write --box x1,y1,x2,y2") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"box {text!r}: needs exactly four finite numbers x1,y1,x2,y2")
    return values  # type: ignore[return-value]


def box_from_record(value: Any, where: str) -> Box:
    """A box from a JSON record: a list of four numbers (or a string)."""
    if isinstance(value, str):
        try:
            return parse_box(value)
        except UsageError as exc:
            raise InputError(f"{where}: {exc.message}") from None
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    raise InputError(f"{where}: box must be four numbers [x1, y1, x2, y2], got {value!r}")


def to_pixels(box: Box, units: str, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    if units == "1000":
        return (x1 * width / 1000, y1 * height / 1000, x2 * width / 1000, y2 * height / 1000)
    if units == "frac":
        return (x1 * width, y1 * height, x2 * width, y2 * height)
    return box


def plan_regions(box: Box | None, units: str, scales: Sequence[float], width: int, height: int) -> list[Region]:
    """Regions to cut for one box at each scale; raises `BoxError` for empty/inverted boxes."""
    requested = box if box is not None else (0.0, 0.0, float(width), float(height))
    px = to_pixels(requested, units if box is not None else "px", width, height)
    x1, y1, x2, y2 = px
    if x2 <= x1 or y2 <= y1:
        kind = "inverted" if (x2 < x1 or y2 < y1) else "empty"
        raise BoxError(f"box {_fmt_box(requested)} is {kind} (x2 must exceed x1 and y2 exceed y1)")
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)
    if cx2 <= cx1 or cy2 <= cy1:
        raise BoxError(f"box {_fmt_box(requested)} lies outside the {width}×{height} image")
    clamped = (cx1, cy1, cx2, cy2) != px
    regions = []
    for scale in scales:
        # Grow about the centre to add context, then clamp to the image.
        cx, cy = (cx1 + cx2) / 2, (cy1 + cy2) / 2
        hw, hh = (cx2 - cx1) * scale / 2, (cy2 - cy1) * scale / 2
        r = (
            max(0, math.floor(cx - hw)),
            max(0, math.floor(cy - hh)),
            min(width, math.ceil(cx + hw)),
            min(height, math.ceil(cy + hh)),
        )
        regions.append(Region(box=r, scale=scale, clamped=clamped, requested=requested))
    return regions


def _fmt_box(box: Box) -> str:
    return "[" + ",".join(f"{v:g}" for v in box) + "]"


def output_size(region: Region, opts: CropOptions) -> tuple[int, int]:
    w, h = region.box[2] - region.box[0], region.box[3] - region.box[1]
    factor = 1.0
    if opts.min_side and min(w, h) < opts.min_side:
        factor = opts.min_side / min(w, h)
    if opts.max_side and max(w, h) * factor > opts.max_side:
        factor = opts.max_side / max(w, h)
    if max(w, h) * factor > MAX_OUTPUT_SIDE:  # a thin box enlarged for its short side: memory, not detail
        factor = MAX_OUTPUT_SIDE / max(w, h)
    return max(1, round(w * factor)), max(1, round(h * factor))


def output_format(source: Source, opts: CropOptions) -> tuple[str, str]:
    if opts.fmt == "auto":
        return FORMATS["jpeg"] if source.format == "JPEG" else FORMATS["png"]
    return FORMATS[opts.fmt]


def crop_path(source: Source, region: Region, opts: CropOptions) -> Path:
    fmt, ext = output_format(source, opts)
    key = f"{source.sha256}|{region.box}|{region.out_size}|{fmt}|{opts.quality if fmt != 'PNG' else ''}|v1"
    return opts.out_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.{ext}"


def make_crops(source: Source, boxes: Sequence[Box | None], opts: CropOptions) -> Iterator[Event | BoxError]:
    """Cut every box at every scale; yield a `crop` event per file, or a `BoxError`.

    The source is decoded at most once, and only if some output file is not
    already there.
    """
    plan: list[list[Region] | BoxError] = []
    for box in boxes:
        try:
            regions = plan_regions(box, opts.units, opts.scales, source.width, source.height)
        except BoxError as exc:
            plan.append(exc)
            continue
        for region in regions:
            region.out_size = output_size(region, opts)
            region.path = crop_path(source, region, opts)
        plan.append(regions)
    todo = [r for item in plan if isinstance(item, list) for r in item if r.path is not None and not r.path.exists()]
    if todo:
        _render(source, todo, opts)
    for item in plan:  # in the order the boxes were given
        if isinstance(item, BoxError):
            yield item
        else:
            yield from (crop_event(source, region) for region in item)


def _render(source: Source, regions: list[Region], opts: CropOptions) -> None:
    # Draft mode decodes a JPEG at 1/2, 1/4 or 1/8 size: allowed when every
    # crop is downscaled at least that much.
    reduce = min((r.out_size[0] / max(1, r.box[2] - r.box[0]) for r in regions), default=1.0)
    img, factor = decode(source, min(1.0, reduce))
    fmt, _ = output_format(source, opts)
    keep_alpha = fmt != "JPEG"
    img = normalize_mode(img, keep_alpha)
    from PIL import Image

    _make_dir(opts.out_dir)

    def write(region: Region) -> None:
        x1, y1, x2, y2 = region.box
        piece = img.crop(tuple(round(v * factor) for v in (x1, y1, x2, y2)))
        if piece.size != region.out_size:
            piece = piece.resize(region.out_size, Image.Resampling.LANCZOS)
        assert region.path is not None
        kwargs: dict[str, Any] = {"quality": opts.quality} if fmt in ("JPEG", "WEBP") else {"compress_level": 1}
        _save(piece, region.path, fmt, kwargs)

    if len(regions) == 1:
        write(regions[0])
        return
    # Pillow releases the GIL while resizing and encoding: crops run in parallel.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, len(regions))) as pool:
        for future in [pool.submit(write, r) for r in regions]:
            future.result()


def _make_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None


def _save(piece: Any, path: Path, fmt: str, kwargs: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        piece.save(tmp, fmt, **kwargs)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write crop ({exc.strerror or exc})") from None


# --- crop_and_search's crop, exactly as the reference eval cuts it ------------------------
# Osilly/Vision-DeepResearch rllm/eval/tools.py @ 67af60f, CropAndSearchTool._crop_image_by_bbox:
# `x1 = max(0, min(int(bbox[0] * width / 1000), width - 1))` (likewise y1, x2, y2), refused when
# `x2 <= x1 or y2 <= y1`, then `img.convert('RGB')`, `crop`, `resize((w * 2, h * 2), LANCZOS)`,
# `save(path, "JPEG", quality=95)`. One difference, on purpose: the box refers to the image as
# displayed (EXIF orientation applied), which is also what the model is shown.
REFERENCE_ENLARGE = 2
REFERENCE_QUALITY = 95


def reference_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A 0-1000 box in pixels as the reference computes it; `BoxError` if it selects nothing."""
    x1, y1, x2, y2 = (max(0, min(int(v * side / 1000), side - 1))
                      for v, side in zip(box[:4], (width, height, width, height)))
    if x2 <= x1 or y2 <= y1:
        raise BoxError(f"box {_fmt_box(tuple(box[:4]))} selects nothing in the {width}×{height} image")  # type: ignore[arg-type]
    return x1, y1, x2, y2


def reference_crop(source: Source, box: Sequence[float], out_dir: Path) -> Event:
    """Cut `box` (0-1000 units) as crop_and_search does; a `crop` event (cached by content)."""
    px = reference_box(box, source.width, source.height)
    w, h = px[2] - px[0], px[3] - px[1]
    region = Region(box=px, scale=1.0, clamped=px != tuple(int(v * s / 1000) for v, s in
                                                        zip(box[:4], (source.width, source.height) * 2)),
                    requested=tuple(float(v) for v in box[:4]),  # type: ignore[arg-type]
                    out_size=(w * REFERENCE_ENLARGE, h * REFERENCE_ENLARGE))
    key = f"{source.sha256}|{px}|reference-x{REFERENCE_ENLARGE}-q{REFERENCE_QUALITY}|v1"
    region.path = out_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.jpg"
    if not region.path.exists():
        from PIL import Image

        img, _ = decode(source)
        img = img if img.mode == "RGB" else img.convert("RGB")
        piece = img.crop(px).resize(region.out_size, Image.Resampling.LANCZOS)
        _make_dir(out_dir)
        _save(piece, region.path, "JPEG", {"quality": REFERENCE_QUALITY})
    return crop_event(source, region)


def crop_event(source: Source, region: Region) -> Event:
    x1, y1, x2, y2 = region.box
    w, h = source.width, source.height
    return event(
        "crop",
        source=source.name,
        sha256=source.sha256,
        box=[x1, y1, x2, y2],
        box_1000=[round(x1 * 1000 / w), round(y1 * 1000 / h), round(x2 * 1000 / w), round(y2 * 1000 / h)],
        requested=list(region.requested),
        scale=region.scale,
        clamped=region.clamped,
        path=str(region.path),
        width=region.out_size[0],
        height=region.out_size[1],
        image_width=w,
        image_height=h,
    )
