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
INDEX_ITEMS = 12  # queries and URLs an index turn keeps (the newest)
SUMMARY_TOKENS = 512  # longest research-state summary under `summarise`
ROOM_MARGIN = 768  # a fold also starts when less than this (plus the answer reserve) is free


@dataclass(frozen=True)
class FoldPolicy:
    """When and how to fold; ``recorded`` replays a trace's folds instead of deciding."""

    strategy: str = "keep-last"
    keep: int = 3
    at: float = 0.8  # fold once the context would pass this fraction of the window
    to: float = 0.2  # ... down to this fraction: the gap is what keeps re-evaluation low (bench/fold_capacity.py)
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
    extra = {} if at is None else {"at": at, "to": min(0.2, at * 0.25)}
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
    """The turns one recorded step added: its prompts, the assistant turn as the conversation
    keeps it (cut and stripped, or not at all when dropped), the tool response."""
    from vdr_cli.agent.turns import parse_turn

    n = int(step["n"])
    prompts = step.get("prompts") or ([step["prompt"]] if step.get("prompt") else [])
    out = [Entry(n, "prompt", text) for text in prompts]
    if not step.get("dropped"):
        kept = parse_turn(step["raw"]).history
        out.append(Entry(n, "raw", kept, original=kept))
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
        self._recorded: dict[int, list[Event]] = {}
        for f in policy.recorded:
            self._recorded.setdefault(int(f.get("step", 0)), []).append(f)
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

    def maybe_fold(self, model: ModelSession, step: int, emit: Emit, reserve: int, incoming: int = 0) -> float:
        """Fold if the context needs it; return the model time spent (ms).

        ``incoming``: characters of a tool response about to be appended (its entry is
        the last one, not in the model yet): room is made for it first.
        """
        if self.head_tokens is None and not self.entries:
            self.head_tokens = model.n_tokens
        if self.policy.recorded:
            if incoming:
                return 0.0  # recorded folds are replayed between steps, where the view is the same
            t0, ms = time.perf_counter(), 0.0
            for fold in self._recorded.pop(step, []):
                ms += self._fold(model, step, emit, fold, t0, 0)
            return ms
        pending = 1 if incoming else 0
        body = self.entries[:len(self.entries) - pending]
        per_char = _tokens_per_char(model.n_tokens - (self.head_tokens or 0), body)
        n_ctx, used = model.n_ctx, model.n_tokens + int(incoming * per_char)
        if used <= self.policy.at * n_ctx and n_ctx - used >= reserve + ROOM_MARGIN:
            return 0.0
        if not any(e.part in ("raw", "result") and e.level == 0 for e in body[:-1]):
            return 0.0  # nothing left to fold: the loop's own context checks take over
        t0 = time.perf_counter()
        if self.policy.strategy == "summarise":
            fold = self._summarise(model, body)
        else:
            fold = self._keep_last(body, used - int(self.policy.to * n_ctx), per_char)
        return self._fold(model, step, emit, fold, t0, pending) if fold else 0.0

    def _fold(self, model: ModelSession, step: int, emit: Emit, fold: dict[str, Any], t0: float, pending: int) -> float:
        before = model.n_tokens
        entries, first = apply(self.entries, fold)
        evaluated = 0
        if first < len(entries) - pending:
            model.rewind(1 + first)  # turn 0 is the head: system prompt and question
            start = model.n_tokens
            for entry in entries[first:len(entries) - pending]:
                model.append(entry.turn())
            evaluated = model.n_tokens - start
        self.entries = entries
        self.folds += 1
        ms = (time.perf_counter() - t0) * 1000
        tokens = {"before": before, "after": model.n_tokens, "evaluated": evaluated}
        if "summary_tokens" in fold:
            tokens["summary"] = fold["summary_tokens"]
        emit(event("fold", step=step, strategy=fold.get("strategy") or self.policy.name, edits=fold.get("edits") or [],
                   **({"summary": fold["summary"]} if fold.get("summary") else {}),
                   tokens=tokens, turn=first + 1, ms=round(ms, 1)))
        return ms

    def _keep_last(self, body: list[Entry], excess: int, per_char: float) -> dict[str, Any] | None:
        """Edits, oldest first, until about `excess` tokens are saved."""
        work = {i: (e.level, e.text) for i, e in enumerate(body)}
        results = [i for i, e in enumerate(body) if e.part == "result"]
        keep = self.policy.keep
        old, recent = (results[:-keep], results[-keep:]) if keep else (results, [])
        newest = {results[-1]} if results else set()
        first_recent_step = body[recent[0]].step if recent else body[-1].step + 1
        old_raws = [i for i, e in enumerate(body) if e.part == "raw" and e.step < first_recent_step]
        plan = ([(i, digest.BRIEF) for i in old] + [(i, digest.STUB) for i in old] + [(i, 1) for i in old_raws]
                + [(i, lvl) for lvl in (digest.BRIEF, digest.STUB) for i in recent if i not in newest]
                + [(i, digest.BRIEF) for i in newest])
        saved = 0.0
        for i, level in plan:
            if saved >= excess:
                break
            e = body[i]
            if work[i][0] >= level:
                continue
            text = (digest.drop_thought(e.original or e.text) if e.part == "raw"
                    else digest.result_text(e.original or e.text, level, e.step, e.tool))
            saved += (len(work[i][1]) - len(text)) * per_char
            work[i] = (level, text)
        fold: dict[str, Any] = {}
        index = self._index(body, work, excess - saved, per_char) if saved < excess else None
        if index is not None:  # even stubs are too many: the oldest steps go into one index turn
            fold["summary"] = index
        upto = index["upto"] if index else 0
        fold["edits"] = [{"step": e.step, "part": e.part, "level": work[i][0], "text": work[i][1]}
                         for i, e in enumerate(body) if work[i][0] != e.level and e.step > upto]
        return fold if fold["edits"] or fold.get("summary") else None

    def _index(self, body: list[Entry], work: dict[int, tuple[int, str]], excess: float,
               per_char: float) -> dict[str, Any] | None:
        """Steps 1..upto (as few as cover `excess`, never the last) as one line of what was searched and read."""
        from vdr_cli.agent.turns import parse_turn

        last = body[-1].step
        queries: list[str] = []
        urls: list[str] = []
        saved, upto = 0.0, 0
        for i, e in enumerate(body):
            if e.step >= last or (saved >= excess and e.step > upto):
                break
            upto = e.step
            saved += len(work[i][1]) * per_char
            if e.part == "summary":
                urls += digest.urls_in(e.text)
            elif e.part == "raw":
                parsed = parse_turn(e.original or e.text)
                queries += [q for q in _strings(parsed.args.get("query")) if q not in queries]
                urls += [u for u in _strings(parsed.args.get("url")) if u not in urls]
        if upto < 1:
            return None
        return {"upto": upto, "text": prompt.folded_index(upto, queries[-INDEX_ITEMS:], list(dict.fromkeys(urls))[-INDEX_ITEMS:])}

    def _summarise(self, model: ModelSession, body: list[Entry]) -> dict[str, Any] | None:
        """The model's own research-state summary replaces every step but the last."""
        last = body[-1].step if body else 0
        upto = last - 1
        if upto < 1 or not any(e.step <= upto and e.part != "summary" for e in body):
            return None
        model.append(Turn("user", prompt.SUMMARY_REQUEST))
        params = SamplingParams(temperature=0.0, max_tokens=SUMMARY_TOKENS)
        result = model.generate(params, stop=(prompt.SUMMARY_STOP,))
        text = result.text.split("<summary>")[-1].strip()
        if not text:  # a model that writes nothing still gets its sources back
            text = "\n".join(digest.stub(e.original or e.text, e.step, e.tool)
                             for e in body if e.part == "result" and e.step <= upto)
        return {"summary": {"upto": upto, "text": prompt.summary_turn(text)},
                "summary_tokens": result.prompt_tokens + result.completion_tokens}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _tokens_per_char(tokens: int, entries: list[Entry]) -> float:
    """This model's tokens per character of this conversation (to estimate what a digest saves)."""
    chars = sum(len(e.text) for e in entries)
    return max(0.05, min(1.0, tokens / chars)) if chars and tokens > 0 else 0.3
