"""A loaded model that sessions run on: `ask`, `--batch`, `eval`, `--resume` and replay's rerun.

`ModelHost` opens the model once (an in-process GGUF becomes a LlamaEngine
with `parallel` session slots in one llama.cpp context) and hands out a
session per question; each session's page summaries run on the same model.
Settings resolve flag > env > config > default here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from vdr_cli.errors import UsageError

DEFAULT_MAX_TOKENS = 4096  # longest in-process turn when --max-tokens is not given


def parse_parallel(text: str | int | None) -> int | None:
    """`--parallel N` (N >= 1) or `auto` (0: in-process, as many sessions as memory holds
    windows for; HTTP, the servers' slots); None when not given (HTTP: the servers' slots
    where they say, else 1; in-process: 1)."""
    if text is None:
        return None
    if str(text).strip().lower() == "auto":
        return 0
    try:
        n = int(str(text))
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--parallel must be at least 1 (or auto), not {text!r}")
    return n


def check_flags(req: Any) -> None:
    """Option values that are not settings, checked by the settings' own rules."""
    from vdr_cli.settings import check_flag

    for name, value in (("--temperature", req.temperature), ("--top-p", req.top_p), ("--max-tokens", req.max_tokens),
                        ("--max-time", req.max_time), ("--max-steps", req.max_steps), ("--parallel", req.parallel or 1)):
        try:
            check_flag(name, value)
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None


def settings(req: Any) -> dict[str, Any]:
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


