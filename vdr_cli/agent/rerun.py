"""Re-running and forking recorded sessions.

`rerun`: the recorded model turns are played back by the scripted backend
while the tools run again (cache first), and every result is compared with
the recording.  With a live model the whole session runs again and the
answers are compared.  `fork`: the context up to step N is rebuilt from the
trace and a live model continues into a new trace that names its parent.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any, Callable

from vdr_cli.agent.fold import FoldPolicy
from vdr_cli.agent.loop import LoopConfig
from vdr_cli.agent.session import kept_events, read_trace, resume_session, run_session, spec_from_header
from vdr_cli.agent.toolbox import Toolbox
from vdr_cli.trace.events import Event, now_iso

Emit = Callable[[Event], None]


def _recorded_results(events: list[Event]) -> list[Event]:
    return [e for e in events if e.get("type") == "result"]


def _answer(events: list[Event]) -> str | None:
    answers = [e.get("text") for e in events if e.get("type") == "answer"]
    return answers[-1] if answers else None


def compare(old: list[Event], new: list[Event]) -> list[dict[str, Any]]:
    """Per call, in order: did the tool's result change?"""
    rows = []
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else None
        b = new[i] if i < len(new) else None
        rows.append({
            "type": "rerun",
            "id": (b or a or {}).get("id"),
            "tool": (b or a or {}).get("tool"),
            "changed": a is None or b is None or a.get("content") != b.get("content"),
            "was_ok": a.get("ok") if a else None,
            "now_ok": b.get("ok") if b else None,
            "cached": b.get("cached") if b else None,
            "ms": b.get("ms") if b else None,
        })
    return rows


def rerun(events: list[Event], make_toolbox: Callable[[list], Toolbox], config: LoopConfig,
          live_model: Any | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the session again; returns per-call rows and a summary record."""
    from vdr_cli.models.scripted import ScriptedSession

    recorded = read_trace(events)
    spec = spec_from_header(recorded.header)
    if live_model is None:
        turns = [step["raw"] for step, _ in recorded.steps]
        model = ScriptedSession(turns, name="recorded", n_ctx=int((spec.model or {}).get("ctx") or 32768))
        # Recorded turns were written after the recorded folds: the same folds, at the same steps.
        config = dataclasses.replace(config, fold=FoldPolicy("recorded", recorded=tuple(recorded.folds))
                                     if recorded.folds else None)
    else:
        model = live_model
    spec = dataclasses.replace(spec, id=uuid.uuid4().hex[:12])
    new_events: list[Event] = []
    try:
        outcome = run_session(spec, model, make_toolbox(spec.images), new_events.append, config)
    finally:
        if live_model is None:
            model.close()
    rows = compare(_recorded_results(events), _recorded_results(new_events))
    old_answer, new_answer = _answer(events), outcome.answer
    summary = {"type": "rerun_summary", "calls": len(rows), "changed": sum(r["changed"] for r in rows),
               "answer_was": old_answer, "answer_now": new_answer if live_model is not None else None,
               "answer_changed": (old_answer != new_answer) if live_model is not None else None,
               "model": "live" if live_model is not None else "recorded", "reason": outcome.reason}
    return rows, summary


def fork_header(header: Event, parent_path: Path, step: int) -> Event:
    return {**header, "id": uuid.uuid4().hex[:12], "ts": now_iso(),
            "parent": {"id": header.get("id"), "trace": str(parent_path), "step": step}}


def fork(events: list[Event], parent_path: Path, step: int, model: Any, make_toolbox: Callable[[list], Toolbox],
         config: LoopConfig, emit: Emit) -> Any:
    """Continue the session from step `step` with `model`; `emit` gets the kept prefix first."""
    recorded = read_trace(events)
    n_steps = len(recorded.steps)
    if step < 0 or step > n_steps:
        from vdr_cli.errors import UsageError

        raise UsageError(f"--from-step {step}: the trace has {n_steps} complete steps (0 to {n_steps})")
    keep = kept_events(events, step)
    keep[0] = fork_header(keep[0], parent_path, step)
    for ev in keep:
        emit(ev)
    spec = spec_from_header(recorded.header)
    return resume_session(recorded, model, make_toolbox(spec.images), emit, config, upto_step=step)
