"""Shared test fixtures: an isolated VDR_HOME and a real `vdr` subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def vdr_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data/cache folders and no VDR_* leakage."""
    home = tmp_path_factory.mktemp("vdr-home")
    for key in list(os.environ):
        if key.startswith("VDR_") or key == "NO_COLOR":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VDR_HOME", str(home))
    import vdr_cli.config as config

    monkeypatch.setattr(config, "_default", None)
    return home


def run_vdr(*args: str, input: bytes | str | None = None, env: dict[str, str] | None = None,
            cwd: Path | str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m vdr_cli ARGS` as a real process with piped stdio."""
    full_env = {**os.environ, **(env or {})}
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run(
        [sys.executable, "-m", "vdr_cli", *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def vdr():
    """The `run_vdr` function, as a fixture."""
    return run_vdr


def run_on_pty(argv: list[str], env: dict[str, str] | None = None, stream: str = "stderr", timeout: float = 120) -> tuple[int, str]:
    """Run `python -m vdr_cli ARGV` with stdout, stderr or both on a pseudo-terminal; (status, what the terminal got)."""
    import pty

    master, slave = pty.openpty()
    other = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "vdr_cli", *argv], stdin=subprocess.DEVNULL,
                            stdout=slave if stream in ("stdout", "both") else other,
                            stderr=slave if stream in ("stderr", "both") else other,
                            env={**os.environ, **(env or {})})
    proc.communicate(timeout=timeout)
    os.close(slave)
    return proc.returncode, read_pty(master)


def read_pty(master: int) -> str:
    """Everything a pseudo-terminal's master holds once the child side is closed (then closes it)."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the slave side is gone and everything was read
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")
