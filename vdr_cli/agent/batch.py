"""`vdr ask --batch FILE`: one session per JSONL line, N at a time.

Each item gets its own trace in the output folder, named by its id; a
re-run skips items whose trace already ended with an answer.  `run_items`
is the reusable part (`vdr eval` runs its benchmark items through it).  Against an
HTTP model server sessions run in parallel threads; an in-process model
runs them one at a time (one llama.cpp context per process is the memory
budget of a local machine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
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
    if req.parallel < 1:
        raise UsageError("--parallel must be at least 1")
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
    finish; items whose trace already ended with an answer are not re-run.
    One at a time, sessions run in the calling thread, so Ctrl-C reaches the
    session (it writes its "interrupted" end) and then the caller.
    """
    from vdr_cli.agent.runner import run_ask, settings
    from vdr_cli.render.output import say
    from vdr_cli.models.spec import parse_spec

    if req.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    conf = settings(req)
    spec = parse_spec(req.model or conf["model"], mmproj=req.mmproj)
    parallel = req.parallel
    if spec.kind == "llama" and parallel > 1:
        say("ask", "warning", "an in-process model runs one session at a time; --parallel applies to openai: models")
        parallel = 1

    def one(item: dict[str, Any]) -> Event:
        path = trace_file(out_dir, item["id"])
        t0 = time.perf_counter()
        done = finished(path)
        if done is not None:
            return event("end", id=item["id"], reason=(done["end"] or {}).get("reason", "answer"), answer=done["answer"],
                         trace=str(path), skipped=True,
                         stats=(done["end"] or {}).get("stats", {}))
        try:
            images = [fetch_image(str(s)) for s in item["images"]]
            sub = dataclasses.replace(req, args=[*images, item["question"]], output=path, json_out=True, batch=None,
                                      resume=None)
            status = run_ask(sub, quiet=True)
            done = finished(path)
            reason = _last_reason(path)
            return event("end", id=item["id"], reason=reason, answer=(done or {}).get("answer"), trace=str(path),
                         status=int(status), ms=round((time.perf_counter() - t0) * 1000, 1))
        except VdrError as exc:
            return event("end", id=item["id"], reason="error", answer=None, trace=str(path), error=exc.message,
                         ms=round((time.perf_counter() - t0) * 1000, 1))

    if parallel == 1:
        for item in items:
            on_done(one(item))
        return
    pool = ThreadPoolExecutor(max_workers=parallel)
    try:
        for future in as_completed([pool.submit(one, item) for item in items]):
            on_done(future.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: start nothing new
        raise
    pool.shutdown()


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
