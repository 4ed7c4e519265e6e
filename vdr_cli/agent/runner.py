"""Running `vdr ask` requests: one session, a resume, or a batch.

Resolves settings (flag > env > config > default), opens the model, wires
the toolbox, and sends every event to the trace file, to stdout (JSONL mode)
and to the live view (stderr on a terminal).
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vdr_cli.errors import ExitStatus, InputError, UsageError
from vdr_cli.trace.events import Event


DEFAULT_MAX_TOKENS = 4096  # longest in-process turn when --max-tokens is not given


@dataclass
class AskRequest:
    args: list[str] = field(default_factory=list)
    model: str | None = None
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
    parallel: int = 1
    shard: str | None = None  # "I/N": this machine's slice of a --batch or an eval (agent/shard.py)
    verbose: bool = False
    python: bool | None = None  # PythonInterpreter: None = when a sandbox is available
    fold: str = "keep-last:3"  # context folding (agent/fold.py): keep-last:K, summarise or off
    fold_at: float | None = None  # fold threshold, a fraction of the window
    kv_type: str = "f16"


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


def trace_path(output: Path | None, session_id: str) -> Path:
    if output is not None:
        return output
    from vdr_cli.paths import data_dir

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return data_dir() / "traces" / f"{stamp}-{session_id}.jsonl"


class Sinks:
    """Fans each event out to the trace, stdout (JSONL mode) and the live view."""

    def __init__(self, trace_file: Path, json_stdout: bool, live: Any, keep: list[Event] | None = None) -> None:
        from vdr_cli.trace.jsonl import JsonlWriter
        from vdr_cli.trace.output_file import open_trace_output

        self.path = trace_file
        self.file = open_trace_output(trace_file, keep or [])
        self.trace = JsonlWriter(self.file)
        self.stdout = JsonlWriter(sys.stdout) if json_stdout else None
        self.live = live
        self.answer: str | None = None
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        from vdr_cli.trace.jsonl import PipeClosed

        with self.lock:
            try:
                self.trace.write(ev)  # first: a closed stdout must not lose the trace
            except (OSError, PipeClosed) as exc:
                cause = exc.__cause__ if isinstance(exc, PipeClosed) else exc
                raise InputError(f"{self.path}: cannot write the trace ({getattr(cause, 'strerror', None) or cause})") from None
            if ev.get("type") == "answer":
                self.answer = ev.get("text")
            if self.live is not None:
                self.live.on_event(ev)
            if self.stdout is not None:
                try:
                    self.stdout.write(ev)
                except PipeClosed:
                    self.stdout = None  # the rest (the `end` event) still goes to the trace
                    raise

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        try:
            self.file.close()
        except OSError:
            pass  # a write error was already reported by the event that failed


def check_flags(req: AskRequest) -> None:
    """Option values that are not settings, checked by the settings' own rules."""
    from vdr_cli.settings import check_flag

    for name, value in (("--temperature", req.temperature), ("--top-p", req.top_p), ("--max-tokens", req.max_tokens),
                        ("--max-time", req.max_time), ("--max-steps", req.max_steps), ("--parallel", req.parallel)):
        try:
            check_flag(name, value)
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None


def settings(req: AskRequest) -> dict[str, Any]:
    from vdr_cli import config

    check_flags(req)  # before anything loads: nonsense fails at once
    cfg = config.current()
    cfg.check_all()
    cfg.get("search.provider", req.search_provider, "--search-provider")  # checked here, used by the toolbox
    cfg.get("search.image_provider", req.image_provider, "--image-provider")
    return {
        "model": cfg.get("model.default", req.model),
        "ctx": cfg.get("model.ctx", req.ctx, "--ctx"),
        "n_gpu_layers": cfg.get("model.n_gpu_layers"),
        "threads": cfg.get("model.threads"),
        "allow_private": cfg.get("net.allow_private", req.allow_private, "--allow-private"),
        "use_cache": cfg.get("cache.enabled") and not req.no_cache,
        "api_key": cfg.get("keys.openai") or None,
        "max_pixels": cfg.get("crop.max_pixels"),
    }


