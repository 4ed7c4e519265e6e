#!/usr/bin/env python3
"""`vdr replay` of a 100-step trace: text timeline and HTML report, whole
processes, median of 5 runs (goal <= 0.3 s each).

The trace is generated: 100 steps cycling through search (10 hits), visit (2
pages with summaries and 4,000-character texts) and crop_and_search (a crop
file on a 1600x1200 session image), so the HTML run also pays for Pillow,
downscaling the image and embedding the crops.

    python bench/render.py [--runs N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import report, time_runs, vdr_command  # noqa: E402


def make_trace(folder: Path, steps: int) -> Path:
    from PIL import Image, ImageDraw

    photo = folder / "photo.jpg"
    im = Image.new("RGB", (1600, 1200), (170, 200, 230))
    ImageDraw.Draw(im).polygon([(800, 100), (500, 1100), (1100, 1100)], fill=(60, 55, 50))
    im.save(photo, quality=90)
    crops = []
    for i in range(4):
        path = folder / f"crop_{i}.png"
        im.crop((400 + 50 * i, 300, 900 + 50 * i, 900)).resize((500, 600)).save(path)
        crops.append(path)
    events: list[dict] = [{"type": "session", "v": 1, "id": "bench", "ts": "2026-01-01T00:00:00.000Z",
                           "question": "Who built this tower?", "model": {"name": "bench", "backend": "scripted"},
                           "images": [{"id": "image_1", "path": str(photo), "width": 1600, "height": 1200}],
                           "tools": ["search", "crop_and_search", "visit"], "vdr": "0.1.0"}]
    text = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 70)[:4000]
    for n in range(1, steps + 1):
        tool = ("search", "visit", "crop_and_search")[n % 3]
        args = {"query": [f"q{n}a", f"q{n}b"]} if tool == "search" else (
            {"url": [f"https://example.org/{n}/a", f"https://example.org/{n}/b"], "goal": "who built it"} if tool == "visit"
            else {"image_id": "image_1", "bbox": [[100 + n, 100, 600, 700]], "goal": "identify"})
        think = f"Step {n}: thinking about what to do next. " * 12
        raw = f"<think>{think}</think>\n<tool_call>\n" + json.dumps({"name": tool, "arguments": args}) + "\n</tool_call>"
        events.append({"type": "step", "n": n, "think": think, "raw": raw, "tokens": {"prompt_eval": 900, "completion": 80}, "ms": 1500.0})
        events.append({"type": "call", "id": f"c{n}", "step": n, "tool": tool, "args": args})
        if tool == "search":
            data = [{"type": "hit", "query": q, "rank": r, "title": f"Result {r} for {q}", "url": f"https://example.org/{q}/{r}",
                     "snippet": "A snippet of the page. " * 5, "provider": "bench"} for q in args["query"] for r in range(1, 6)]
        elif tool == "visit":
            data = [{"type": "page", "url": u, "final_url": u, "status": 200, "title": f"Page {u}", "text": text, "links": [],
                     "images": [], "goal": "who built it", "summary": {"rational": "r", "evidence": text[:800], "summary": text[:300]}}
                    for u in args["url"]]
        else:
            data = [{"type": "crop", "source": str(photo), "image_id": "image_1", "box": [160 + 1.6 * n, 120, 960, 840],
                     "box_1000": args["bbox"][0], "scale": 1.0, "path": str(crops[n % 4]), "width": 500, "height": 600}]
        events.append({"type": "result", "id": f"c{n}", "tool": tool, "ok": True, "content": text[:2000], "data": data,
                       "error": None, "ms": 800.0, "cached": False})
    events.append({"type": "answer", "text": "Gustave Eiffel's company.", "step": steps})
    events.append({"type": "end", "reason": "answer", "stats": {"steps": steps, "calls": steps,
                   "ms": {"total": 250000.0, "model": 150000.0, "tools": 99000.0, "vdr": 1000.0}}})
    trace = folder / "trace.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    cmd = vdr_command()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trace = make_trace(folder, args.steps)
        out = folder / "out.html"
        text_argv = cmd + ["replay", str(trace), "--text", "--width", "120"]
        html_argv = cmd + ["replay", str(trace), "--html", str(out)]
        time_runs(lambda i: text_argv, 1)  # warm the page cache and .pyc files
        time_runs(lambda i: html_argv, 1)
        print(f"trace: {args.steps} steps, {trace.stat().st_size / 1e6:.1f} MB; report {out.stat().st_size / 1e6:.1f} MB")
        report("vdr replay --text --width 120", time_runs(lambda i: text_argv, args.runs), goal=0.3)
        report("vdr replay --html", time_runs(lambda i: html_argv, args.runs), goal=0.3)
        report("vdr replay --check", time_runs(lambda i: cmd + ["replay", str(trace), "--check"], args.runs))


if __name__ == "__main__":
    main()
