"""`vdr replay --html`: one self-contained page that shows a session.

Everything is inline (CSS, a small script allowed by its hash, images as
data: URLs downscaled with Pillow), and the page's Content-Security-Policy
forbids any network access, so a report opens offline and leaks nothing.
Every string from a trace is web content: it is HTML-escaped, links are kept
only for http(s) URLs, and nothing from a trace is ever placed in a script.
The cropped regions are drawn as inline SVG over each session image, in the
image's own pixel coordinates, so they show without the script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdr_cli.render.html_assets import CSS, JS
from vdr_cli.render.timeline import (Timeline, Turn, args_text, build, fold_text, result_digest, step_meta, summary_text, time_line,
                                     when)

Event = dict[str, Any]

MAX_IMAGE_SIDE = 1024  # session images: enough to read the boxes on
MAX_CROP_SIDE = 512  # crops show at most ~260 px; a long session has hundreds
MIN_SHOWN = 360  # a 64 px source image is enlarged to this, or its boxes are unreadable
_EMBED_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def e(value: Any) -> str:
    """Escape anything from a trace for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def link(url: Any, text: Any | None = None) -> str:
    """A link for http(s) URLs; any other scheme (javascript:, data:, file:) stays text."""
    label = e(text if text not in (None, "") else url)
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return f'<a href="{e(url)}" rel="noopener noreferrer nofollow" target="_blank">{label}</a>'
    return label


@dataclass
class Embedded:
    data_url: str
    width: int  # of the source as displayed (EXIF orientation applied), not of the thumbnail
    height: int