def open_model_for(req: AskRequest, conf: dict[str, Any], model_text: str | None = None):
    from vdr_cli.models.loader import LoadOptions, open_model
    from vdr_cli.models.spec import parse_spec

    spec = parse_spec(model_text or conf["model"], mmproj=req.mmproj)
    # An HTTP server's context comes from --ctx or from the server itself (model.ctx is for in-process models).
    ctx = parse_ctx(req.ctx) or spec.ctx or (None if spec.kind == "openai" else conf["ctx"])
    opts = LoadOptions(ctx=ctx, n_gpu_layers=conf["n_gpu_layers"], threads=conf["threads"],
                       verbose=req.verbose, api_key=conf["api_key"], kv_type=req.kv_type)
    model = open_model(spec, opts)
    if spec.kind == "openai" and model.info.extra.get("ctx_source") == "guess":
        from vdr_cli.render.output import say

        say("ask", "warning", f"the server does not say its context size; assuming {model.n_ctx} tokens (give --ctx)")
    return spec, model


_python_notice_said = False


def python_wanted(choice: bool | None) -> bool:
    """Whether PythonInterpreter goes in the prompt: --python/--no-python, else when
    the model's code can be jailed here (tools/sandbox.py; a one-line notice when not)."""
    global _python_notice_said
    if choice is False:
        return False
    from vdr_cli.tools.sandbox import availability

    found = availability()
    if found.ok:
        return True
    if choice:
        raise UsageError(f"--python: {found.reason}", hint="run without --python (the tool is then left out)")
    if not _python_notice_said:
        from vdr_cli.render.output import say

        say("ask", "warning", f"PythonInterpreter left out of the prompt: {found.reason}")
        _python_notice_said = True
    return False


def parse_ctx(value: int | str | None) -> int | str | None:
    """`--ctx N` or `--ctx auto`."""
    if value is None or isinstance(value, int):
        return value
    if value.strip().lower() == "auto":
        return "auto"
    if value.strip().isdigit() and int(value) >= 256:
        return int(value)
    raise UsageError(f"--ctx {value!r}", hint="give a number of tokens (at least 256) or auto")


def open_summary_model(req: AskRequest, conf: dict[str, Any]):
    """The `--summary-model` session, or None (the session's own model summarises)."""
    if not req.summary_model or req.summaries != "model":
        return None
    from vdr_cli.models.loader import LoadOptions, open_model
    from vdr_cli.models.spec import parse_spec

    spec = parse_spec(req.summary_model, mmproj=req.summary_mmproj)
    return open_model(spec, LoadOptions(ctx=spec.ctx or conf["ctx"], n_gpu_layers=conf["n_gpu_layers"],
                                        threads=conf["threads"], verbose=req.verbose, api_key=conf["api_key"],
                                        kv_type=req.kv_type))


def build_toolbox(req: AskRequest, conf: dict[str, Any], images: list, model: Any, tools: list[str],
                  summary_model: Any = None):
    from vdr_cli.agent.summarise import model_summariser, side_chat
    from vdr_cli.agent.toolbox import ToolSettings, WebToolbox

    ts = ToolSettings(search_provider=req.search_provider, image_provider=req.image_provider,
                      use_cache=conf["use_cache"], allow_private=bool(conf["allow_private"]))
    summarise = summarise_hit = None
    if req.summaries == "model":
        by = summary_model or model
        summarise, summarise_hit = model_summariser(by, req.summary_tokens), side_chat(by, req.summary_tokens)
    return WebToolbox(images, ts, summarise=summarise, zoom="zoom" in tools, summarise_hit=summarise_hit,
                      python="PythonInterpreter" in tools)


def loop_config(req: AskRequest, model_name: str, tools: list[str], on_token: Callable[[str], None] | None,
                image_ids: list[str] = (), http: bool = False):
    from vdr_cli.agent.grammar import wants_grammar
    from vdr_cli.agent.loop import LoopConfig
    from vdr_cli.models.base import SamplingParams

    if req.grammar not in ("auto", "on", "off"):
        raise UsageError(f"--grammar {req.grammar!r}", hint="use auto, on or off")
    if req.summaries not in ("model", "extractive"):
        raise UsageError(f"--summaries {req.summaries!r}", hint="use model or extractive")
    check_flags(req)
    from vdr_cli.models.memory import KV_TYPES

    if req.kv_type not in KV_TYPES:
        raise UsageError(f"--kv-type {req.kv_type!r}", hint=f"use {', '.join(KV_TYPES)}")
    from vdr_cli.agent.fold import parse_fold

    fold = parse_fold(req.fold, req.fold_at)
    if req.summary_tokens < 1:
        raise UsageError("--summary-tokens must be at least 1")
    if req.summary_mmproj and not req.summary_model:
        raise UsageError("--summary-mmproj goes with --summary-model", hint="give --summary-model FILE.gguf too")
    if req.summary_model and req.summaries != "model":
        raise UsageError("--summary-model is for model summaries", hint="drop --summaries extractive, or --summary-model")
    constrain = wants_grammar(req.grammar, model_name, http)
    # The reference sends no max_tokens unless given; grammar mode (models not trained on the
    # format, beyond the reference anyway) caps every turn.
    explicit = frozenset({"max_tokens"} if req.max_tokens is not None or constrain else set())
    sampling = SamplingParams(temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                              max_tokens=req.max_tokens or DEFAULT_MAX_TOKENS, explicit=explicit)
    return LoopConfig(max_steps=req.max_steps, max_seconds=req.max_time, sampling=sampling,
                      constrain=constrain, tools=tuple(tools), image_ids=tuple(image_ids),
                      answer_reserve=min(1024, sampling.max_tokens), on_token=on_token, fold=fold)


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


