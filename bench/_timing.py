"""Timing whole processes: the median of several runs, as benches report it."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def vdr_command() -> list[str]:
    """The installed `vdr` script beside this Python, else `python -m vdr_cli`."""
    script = Path(sys.executable).with_name("vdr")
    if script.exists():
        return [str(script)]
    found = shutil.which("vdr")
    return [found] if found else [sys.executable, "-m", "vdr_cli"]


def time_runs(argv_for_run, runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall seconds of `runs` executions; argv_for_run(i) gives each argv."""
    times = []
    for i in range(runs):
        argv = argv_for_run(i)
        start = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - start)
        if r.returncode != 0:
            raise SystemExit(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stderr.decode()}")
    return times


def report(label: str, times: list[float], goal: float | None = None) -> None:
    med = statistics.median(times)
    verdict = "" if goal is None else ("  goal <= %.2f s: %s" % (goal, "met" if med <= goal else "NOT met"))
    print(f"{label}: median {med:.3f} s  (min {min(times):.3f}, max {max(times):.3f}, n={len(times)}){verdict}")
