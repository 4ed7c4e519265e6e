"""Open a model session from a `ModelSpec` (see `spec.py`).

Backends are imported here, lazily: a spec for an HTTP server never loads
llama.cpp, and nothing loads before a command actually needs a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.models.base import ModelSession
from vdr_cli.models.spec import ModelSpec


@dataclass
class LoadOptions:
    ctx: int | str | None = None  # None: the spec's, else the config's model.ctx; "auto": what fits
    kv_type: str = "f16"
    n_gpu_layers: int = -1
    threads: int = 0
    verbose: bool = False
    api_key: str | None = None
    has_vision: bool = True  # for HTTP servers: whether to send images
    server_facts: Any = None  # for HTTP servers: what it already said (openai_probe.ServerFacts)
    extra: dict[str, Any] = field(default_factory=dict)


def open_model(spec: ModelSpec, options: LoadOptions) -> ModelSession:
    if spec.kind == "scripted":
        from vdr_cli.models.scripted import ScriptedSession

        return ScriptedSession.from_trace(spec.trace)
    if spec.kind == "openai":
        from vdr_cli.models.openai_http import OpenAISession

        key = options.api_key or os.environ.get("OPENAI_API_KEY") or None
        # "auto" over HTTP: the server's own window (probed from /v1/models).
        ctx = None if options.ctx == "auto" else options.ctx
        return OpenAISession(spec.name, spec.base_url or "", api_key=key, n_ctx=ctx or spec.ctx,
                             has_vision=options.has_vision, facts=options.server_facts)
    from vdr_cli.models.llama_session import LlamaSession

    assert spec.gguf is not None
    n_ctx = options.ctx or spec.ctx or 32768
    if n_ctx == "auto":
        from vdr_cli.models.memory import auto_ctx_for

        gpu = options.n_gpu_layers != 0 and _gpu_build()
        n_ctx = auto_ctx_for(spec.gguf, spec.mmproj, options.kv_type, gpu)
    return LlamaSession(spec.gguf, spec.mmproj, n_ctx=int(n_ctx), kv_type=options.kv_type,
                        n_threads=options.threads or None, n_gpu_layers=options.n_gpu_layers, verbose=options.verbose,
                        chat_template=spec.chat_template)


def _gpu_build() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def describe(spec: ModelSpec, session: ModelSession) -> dict[str, Any]:
    """The `model` field of a session header (never a key or a secret)."""
    info = session.info
    out: dict[str, Any] = {"name": spec.name or info.name, "backend": info.backend, "ctx": session.n_ctx,
                           "vision": info.has_vision}
    if spec.gguf:
        out["gguf"] = str(spec.gguf)
    if spec.mmproj:
        out["mmproj"] = str(spec.mmproj)
    if info.extra.get("ctx_source"):
        out["ctx_source"] = info.extra["ctx_source"]  # "--ctx", "server ...", or "guess"
    if spec.base_url:
        from vdr_cli.net.urls import public_url

        out["url"] = public_url(spec.base_url)  # traces are shared: no credentials, no query
    return out
