#!/usr/bin/env python3
"""`vdr ask --batch` of 20 items, --parallel 4 vs 1, against llama-cpp-python's
OpenAI server on loopback (SmolLM2-135M), with a loopback web.  Prints both
wall times and the speed-up.

    python bench/batch_parallel.py [--items 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ROOT, start_site  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.llama_server import start_server  # noqa: E402


def run(items: Path, out: Path, url: str, parallel: int, env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "vdr_cli", "ask", "--batch", str(items), "-o", str(out), "--parallel", str(parallel),
           "--model", f"openai:smollm2@{url}", "--ctx", "2048", "--grammar", "on", "--temperature", "0",
           "--max-steps", "2", "--max-tokens", "120", "--summaries", "extractive"]
    start = time.perf_counter()
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True)
    took = time.perf_counter() - start
    if r.returncode not in (0, 3):
        raise SystemExit(r.stderr.decode())
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    web, env = start_site(delay=0.3)  # a search provider that takes 300 ms, like a real one
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "VDR_HOME": f"{tmp}/home"}
        items = Path(tmp) / "items.jsonl"
        items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n"
                                 for i in range(args.items)))
        (Path(tmp) / "server").mkdir()
        gen = start_server(Path(tmp) / "server")
        server = next(gen)
        try:
            one = run(items, Path(tmp) / "p1", server.url, 1, env)
            four = run(items, Path(tmp) / "p4", server.url, 4, env)
        finally:
            try:
                next(gen)
            except StopIteration:
                pass
            web.stop()
    print(f"{args.items} items, --parallel 1: {one:.1f} s")
    print(f"{args.items} items, --parallel 4: {four:.1f} s")
    print(f"speed-up: {one / four:.2f}x  (llama-cpp-python's server runs one generation at a time on one thread;"
          " parallel sessions overlap tool time and request handling)")


if __name__ == "__main__":
    main()