class Images:
    """Reads, downscales and encodes image files once each, relative paths from `base`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cache: dict[tuple[str, int], Embedded | None] = {}

    def find(self, name: Any) -> Path | None:
        if not isinstance(name, str) or not name:
            return None
        path = Path(name).expanduser()
        for candidate in ((path,) if path.is_absolute() else (self.base / path, path)):
            if candidate.is_file():
                return candidate
        return None

    def embed(self, name: Any, max_side: int) -> Embedded | None:
        path = self.find(name)
        if path is None:
            return None
        key = (str(path), max_side)
        if key not in self.cache:
            self.cache[key] = _embed(path, max_side)
        return self.cache[key]


def _embed(path: Path, max_side: int) -> Embedded | None:
    import io
    import warnings

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                orientation = im.getexif().get(0x0112, 1)
                w, h = im.size
                if orientation in (5, 6, 7, 8):
                    w, h = h, w
                mime = _EMBED_AS_IS.get(im.format or "")
                # Small, upright files in a format every browser reads go in as they are:
                # no re-encoding, no quality lost, and fast.
                if mime and orientation == 1 and max(w, h) <= max_side and path.stat().st_size <= 1_500_000:
                    data = path.read_bytes()
                else:
                    im = ImageOps.exif_transpose(im)
                    # LANCZOS for the session images people read boxes on; crops show at
                    # ~260 px, where BICUBIC looks the same at half the time.
                    resample = Image.Resampling.LANCZOS if max_side >= MAX_IMAGE_SIDE else Image.Resampling.BICUBIC
                    im.thumbnail((max_side, max_side), resample)
                    buf = io.BytesIO()
                    if im.mode in ("RGBA", "LA", "P"):
                        im.convert("RGBA").save(buf, "PNG", optimize=False)
                        mime = "image/png"
                    else:
                        im.convert("RGB").save(buf, "JPEG", quality=85)
                        mime = "image/jpeg"
                    data = buf.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # a missing or broken picture must not cost the report
    return Embedded(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", w, h)


# --- boxes: which regions of which session image the model cropped ---------------

@dataclass
class Box:
    n: int
    image_id: str
    box: list[float]  # pixels of the source image as displayed
    step: Any
    crop: Event | None  # the crop record, or None for a box read from the call's arguments


def _image_key(crop: Event, images: list[Event]) -> str | None:
    ids = {str(img.get("id")) for img in images}
    if crop.get("image_id") in ids:
        return str(crop["image_id"])
    for img in images:
        if crop.get("source") and crop.get("source") == img.get("path"):
            return str(img.get("id"))
        if crop.get("sha256") and crop.get("sha256") == img.get("sha256"):
            return str(img.get("id"))
    return None


def _pixels(crop: Event, size: tuple[int, int] | None) -> list[float] | None:
    box = crop.get("box")
    if _is_box(box):
        return [float(v) for v in box]
    box = crop.get("box_1000")
    if _is_box(box) and size:
        w, h = size
        return [box[0] * w / 1000, box[1] * h / 1000, box[2] * w / 1000, box[3] * h / 1000]
    return None


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def collect_boxes(tl: Timeline, sizes: dict[str, tuple[int, int]]) -> list[Box]:
    """Number every region the model cropped, in session order."""
    images = (tl.header or {}).get("images") or []
    boxes: list[Box] = []
    for turn in tl.turns:
        for call, result in turn.calls:
            crops = [d for d in (result or {}).get("data") or [] if isinstance(d, dict) and d.get("type") == "crop"]
            for crop in crops:
                if crop.get("scale", 1) not in (1, 1.0):
                    continue  # a context crop around a box, not a box the model chose
                key = _image_key(crop, images)
                px = _pixels(crop, sizes.get(key or ""))
                if key and px:
                    boxes.append(Box(len(boxes) + 1, key, px, turn.step.get("n"), crop))
            args = call.get("args") or {}
            # An imported reference trace has no crop records: its call's
            # arguments (0-1000 boxes on a named image) still say where it looked.
            if not crops and isinstance(args.get("bbox"), list) and str(args.get("image_id")) in sizes:
                raw = args["bbox"]
                for b in (raw if raw and isinstance(raw[0], list) else [raw]):
                    px = _pixels({"box_1000": b}, sizes[str(args["image_id"])])
                    if px:
                        boxes.append(Box(len(boxes) + 1, str(args["image_id"]), px, turn.step.get("n"), None))
    return boxes


# --- the page --------------------------------------------------------------------

def render_html(events: Iterable[Event], base: Path, title_source: str = "") -> str:
    """The whole report as one HTML string."""
    tl = build(events)
    header = tl.header or {}
    images = Images(base)
    embedded: dict[str, Embedded | None] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for img in header.get("images") or []:
        key = str(img.get("id"))
        embedded[key] = images.embed(img.get("path"), MAX_IMAGE_SIDE)
        got = embedded[key]
        if got is not None:
            sizes[key] = (got.width, got.height)
        elif isinstance(img.get("width"), int) and isinstance(img.get("height"), int) and img["width"] > 0 and img["height"] > 0:
            sizes[key] = (img["width"], img["height"])
    boxes = collect_boxes(tl, sizes)
    by_crop = {id(b.crop): b for b in boxes if b.crop is not None}
    question = str(header.get("question", ""))
    parts = [_head(question), '<main>', _top(header, tl, title_source)]
    parts.append('<section class="images">')
    for img in header.get("images") or []:
        key = str(img.get("id"))
        parts.append(_source_figure(img, embedded.get(key), sizes.get(key), [b for b in boxes if b.image_id == key]))
    parts.append("</section>")
    parts.append('<section class="timeline"><div class="toolbar"><button id="toggle" type="button">expand all</button></div>'
                 '<h2>Timeline</h2>')
    for turn in tl.turns:
        answered = tl.answer is not None and tl.answer.get("step") == turn.step.get("n")
        parts.append(_turn(turn, images, by_crop, [b for b in boxes if b.crop is None and b.step == turn.step.get("n")], answered))
    parts.append("</section>")
    parts.append(_totals(tl))
    parts.append("</main>")
    parts.append(f"<script>{JS}</script></body></html>\n")
    return "".join(parts)


def _head(question: str) -> str:
    script_hash = base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    short = question if len(question) <= 80 else question[:79] + "…"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="generator" content="vdr replay">'
            f"<title>vdr · {e(short)}</title><style>{CSS}</style></head><body>")


def _top(header: Event, tl: Timeline, title_source: str) -> str:
    model = header.get("model") or {}
    meta = [f"session {e(header.get('id', '?'))}", e(when(header.get("ts"))), f"model {e(model.get('name', '?'))}",
            f"vdr {e(header.get('vdr', '?'))}"]
    if title_source:
        meta.append(e(title_source))
    out = [f'<header><h1>vdr session</h1><p class="question">{e(header.get("question", "(no session header)"))}</p>',
           '<p class="meta">' + "".join(f"<span>{m}</span>" for m in meta) + "</p></header>"]
    if tl.answer is not None:
        out.append(f'<section class="answer" id="answer"><h2>Answer <span class="meta">step {e(tl.answer.get("step"))}</span></h2>'
                   f'<p>{e(tl.answer.get("text", ""))}</p></section>')
    else:
        why = f"ended: {tl.end.get('reason')}" if tl.end else "incomplete: no end event"
        out.append(f'<section class="answer missing" id="answer"><h2>No answer</h2><p>{e(why)}</p></section>')
    return "".join(out)


def _source_figure(img: Event, got: Embedded | None, size: tuple[int, int] | None, boxes: list[Box]) -> str:
    key = str(img.get("id"))
    name = Path(str(img.get("path") or img.get("url") or "")).name
    caption = f"{e(key)} · {e(name) or 'file not recorded'}"
    if size is None:
        return f'<figure class="source" id="image-{e(key)}"><span class="nofile">image not available</span><figcaption>{caption}</figcaption></figure>'
    w, h = size
    # Shown at its own size, but tiny images are enlarged to be readable and
    # huge ones capped: the long side between MIN_SHOWN and MAX_IMAGE_SIDE px.
    long_side = max(w, h)
    shown_long = min(max(long_side, MIN_SHOWN), MAX_IMAGE_SIDE)
    shown = w * shown_long / long_side
    # Labels: ~1/28 of the long side, never under 15 px as displayed.
    font = max(long_side / 28, 15 * long_side / shown_long)
    svg = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{e(key)} with {len(boxes)} cropped regions">']
    if got is not None:
        svg.append(f'<image href="{got.data_url}" x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none"/>')
    else:
        svg.append(f'<rect width="{w}" height="{h}" fill="#e8eaee"/><text x="{w / 2:g}" y="{h / 2:g}" text-anchor="middle" '
                   f'font-size="{font:.1f}" fill="#5f6670">image file not found</text>')
    for b in boxes:
        x1, y1, x2, y2 = b.box
        svg.append(f'<a href="#crop-{b.n}"><g class="box" id="box-{b.n}" data-box="{b.n}">'
                   f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(0.0, x2 - x1):.1f}" height="{max(0.0, y2 - y1):.1f}"/>'
                   f'<text x="{x1 + font * 0.25:.1f}" y="{y1 + font:.1f}" font-size="{font:.1f}" stroke-width="{font / 6:.1f}">{b.n}</text>'
                   f"<title>box {b.n} · step {e(b.step)}</title></g></a>")
    svg.append("</svg>")
    caption += f" · {w}×{h} · {len(boxes)} box{'es' if len(boxes) != 1 else ''}"
    return (f'<figure class="source" id="image-{e(key)}" style="max-width:{shown:.0f}px;flex:1 1 {min(shown, 480):.0f}px">'
            + "".join(svg) + f"<figcaption>{caption}</figcaption></figure>")


def _turn(turn: Turn, images: Images, by_crop: dict[int, Box], arg_boxes: list[Box], answered: bool) -> str:
    step = turn.step
    n = step.get("n", "?")
    cls = "step invalid" if step.get("error") else "step"
    meta = "".join(f"<span>{e(m)}</span>" for m in step_meta(step))
    out = [f'<section class="{cls}" id="step-{e(n)}"><header><h2>Step {e(n)}</h2><span class="meta">{meta}</span></header>']
    if step.get("prompt"):
        out.append(f'<details class="prompt"><summary>message before this step</summary><pre>{e(step["prompt"])}</pre></details>')
    if step.get("think"):
        words = len(str(step["think"]).split())
        out.append(f'<details class="think"><summary>thought · {words} words</summary><pre>{e(step["think"])}</pre></details>')
    if step.get("error"):
        out.append(f'<p class="error">invalid turn: {e(step["error"])}</p>'
                   f'<details><summary>raw model output</summary><pre>{e(step.get("raw", ""))}</pre></details>')
    for call, result in turn.calls:
        out.append(f'<div class="call">→ <code class="tool">{e(call.get("tool"))}</code><pre class="args">{e(args_text(call.get("args", {})))}</pre></div>')
        if result is None:
            out.append('<div class="result failed"><p class="error">no result recorded</p></div>')
            continue
        out.append(_result(result, images, by_crop, arg_boxes))
    if answered:
        out.append('<p class="call">→ <a href="#answer">answer</a></p>')
    for ev in turn.notes:
        if ev.get("type") == "error":
            out.append(f'<p class="error">error: {e(ev.get("message", ""))}</p>')
        elif ev.get("type") == "fold":
            out.append(_fold(ev))
    out.append("</section>")
    return "".join(out)


def _fold(fold: Event) -> str:
    """A fold: what the model saw from here on instead of the turns named."""
    rows = [f"step {x.get('step')} {'tool response' if x.get('part') == 'result' else 'turn'}:\n{x.get('text', '')}"
            for x in fold.get("edits") or [] if isinstance(x, dict)]
    if isinstance(fold.get("summary"), dict):
        rows.insert(0, f"steps 1–{fold['summary'].get('upto')}:\n{fold['summary'].get('text', '')}")
    body = "\n\n".join(rows)
    return f'<details class="fold"><summary>{e(fold_text(fold))}</summary><pre>{e(body)}</pre></details>'


def _result(result: Event, images: Images, by_crop: dict[int, Box], arg_boxes: list[Box]) -> str:
    cls = "result" if result.get("ok") else "result failed"
    digest = result_digest(result)
    out = [f'<div class="{cls}"><p class="digest"><span class="mark">{e(digest[:1])}</span>{e(digest[1:])}</p>']
    data = [d for d in result.get("data") or [] if isinstance(d, dict)]
    crops = [d for d in data if d.get("type") == "crop"]
    if crops or arg_boxes:
        out.append('<div class="crops">')
        for crop in crops:
            out.append(_crop_figure(crop, by_crop.get(id(crop)), images))
        for b in arg_boxes:
            out.append(f'<figure class="crop" id="crop-{b.n}" data-box="{b.n}"><span class="nofile">box {b.n}<br>(no crop file)</span>'
                       f"<figcaption>box {b.n} · {e(b.image_id)} · from the call&#39;s bbox</figcaption></figure>")
        out.append("</div>")
    hits = [d for d in data if d.get("type") == "hit"]
    queries: dict[str, list[Event]] = {}
    for hit in hits:
        queries.setdefault(str(hit.get("query", "")), []).append(hit)
    for query, group in queries.items():
        # Ranks restart with each query of a multi-query search: one list per query.
        if len(queries) > 1:
            out.append(f'<p class="query">“{e(query)}”</p>')
        out.append('<ol class="hits">')
        for hit in group:
            rank = hit.get("rank")
            value = f' value="{rank}"' if isinstance(rank, int) and not isinstance(rank, bool) else ""
            snippet = f'<p class="snippet">{e(hit["snippet"])}</p>' if hit.get("snippet") else ""
            out.append(f'<li{value}>{link(hit.get("url"), hit.get("title") or hit.get("url"))} '
                       f'<span class="url">{e(hit.get("url", ""))}</span>{snippet}</li>')
        out.append("</ol>")
    for page in (d for d in data if d.get("type") == "page"):
        url = page.get("final_url") or page.get("url")
        summary = summary_text(page.get("summary"))
        out.append(f'<div class="page">page: {link(url, page.get("title") or url)} <span class="url">{e(url or "")}</span>')
        if summary:
            out.append(f'<p class="summary">{e(summary)}</p>')
        if isinstance(page.get("summary"), dict) and page["summary"].get("evidence"):
            out.append(f'<details><summary>evidence</summary><pre>{e(page["summary"]["evidence"])}</pre></details>')
        out.append("</div>")
    for err in (d for d in data if d.get("type") == "error"):
        out.append(f'<p class="error">{e(err.get("message", ""))}</p>')
    content = str(result.get("content", ""))
    out.append(f'<details class="content"><summary>what the model was shown · {len(content)} characters</summary>'
               f"<pre>{e(content)}</pre></details></div>")
    return "".join(out)


def _crop_figure(crop: Event, box: Box | None, images: Images) -> str:
    got = images.embed(crop.get("path"), MAX_CROP_SIDE)
    label = f"box {box.n}" if box else "crop"
    anchor = f' id="crop-{box.n}" data-box="{box.n}"' if box else ""
    coords = ",".join(f"{v:g}" for v in crop.get("box") or [] if isinstance(v, (int, float)))
    pic = (f'<img src="{got.data_url}" alt="{e(label)}" width="{got.width}" height="{got.height}">' if got
           else f'<span class="nofile">{e(label)}<br>(crop file not found)</span>')
    return (f'<figure class="crop"{anchor}>{pic}<figcaption>{e(label)} · {e(crop.get("image_id") or Path(str(crop.get("source", ""))).name)}'
            f" · {e(coords)} · scale {e(crop.get('scale', 1))}</figcaption></figure>")


def _totals(tl: Timeline) -> str:
    stats = (tl.end or {}).get("stats") or {}
    counts = stats.get("tools") if isinstance(stats.get("tools"), dict) else tl.tool_counts()
    prompt, completion = tl.token_totals()
    tokens = stats.get("tokens") or {}
    rows = [("ending", tl.end.get("reason", "?") if tl.end else "incomplete: no end event"),
            ("steps", stats.get("steps", len(tl.turns))),
            ("calls", ", ".join(f"{k} {v}" for k, v in counts.items()) or "none")]
    if tokens or prompt or completion:
        rows.append(("tokens", f"{tokens.get('prompt_eval', prompt)} prompt + {tokens.get('completion', completion)} completion"
                               + (f" · context {tokens['context']} of {tokens.get('ctx', '?')}" if tokens.get("context") is not None else "")))
    timing = time_line(tl)
    if timing:
        rows.append(("time", timing.removeprefix("time: ")))
    body = "".join(f"<tr><th>{e(k)}</th><td{' class=incomplete' if k == 'ending' and not tl.end else ''}>{e(v)}</td></tr>"
                   for k, v in rows)
    extra = ""
    if tl.end and tl.end.get("reference"):
        extra = f'<details><summary>reference episode</summary><pre>{e(json.dumps(tl.end.get("reference"), ensure_ascii=False, indent=1))}</pre></details>'
    return f'<section class="totals" id="totals"><h2>Totals</h2><table class="totals">{body}</table>{extra}</section>'
