"""`vdr ask --batch FILE`: one session per JSONL line, N at a time.

Each item gets its own trace in the output folder, named by its id; a
re-run skips items whose trace already ended with an answer.  Against an
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
    """The end and answer of a trace that ended with an answer, else None."""
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
    return {"end": end, "answer": answer} if end and end.get("reason") == "answer" else None


def fetch_image(spec: str, folder: Path) -> str:
    """A local path for an image given as a path or an http(s) URL (a person's input: any host)."""
    if not spec.startswith(("http://", "https://")):
        return spec
    import httpx

    from vdr_cli.net.client import USER_AGENT

    digest = hashlib.sha256(spec.encode()).hexdigest()[:16]
    target = folder / f"{digest}.img"
    if target.exists():
        return str(target)
    try:
        with httpx.Client(timeout=30, follow_redirects=True, headers={"User-Agent": USER_AGENT}) as client:
            response = client.get(spec)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InputError(f"{spec}: cannot download image ({type(exc).__name__})") from None
    folder.mkdir(parents=True, exist_ok=True)
    target.write_bytes(response.content[: 512 * 1024 * 1024])
    return str(target)


def run_batch(req: Any) -> int:
    from vdr_cli.agent.runner import AskRequest, run_ask, settings
    from vdr_cli.cli.failures import say
    from vdr_cli.cli.output import stdout_writer
    from vdr_cli.models.spec import parse_spec
    from vdr_cli.paths import cache_dir

    if req.args:
        raise UsageError("--batch takes its questions from the file, not from arguments")
    if req.output is None:
        raise UsageError("--batch needs -o DIR for the traces")
    if req.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    out_dir = req.output
    out_dir.mkdir(parents=True, exist_ok=True)
    items = read_items(req.batch)
    conf = settings(req)
    spec = parse_spec(req.model or conf["model"], mmproj=req.mmproj)
    parallel = req.parallel
    if spec.kind == "llama" and parallel > 1:
        say("ask", "warning", "an in-process model runs one session at a time; --parallel applies to openai: models")
        parallel = 1
    writer = stdout_writer()
    progress = _Progress(len(items))
    results: list[str] = []

    def one(item: dict[str, Any]) -> Event:
        path = trace_file(out_dir, item["id"])
        t0 = time.perf_counter()
        done = finished(path)
        if done is not None:
            return event("end", id=item["id"], reason="answer", answer=done["answer"], trace=str(path), skipped=True,
                         stats=(done["end"] or {}).get("stats", {}))
        try:
            images = [fetch_image(str(s), cache_dir() / "batch-images") for s in item["images"]]
            sub = dataclasses.replace(req, args=[*images, item["question"]], output=path, json_out=True, batch=None,
                                      resume=None)
            status = run_ask(sub, quiet=True)
            done = finished(path)
            reason = "answer" if done else _last_reason(path)
            return event("end", id=item["id"], reason=reason, answer=(done or {}).get("answer"), trace=str(path),
                         status=int(status), ms=round((time.perf_counter() - t0) * 1000, 1))
        except VdrError as exc:
            return event("end", id=item["id"], reason="error", answer=None, trace=str(path), error=exc.message,
                         ms=round((time.perf_counter() - t0) * 1000, 1))

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for summary in pool.map(one, items):
            writer.write(summary)
            results.append(summary["reason"])
            progress.advance()
    progress.close()
    answered = sum(1 for r in results if r == "answer")
    if answered == len(results):
        return ExitStatus.OK
    return ExitStatus.PARTIAL if answered else ExitStatus.ERROR


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


class _Progress:
    """A progress bar on stderr when it is a terminal."""

    def __init__(self, total: int) -> None:
        from vdr_cli.cli.output import stderr_is_terminal

        self.bar = None
        if stderr_is_terminal():
            from rich.progress import Progress

            from vdr_cli.cli.output import stderr_console

            self.bar = Progress(console=stderr_console())
            self.bar.start()
            self.task = self.bar.add_task("batch", total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
