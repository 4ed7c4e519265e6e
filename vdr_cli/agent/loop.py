"""The research loop: generate a turn, run its tool, feed the result back.

Everything the loop does is an event passed to `emit` (session, step, call,
result, answer, end), so a trace, a JSONL pipe and a live view all see the
same thing.  The loop owns no I/O of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.agent import prompt
from vdr_cli.agent.fold import Folder, FoldPolicy
from vdr_cli.agent.toolbox import SessionImage, Toolbox, ToolOutcome
from vdr_cli.agent.turns import ParsedTurn, is_repetitive, parse_turn, word_count
from vdr_cli.models.base import ImageInput, ModelSession, SamplingParams, Turn
from vdr_cli.models.errors import ContextFullError, ModelError
from vdr_cli.trace.events import Event, event

Emit = Callable[[Event], None]
# Stop strings only in grammar mode (models not trained on the format). The reference
# sends none: the trained model ends its turn itself, and a turn may hold an answer and
# then a call, or two calls, which the conversation keeps whole.
GRAMMAR_STOPS = ("</tool_call>", "</answer>", "<tool_response>")
MAX_REPEATS = 3  # degenerate turns tolerated before the final-answer request (reference)


@dataclass
class LoopConfig:
    max_steps: int = 50  # model calls, as the reference's MAX_LLM_CALL_PER_RUN
    max_seconds: float | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    constrain: bool = False  # grammar-constrained turns (see grammar.py)
    tools: tuple[str, ...] = ()
    image_ids: tuple[str, ...] = ()
    answer_reserve: int = 1024  # context tokens kept free for the final answer
    fold: FoldPolicy | None = None  # context folding (fold.py); None: the reference's behaviour
    on_token: Callable[[str], None] | None = None
    interrupt: Any = None  # a threading.Event: set, the session ends as on Ctrl-C (parallel batches)


@dataclass
class Outcome:
    reason: str  # an END_REASONS value
    answer: str | None
    steps: int
    stats: dict[str, Any]


class ResearchLoop:
    """Runs one session on a model with a toolbox, emitting every event."""

    def __init__(self, model: ModelSession, toolbox: Toolbox, emit: Emit, config: LoopConfig) -> None:
        self.model = model
        self.toolbox = toolbox
        self.emit = emit
        self.config = config
        self.step_n = 0
        self.calls = 0
        self.tool_counts: dict[str, int] = {}
        self.model_ms = 0.0
        self.tool_ms = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.repeats = 0
        self.final_requested: str | None = None
        self.known_urls: list[str] = []  # URLs results returned: what a constrained visit may name
        self.last_content = ""  # the last turn, cut at <tool_response>: the budget rule reads it
        self.repetitive = False  # the last turn was a repetitive, over-long slip
        self.dropped = False  # ... and the third such: left out of the conversation
        self.t0 = time.perf_counter()
        self.folder = Folder(config.fold) if config.fold else None
        if self.folder is not None:
            self.emit = self.folder.watch(emit)  # the folder keeps the turns the model has seen

    # --- one session -----------------------------------------------------------

    def run(self, system: str, first_user: Turn, pending_prompt: str | None = None) -> Outcome:
        """Start the conversation and loop until an answer or a budget ends it."""
        try:
            self._timed(self.model.start, system, first_user)
        except BaseException as exc:
            self._abort(exc)
            raise
        return self.loop(pending_prompt)

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        # Prompt and image evaluation is model time, not vdr's overhead.
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.model_ms += (time.perf_counter() - t) * 1000

    def loop(self, pending_prompt: str | list[str] | None = None) -> Outcome:
        """Continue from the current context (used by run and by resume).

        Per round, as the reference's loop (deepresearch_agent.py@67af60f, lines 353-560):
        generate; keep the turn cut and stripped; run its call (or send the refused
        call's tool response, or the format error); when the budget is spent, the
        round's own follow-up turn stays and the final-answer request comes after it."""
        pending = [pending_prompt] if isinstance(pending_prompt, str) else list(pending_prompt or [])
        try:
            while True:
                self._check_interrupt()
                if self.final_requested is None:
                    if self.folder is not None:
                        self.model_ms += self.folder.maybe_fold(self.model, self.step_n, self.emit, self.config.answer_reserve)
                    ending = self._budget_exhausted()
                    if ending == "max_steps" and "<answer>" in self.last_content:
                        # Line 536: no final request after a turn that wrote "<answer>".
                        return self._end("max_steps", None)
                    if ending:
                        pending.append(self._request_final(ending))
                for text in pending:
                    self._timed(self.model.append, Turn("user", text))
                parsed, raw = self._step(pending)
                pending = []
                if self.final_requested is not None:
                    answer = parsed.answer if parsed.kind == "answer" else _strip_think(raw)
                    if answer:
                        self.emit(event("answer", text=answer, step=self.step_n))
                    return self._end(self.final_requested, answer or None)
                if parsed.kind == "answer":
                    self.emit(event("answer", text=parsed.answer or "", step=self.step_n))
                    return self._end("answer", parsed.answer)
                if parsed.kind == "call":
                    self._run_tool(parsed)
                elif self.dropped:
                    # Lines 483-491: the third repetitive turn was dropped; the final request follows.
                    self.final_requested = "answer"
                    pending = [prompt.final_answer_request("repetition", self.config.max_steps)]
                else:
                    pending = [follow_up(parsed, self.repetitive)]
        except ContextFullError:
            return self._end("context_full", None)
        except BaseException as exc:
            self._abort(exc)
            raise

    def _abort(self, exc: BaseException) -> None:
        """Every way out writes an `end`: Ctrl-C and a closed stdout are `interrupted`,
        anything else (an HTTP error, a dead server, a bug) is `error`."""
        from vdr_cli.trace.jsonl import PipeClosed

        if isinstance(exc, (KeyboardInterrupt, PipeClosed, BrokenPipeError)):
            reason, extra = "interrupted", ({} if isinstance(exc, KeyboardInterrupt) else {"error": "stdout closed"})
        else:
            reason, extra = "error", {"error": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"}
        try:
            self._end(reason, None, **extra)
        except Exception:  # the trace itself may be what failed; the original error is the one to report
            pass

    # --- pieces --------------------------------------------------------------

    def _budget_exhausted(self) -> str | None:
        if self.step_n >= self.config.max_steps:
            return "max_steps"
        if self.config.max_seconds is not None and time.perf_counter() - self.t0 > self.config.max_seconds:
            return "max_steps"
        room = self.model.n_ctx - self.model.n_tokens
        if room < self.config.answer_reserve + 64:
            return "context_full"
        return None

    def _request_final(self, reason: str) -> str:
        self.final_requested = reason
        kind = {"max_steps": "max_steps", "context_full": "context"}.get(reason, "repetition")
        return prompt.final_answer_request(kind, self.config.max_steps)

    def _step(self, user_prompts: list[str]) -> tuple[ParsedTurn, str]:
        self.step_n += 1
        params = self.config.sampling
        room = self.model.n_ctx - self.model.n_tokens - 8
        if room < params.max_tokens:
            params = _with_max_tokens(params, max(16, room))
        stops = GRAMMAR_STOPS if self.config.constrain else ()
        t = time.perf_counter()
        try:
            result = self.model.generate(params, stop=stops, grammar=self._grammar(), on_token=self.config.on_token,
                                         cancel=self.config.interrupt)
            self._check_interrupt()
        except KeyboardInterrupt:
            # Interrupted mid-generation: no step event is written, so the end's totals count
            # the steps the trace holds, and the model time spent so far.
            self.step_n -= 1
            self.model_ms += (time.perf_counter() - t) * 1000
            raise
        raw = _close_tag(result.text, result.stop, result.finish_reason) if stops else result.text
        self.model_ms += result.ms
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        parsed = parse_turn(raw, lenient=self.config.constrain)
        self.last_content = parsed.content
        self.repetitive = self._repeated(parsed)
        self.dropped = self.repetitive and self.repeats >= MAX_REPEATS and self.final_requested is None
        # The conversation keeps the turn as the reference keeps it: cut at a hallucinated
        # <tool_response>, stripped (lines 397-407), or not at all (a third repetitive turn).
        if result.finish_reason != "context_full":  # (then the session ends here)
            # Grammar mode (not the trained format) keeps the model's own tokens of the same text.
            self._timed(self.model.amend_last, None if self.dropped else parsed.history, not self.config.constrain)
        fields: dict[str, Any] = {"n": self.step_n, "step": self.step_n, "think": parsed.think, "raw": raw,
                                  "tokens": {"prompt_eval": result.prompt_tokens, "completion": result.completion_tokens},
                                  "ms": round(result.ms, 1), "finish": result.finish_reason}
        if user_prompts:
            # Corrective, refused-call and final-answer turns sent before this step: resume needs them.
            fields["prompt"] = user_prompts[-1]
            fields["prompts"] = list(user_prompts)
        if parsed.kind in ("invalid", "call_error"):
            fields["error"] = parsed.error
        if self.dropped:
            fields["dropped"] = True  # not in the conversation: resume leaves it out
        self.emit(event("step", **fields))
        if result.finish_reason == "context_full":
            raise ContextFullError("context window is full")
        return parsed, raw

    def _grammar(self) -> str | None:
        if not self.config.constrain:
            return None
        from vdr_cli.agent.grammar import answer_grammar, think_chars, turn_grammar

        room = think_chars(self.config.sampling.max_tokens)
        if self.final_requested is not None:
            return answer_grammar(room)
        return turn_grammar(self.config.tools, urls=self.known_urls, image_ids=self.config.image_ids, max_think=room)

    def _learn_urls(self, data: list[dict[str, Any]]) -> None:
        for item in data:
            url = item.get("url") if item.get("type") in ("hit", "page") else None
            if isinstance(url, str) and url.startswith(("http://", "https://")) and url not in self.known_urls:
                self.known_urls.append(url)

    def _run_tool(self, parsed: ParsedTurn) -> None:
        call_id = f"c{self.step_n}"
        tool = parsed.tool or ""
        self.emit(event("call", id=call_id, step=self.step_n, tool=tool, args=parsed.args))
        self.calls += 1
        self.tool_counts[tool] = self.tool_counts.get(tool, 0) + 1
        t = time.perf_counter()
        try:
            outcome = asyncio.run(self._interruptible(self.toolbox.call(tool, parsed.args)))
        except KeyboardInterrupt:
            self.tool_ms += (time.perf_counter() - t) * 1000  # the end's totals include the cut-short tool
            raise
        except ModelError:
            raise
        except Exception as exc:  # a tool bug must not end the session: the model is told (line 626)
            outcome = ToolOutcome(content=prompt.tool_error(tool, exc), ok=False, error=f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t) * 1000
        self.tool_ms += ms
        self.emit(event("result", id=call_id, step=self.step_n, tool=tool, ok=outcome.ok, content=outcome.content, data=outcome.data,
                        error=outcome.error, ms=round(ms, 1), cached=outcome.cached))
        self._learn_urls(outcome.data)
        if self.folder is not None:  # room for the response first: folding beats truncating it
            self.model_ms += self.folder.maybe_fold(self.model, self.step_n, self.emit, self.config.answer_reserve,
                                                    incoming=len(outcome.content))
        self._append_tool_response(outcome)

    def _check_interrupt(self) -> None:
        if self.config.interrupt is not None and self.config.interrupt.is_set():
            raise KeyboardInterrupt

    async def _interruptible(self, call: Any) -> Any:
        """Await a tool call; a set `interrupt` cancels it (the session then ends as on Ctrl-C)."""
        if self.config.interrupt is None:
            return await call
        task = asyncio.ensure_future(call)
        while not task.done():
            await asyncio.wait({task}, timeout=0.05)
            if self.config.interrupt.is_set() and not task.done():
                task.cancel()
                raise KeyboardInterrupt
        return task.result()

    def _append_tool_response(self, outcome: ToolOutcome) -> None:
        text = prompt.tool_response(outcome.content)
        images = [ImageInput(id=f"zoom_{i}", path=p) for i, p in enumerate(outcome.images)]
        try:
            self._timed(self.model.append, Turn("user", text, images))
        except ContextFullError:
            # Too big to fit: keep what fits, say so, and leave room for the answer.
            room_chars = max(0, (self.model.n_ctx - self.model.n_tokens - self.config.answer_reserve - 256) * 3)
            if room_chars < 200:
                raise
            cut = prompt.tool_response(outcome.content[:room_chars] + "\n[... truncated: context window full]")
            self._timed(self.model.append, Turn("user", cut))

    def _repeated(self, parsed: ParsedTurn) -> bool:
        """Count a repetitive, over-long slip (lines 477-481); the count never resets."""
        if parsed.kind == "invalid" and is_repetitive(parsed.content) and word_count(parsed.content) > 2500:
            self.repeats += 1
            return True
        return False

    def _end(self, reason: str, answer: str | None, **extra: Any) -> Outcome:
        total_ms = (time.perf_counter() - self.t0) * 1000
        stats = {
            "steps": self.step_n,
            "calls": self.calls,
            "tools": dict(self.tool_counts),
            "tokens": {"prompt_eval": self.prompt_tokens, "completion": self.completion_tokens,
                       "context": self.model.n_tokens, "ctx": self.model.n_ctx},
            "ms": {"total": round(total_ms, 1), "model": round(self.model_ms, 1), "tools": round(self.tool_ms, 1),
                   "vdr": round(max(0.0, total_ms - self.model_ms - self.tool_ms), 1)},
        }
        if self.folder is not None:
            stats["folds"] = self.folder.folds
        try:
            stats["model"] = self.model.stats.as_dict()
        except Exception:  # stats are informative; never fail the ending over them
            pass
        self.emit(event("end", reason=reason, stats=stats, **extra))
        return Outcome(reason=reason, answer=answer, steps=self.step_n, stats=stats)


def follow_up(parsed: ParsedTurn, repetitive: bool = False) -> str:
    """The user turn the reference sends after a turn that ran no tool: a refused call's
    tool response (lines 436-458), the repetition error (line 514) or the format error (line 525)."""
    if parsed.kind == "call_error":
        return prompt.tool_response(parsed.result or "")
    if repetitive:
        return prompt.REPETITION_ERROR
    return prompt.FORMAT_ERROR


def _close_tag(text: str, stop: str | None, finish: str) -> str:
    """Put back the closing tag that ended generation as a stop string.

    Backends leave the stop string out; HTTP servers do not even say which one
    matched, so a turn that stopped inside an open `<tool_call>` or `<answer>`
    gets its closing tag back.
    """
    if stop in ("</tool_call>", "</answer>"):
        return text if text.endswith(stop) else text + stop
    if finish != "stop" or stop == "<tool_response>":
        return text
    for tag in ("tool_call", "answer"):
        if text.rfind(f"<{tag}>") > text.rfind(f"</{tag}>"):
            return text + f"</{tag}>"
    return text


def _with_max_tokens(params: SamplingParams, n: int) -> SamplingParams:
    import dataclasses

    return dataclasses.replace(params, max_tokens=n)


def _strip_think(raw: str) -> str:
    import re

    return re.sub(r"<think>.*?(</think>|$)", "", raw, flags=re.S).replace("<answer>", "").replace("</answer>", "").strip()
