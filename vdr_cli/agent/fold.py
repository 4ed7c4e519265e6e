"""Context folding: a session that outlasts its context window.

Before each step, when the context has passed `at` of the window (or too
little room is left for the next turn and the final answer), older parts of
the conversation are replaced by compact stand-ins until it is back under
`to` of the window.  The system prompt and the first user turn (question and
images) are never touched.  Strategies:

- ``keep-last:K`` (MiroThinker-style): tool responses older than the last K
  lose their evidence first (summaries kept), then become one-line stubs; the
  model's own turns lose their reasoning only after that (calls kept), and the
  last K responses are folded only if nothing else is left.
- ``summarise`` (ReSum-style): the model writes a research-state summary (a
  turn of its own, generated with the whole context in view and then dropped);
  it replaces every step but the last.

The model then keeps its head and re-evaluates only what follows the first
changed turn (`ModelSession.rewind`).  Each fold is a `fold` event saying which
parts changed and what they became, so resume, rerun and the HTML report
rebuild exactly what the model saw (`apply` is the one rule for that).
Folds happen in bulk (down to `to`, not just under `at`) so that few turns
are evaluated twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdr_cli.agent import digest, prompt
from vdr_cli.errors import UsageError
from vdr_cli.models.base import ImageInput, ModelSession, SamplingParams, Turn
from vdr_cli.trace.events import Event, event

Emit = Callable[[Event], None]
SUMMARY_TOKENS = 512  # longest research-state summary under `summarise`
ROOM_MARGIN = 768  # a fold also starts when less than this (plus the answer reserve) is free


@dataclass(frozen=True)
class FoldPolicy:
    """When and how to fold; ``recorded`` replays a trace's folds instead of deciding."""

    strategy: str = "keep-last"
    keep: int = 3
    at: float = 0.75  # fold once the context passes this fraction of the window
    to: float = 0.45  # ... down to this fraction
    recorded: tuple[Event, ...] = ()

    @property
    def name(self) -> str:
        return f"keep-last:{self.keep}" if self.strategy == "keep-last" else self.strategy

    def __post_init__(self) -> None:
        if self.strategy not in ("keep-last", "summarise", "recorded"):
            raise ValueError(f"unknown fold strategy {self.strategy!r}")


DEFAULT_FOLD = "keep-last:3"


def parse_fold(text: str, at: float | None = None) -> FoldPolicy | None:
    """``keep-last:K``, ``summarise`` or ``off`` (None); ``at`` is the fold threshold (0-1)."""
    value = text.strip().lower()
    extra = {} if at is None else {"at": at, "to": min(0.45, at * 0.6)}
    if at is not None and not 0.1 <= at <= 0.95:
        raise UsageError(f"--fold-at {at}: give a fraction of the window between 0.1 and 0.95")
    if value == "off":
        return None
    if value in ("summarise", "summarize"):
        return FoldPolicy("summarise", **extra)
    if value.startswith("keep-last"):
        _, _, k = value.partition(":")
        if k.isdigit():
            return FoldPolicy("keep-last", keep=int(k), **extra)
    raise UsageError(f"--fold {text!r}", hint="use keep-last:K (e.g. keep-last:3), summarise or off")


@dataclass
class Entry:
    """One turn after the session's head, as the model now sees it."""

    step: int
    part: str  # "prompt", "raw" (assistant turn), "result" (tool response) or "summary"
    text: str
    tool: str = ""
    level: int = 0  # digest level (see digest.py)
    original: str = ""  # the text first shown, for digests
    images: tuple[Path, ...] = ()  # crops shown with a zoom result

    def turn(self) -> Turn:
        if self.part == "raw":
            return Turn("assistant", self.text)
        if self.part == "result":
            images = [ImageInput(id=f"zoom_{i}", path=p) for i, p in enumerate(self.images)]
            return Turn("user", prompt.tool_response(self.text), images)
        return Turn("user", self.text)


def entries_of_step(step: Event, result: Event | None) -> list[Entry]:
    """The turns one recorded step added: its prompt, the assistant turn, the tool response."""
    n = int(step["n"])
    out = [Entry(n, "prompt", step["prompt"])] if step.get("prompt") else []
    out.append(Entry(n, "raw", step["raw"], original=step["raw"]))
    if result is not None:
        out.append(_result_entry(n, result))
    return out


