"""A research session: its header event, its images, a fresh run or a resume.

Resume rebuilds the model's context from a trace (no tool is re-executed):
the session header gives the system prompt and first turn, each `step`'s
`raw` is the assistant turn, each `result`'s `content` the tool response,
a step's `prompt` the corrective or final-answer message before it, and each
`fold` what replaced older turns (fold.rebuild): the model sees what it saw.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdr_cli import __version__
from vdr_cli.agent import prompt
from vdr_cli.agent.fold import rebuild
from vdr_cli.agent.loop import Emit, LoopConfig, Outcome, ResearchLoop
from vdr_cli.agent.toolbox import SessionImage, Toolbox
from vdr_cli.errors import InputError
from vdr_cli.models.base import IMAGE_MARKER, ImageInput, ModelSession, Turn
from vdr_cli.models.errors import NoVisionError
from vdr_cli.trace.events import SCHEMA_VERSION, Event, event, now_iso

DEFAULT_TOOLS = ("search", "crop_and_search", "visit")


def load_images(paths: Iterable[str | Path], max_pixels: int = 200_000_000) -> list[SessionImage]:
    """Check each image (one-line errors for bad ones) and name them image_1, image_2, …"""
    from vdr_cli.tools.images import open_source, read_bytes

    out = []
    for i, path in enumerate(paths, start=1):
        path = Path(path)
        source = open_source(read_bytes(str(path)), str(path), max_pixels)
        out.append(SessionImage(id=f"image_{i}", path=path.resolve(), sha256=source.sha256,
                                width=source.width, height=source.height))
    return out


@dataclass
class SessionSpec:
    question: str
    images: list[SessionImage]
    tools: list[str] = field(default_factory=lambda: list(DEFAULT_TOOLS))
    date: str = field(default_factory=lambda: _dt.date.today().isoformat())
    model: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    parent: dict[str, Any] | None = None

    def system_prompt(self) -> str:
        return prompt.system_prompt(self.tools, self.date, with_images=bool(self.images))

    def first_turn(self) -> Turn:
        """The question, then the images (the reference eval's content order)."""
        text = prompt.first_user_text(self.question, [img.id for img in self.images])
        if not prompt.IMAGES_FIRST:
            text += IMAGE_MARKER * len(self.images)
        return Turn("user", text, [ImageInput(id=img.id, path=img.path) for img in self.images])

    def header(self) -> Event:
        return event("session", v=SCHEMA_VERSION, id=self.id, ts=now_iso(), question=self.question,
                     images=[img.to_dict() for img in self.images], model=self.model, tools=self.tools,
                     date=self.date, vdr=__version__, **({"parent": self.parent} if self.parent else {}))


def run_session(spec: SessionSpec, model: ModelSession, toolbox: Toolbox, emit: Emit, config: LoopConfig) -> Outcome:
    if spec.images and not model.info.has_vision:
        raise NoVisionError(f"model {model.info.name} has no vision projector; it cannot read {spec.images[0].path}"
                            " (give --mmproj, or ask without an image)")
    emit(spec.header())
    return ResearchLoop(model, toolbox, emit, config).run(spec.system_prompt(), spec.first_turn())


@dataclass
class Recorded:
    """What a trace holds, grouped for replaying into a model."""

    header: Event
    steps: list[tuple[Event, Event | None]]  # (step, its result if it made a call)
    ended: Event | None
    answered: bool
    folds: list[Event] = field(default_factory=list)  # in trace order


def read_trace(events: Iterable[Event], source: str = "trace") -> Recorded:
    header = None
    steps: list[tuple[Event, Event | None]] = []
    results: dict[str, Event] = {}
    calls: dict[int, str] = {}
    ended = None
    answered = False
    folds: list[Event] = []
    from vdr_cli.trace.schema import validate_event

    for i, ev in enumerate(events, start=1):
        kind = ev.get("type")
        if kind in ("session", "step", "call", "result", "fold", "end"):
            # A malformed trace is bad input: name the record, never a KeyError.
            problems = validate_event(ev)
            if problems:
                raise InputError(f"{source}: record {i} ({kind}): {problems[0]}",
                                 hint="`vdr replay --check` lists every problem")
        if kind == "session":
            if header is not None:
                raise InputError(f"{source}: more than one session header")
            header = ev
        elif kind == "step":
            steps.append((ev, None))
        elif kind == "call":
            calls[int(ev.get("step", 0))] = str(ev.get("id"))
        elif kind == "result":
            results[str(ev.get("id"))] = ev
        elif kind == "answer":
            answered = True
        elif kind == "fold":
            folds.append(ev)
        elif kind == "end":
            ended = ev
    if header is None:
        raise InputError(f"{source}: no session header (is this a vdr trace?)")
    paired = []
    for step, _ in steps:
        call_id = calls.get(int(step["n"]))
        result = results.get(call_id) if call_id else None
        if call_id and result is None:
            break  # the call never got its result: resume re-generates from that step
        paired.append((step, result))
    return Recorded(header=header, steps=paired, ended=ended, answered=answered, folds=folds)


def spec_from_header(header: Event) -> SessionSpec:
    images = []
    for img in header.get("images") or []:
        path = Path(img.get("path", ""))
        if not path.is_file():
            raise InputError(f"{path}: image of the session is missing; resume needs it")
        images.append(SessionImage(id=img["id"], path=path, sha256=img.get("sha256", ""),
                                   width=int(img.get("width", 0)), height=int(img.get("height", 0))))
    return SessionSpec(question=header["question"], images=images, tools=list(header.get("tools") or DEFAULT_TOOLS),
                       date=str(header.get("date") or _dt.date.today().isoformat()), model=dict(header.get("model") or {}),
                       id=str(header["id"]))


def resume_session(recorded: Recorded, model: ModelSession, toolbox: Toolbox, emit: Emit, config: LoopConfig,
                   upto_step: int | None = None) -> Outcome:
    """Rebuild the context from recorded turns (tools not re-run), then continue live.

    The caller has already copied the recorded events it keeps into the new
    trace; `emit` receives only what happens from here on.
    """
    from vdr_cli.agent.loop import follow_up
    from vdr_cli.agent.turns import parse_turn

    spec = spec_from_header(recorded.header)
    loop = ResearchLoop(model, toolbox, emit, config)
    steps = [(s, r) for s, r in recorded.steps if upto_step is None or int(s["n"]) <= upto_step]
    done = {int(s["n"]) for s, _ in steps}
    entries = rebuild(steps, [f for f in recorded.folds if int(f.get("step", 0)) in done])
    model.start(spec.system_prompt(), spec.first_turn())
    head = model.n_tokens
    for entry in entries:  # the conversation as the model saw it (folds applied)
        model.append(entry.turn())
    if loop.folder is not None:
        loop.folder.entries, loop.folder.head_tokens = entries, head
    pending: list[str] = []
    for step, result in steps:  # the loop's own state, rebuilt
        parsed = parse_turn(step["raw"], lenient=config.constrain)
        loop.step_n = int(step["n"])
        loop.last_content = parsed.content
        repetitive = loop._repeated(parsed)  # the count the reference keeps
        if repetitive and step.get("dropped"):
            pending = [prompt.final_answer_request("repetition", config.max_steps)]
            loop.final_requested = "answer"
            continue
        if result is not None:
            loop._learn_urls(result.get("data") or [])
            loop.calls += 1
            loop.tool_counts[result["tool"]] = loop.tool_counts.get(result["tool"], 0) + 1
            pending = []
        else:
            pending = [] if parsed.kind in ("call", "answer") else [follow_up(parsed, repetitive)]
    return loop.loop(pending)


def kept_events(events: Iterable[Event], upto_step: int | None) -> list[Event]:
    """The prefix of a trace that a resume or fork keeps.

    Steps are kept in order up to `upto_step` and up to the first step whose
    call never got its result (that step is generated again), with the folds
    made after a kept step; `answer` and `end` events go (the session continues).
    """
    evs = list(events)
    # read_trace pairs steps with results and stops at the first call left unanswered.
    keep = {int(step["n"]) for step, _ in read_trace(evs).steps if upto_step is None or int(step["n"]) <= upto_step}
    call_step = {str(e.get("id")): int(e.get("step", 0)) for e in evs if e.get("type") == "call"}
    out = []
    for e in evs:
        kind = e.get("type")
        if kind in ("end", "answer"):
            continue
        if kind == "step" and int(e.get("n", 0)) not in keep:
            continue
        if kind in ("call", "fold") and int(e.get("step", 0)) not in keep:
            continue
        if kind == "result" and call_step.get(str(e.get("id"))) not in keep:
            continue
        out.append(e)
    return out
