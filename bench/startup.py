#!/usr/bin/env python3
"""`vdr --help` wall time, whole process, median of 10 runs (goal <= 0.12 s).

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import report, time_runs, vdr_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cmd = vdr_command()
    time_runs(lambda i: cmd + ["--help"], 2)  # warm the page cache and .pyc files
    print(f"command: {' '.join(cmd)} --help")
    report("vdr --help", time_runs(lambda i: cmd + ["--help"], args.runs), goal=0.12)
    report("python -c pass (interpreter floor)", time_runs(lambda i: [sys.executable, "-c", "pass"], args.runs))


if __name__ == "__main__":
    main()
