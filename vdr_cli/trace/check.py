"""`vdr replay --check`: a trace against the shipped schemas, and against itself.

The schema says each line is a well-formed event; the consistency rules say
the events make one session: one header, first; steps numbered 1..n in
order; every call made at a recorded step and answered at most once, by a
result from the same tool; an answer at a recorded step; a fold after a
recorded step, changing only turns recorded before it; one `end`, last.
Every finding names its line, so `FILE:LINE: message` leads straight to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.trace.jsonl import LineError
from vdr_cli.trace.schema import validate_event


@dataclass
class Finding:
    """One problem, at one line."""

    lineno: int
    message: str

    def format(self, source: str) -> str:
        return f"{source}:{self.lineno}: {self.message}"


@dataclass
class CheckReport:
    events: int = 0
    problems: list[Finding] = field(default_factory=list)
    complete: bool = False  # an `end` event was found
    last_line: int = 0
    torn_line: int | None = None  # a half-written last line, let through as incomplete

    @property
    def ok(self) -> bool:
        return not self.problems


class _Consistency:
    """The cross-line rules, fed one event at a time (a trace can be long)."""

    def __init__(self) -> None:
        self.first_line: int | None = None
        self.header_line: int | None = None
        self.steps: dict[int, int] = {}  # step n -> line
        self.next_step = 1
        self.calls: dict[str, tuple[str, int]] = {}  # call id -> (tool, line)
        self.results: dict[str, int] = {}  # call id -> line of its result
        self.call_steps: dict[str, int] = {}  # call id -> its step
        self.result_steps: set[int] = set()  # steps whose tool response the model saw
        self.end_line: int | None = None

    def feed(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        kind = ev.get("type")
        problems: list[str] = []
        if self.end_line is not None and kind != "end":
            problems.append(f"{kind or 'record'} after the end event (line {self.end_line}); end must be last")
        if self.first_line is None:
            self.first_line = lineno
            if kind != "session":
                problems.append(f"the trace must start with a session header, not a {kind!r} event")
        handler = getattr(self, f"_{kind}", None) if isinstance(kind, str) else None
        if handler is not None:
            problems.extend(handler(lineno, ev))
        return problems

    def _session(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        if self.header_line is not None:
            return [f"second session header (the first is on line {self.header_line})"]
        self.header_line = lineno
        if self.first_line != lineno:
            return [f"the session header must be the first event (line {self.first_line} comes before it)"]
        return []

    def _step(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        n = ev.get("n")
        if not _is_int(n):
            return []  # the schema already says so
        problems = []
        if n in self.steps:
            problems.append(f"step {n} repeated (first on line {self.steps[n]})")
        elif n != self.next_step:
            problems.append(f"step {n} out of order: expected step {self.next_step}")
        self.steps.setdefault(n, lineno)
        self.next_step = max(self.next_step, n + 1)
        return problems

    def _call(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        call_id, step, tool = ev.get("id"), ev.get("step"), ev.get("tool")
        problems = []
        if _is_int(step) and step not in self.steps:
            problems.append(f"call {call_id} refers to step {step}, which is not recorded before it")
        if isinstance(call_id, str):
            if call_id in self.calls:
                problems.append(f"call id {call_id} repeated (first on line {self.calls[call_id][1]})")
            else:
                self.calls[call_id] = (str(tool), lineno)
                if _is_int(step):
                    self.call_steps[call_id] = step
        return problems

    def _result(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        call_id, tool = ev.get("id"), ev.get("tool")
        if not isinstance(call_id, str):
            return []
        if call_id not in self.calls:
            return [f"result {call_id} answers no earlier call"]
        problems = []
        called, call_line = self.calls[call_id]
        if isinstance(tool, str) and tool != called:
            problems.append(f"result {call_id} is from tool {tool!r} but call {call_id} (line {call_line}) was to {called!r}")
        if call_id in self.results:
            problems.append(f"second result for call {call_id} (the first is on line {self.results[call_id]})")
        else:
            self.results[call_id] = lineno
            if call_id in self.call_steps:
                self.result_steps.add(self.call_steps[call_id])
        return problems

    def _fold(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        step = ev.get("step")
        if not _is_int(step):
            return []
        if step not in self.steps:
            return [f"fold after step {step}, which is not recorded before it"]
        problems = []
        for edit in ev.get("edits") or []:
            n, part = edit.get("step") if isinstance(edit, dict) else None, edit.get("part") if isinstance(edit, dict) else None
            if not _is_int(n):
                continue
            if n > step or n not in self.steps:
                problems.append(f"fold changes step {n}, which was not recorded before the fold (after step {step})")
            elif part == "result" and n not in self.result_steps:
                problems.append(f"fold changes the tool response of step {n}, which has no result before it")
        summary = ev.get("summary")
        if isinstance(summary, dict) and _is_int(summary.get("upto")) and summary["upto"] > step:
            problems.append(f"fold summarises up to step {summary['upto']}, past its own step {step}")
        tokens = ev.get("tokens")
        if isinstance(tokens, dict) and _is_int(tokens.get("before")) and _is_int(tokens.get("after")) \
                and tokens["after"] > tokens["before"]:
            problems.append(f"fold grew the context ({tokens['before']} -> {tokens['after']} tokens)")
        return problems

    def _answer(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        step = ev.get("step")
        if step is None:
            return ["answer names no step"]
        if _is_int(step) and step not in self.steps:
            return [f"answer refers to step {step}, which is not recorded before it"]
        return []

    def _end(self, lineno: int, ev: dict[str, Any]) -> list[str]:
        if self.end_line is not None:
            return [f"second end event (the first is on line {self.end_line})"]
        self.end_line = lineno
        return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_items(items: Iterable[tuple[int, dict[str, Any] | LineError, str]],
                allow_torn_tail: bool = False) -> CheckReport:
    """Check parsed lines (line number, record or LineError, raw text) of one trace.

    With `allow_torn_tail`, an unparsable *last* line is not a problem but makes
    the trace incomplete: a kill during a write leaves exactly that, and resume
    drops it (the design allows it).
    """
    report = CheckReport()
    rules = _Consistency()
    held: Finding | None = None  # a bad line, a problem unless it turns out to be the last
    for lineno, item, _text in items:
        report.last_line = lineno
        if held is not None:
            report.problems.append(held)
            held = None
        if isinstance(item, LineError):
            held = Finding(lineno, item.message)
            continue
        report.events += 1
        kind = item.get("type", "?")
        report.problems.extend(Finding(lineno, f"{kind}: {p}") for p in validate_event(item))
        report.problems.extend(Finding(lineno, p) for p in rules.feed(lineno, item))
    if held is not None:
        if allow_torn_tail and rules.end_line is None:
            report.torn_line = held.lineno
        else:
            report.problems.append(held)
    report.complete = rules.end_line is not None and report.torn_line is None
    return report


def incomplete_finding(report: CheckReport) -> Finding:
    """The finding for a trace with no `end` (an error unless incompleteness is allowed)."""
    return Finding(report.last_line, "incomplete: no end event (the session was cut short, or is still running)")
