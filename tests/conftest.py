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
