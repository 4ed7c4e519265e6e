"""A session trace as a readable timeline: plain text for a terminal or a file.

`build` groups a trace's events into turns (a step, its calls and their
results); `render_text` and the HTML report (render/html.py) both draw from
that one grouping, so they always agree on what happened.  The text is plain
unless `color` is set (a terminal), so golden files and pipes stay clean.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.render.live import digest
from vdr_cli.render.output import clean  # trace strings come from pages and models: the one sanitiser

Event = dict[str, Any]


@dataclass
class Turn:
    """One model step and what it caused."""

    step: Event
    calls: list[tuple[Event, Event | None]] = field(default_factory=list)  # (call, its result or None)
    notes: list[Event] = field(default_factory=list)  # error or unknown events seen during the step


@dataclass
class Timeline:
    header: Event | None = None
    turns: list[Turn] = field(default_factory=list)
    answer: Event | None = None
    end: Event | None = None
    preamble: list[Event] = field(default_factory=list)  # non-step events before the first step

    def tool_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for turn in self.turns:
            for call, _ in turn.calls:
                tool = str(call.get("tool"))
                counts[tool] = counts.get(tool, 0) + 1
        return counts

    def token_totals(self) -> tuple[int, int]:
        prompt = completion = 0
        for turn in self.turns:
            tokens = turn.step.get("tokens") or {}
            prompt += _num(tokens.get("prompt_eval"))
            completion += _num(tokens.get("completion"))
        return int(prompt), int(completion)


def _num(value: Any) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def build(events: Iterable[Event]) -> Timeline:
    """Group events into turns; events out of place are kept, never dropped."""
    tl = Timeline()
    by_call: dict[str, tuple[Turn, int]] = {}
    for ev in events:
        kind = ev.get("type")
        current = tl.turns[-1] if tl.turns else None
        if kind == "session" and tl.header is None:
            tl.header = ev
        elif kind == "step":
            tl.turns.append(Turn(ev))
        elif kind == "call" and current is not None:
            target = next((t for t in reversed(tl.turns) if t.step.get("n") == ev.get("step")), current)
            target.calls.append((ev, None))
            by_call[str(ev.get("id"))] = (target, len(target.calls) - 1)
        elif kind == "result" and str(ev.get("id")) in by_call:
            turn, i = by_call.pop(str(ev.get("id")))
            turn.calls[i] = (turn.calls[i][0], ev)
        elif kind == "answer" and tl.answer is None:
            tl.answer = ev
        elif kind == "end" and tl.end is None:
            tl.end = ev
        elif current is not None:
            current.notes.append(ev)
        else:
            tl.preamble.append(ev)
    return tl


# --- small formatting helpers shared with the HTML report ---------------------------

def when(ts: Any) -> str:
    """`2026-11-25T13:02:28.111Z` as `2026-11-25 13:02:28 UTC`."""
    text = str(ts or "")
    if len(text) >= 19 and text[10] == "T":
        return text[:10] + " " + text[11:19] + (" UTC" if text.endswith("Z") else "")
    return text


def seconds(ms: Any) -> str:
    """A duration for people: `49 ms`, `2.1 s`, `312 s`."""
    value = _num(ms)
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s" if value < 100_000 else f"{value / 1000:.0f} s"


def args_text(args: Any) -> str:
    return json.dumps(args, ensure_ascii=False, separators=(", ", ": "))


def summary_text(summary: Any) -> str:
    """A page summary: the reference's {rational, evidence, summary} or plain text."""
    if isinstance(summary, dict):
        return str(summary.get("summary") or summary.get("evidence") or json.dumps(summary, ensure_ascii=False))
    return str(summary or "")


def result_digest(result: Event) -> str:
    """`✓ 1.2 s cached · 10 hits, 2 pages` — what a result holds, in one line."""
    mark = "✓" if result.get("ok") else "✗"
    timing = f" {seconds(result['ms'])}" if "ms" in result else ""
    cached = " cached" if result.get("cached") else ""
    return f"{mark}{timing}{cached} · {digest(result)}"


def fold_text(fold: Event) -> str:
    """One line for a `fold` event: what changed and what it saved."""
    edits = [x for x in fold.get("edits") or [] if isinstance(x, dict)]
    steps = sorted({x.get("step") for x in edits if isinstance(x.get("step"), int)})
    parts = [f"context folded ({fold.get('strategy', '?')})"]
    summary = fold.get("summary") if isinstance(fold.get("summary"), dict) else None
    if summary:
        by = "the model's summary" if str(fold.get("strategy")).startswith("summari") else "an index of searches and visits"
        parts.append(f"steps 1–{summary.get('upto')} replaced by {by}")
    if edits:
        parts.append(f"{len(edits)} turn(s) of steps {steps[0]}–{steps[-1]} replaced by digests" if steps else f"{len(edits)} turn(s)")
    tokens = fold.get("tokens") if isinstance(fold.get("tokens"), dict) else {}
    if "before" in tokens and "after" in tokens:
        parts.append(f"{tokens['before']} → {tokens['after']} tokens, {tokens.get('evaluated', '?')} evaluated again")
    return f"{parts[0]}: " + "; ".join(parts[1:]) if len(parts) > 1 else parts[0]


