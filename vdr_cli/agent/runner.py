"""Running `vdr ask` requests: one session, a resume, or a batch.

Sessions run on a loaded model (agent/host.py); every event goes to the
trace file, to stdout (JSONL mode) and to the live view (stderr on a
terminal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdr_cli.agent.host import DEFAULT_MAX_TOKENS, settings  # noqa: F401 - DEFAULT_MAX_TOKENS: re-exported
from vdr_cli.agent.sinks import Sinks
from vdr_cli.errors import ExitStatus, InputError, UsageError




@dataclass
class AskRequest:
    args: list[str] = field(default_factory=list)
    model: str | None = None  # the first --model (the only one, but for a batch over several servers)
    models: list[str] = field(default_factory=list)  # every --model given: several spread a batch (agent/servers.py)
    mmproj: str | None = None
    output: Path | None = None
    json_out: bool = False
    answer_only: bool = False  # stdout gets the answer text only, piped or not
    max_steps: int = 50
    max_time: float | None = None
    ctx: int | str | None = None  # "auto": the window that fits in free memory (HTTP: the server's)
    grammar: str = "auto"
    zoom: bool = False
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int | None = None
    max_tokens: int | None = None  # None: 4096 in-process; not sent to HTTP servers (as the reference)
    summaries: str = "model"
    summary_model: str | None = None  # another model for page summaries (the reference's setup)
    summary_mmproj: str | None = None  # its vision projector, for a .gguf path
    summary_tokens: int = 16384  # the reference's EXTRACT_MAX_TOKENS
    search_provider: str | None = None
    image_provider: str | None = None
    allow_private: bool | None = None
    no_cache: bool = False
    resume: Path | None = None
    batch: Path | None = None
    parallel: int | None = None  # None: not given (HTTP: the servers' slots; in-process: 1); 0: auto
    shard: str | None = None  # "I/N": this machine's slice of a --batch or an eval (agent/shard.py)
    verbose: bool = False
    python: bool | None = None  # PythonInterpreter: None = when a sandbox is available
    fold: str = "keep-last:3"  # context folding (agent/fold.py): keep-last:K, summarise or off
    fold_at: float | None = None  # fold threshold, a fraction of the window
    kv_type: str = "f16"
    command: str = "ask"  # the command its diagnostics name ("vdr eval: warning: ...")
    date: str | None = None  # the system prompt's "Current date" (None: today)


def split_args(args: list[str]) -> tuple[list[str], str]:
    """`[IMAGE...] QUESTION`: the last argument is the question."""
    if not args:
        raise UsageError("no question given", hint="vdr ask [IMAGE...] 'QUESTION'")
    *images, question = args
    if not question.strip():
        raise UsageError("the question is empty")
    if not images and Path(question).is_file() and Path(question).suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"):
        raise UsageError(f"{question} is an image, not a question", hint=f"vdr ask {question} 'QUESTION'")
    return images, question


def live_view(req: AskRequest):
    from vdr_cli.render.output import is_quiet, stderr_console, stderr_is_terminal

    if not stderr_is_terminal() or is_quiet():
        return None
    from vdr_cli.render.live import LiveView

    from vdr_cli.render.output import animated

    return LiveView(stderr_console(), animated=animated())


def _loading(live: Any, what: str):
    """The live view's "loading MODEL… 3.1 s" line while the model opens (nothing without one)."""
    import contextlib

    if what.endswith(".gguf"):
        what = Path(what).name  # the file, not its folders: one line on any terminal
    return live.loading(what) if live is not None else contextlib.nullcontext()


def run_ask(req: AskRequest) -> int:
    """One `vdr ask` invocation; returns the exit status."""
    if req.batch is not None:
        from vdr_cli.agent.batch import run_batch

        return run_batch(req)
    if req.resume is not None:
        return _resume(req)
    images_args, question = split_args(req.args)
    return _fresh(req, images_args, question)


