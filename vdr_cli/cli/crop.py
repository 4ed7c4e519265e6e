"""`vdr crop`: cut regions of an image into files, one `crop` event each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.errors import InputError, UsageError
from vdr_cli.render.output import RecordSink, say

HELP = """\
Cut regions of an image into files, one "crop" event per file.

IMAGE is a path, or - for stdin. Stdin may hold image bytes, or JSON Lines
records with "path" and optional "box" (one box or a list), "units" and
"scale" (crop events from another command work too).

Boxes are x1,y1,x2,y2 in pixels of the image as displayed (EXIF orientation
applied), or in --units 1000 (Qwen-VL's 0-1000 grid, what the model emits) or
frac (0-1). Boxes reaching outside the image are clamped, with a warning;
empty or inverted boxes are an error for that box (exit 3 when others
succeeded). Output files are named by a hash of the source and options, so
repeating a crop is free.
"""


def register(app: typer.Typer) -> None:
    app.command("crop", help=HELP, epilog=epilog("crop"), short_help="Cut regions of an image into files.")(crop_command)


def _scales(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise UsageError(f"--scale {text!r}: not a list of numbers", hint="e.g. --scale 1,1.5,2") from None
    if not values:
        raise UsageError("--scale needs at least one number")
    return values


@reports("crop")
def crop_command(
    image: Optional[str] = typer.Argument(None, help="Image path, or - for stdin (image bytes or JSONL records).", show_default=False),
    box: Optional[List[str]] = typer.Option(None, "--box", "-b", help="Region x1,y1,x2,y2 (repeatable). Default: the whole image.", show_default=False),
    units: str = typer.Option("px", "--units", "-u", help="Box units: px, 1000 (Qwen-VL grid) or frac (0-1)."),
    scale: str = typer.Option("1", "--scale", "-s", help="Comma-separated context scales: 1 is the box, 2 doubles it about its centre."),
    min_side: int = typer.Option(0, "--min-side", help="Enlarge (LANCZOS) crops whose short side is below N pixels."),
    max_side: int = typer.Option(0, "--max-side", help="Shrink crops whose long side is above N pixels (0: never)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Output format: auto, png, jpeg or webp [config crop.format, default auto]."),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="JPEG/WebP quality 1-100 [config crop.quality, default 90]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the crop files. Default: the cache folder's crops/.", show_default=False),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse images larger than N pixels [config crop.max_pixels]."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write JSON Lines even on a terminal."),
) -> int:
    from vdr_cli import config as config_mod
    from vdr_cli.render.output import json_mode
    from vdr_cli.paths import cache_dir
    from vdr_cli.tools.crop import CropOptions, parse_box

    cfg = config_mod.current()
    opts = CropOptions(
        out_dir=out if out is not None else cache_dir() / "crops",
        scales=_scales(scale),
        units=units,
        min_side=min_side,
        max_side=max_side,
        fmt=cfg.get("crop.format", fmt),
        quality=cfg.get("crop.quality", quality),
    )
    limit = cfg.get("crop.max_pixels", max_pixels)
    boxes = [parse_box(b) for b in box] if box else [None]
    sink = _Sink(json_mode(json_out))
    if image is None:
        if sys.stdin.isatty():
            raise UsageError("no image given", hint="vdr crop IMAGE --box x1,y1,x2,y2 (or - to read stdin)")
        image = "-"
    if image == "-":
        head = sys.stdin.buffer.peek(64)[:64].lstrip()
        if head.startswith(b"{"):
            _crop_records(sink, opts, boxes, limit)
        else:
            _crop_one(sink, "<stdin>", sys.stdin.buffer.read(), boxes, opts, limit)
    else:
        from vdr_cli.tools import prefetch
        from vdr_cli.tools.images import read_bytes

        def decoded() -> Any:
            # Started by the entry point before typer loaded; asked for only when pixels are needed.
            ready = prefetch.take(image)
            return ready.image if ready is not None else None

        _crop_one(sink, image, read_bytes(image), boxes, opts, limit, preloaded=decoded)
    return sink.finish()


class _Sink(RecordSink):
    """Crop events (JSONL) or lines for people."""

    command = "crop"

    def crop(self, ev: dict[str, Any]) -> None:
        self.ok += 1
        if self.writer:
            self.writer.write(ev)
        else:
            from vdr_cli.render.output import print_line

            b = ev["box"]
            print_line(f"{ev['path']}  {ev['width']}×{ev['height']}  box {b[0]},{b[1]},{b[2]},{b[3]}  scale {ev['scale']:g}")

def _crop_one(sink: _Sink, name: str, data: bytes, boxes: list, opts: Any, limit: int, preloaded: Any = None) -> None:
    from vdr_cli.tools.crop import BoxError, make_crops
    from vdr_cli.tools.images import open_source

    source = open_source(data, name, limit)  # the size limit is checked before any decoded pixels are used
    source.preloaded = preloaded
    first_scale = min(opts.scales)
    for item in make_crops(source, boxes, opts):
        if isinstance(item, BoxError):
            sink.fail(f"{name}: {item.message}", name)
            continue
        # Warn once per box (on its smallest scale), not once per file.
        if item["clamped"] and item["scale"] == first_scale:
            box = ",".join(f"{v:g}" for v in item["requested"])
            say("crop", "warning", f"{name}: box {box} reaches outside the {item['image_width']}×{item['image_height']} image; clamped")
        sink.crop(item)


def _crop_records(sink: _Sink, opts: Any, default_boxes: list, limit: int) -> None:
    """JSONL on stdin: each record names an image and optionally its boxes."""
    import dataclasses
    import io

    from vdr_cli.tools.crop import box_from_record
    from vdr_cli.tools.images import read_bytes
    from vdr_cli.trace.jsonl import LineError, iter_lines

    text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    for item in iter_lines(text, "<stdin>"):
        if isinstance(item, LineError):
            sink.fail(str(item), f"<stdin>:{item.lineno}")
            continue
        where = str(item.get("path") or "<stdin>")
        try:
            path = item.get("path")
            if not isinstance(path, str) or not path:
                raise InputError("record has no \"path\" (the image to crop)")
            rec_opts = opts
            if item.get("type") == "crop":
                # A crop event's box and scale describe its source image, not
                # the crop file at `path`: crop that file with our own boxes.
                item = {"path": path}
            if "units" in item or "scale" in item:
                scales = item.get("scale", opts.scales)
                scales = [scales] if isinstance(scales, (int, float)) else scales
                rec_opts = dataclasses.replace(opts, units=str(item.get("units", opts.units)), scales=[float(s) for s in scales])
            boxes = default_boxes
            raw = item.get("box")
            if raw is not None:
                many = isinstance(raw, list) and raw and all(isinstance(b, (list, str)) for b in raw)
                boxes = [box_from_record(b, where) for b in (raw if many else [raw])]
            _crop_one(sink, path, read_bytes(path), boxes, rec_opts, limit)
        except (InputError, UsageError, ValueError, TypeError) as exc:
            sink.fail(getattr(exc, "message", str(exc)), where)