def step_meta(step: Event) -> list[str]:
    """`1210+64 tok`, `2.1 s`: what a step recorded (imported traces may have neither)."""
    tokens = step.get("tokens") or {}
    meta = []
    if tokens:
        meta.append(f"{tokens.get('prompt_eval', 0)}+{tokens.get('completion', 0)} tok")
    if "ms" in step:
        meta.append(seconds(step["ms"]))
    return meta


# --- text ---------------------------------------------------------------------



class _Style:
    """ANSI styling on a terminal, nothing elsewhere (golden files, pipes)."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def tool(self, text: str) -> str:
        return self._wrap("33", text)


class _Text:
    def __init__(self, width: int, full: bool, color: bool) -> None:
        self.width = max(40, width)
        self.full = full
        self.s = _Style(color)

    def wrap(self, text: str, indent: str, max_lines: int | None = None, style: Any = None, label: str = "") -> list[str]:
        """Wrap each paragraph to the width (after `label`, hanging); cut to max_lines (with …) unless --full."""
        room = self.width - len(indent) - len(label)
        lines: list[str] = []
        for para in clean(text).splitlines() or [""]:
            lines.extend(textwrap.wrap(para, room, break_on_hyphens=False) or [""])
        while lines and not lines[-1].strip():
            lines.pop()
        if max_lines is not None and not self.full and len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][: room - 1].rstrip() + "…"
        style = style or (lambda t: t)
        hang = " " * len(label)
        return [indent + style((label if i == 0 else hang) + line) if line else "" for i, line in enumerate(lines)]

    def one(self, text: str, indent: str = "") -> str:
        """One line, cut to the width unless --full."""
        text = " ".join(clean(text).split())
        room = self.width - len(indent)
        if not self.full and len(text) > room:
            text = text[: room - 1].rstrip() + "…"
        return indent + text

    def rule(self, label: str) -> str:
        head = f"── {label} "
        return self.s.bold(head) + "─" * max(3, self.width - len(head))


def render_text(events: Iterable[Event], width: int = 100, full: bool = False, color: bool = False) -> Iterator[str]:
    """The session as lines of text (no newlines inside a line)."""
    tl = build(events)
    t = _Text(width, full, color)
    yield from _header(tl.header, t)
    for ev in tl.preamble:
        yield from _note(ev, t, "")
    for turn in tl.turns:
        yield ""
        yield from _turn(turn, t)
        if tl.answer is not None and tl.answer.get("step") == turn.step.get("n"):
            yield t.s.good("  → answer")
    if tl.answer is not None:
        yield ""
        yield t.rule(f"answer (step {tl.answer.get('step')})")
        yield from t.wrap(str(tl.answer.get("text", "")), "")
    yield ""
    yield from _totals(tl, t)


def _header(header: Event | None, t: _Text) -> Iterator[str]:
    if header is None:
        yield t.s.bad("no session header (not a complete vdr trace)")
        return
    yield t.s.bold(f"vdr session {header.get('id', '?')}") + f" · {when(header.get('ts'))} · vdr {header.get('vdr', '?')}"
    yield from t.wrap(str(header.get("question", "")), "", label="Q: ")
    for img in header.get("images") or []:
        size = f" ({img['width']}×{img['height']})" if img.get("width") and img.get("height") else ""
        yield t.one(f"{img.get('id', '?')}: {img.get('path') or img.get('url') or '(file not recorded)'}{size}")
    model = header.get("model") or {}
    extra = [str(x) for x in (model.get("backend"), f"ctx {model['ctx']}" if model.get("ctx") else None) if x]
    yield t.one(f"model: {model.get('name', '?')}" + (f" ({', '.join(extra)})" if extra else ""))
    if header.get("tools"):
        yield t.one("tools: " + ", ".join(map(str, header["tools"])))


def _turn(turn: Turn, t: _Text) -> Iterator[str]:
    step = turn.step
    yield t.rule(" · ".join([f"step {step.get('n', '?')}", *step_meta(step)]))
    if step.get("prompt"):
        yield from t.wrap(str(step["prompt"]), "  ", 2, t.s.dim, label="asked: ")
    if step.get("think"):
        yield from t.wrap(str(step["think"]), "  ", 3, t.s.dim, label="think: ")
    if step.get("error"):
        yield t.s.bad(t.one(f"! {step['error']}", "  "))
    for call, result in turn.calls:
        yield t.one(f"→ {call.get('tool')} {args_text(call.get('args', {}))}", "  ")
        if result is None:
            yield t.s.bad("  (no result recorded)")
            continue
        line = t.one(f"{result.get('tool')} {result_digest(result)}", "    ")
        yield t.s.good(line) if result.get("ok") else t.s.bad(line)
        yield from _data(result.get("data") or [], t)
    for ev in turn.notes:
        yield from _note(ev, t, "  ")


def _data(data: list[Any], t: _Text) -> Iterator[str]:
    """The typed records of a result: a few of each kind, all with --full."""
    shown: dict[str, int] = {}
    limit = {"hit": 3, "page": 3, "crop": 4, "error": 3}
    for item in data:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type"))
        shown[kind] = shown.get(kind, 0) + 1
        if not t.full and shown[kind] > limit.get(kind, 0):
            continue
        if kind == "hit":
            yield t.one(f"{item.get('rank', '·')}. {item.get('title') or '(untitled)'} — {item.get('url', '')}", "      ")
        elif kind == "page":
            yield t.one(f"page: {item.get('title') or item.get('url', '')} ({item.get('final_url') or item.get('url', '')})", "      ")
            summary = summary_text(item.get("summary"))
            if summary:
                yield from t.wrap(summary, "        ", 2)
        elif kind == "crop":
            box = ",".join(f"{v:g}" for v in item.get("box") or [] if isinstance(v, (int, float)))
            yield t.one(f"crop {item.get('image_id') or ''} box {box} scale {item.get('scale', 1):g} → {item.get('path', '')}", "      ")
        elif kind == "error":
            yield t.s.bad(t.one(f"! {item.get('message', '')}", "      "))
    for kind, n in shown.items():
        if not t.full and n > limit.get(kind, 0) and limit.get(kind, 0):
            yield t.s.dim(f"      … {n - limit[kind]} more {kind}{'s' if n - limit[kind] != 1 else ''} (--full shows all)")


def _note(ev: Event, t: _Text, indent: str) -> Iterator[str]:
    kind = ev.get("type")
    if kind == "error":
        where = f" ({ev['where']})" if ev.get("where") else ""
        yield t.s.bad(t.one(f"! error: {ev.get('message', '')}{where}", indent))
    elif kind == "fold":
        yield t.s.dim(t.one("⤓ " + fold_text(ev), indent))
    else:
        yield t.s.dim(t.one(f"[{kind} event]", indent))


def _totals(tl: Timeline, t: _Text) -> Iterator[str]:
    yield t.rule("totals")
    end = tl.end
    stats = (end or {}).get("stats") or {}
    counts = stats.get("tools") if isinstance(stats.get("tools"), dict) else tl.tool_counts()
    steps = stats.get("steps", len(tl.turns))
    calls = stats.get("calls", sum(counts.values()))
    per_tool = ", ".join(f"{k} {v}" for k, v in counts.items())
    if end is None:
        yield t.s.bad("incomplete: no end event (the session was cut short, or is still running)")
        head = "so far"
    else:
        head = f"ended: {end.get('reason', '?')}"
    yield t.one(f"{head} · {steps} steps · {calls} calls" + (f" ({per_tool})" if per_tool else ""))
    tokens = stats.get("tokens") or {}
    prompt, completion = tl.token_totals()
    if tokens or prompt or completion:
        line = f"tokens: {tokens.get('prompt_eval', prompt)} prompt + {tokens.get('completion', completion)} completion"
        if tokens.get("context") is not None:
            line += f" · context {tokens['context']}" + (f" of {tokens['ctx']}" if tokens.get("ctx") else "")
        yield t.one(line)
    yield from ([t.one(time_line(tl))] if time_line(tl) else [])


def time_line(tl: Timeline) -> str:
    """`time: 12.3 s total · model 6.8 s · tools 5.5 s · vdr 49 ms`, from the end's stats or the events."""
    ms = ((tl.end or {}).get("stats") or {}).get("ms") or {}
    if ms:
        parts = [f"{seconds(ms['total'])} total"] if "total" in ms else []
        parts += [f"{k} {seconds(ms[k])}" for k in ("model", "tools", "vdr") if k in ms]
        return "time: " + " · ".join(parts)
    model_ms = sum(_num(turn.step.get("ms")) for turn in tl.turns)
    tool_ms = sum(_num((r or {}).get("ms")) for turn in tl.turns for _, r in turn.calls)
    if not (model_ms or tool_ms):
        return ""
    return f"time: model {seconds(model_ms)} · tools {seconds(tool_ms)} (summed from the steps and results)"
