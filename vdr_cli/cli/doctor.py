"""`vdr doctor`: can `vdr ask` run here, and if not, what to fix.

Each check is one line (`ok`, `warn` or `fail`, then what was found, then a
fix); piped or with --json, one JSON object per check.  The exit status is 0
when `vdr ask` can run: the model resolves and llama.cpp loads it (or its
server answers); warnings (a provider unreachable, a window that will not
fit) do not fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports

HELP = """\
Check the installation: llama.cpp's build and GPU offload, the models and
whether llama.cpp loads them, the context window that fits in memory, the
search providers (reachable, key set and accepted), the folders vdr writes
and the cache's size.

Exit status 0 when `vdr ask` can run (the model resolves and loads), 1 when
it cannot. --offline skips every network check; --model checks another model
than the default.
"""


@dataclass
class Check:
    name: str
    state: str  # ok, warn, fail, skip
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return {"check": self.name, "state": self.state, "detail": self.detail, **({"fix": self.fix} if self.fix else {})}


def register(app: typer.Typer) -> None:
    app.command("doctor", help=HELP, epilog=epilog("doctor"), short_help="Check that vdr ask can run here, and say what to fix.")(doctor_command)


@reports("doctor")
def doctor_command(
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.model_names, help="Model to check [config model.default].", show_default=False),
    offline: bool = typer.Option(False, "--offline", help="Skip the network checks (providers, model servers)."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write one JSON object per check even on a terminal."),
) -> int:
    from vdr_cli import config
    from vdr_cli.render.output import json_mode, print_line, stdout_writer

    cfg = config.current()
    checks: list[Check] = []
    checks += _llama()
    can_ask = _model(checks, model or cfg.get("model.default"), offline)
    checks += _providers(offline)
    checks += _paths()
    if json_mode(json_out):
        stdout_writer().write_all([c.to_dict() for c in checks])
    else:
        for c in checks:
            print_line(f"{c.state:<4}  {c.name:<10} {c.detail}" + (f"\n{'':16}fix: {c.fix}" if c.fix else ""))
        print_line("vdr ask can run." if can_ask else "vdr ask cannot run yet: see the fail lines.")
    return 0 if can_ask else 1


def _llama() -> list[Check]:
    from vdr_cli import config

    try:
        import llama_cpp
    except ImportError as exc:  # a broken build: say so, do not crash
        return [Check("llama.cpp", "fail", f"llama-cpp-python does not import ({exc})", "pip install --force-reinstall llama-cpp-python")]
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    backends = sorted({part.split(":")[0].strip() for part in info.split("|") if ":" in part and "=" in part.split(":", 1)[1]})
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    layers = config.current().get("model.n_gpu_layers")
    offload = (f"GPU offload: {'all layers' if layers == -1 else f'{layers} layers'}" if gpu else "CPU only (this build has no GPU backend)")
    fix = "" if gpu else 'for a GPU: CMAKE_ARGS="-DGGML_CUDA=on" (or -DGGML_METAL=on) pip install --force-reinstall --no-cache-dir llama-cpp-python'
    return [Check("llama.cpp", "ok", f"llama-cpp-python {llama_cpp.__version__}, backend {', '.join(backends) or '?'}; {offload}", fix)]


def _model(checks: list[Check], text: str, offline: bool) -> bool:
    """Resolve and try to load the model; True when `vdr ask` can use it."""
    from vdr_cli.errors import VdrError
    from vdr_cli.models.spec import parse_spec

    try:
        spec = parse_spec(text)
    except VdrError as exc:
        checks.append(Check("model", "fail", exc.message, exc.hint or ""))
        return False
    if spec.kind == "openai":
        if offline:
            checks.append(Check("model", "skip", f"{text}: a model server; not contacted (--offline)"))
            return True
        return _server(checks, spec)
    if spec.kind == "scripted":
        checks.append(Check("model", "ok", f"{text}: replays recorded turns"))
        return True
    return _local(checks, spec)


def _local(checks: list[Check], spec) -> bool:  # noqa: ANN001 (a ModelSpec)
    from vdr_cli import config
    from vdr_cli.errors import VdrError
    from vdr_cli.models.gguf_header import read_metadata, summary
    from vdr_cli.models.memory import RESERVE_BYTES, auto_ctx, free_memory, kv_bytes_per_token
    from vdr_cli.render.output import human_bytes

    try:
        head = summary(spec.gguf)
        mm = summary(spec.mmproj) if spec.mmproj else None
    except VdrError as exc:
        checks.append(Check("model", "fail", exc.message, "download it again: vdr model rm NAME --delete-files && vdr model pull NAME"))
        return False
    try:  # llama.cpp's own loader on the vocabulary: the architecture is supported, the file is whole
        import llama_cpp

        from vdr_cli.models.llama_mtmd import init_backend, last_log_error

        init_backend(verbose=False)  # llama.cpp's log goes to vdr's quiet sink
        llama_cpp.Llama(model_path=str(spec.gguf), vocab_only=True, verbose=False).close()
    except Exception as exc:  # llama.cpp reports a refused file as a bare exception
        why = last_log_error() or f"{type(exc).__name__}: {exc}"
        checks.append(Check("model", "fail", f"{spec.gguf}: llama.cpp does not load it ({why})",
                            "update llama-cpp-python, or convert the model again with a current llama.cpp"))
        return False
    vision = f", projector {mm['projector_type']} ({human_bytes(mm['bytes'])})" if mm else ", no projector: text only"
    checks.append(Check("model", "ok", f"{spec.name}: {head['architecture']}, {human_bytes(head['bytes'])}{vision}; llama.cpp loads it"))
    ctx = spec.ctx or config.current().get("model.ctx")
    gpu = bool(llama_cpp.llama_supports_gpu_offload()) and config.current().get("model.n_gpu_layers") != 0
    free = free_memory(gpu)
    try:
        meta = read_metadata(spec.gguf)
        per_token = kv_bytes_per_token(meta)
    except VdrError:
        return True  # the header has no attention sizes: nothing to estimate
    weights = int(head["bytes"]) + (int(mm["bytes"]) if mm else 0)
    fits = auto_ctx(meta, weights, free)
    trained = head.get("context_length")
    limit = " (the model's trained window)" if trained and fits == trained else ""
    if isinstance(ctx, int):
        need = weights + per_token * ctx + RESERVE_BYTES
        state = "ok" if need <= free else "warn"
        fix = "" if state == "ok" else f"vdr config set model.ctx {fits} (or --ctx auto), or free memory"
        detail = f"{human_bytes(need)} needed at {ctx:,} tokens, {human_bytes(free)} free"
    else:
        state, fix, detail = "ok", "", f"window chosen at start ({ctx}), {human_bytes(free)} free"
    where = "GPU" if gpu else "RAM"
    checks.append(Check("memory", state, f"{detail} ({where}); the window that fits: about {fits:,} tokens{limit}", fix))
    return True


def _server(checks: list[Check], spec) -> bool:  # noqa: ANN001
    import httpx

    from vdr_cli.net.urls import public_url

    try:
        r = httpx.get(spec.base_url + "/models", timeout=5)
    except httpx.HTTPError as exc:
        checks.append(Check("model", "fail", f"{public_url(spec.base_url)}: no answer ({type(exc).__name__})", "start the server, or check the URL"))
        return False
    if r.status_code in (401, 403):
        checks.append(Check("model", "fail", f"{public_url(spec.base_url)}: key refused (HTTP {r.status_code})", "vdr config set keys.openai -"))
        return False
    checks.append(Check("model", "ok", f"{public_url(spec.base_url)}: answers (HTTP {r.status_code})"))
    return True


def _providers(offline: bool) -> list[Check]:
    from vdr_cli import config
    from vdr_cli.errors import VdrError
    from vdr_cli.tools.search.base import get_chain

    cfg = config.current()
    out = []
    for setting in ("search.provider", "search.image_provider"):
        try:
            chain = get_chain(cfg.get(setting))
        except VdrError as exc:
            out.append(Check("search", "fail", f"{setting}: {exc.message}", exc.hint or ""))
            continue
        for p in chain:
            out.append(_provider(p, setting, cfg, offline))
    return out


def _provider(p, setting: str, cfg, offline: bool) -> Check:  # noqa: ANN001
    import httpx

    from vdr_cli.settings import SETTINGS

    name = f"{p.name} ({setting.split('.')[1].replace('_', ' ')})"
    key = cfg.get(p.key_setting) if p.key_setting else None
    if p.key_setting and not key:
        env = SETTINGS[p.key_setting].env_var
        return Check("search", "fail", f"{name}: no API key", f"vdr config set {p.key_setting} - (or ${env})")
    if not p.url_setting:
        return Check("search", "ok", f"{name}: needs no network of its own")
    if offline:
        return Check("search", "skip", f"{name}: not contacted (--offline)")
    url = str(cfg.get(p.url_setting)).rstrip("/")
    try:
        if p.name == "serpapi":  # the account endpoint checks the key without spending a search
            r = httpx.get(url + "/account.json", params={"api_key": key}, timeout=5)
            if r.status_code in (401, 403):
                return Check("search", "fail", f"{name}: key refused (HTTP {r.status_code})", f"vdr config set {p.key_setting} -")
            return Check("search", "ok", f"{name}: reachable, key accepted")
        r = httpx.get(url, timeout=5, follow_redirects=True)
    except httpx.HTTPError as exc:
        return Check("search", "warn", f"{name}: {url} unreachable ({type(exc).__name__})", "offline? the next engine in the list is tried")
    note = ", key set (not checked: a test query would spend credit)" if key else ""
    return Check("search", "ok", f"{name}: reachable (HTTP {r.status_code}){note}")


def _paths() -> list[Check]:
    import os

    from vdr_cli import paths
    from vdr_cli.render.output import human_bytes

    out = []
    for label, where in (("config", paths.config_file().parent), ("data", paths.data_dir()), ("cache", paths.cache_dir())):
        probe = where
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        ok = os.access(probe, os.W_OK)
        out.append(Check("folders", "ok" if ok else "fail", f"{label}: {where}" + ("" if ok else " is not writable"),
                         "" if ok else "set VDR_HOME to a writable folder"))
    try:
        from vdr_cli.cache import Cache

        stats = Cache().stats()
        out.append(Check("cache", "ok", f"{stats['entries']} entries, {human_bytes(stats['file_bytes'])} on disk ({stats['path']})"))
    except Exception as exc:  # an unreadable cache is a warning, not a reason to fail the check-up
        out.append(Check("cache", "warn", f"cannot read the cache ({type(exc).__name__}: {exc})", "vdr cache clear"))
    return out