def run_ask(req: AskRequest, quiet: bool = False) -> int:
    """One `vdr ask` invocation; returns the exit status.

    `quiet` (batch items): no stdout, no live view, no notes on stderr.
    """
    if req.batch is not None:
        from vdr_cli.agent.batch import run_batch

        return run_batch(req)
    if req.resume is not None:
        return _resume(req)
    images_args, question = split_args(req.args)
    return _fresh(req, images_args, question, quiet)


def _fresh(req: AskRequest, image_args: list[str], question: str, quiet: bool = False) -> int:
    from vdr_cli.agent.session import DEFAULT_TOOLS, SessionSpec, load_images, run_session
    from vdr_cli.render.output import json_mode, say
    from vdr_cli.models.errors import ModelError
    from vdr_cli.models.loader import describe
    from vdr_cli.models.spec import public_spec

    conf = settings(req)
    images = load_images(image_args, conf["max_pixels"])  # bad images fail before the model loads
    tools = [t for t in DEFAULT_TOOLS if images or t != "crop_and_search"] + (["zoom"] if req.zoom and images else [])
    tools += ["PythonInterpreter"] if python_wanted(req.python) else []
    live = None if quiet else live_view(req)
    try:
        with _loading(live, public_spec(req.model or conf["model"])):
            spec, model = open_model_for(req, conf)
    except ModelError as exc:
        if not quiet:
            _record_load_failure(req, SessionSpec(question=question, images=images, tools=tools,
                                                  model={"spec": public_spec(req.model or conf["model"])}), exc)
        raise
    summary_model = None
    try:
        summary_model = open_summary_model(req, conf)
        session = SessionSpec(question=question, images=images, tools=tools,
                              model={**describe(spec, model), "spec": public_spec(req.model or conf["model"])})
        as_json = json_mode(req.json_out) and not req.answer_only
        sinks = Sinks(trace_path(req.output, session.id), as_json and not quiet, live)
        if not quiet:
            say("ask", "info", f"trace: {sinks.path}")
        try:
            config = loop_config(req, spec.name or model.info.name, tools, live.on_token if live else None,
                                 [img.id for img in images], http=spec.kind == "openai")
            toolbox = build_toolbox(req, conf, images, model, tools, summary_model)
            outcome = run_session(session, model, toolbox, sinks, config)
        finally:
            sinks.close()
    finally:
        if summary_model is not None:
            summary_model.close()
        model.close()
    if quiet:
        return ExitStatus.OK if outcome.answer else ExitStatus.ERROR
    return _finish(as_json, outcome.answer, outcome.reason)


def _record_load_failure(req: AskRequest, session: Any, exc: Exception) -> None:
    """A model that does not load still leaves a trace: its header and an `end` saying why."""
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
        spec, model = open_model_for(req, conf, model_text)
    summary_model = None
    try:
        summary_model = open_summary_model(req, conf)
        tools = spec_header.tools
        as_json = json_mode(req.json_out) and not req.answer_only
        keep = kept_events(events, None)
        out = req.output or path
        sinks = Sinks(out, as_json, live, keep=keep)
        say("ask", "info", f"resuming {len(recorded.steps)} recorded steps; trace: {sinks.path}")
        try:
            config = loop_config(req, spec.name or model.info.name, tools, live.on_token if live else None,
                                 [img.id for img in spec_header.images], http=spec.kind == "openai")
            toolbox = build_toolbox(req, conf, spec_header.images, model, tools, summary_model)
            outcome = resume_session(recorded, model, toolbox, sinks, config)
        finally:
            sinks.close()
    finally:
        if summary_model is not None:
            summary_model.close()
        model.close()
    return _finish(as_json, outcome.answer, outcome.reason)