class ModelHost:
    """One open model and the sessions run on it.

    `parallel`: session slots of an in-process model (0: as many as memory
    holds windows for; None: 1); HTTP and scripted models open a session per
    question and take any number. `batch`: the sessions are a batch's, so an
    HTTP `parallel` of None or 0 becomes the servers' slot count (agent/servers.py),
    said in every header. Several `req.models` (HTTP only) spread the sessions
    over several servers. `share_prefix`: the system prompt's KV cells are
    evaluated once and copied into each session (batches).
    """

    def __init__(self, req: Any, conf: dict[str, Any] | None = None, model_text: str | None = None, *,
                 parallel: int | None = 1, share_prefix: bool = False, batch: bool = False) -> None:
        from vdr_cli.agent.servers import ServerPool, check_models
        from vdr_cli.models.spec import parse_spec

        self.req = req
        self.conf = conf if conf is not None else settings(req)
        texts = [] if model_text else list(getattr(req, "models", None) or [])
        self.model_text = texts[0] if len(texts) > 1 else model_text or req.model or self.conf["model"]
        texts = texts if len(texts) > 1 else [self.model_text]
        check_models(texts, batch=True)  # a single question with several was refused by the CLI
        self.spec = parse_spec(texts[0], mmproj=req.mmproj)
        # An HTTP server's context comes from --ctx or from the server itself (model.ctx is for in-process models).
        self.window = parse_ctx(req.ctx) or self.spec.ctx or (None if self.spec.kind == "openai" else self.conf["ctx"])
        self.engine: Any = None
        self.summary: Any = None  # the --summary-model session, shared by every session (under a lock)
        self._summary_lock = threading.Lock()
        self.command = getattr(req, "command", "ask")  # whose name its stderr lines carry
        self.pool = ServerPool(texts, req.mmproj, self.command) if self.spec.kind == "openai" else None
        self.parallel = parallel or 1
        self.parallel_source: str | None = None  # a batch over HTTP: where `parallel` came from
        self.parallel_notes: list[tuple[str, str]] = []  # what the batch says about it on stderr
        self._guess_said = False
        if self.spec.kind == "llama":
            from vdr_cli.models.llama_engine import LlamaEngine

            assert self.spec.gguf is not None
            window = self.window or 32768
            if window == "auto":
                from vdr_cli.models.loader import _gpu_build
                from vdr_cli.models.memory import auto_ctx_for

                gpu = self.conf["n_gpu_layers"] != 0 and _gpu_build()
                window = auto_ctx_for(self.spec.gguf, self.spec.mmproj, req.kv_type, gpu)
            self.engine = LlamaEngine(self.spec.gguf, self.spec.mmproj, n_ctx=int(window),
                                      n_parallel=1 if parallel is None else parallel, share_prefix=share_prefix,
                                      n_threads=self.conf["threads"] or None, n_gpu_layers=self.conf["n_gpu_layers"],
                                      verbose=req.verbose, chat_template=self.spec.chat_template, kv_type=req.kv_type)
            self.parallel = self.engine.n_parallel
        elif self.pool is not None and batch:
            self.parallel, self.parallel_source, self.parallel_notes = self.pool.count_slots(parallel, self._http_session)
        try:
            self.summary = open_summary_model(req, self.conf)
        except BaseException:
            self.close()
            raise

    def _http_session(self, server: Any) -> Any:
        from vdr_cli.models.loader import LoadOptions, open_model

        return open_model(server.spec, LoadOptions(ctx=self.window, api_key=self.conf["api_key"],
                                                   server_facts=server.facts))

    def open_session(self) -> Any:
        """A new conversation on the model (close it with `close_session` when done);
        over HTTP on the server of the pool with the most room (agent/servers.py)."""
        if self.engine is not None:
            return self.engine.session()
        if self.pool is not None:
            return self._open_http()
        from vdr_cli.models.loader import LoadOptions, open_model

        return open_model(self.spec, LoadOptions(ctx=self.window, n_gpu_layers=self.conf["n_gpu_layers"],
                                                 threads=self.conf["threads"], verbose=self.req.verbose,
                                                 api_key=self.conf["api_key"], kv_type=self.req.kv_type))

    def _open_http(self) -> Any:
        session, facts = self.pool.open(self._http_session, self.window)
        if facts.reachable and session.info.extra.get("ctx_source") == "guess" and not self._guess_said:
            from vdr_cli.render.output import say

            say(self.command, "warning", f"the server does not say its context size; assuming {session.n_ctx} tokens (give --ctx)")
            self._guess_said = True
        return session

    def close_session(self, session: Any) -> None:
        if self.pool is not None:
            self.pool.release_session(session)
        session.close()

    def moves(self, session: Any, exc: BaseException) -> str | None:
        """See ServerPool.moves (None for a model that is not over HTTP)."""
        return self.pool.moves(session, exc) if self.pool is not None else None

    def describe(self, session: Any, moved_from: list[str] = ()) -> dict[str, Any]:
        """The header's `model`: `spec` names the server this session runs on (public_spec: no key)."""
        from vdr_cli.models.loader import describe
        from vdr_cli.models.spec import public_spec

        server = self.pool.server_of(session) if self.pool is not None else None
        spec, text = (server.spec, server.text) if server is not None else (self.spec, self.model_text)
        out = {**describe(spec, session), "spec": public_spec(text)}
        if self.parallel_source:
            out.update(parallel=self.parallel, parallel_source=self.parallel_source)
        if moved_from:
            out["moved_from"] = list(moved_from)  # servers it could not connect to first
        return out

    def model_name(self, session: Any) -> str:
        return self.spec.name or session.info.name

    def toolbox(self, images: list, session: Any, tools: list[str]):
        """The web toolbox of one session; `visit` summarises pages on that session's model
        (or on the --summary-model, one request at a time: its session is shared)."""
        return build_toolbox(self.req, self.conf, images, session, tools, self.summary,
                             self._summary_lock if self.summary is not None else None)

    def close(self) -> None:
        if self.summary is not None:
            self.summary.close()
            self.summary = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def __enter__(self) -> "ModelHost":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_toolbox(req: Any, conf: dict[str, Any], images: list, session: Any, tools: list[str],
                  summary_model: Any = None, lock: Any = None):
    """A session's web toolbox; with --summaries model, `visit` and crop hits are summarised
    on `summary_model` (else on the session's own model); `lock` serialises a shared one."""
    from vdr_cli.agent.summarise import model_summariser, side_chat
    from vdr_cli.agent.toolbox import ToolSettings, WebToolbox

    ts = ToolSettings(search_provider=req.search_provider, image_provider=req.image_provider,
                      use_cache=conf["use_cache"], allow_private=bool(conf["allow_private"]))
    summarise = summarise_hit = None
    by = summary_model or session
    if req.summaries == "model" and by is not None:
        summarise = _locked(model_summariser(by, req.summary_tokens), lock)
        summarise_hit = _locked(side_chat(by, req.summary_tokens), lock)
    return WebToolbox(images, ts, summarise=summarise, zoom="zoom" in tools, summarise_hit=summarise_hit,
                      python="PythonInterpreter" in tools)


