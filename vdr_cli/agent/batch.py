"""`vdr ask --batch FILE`: one session per JSONL line, N at a time.

Each item gets its own trace in the output folder, named by its id; a
re-run skips items whose trace already ended with an answer.  `run_items`
is the reusable part (`vdr eval` runs its benchmark items through it) and
`schedule` the one place that decides what runs when.  The model is loaded
once; sessions run in parallel threads, against an HTTP server or as
sequences of one in-process llama.cpp context decoded in shared batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

from vdr_cli.agent.shard import parse_shard
from vdr_cli.errors import ExitStatus, InputError, UsageError, VdrError
from vdr_cli.trace.events import Event, event

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def read_items(path: Path) -> list[dict[str, Any]]:
    from vdr_cli.trace.jsonl import LineError, iter_lines

    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read batch file ({exc})") from None
    items, seen = [], set()
    for item in iter_lines(lines, str(path)):
        if isinstance(item, LineError):
            raise InputError(str(item), hint='each line: {"id": ..., "question": ..., "images": [...]}')
        if not isinstance(item.get("question"), str) or not item["question"].strip():
            raise InputError(f"{path}: item {item.get('id', len(items) + 1)!r} has no question")
        item_id = str(item.get("id", len(items) + 1))
        if item_id in seen:
            raise InputError(f"{path}: duplicate id {item_id!r}")
        seen.add(item_id)
        images = item.get("images") or []
        item["images"] = [images] if isinstance(images, str) else list(images)
        item["id"] = item_id
        items.append(item)
    return items


def trace_file(out_dir: Path, item_id: str) -> Path:
    safe = _SAFE.sub("_", item_id)[:80] or "item"
    if safe != item_id:  # keep distinct ids distinct after sanitising
        safe += "-" + hashlib.sha1(item_id.encode()).hexdigest()[:6]
    return out_dir / f"{safe}.jsonl"


def finished(path: Path) -> dict[str, Any] | None:
    """The end and answer of a finished trace that has an answer, else None."""
    if not path.exists():
        return None
    end, answer = None, None
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("type") == "end":
            end = ev
        elif ev.get("type") == "answer":
            answer = ev.get("text")
    # Done: the session gave an answer (on its own, or when a budget asked for one).
    return {"end": end, "answer": answer} if end and answer else None


def fetch_image(spec: str) -> str:
    """A local path for an image given as a path or an http(s) URL (downloaded once, capped, cached)."""
    from vdr_cli.tools.image_inputs import image_from_url, is_url

    return str(image_from_url(spec)) if is_url(spec) else spec


def run_batch(req: Any) -> int:
    from vdr_cli.render.output import stdout_writer

    if req.args:
        raise UsageError("--batch takes its questions from the file, not from arguments")
    if req.output is None:
        raise UsageError("--batch needs -o DIR for the traces")
    if (req.parallel or 0) < 0:
        raise UsageError("--parallel must be at least 1 (or auto)")
    from vdr_cli.render.live import batch_line
    from vdr_cli.render.output import json_mode

    items = read_items(req.batch)
    shard = parse_shard(getattr(req, "shard", None))
    if shard is not None:
        items = shard.take(items)
    writer = stdout_writer() if json_mode(req.json_out) else None  # a terminal gets a line per item, as eval prints
    progress = ProgressBar(len(items), "batch")
    results: list[str] = []
    answers: list[str | None] = []

    def done(summary: Event) -> None:
        if writer is not None:
            writer.write(summary)
        else:
            progress.print(batch_line(summary))
        results.append(summary["reason"])
        answers.append(summary.get("answer"))
        progress.advance()

    try:
        run_items(items, req, req.output, done)
    finally:
        progress.close()
    answered = sum(1 for a in answers if a)
    return ExitStatus.for_outcome(answered, len(results) - answered)


def run_items(items: list[dict[str, Any]], req: Any, out_dir: Path, on_done: Callable[[Event], None]) -> None:
    """One session per item ({id, question, images}), its trace in `out_dir`, `req.parallel` at a time.

    `on_done` gets each item's `end` summary in the calling thread, as items
    finish; items whose trace already ended with an answer are not re-run
    (and when none is left, no model is loaded).  The model is loaded once
    (agent/host.py); an in-process one runs `req.parallel` sessions as
    sequences of one context (0: as many as memory holds; None: 1); over HTTP
    None means the servers' slots, and several `req.models` share the sessions
    (agent/servers.py).
    """
    from vdr_cli.agent.host import ModelHost, settings

    if (req.parallel or 0) < 0:
        raise UsageError("--parallel must be at least 1 (or auto)")
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for item in items:
        path = trace_file(out_dir, item["id"])
        done = finished(path)
        if done is None:
            todo.append(item)
            continue
        on_done(event("end", id=item["id"], reason=(done["end"] or {}).get("reason", "answer"), answer=done["answer"],
                      trace=str(path), skipped=True, stats=(done["end"] or {}).get("stats", {})))
    if not todo:
        return
    conf = settings(req)
    with ModelHost(req, conf, parallel=req.parallel, share_prefix=True, batch=True) as host:
        if len(todo) > 1:
            from vdr_cli.render.output import say

            for level, line in host.parallel_notes:
                say(host.command, level, line)
        schedule(todo, max(1, host.parallel), lambda item, stop: run_item(host, req, out_dir, item, stop), on_done)


def schedule(items: list[dict[str, Any]], parallel: int, run_one: Callable[[dict[str, Any], threading.Event], Event],
             on_done: Callable[[Event], None]) -> None:
    """Run `run_one(item, stop)` for every item, `parallel` at a time; summaries go to `on_done` as items finish.

    One at a time, sessions run in the calling thread, so Ctrl-C reaches the
    session (it writes its "interrupted" end) and then the caller.  In
    parallel, Ctrl-C sets `stop`: every running session ends with its
    "interrupted" end event, nothing new starts, then KeyboardInterrupt goes on.
    """
    stop = threading.Event()
    if parallel == 1:
        for item in items:
            on_done(run_one(item, stop))
        return
    pool = ThreadPoolExecutor(max_workers=parallel)
    futures = [pool.submit(run_one, item, stop) for item in items]
    try:
        for future in as_completed(futures):
            on_done(future.result())
    except BaseException:
        stop.set()  # Ctrl-C: running sessions end themselves; start nothing new
        for future in futures:
            future.cancel()
        for future in futures:
            if not future.cancelled():
                try:
                    summary = future.result()
                except BaseException:  # noqa: BLE001 - the first error is the one re-raised
                    continue
                if summary.get("reason") == "interrupted":
                    on_done(summary)
        pool.shutdown()
        raise
    pool.shutdown()


def run_item(host: Any, req: Any, out_dir: Path, item: dict[str, Any], stop: threading.Event) -> Event:
    """One item's session on `host`; its `end` summary (an error in one item never reaches the others)."""
    from vdr_cli.agent.host import run_fresh
    from vdr_cli.agent.session import load_images

    path = trace_file(out_dir, item["id"])
    t0 = time.perf_counter()
    sub = dataclasses.replace(req, args=[], output=path, json_out=True, batch=None, resume=None)
    try:
        images = load_images([fetch_image(str(s)) for s in item["images"]],
                             host.conf["max_pixels"])
        outcome, _ = run_fresh(host, sub, images, item["question"], quiet=True, interrupt=stop)
        reason, answer = outcome.reason, outcome.answer
    except KeyboardInterrupt:
        if not stop.is_set():
            raise
        reason, answer = _last_reason(path), None
    except VdrError as exc:
        return event("end", id=item["id"], reason="error", answer=None, trace=str(path), error=exc.message,
                     ms=round((time.perf_counter() - t0) * 1000, 1))
    return event("end", id=item["id"], reason=reason, answer=answer, trace=str(path),
                 status=int(ExitStatus.OK if answer else ExitStatus.ERROR), ms=round((time.perf_counter() - t0) * 1000, 1))


def _last_reason(path: Path) -> str:
    reason = "error"
    if path.exists():
        for line in path.read_text("utf-8", errors="replace").splitlines():
            if '"type":"end"' in line:
                try:
                    reason = json.loads(line).get("reason", reason)
                except json.JSONDecodeError:
                    pass
    return reason


class ProgressBar:
    """A progress bar on stderr when it is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        from vdr_cli.render.output import animated, is_quiet

        self.bar = None
        if animated() and not is_quiet():
            from rich.progress import Progress

            from vdr_cli.render.output import stderr_console

            self.bar = Progress(console=stderr_console())
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def print(self, line: str) -> None:
        """A line on stdout; while the bar shows, rich's stdout proxy prints it above the bar."""
        from vdr_cli.render.output import print_line

        print_line(line)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