def _result_entry(n: int, result: Event) -> Entry:
    tool = str(result.get("tool") or "")
    images = tuple(Path(d["path"]) for d in result.get("data") or []
                   if tool == "zoom" and d.get("type") == "crop" and d.get("path"))
    return Entry(n, "result", result["content"], tool, original=result["content"], images=images)


def apply(entries: list[Entry], fold: Event) -> tuple[list[Entry], int]:
    """The conversation after a recorded fold, and the index of its first changed entry."""
    out = list(entries)
    first = len(out)
    summary = fold.get("summary")
    if summary:
        upto = int(summary["upto"])
        kept = [e for e in out if e.part != "summary" and e.step > upto]
        out = [Entry(upto, "summary", summary["text"])] + kept
        first = 0
    index = {(e.step, e.part): i for i, e in enumerate(out)}
    for edit in fold.get("edits") or []:
        i = index.get((int(edit["step"]), edit["part"]))
        if i is None:
            continue  # checked by `replay --check`; a resume shows what it can
        out[i] = dataclasses.replace(out[i], text=edit["text"], level=int(edit.get("level", 1)), images=())
        first = min(first, i)
    return out, first


def rebuild(steps: Iterable[tuple[Event, Event | None]], folds: Sequence[Event]) -> list[Entry]:
    """What the model saw after the last recorded step: the steps with their folds applied."""
    entries: list[Entry] = []
    pending = sorted(folds, key=lambda f: int(f.get("step", 0)))
    for step, result in steps:
        entries += entries_of_step(step, result)
        while pending and int(pending[0].get("step", 0)) <= int(step["n"]):
            entries, _ = apply(entries, pending.pop(0))
    return entries