def _locked(fn: Callable[..., Any], lock: Any) -> Callable[..., Any]:
    if lock is None:
        return fn

    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return fn(*args, **kwargs)

    return call


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


def parse_date(text: str | None) -> str | None:
    """`--date YYYY-MM-DD`, checked (the prompt says it to the model)."""
    if text is None:
        return None
    import datetime as _dt

    try:
        return _dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise UsageError(f"--date {text!r}", hint="give a date as YYYY-MM-DD") from None


def parse_ctx(value: int | str | None) -> int | str | None:
    """`--ctx N` or `--ctx auto`."""
    if value is None or isinstance(value, int):
        return value
    if value.strip().lower() == "auto":
        return "auto"
    if value.strip().isdigit() and int(value) >= 256:
        return int(value)
    raise UsageError(f"--ctx {value!r}", hint="give a number of tokens (at least 256) or auto")


def open_summary_model(req: Any, conf: dict[str, Any]):
    """The `--summary-model` session, or None (the session's own model summarises)."""
    if not req.summary_model or req.summaries != "model":
        return None
    from vdr_cli.models.loader import LoadOptions, open_model
    from vdr_cli.models.spec import parse_spec

    spec = parse_spec(req.summary_model, mmproj=req.summary_mmproj)
    return open_model(spec, LoadOptions(ctx=spec.ctx or conf["ctx"], n_gpu_layers=conf["n_gpu_layers"],
                                        threads=conf["threads"], verbose=req.verbose, api_key=conf["api_key"],
                                        kv_type=req.kv_type))


def loop_config(req: Any, model_name: str, tools: list[str], on_token: Callable[[str], None] | None,
                image_ids: list[str] = (), interrupt: Any = None, http: bool = False):
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
                      answer_reserve=min(1024, sampling.max_tokens), on_token=on_token, fold=fold,
                      interrupt=interrupt)


def session_tools(req: Any, images: list) -> list[str]:
    from vdr_cli.agent.session import DEFAULT_TOOLS

    tools = [t for t in DEFAULT_TOOLS if images or t != "crop_and_search"] + (["zoom"] if req.zoom and images else [])
    return tools + (["PythonInterpreter"] if python_wanted(req.python) else [])


def run_fresh(host: ModelHost, req: Any, images: list, question: str, *, quiet: bool = False, live: Any = None,
              interrupt: Any = None) -> tuple[Any, Path]:
    """One new session of `question` (about checked `images`) on `host`; returns its Outcome and trace path.

    `quiet` (batch items): no stdout and no notes on stderr.
    """
    from vdr_cli.agent.session import SessionSpec, run_session
    from vdr_cli.agent.sinks import Sinks, trace_path
    from vdr_cli.render.output import json_mode, say

    tools = session_tools(req, images)
    moved_from: list[str] = []
    while True:
        model = host.open_session()
        try:
            session = SessionSpec(question=question, images=images, tools=tools, model=host.describe(model, moved_from))
            if req.date:
                session.date = req.date
            sinks = Sinks(trace_path(req.output, session.id),
                          json_mode(req.json_out) and not req.answer_only and not quiet, live)
            if not quiet:
                say("ask", "info", f"trace: {sinks.path}")
            try:
                config = loop_config(req, host.model_name(model), tools, live.on_token if live else None,
                                     [img.id for img in images], interrupt, http=host.spec.kind == "openai")
                outcome = run_session(session, model, host.toolbox(images, model, tools), sinks, config)
            finally:
                sinks.close()
        except Exception as exc:
            left = host.moves(model, exc)
            if left is None or (interrupt is not None and interrupt.is_set()):
                raise
            moved_from.append(left)  # its trace is written again from the start
            continue
        finally:
            host.close_session(model)
        return outcome, sinks.path
