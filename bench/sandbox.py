#!/usr/bin/env python3
"""PythonInterpreter's sandbox: wall time of one run (jail built, code run, jail gone), median of N.

    python bench/sandbox.py [--runs N]

Figures: `print(1)`; the reference's preloaded numpy used once; the start-up probe
vdr ask makes (a run that must find no network); a bare `python -c pass` for scale.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vdr_cli.tools.sandbox import Limits, availability, run_python  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def show(label: str, times: list[float]) -> None:
    print(f"{label}: median {statistics.median(times) * 1000:.0f} ms  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    found = availability()
    if not found.ok:
        raise SystemExit(f"no sandbox here: {found.reason}")
    print(f"sandbox: {found.mechanism}")
    run_python("pass")  # warm the page cache
    show("print(1) in the sandbox", timed(lambda: run_python("print(1)", Limits()), args.runs))
    show("np.mean([1,2,3]) in the sandbox", timed(lambda: run_python("print(np.mean([1, 2, 3]))", Limits()), args.runs))
    availability.cache_clear()
    show("vdr ask's start-up probe", timed(lambda: (availability.cache_clear(), availability()), args.runs))
    show("python -c pass (no sandbox, for scale)", timed(lambda: subprocess.run([sys.executable, "-c", "pass"]), args.runs))


if __name__ == "__main__":
    main()