def _fresh(req: AskRequest, image_args: list[str], question: str) -> int:
    from vdr_cli.agent.host import ModelHost, run_fresh, session_tools
    from vdr_cli.agent.session import SessionSpec, load_images
    from vdr_cli.models.errors import ModelError
    from vdr_cli.models.spec import public_spec
    from vdr_cli.render.output import json_mode

    conf = settings(req)
    images = load_images(image_args, conf["max_pixels"])  # bad images fail before the model loads
    live = live_view(req)
    try:
        with _loading(live, public_spec(req.model or conf["model"])):
            host = ModelHost(req, conf)
    except ModelError as exc:
        _record_load_failure(req, SessionSpec(question=question, images=images, tools=session_tools(req, images),
                                              model={"spec": public_spec(req.model or conf["model"])}), exc)
        raise
    with host:
        outcome, _path = run_fresh(host, req, images, question, live=live)
    return _finish(json_mode(req.json_out) and not req.answer_only, outcome.answer, outcome.reason)


def _record_load_failure(req: AskRequest, session: Any, exc: Exception) -> None:
    """A model that does not load still leaves a trace: its header and an `end` saying why."""
    from vdr_cli.agent.sinks import trace_path
    from vdr_cli.render.output import say
    from vdr_cli.trace.events import event

    try:
        sinks = Sinks(trace_path(req.output, session.id), False, None)
    except InputError:
        return  # the -o problem is secondary; the load failure is the one reported
    try:
        sinks(session.header())
        sinks(event("end", reason="error", error=getattr(exc, "message", str(exc)), stats={}))
        say("ask", "info", f"trace: {sinks.path}")
    except InputError:
        pass
    finally:
        sinks.close()


def _finish(as_json: bool, answer: str | None, reason: str) -> int:
    if not as_json and answer:
        from vdr_cli.render.output import print_line

        print_line(answer)
    if reason in ("answer", "max_steps", "context_full") and answer:
        return ExitStatus.OK
    if reason == "interrupted":
        return ExitStatus.INTERRUPTED
    from vdr_cli.render.output import say

    say("ask", "error", f"the session ended without an answer ({reason})")
    return ExitStatus.ERROR


def _resume(req: AskRequest) -> int:
    from vdr_cli.agent.host import ModelHost, loop_config
    from vdr_cli.agent.session import kept_events, read_trace, resume_session, spec_from_header
    from vdr_cli.render.output import json_mode, say
    from vdr_cli.trace.jsonl import LineError, iter_lines

    path = req.resume
    try:
        lines = path.read_text("utf-8", errors="replace").splitlines(keepends=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    # A kill -9 can leave half a last line: everything before it is kept.
    events = []
    for item in iter_lines(lines, str(path)):
        if isinstance(item, LineError):
            if item.lineno == len(lines):
                say("ask", "warning", f"{path}:{item.lineno}: incomplete last line dropped")
                break
            raise InputError(str(item))
        events.append(item)
    recorded = read_trace(events, str(path))
    if recorded.ended is not None and recorded.ended.get("reason") == "answer":
        raise UsageError(f"{path}: this session already ended with an answer", hint="use `vdr replay` to view it")
    conf = settings(req)
    spec_header = spec_from_header(recorded.header)
    model_text = req.model or (recorded.header.get("model") or {}).get("spec")
    live = live_view(req)
    from vdr_cli.models.spec import public_spec

    with _loading(live, public_spec(model_text or conf["model"])):
        host = ModelHost(req, conf, model_text)
    with host:
        model = host.open_session()
        try:
            tools = spec_header.tools
            as_json = json_mode(req.json_out) and not req.answer_only
            keep = kept_events(events, None)
            out = req.output or path
            sinks = Sinks(out, as_json, live, keep=keep)
            say("ask", "info", f"resuming {len(recorded.steps)} recorded steps; trace: {sinks.path}")
            try:
                config = loop_config(req, host.model_name(model), tools, live.on_token if live else None,
                                     [img.id for img in spec_header.images], http=host.spec.kind == "openai")
                outcome = resume_session(recorded, model, host.toolbox(spec_header.images, model, tools), sinks, config)
            finally:
                sinks.close()
        finally:
            model.close()
    return _finish(as_json, outcome.answer, outcome.reason)
