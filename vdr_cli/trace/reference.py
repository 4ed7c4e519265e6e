"""Import the reference system's saved episodes as vdr traces.

Vision-DeepResearch's eval runner saves one JSON object per task
(`episodes.jsonl`): {id, task{question, answer}, termination_reason,
trajectories[{steps[{chat_completions: [messages]}]}]}.  The messages are the
conversation in the trained format (system; user with the image and question;
assistant `<think>` + `<tool_call>` or `<answer>`; user `<tool_response>`), so
each assistant message becomes a `step` (raw = its text), its tool call a
`call`, the following tool response a `result` (content = exactly what the
model was shown; the reference keeps no typed records, so data is empty),
and the termination reason an `end`.  Traces from both systems can then be
rendered, checked and compared with the same tools.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vdr_cli import __version__
from vdr_cli.trace.catalog import TraceFile, TraceSummary
from vdr_cli.trace.events import SCHEMA_VERSION, Event, event, now_iso
from vdr_cli.trace.jsonl import JsonlWriter, LineError

_TOOLS_BLOCK = re.compile(r"<tools>(.*?)</tools>", re.S)
_TOOL_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
_DATE = re.compile(r"Current date:\s*(\d{4}-\d{2}-\d{2})")
_DATA_URL = re.compile(r"data:image/([a-zA-Z0-9.+-]+);base64,(.*)", re.S)
_IMAGE_ID_LINE = re.compile(r"^\s*image_id:\s*\S+\s*$", re.M)
_EXT = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "bmp": "bmp"}
# The trained wrapping of a tool result (agent/prompt.py writes it; trace/ may
# not import agent/, so the two tags are spelled here too).
TOOL_RESPONSE_START = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"

# Parses one assistant turn: vdr_cli.agent.turns.parse_turn, passed in by the
# caller because trace/ sits below agent/ (imports point one way).
TurnParser = Callable[[str], Any]


class EpisodeError(Exception):
    """An episode this importer cannot read (reported with its line, the others go on)."""


def end_reason(termination: Any, answered: bool) -> str:
    """The reference's free-text termination reason as one of vdr's end reasons."""
    text = str(termination or "").lower()
    if "token" in text or "context" in text:
        return "context_full"
    if any(word in text for word in ("llm call", "max", "round", "turn", "timeout", "time limit")):
        return "max_steps"  # vdr ends a spent time budget as max_steps too
    if "interrupt" in text or "cancel" in text:
        return "interrupted"
    if text.startswith("error") or "exception" in text:
        return "error"
    return "answer" if answered else "error"


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _messages(ep: dict[str, Any]) -> list[dict[str, Any]]:
    """The longest conversation in the episode (each rllm step holds the whole history so far)."""
    best: list[dict[str, Any]] = []
    for traj in ep.get("trajectories") or []:
        for step in (traj or {}).get("steps") or []:
            chat = (step or {}).get("chat_completions")
            if isinstance(chat, list) and len(chat) > len(best):
                best = [m for m in chat if isinstance(m, dict)]
    return best


def _tool_response(content: str) -> str | None:
    """The inner text of a `<tool_response>` user turn (vdr writes `\\n` after the tag and before the close)."""
    body = content.strip()
    if not (body.startswith(TOOL_RESPONSE_START) and body.endswith(TOOL_RESPONSE_CLOSE)):
        return None
    inner = body[len(TOOL_RESPONSE_START): -len(TOOL_RESPONSE_CLOSE)]
    if inner.startswith("\n"):
        inner = inner[1:]
    return inner[:-1] if inner.endswith("\n") else inner


class _Episode:
    def __init__(self, ep: dict[str, Any], stem: str, out_dir: Path, model: dict[str, Any], source: str,
                 parse_turn: TurnParser) -> None:
        self.ep, self.stem, self.out_dir, self.model, self.source = ep, stem, out_dir, model, source
        self.parse_turn = parse_turn
        self.events: list[Event] = []

    def image(self, index: int, url: Any) -> dict[str, Any]:
        """An image part of the first user turn: a data URL becomes a file next to the trace."""
        entry: dict[str, Any] = {"id": f"image_{index}"}
        match = _DATA_URL.match(url) if isinstance(url, str) else None
        if match is None:
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                entry["url"] = url
            return entry  # "<base64-image>": the episode kept no pixels
        try:
            data = base64.b64decode(match.group(2), validate=False)
        except (binascii.Error, ValueError):
            return entry
        path = (self.out_dir / f"{self.stem}.image_{index}.{_EXT.get(match.group(1).lower(), 'img')}").resolve()
        path.write_bytes(data)
        entry.update(path=str(path), sha256=hashlib.sha256(data).hexdigest())
        try:
            from PIL import Image, ImageOps

            with Image.open(path) as im:
                entry["width"], entry["height"] = ImageOps.exif_transpose(im).size
        except Exception:  # noqa: BLE001 - any unreadable picture: keep the file, skip its size
            pass
        return entry

    def convert(self) -> list[Event]:
        ep = self.ep
        if not isinstance(ep.get("trajectories"), list) and not isinstance(ep.get("task"), dict):
            raise EpisodeError("not a reference episode (no task, no trajectories)")
        task = ep.get("task") if isinstance(ep.get("task"), dict) else {}
        messages = _messages(ep)
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
        first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        images: list[dict[str, Any]] = []
        first_text = ""
        if first_user is not None:
            content = messages[first_user].get("content")
            first_text = _text(content)
            parts = content if isinstance(content, list) else []
            for part in parts:
                if isinstance(part, dict) and part.get("type") in ("image_url", "image"):
                    ref = part.get("image_url") if part.get("type") == "image_url" else part.get("image")
                    url = ref.get("url") if isinstance(ref, dict) else ref
                    images.append(self.image(len(images) + 1, url))
        question = str(task.get("question") or _IMAGE_ID_LINE.sub("", first_text).strip())
        tools = _TOOL_NAME.findall(_TOOLS_BLOCK.search(system).group(1)) if _TOOLS_BLOCK.search(system) else []
        date = _DATE.search(system)
        header = event("session", v=SCHEMA_VERSION, id=str(ep.get("id", self.stem)), ts=now_iso(), question=question,
                       images=images, model=self.model, tools=tools, vdr=__version__,
                       imported={"format": "reference", "from": self.source})
        if date:
            header["date"] = date.group(1)
        self.events.append(header)
        answered = self._turns(messages[first_user + 1:] if first_user is not None else [])
        steps = sum(1 for ev in self.events if ev["type"] == "step")
        counts: dict[str, int] = {}
        for ev in self.events:
            if ev["type"] == "call":
                counts[ev["tool"]] = counts.get(ev["tool"], 0) + 1
        if not tools:
            header["tools"] = sorted(counts)
        traj = next(iter(ep.get("trajectories") or []), None) or {}
        info = traj.get("info") if isinstance(traj.get("info"), dict) else {}
        reference = {"termination_reason": ep.get("termination_reason"), "is_correct": ep.get("is_correct"),
                     "expected_answer": task.get("answer"), "prediction": (ep.get("info") or {}).get("prediction"),
                     "rounds": info.get("rounds"), "time_taken": info.get("time_taken"), "token_usage": info.get("token_usage")}
        stats: dict[str, Any] = {"steps": steps, "calls": sum(counts.values()), "tools": counts}
        if isinstance(info.get("time_taken"), (int, float)):
            stats["ms"] = {"total": round(float(info["time_taken"]) * 1000, 1)}
        self.events.append(event("end", reason=end_reason(ep.get("termination_reason"), answered), stats=stats,
                                 reference={k: v for k, v in reference.items() if v is not None}))
        return self.events

    def _turns(self, messages: list[dict[str, Any]]) -> bool:
        """Steps, calls, results and the answer from the conversation after the first user turn."""
        n = 0
        pending_prompt: str | None = None
        open_call: Event | None = None
        answered = False
        for msg in messages:
            role, content = msg.get("role"), _text(msg.get("content"))
            if role == "assistant":
                n += 1
                parsed = self.parse_turn(content)
                step = event("step", n=n, step=n, think=parsed.think, raw=content)
                if pending_prompt is not None:
                    step["prompt"], pending_prompt = pending_prompt, None
                if parsed.kind == "invalid":
                    step["error"] = parsed.error
                self.events.append(step)
                open_call = None
                if parsed.kind == "call":
                    open_call = event("call", id=f"c{n}", step=n, tool=parsed.tool, args=parsed.args)
                    self.events.append(open_call)
                elif parsed.kind == "answer" and not answered:
                    self.events.append(event("answer", text=parsed.answer or "", step=n))
                    answered = True
            elif role in ("user", "tool"):
                inner = content if role == "tool" else _tool_response(content)
                if inner is not None and open_call is not None:
                    self.events.append(event("result", id=open_call["id"], step=open_call["step"], tool=open_call["tool"], ok=True,
                                             content=inner, data=[]))
                    open_call = None
                else:
                    # A corrective or final-answer message: vdr records it on the next step.
                    pending_prompt = content
        return answered


def _model_from_config(path: Path | None) -> dict[str, Any]:
    """The eval runner writes config.json beside episodes.jsonl: it names the model."""
    model: dict[str, Any] = {"name": "reference", "backend": "reference"}
    if path is None:
        return model
    try:
        config = json.loads((path.parent / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return model
    if isinstance(config, dict):
        if isinstance(config.get("model"), str):
            model["name"] = config["model"]
        sampling = {k: config[k] for k in ("temperature", "top_p", "max_tokens") if config.get(k) is not None}
        if sampling:
            model["sampling"] = sampling
    return model


def _stem(ep_id: Any, lineno: int, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(ep_id if ep_id not in (None, "") else f"episode-{lineno}")).strip("._") or f"episode-{lineno}"
    base, i = stem, 2
    while stem in used:
        stem, i = f"{base}-{i}", i + 1
    used.add(stem)
    return stem


def import_episodes(tf: TraceFile, out_dir: Path, parse_turn: TurnParser) -> Iterator[TraceSummary | str]:
    """Convert each episode line into DIR/<id>.jsonl; yield its summary, or an error line."""
    from vdr_cli.errors import InputError

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the folder ({exc.strerror or exc})") from None
    model = _model_from_config(tf.path)
    used: set[str] = set()
    for lineno, item, _text_line in tf.items():
        if isinstance(item, LineError):
            yield str(item)
            continue
        stem = _stem(item.get("id"), lineno, used)
        try:
            events = _Episode(item, stem, out_dir, model, tf.source, parse_turn).convert()
        except EpisodeError as exc:
            yield f"{tf.source}:{lineno}: {exc}"
            continue
        path = out_dir / f"{stem}.jsonl"
        try:
            with path.open("w", encoding="utf-8") as fh:
                JsonlWriter(fh).write_all(events)
        except OSError as exc:
            yield f"{path}: cannot write ({exc.strerror or exc})"
            continue
        header, end = events[0], events[-1]
        yield TraceSummary(path=path, id=header["id"], ts=header["ts"], question=header["question"],
                           steps=end["stats"]["steps"], calls=end["stats"]["calls"], reason=end["reason"], mtime=0.0)