class Folder:
    """Follows a live session's events and folds its context when it runs out of room."""

    def __init__(self, policy: FoldPolicy, entries: list[Entry] | None = None, head_tokens: int | None = None) -> None:
        self.policy = policy
        self.entries: list[Entry] = list(entries or [])
        self.head_tokens = head_tokens  # tokens of the untouchable head (system prompt, question)
        self._call_step: dict[str, int] = {}
        self._recorded = {int(f.get("step", 0)): f for f in policy.recorded}
        self.folds = 0

    def watch(self, emit: Emit) -> Emit:
        """`emit`, also recording each turn the loop adds."""
        def watched(ev: Event) -> None:
            self.observe(ev)
            emit(ev)
        return watched

    def observe(self, ev: Event) -> None:
        kind = ev.get("type")
        if kind == "step":
            self.entries += entries_of_step(ev, None)
        elif kind == "call":
            self._call_step[str(ev.get("id"))] = int(ev.get("step", 0))
        elif kind == "result":
            n = self._call_step.get(str(ev.get("id")))
            if n is not None:
                self.entries.append(_result_entry(n, ev))

    # --- deciding and folding ------------------------------------------------------

    def maybe_fold(self, model: ModelSession, step: int, emit: Emit, reserve: int) -> float:
        """Fold if the context needs it; return the model time spent (ms)."""
        if self.head_tokens is None and not self.entries:
            self.head_tokens = model.n_tokens
        if self.policy.recorded:
            fold = self._recorded.pop(step, None)
            return self._fold(model, step, emit, fold, time.perf_counter()) if fold else 0.0
        n_ctx, used = model.n_ctx, model.n_tokens
        if used <= self.policy.at * n_ctx and n_ctx - used >= reserve + ROOM_MARGIN:
            return 0.0
        if not any(e.part in ("raw", "result") and e.level == 0 for e in self.entries[:-1]):
            return 0.0  # nothing left to fold: the loop's own context checks take over
        t0 = time.perf_counter()
        target = int(self.policy.to * n_ctx)
        if self.policy.strategy == "summarise":
            fold = self._summarise(model, step)
        else:
            fold = self._keep_last(model, used - target)
        return self._fold(model, step, emit, fold, t0) if fold else 0.0

    def _fold(self, model: ModelSession, step: int, emit: Emit, fold: dict[str, Any], t0: float) -> float:
        before = model.n_tokens
        entries, first = apply(self.entries, fold)
        evaluated = 0
        if first < len(entries):
            model.rewind(1 + first)  # turn 0 is the head: system prompt and question
            start = model.n_tokens
            for entry in entries[first:]:
                model.append(entry.turn())
            evaluated = model.n_tokens - start
        self.entries = entries
        self.folds += 1
        ms = (time.perf_counter() - t0) * 1000
        emit(event("fold", step=step, strategy=fold.get("strategy") or self.policy.name, edits=fold.get("edits") or [],
                   **({"summary": fold["summary"]} if fold.get("summary") else {}),
                   tokens={"before": before, "after": model.n_tokens, "evaluated": evaluated,
                           **({"summary": fold["summary_tokens"]} if "summary_tokens" in fold else {})},
                   turn=first + 1, ms=round(ms, 1)))
        return ms

    def _keep_last(self, model: ModelSession, excess: int) -> dict[str, Any] | None:
        """Edits, oldest first, until about `excess` tokens are saved."""
        per_char = _tokens_per_char(model.n_tokens - (self.head_tokens or 0), self.entries)
        work = {i: (e.level, e.text) for i, e in enumerate(self.entries)}
        results = [i for i, e in enumerate(self.entries) if e.part == "result"]
        keep = self.policy.keep
        old, recent = (results[:-keep], results[-keep:]) if keep else (results, [])
        newest = {results[-1]} if results else set()
        first_recent_step = self.entries[recent[0]].step if recent else step_after(self.entries)
        old_raws = [i for i, e in enumerate(self.entries) if e.part == "raw" and e.step < first_recent_step]
        plan = ([(i, digest.BRIEF) for i in old] + [(i, digest.STUB) for i in old] + [(i, 1) for i in old_raws]
                + [(i, lvl) for lvl in (digest.BRIEF, digest.STUB) for i in recent if i not in newest]
                + [(i, digest.BRIEF) for i in newest])
        saved = 0.0
        for i, level in plan:
            if saved >= excess:
                break
            e = self.entries[i]
            if work[i][0] >= level:
                continue
            text = (digest.drop_thought(e.original or e.text) if e.part == "raw"
                    else digest.result_text(e.original or e.text, level, e.step, e.tool))
            saved += (len(work[i][1]) - len(text)) * per_char
            work[i] = (level, text)
        edits = [{"step": e.step, "part": e.part, "level": work[i][0], "text": work[i][1]}
                 for i, e in enumerate(self.entries) if work[i][0] != e.level]
        return {"edits": edits} if edits else None

    def _summarise(self, model: ModelSession, step: int) -> dict[str, Any] | None:
        """The model's own research-state summary replaces every step but the last."""
        if len(self.entries) < 2:
            return None
        tail = [e for e in self.entries if e.step == self.entries[-1].step and e.part != "summary"]
        upto = tail[0].step - 1
        if upto < 1:
            return None
        model.append(Turn("user", prompt.SUMMARY_REQUEST))
        params = SamplingParams(temperature=0.0, max_tokens=SUMMARY_TOKENS)
        result = model.generate(params, stop=(prompt.SUMMARY_STOP,))
        text = result.text.split("<summary>")[-1].strip()
        if not text:  # a model that writes nothing still gets its sources back
            text = "\n".join(digest.stub(e.original or e.text, e.step, e.tool)
                             for e in self.entries if e.part == "result" and e.step <= upto)
        return {"summary": {"upto": upto, "text": prompt.summary_turn(text)},
                "summary_tokens": result.prompt_tokens + result.completion_tokens}


def step_after(entries: list[Entry]) -> int:
    return (entries[-1].step + 1) if entries else 1


def _tokens_per_char(tokens: int, entries: list[Entry]) -> float:
    """This model's tokens per character of this conversation (to estimate what a digest saves)."""
    chars = sum(len(e.text) for e in entries)
    return max(0.05, min(1.0, tokens / chars)) if chars and tokens > 0 else 0.3


def fold_events(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.get("type") == "fold"]

