#!/usr/bin/env python3
"""A `vdr ask` session on the real engine: where the time goes, and tokens evaluated once.

SmolLM2-135M with the tiny LLaVA projector, grammar mode, up to 10 steps,
against a loopback web.  Prints the wall time split into model, tools and
vdr's own overhead (goal <= 2% of the total) and tokens evaluated / final
context tokens (goal <= 1.05).

    python bench/ask_session.py [--steps 10]
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
from _loopback import ROOT, smollm2, start_site  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    web, env = start_site()
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        Image.new("RGB", (640, 480), (180, 60, 40)).save(f"{tmp}/photo.png")
        trace = Path(tmp) / "t.jsonl"
        cmd = [sys.executable, "-m", "vdr_cli", "ask", f"{tmp}/photo.png", "Who built this? Search the web, then read pages.",
               "--model", str(smollm2()), "--mmproj", str(ROOT / "tests/fixtures/gguf/llava-mmproj-smollm2.gguf"),
               "--grammar", "on", "--temperature", "0", "--max-steps", str(args.steps), "--ctx", "16384",
               "--max-tokens", "200", "--summaries", "extractive", "-o", str(trace)]
        start = time.perf_counter()
        r = subprocess.run(cmd, env={**os.environ, **env, "VDR_HOME": f"{tmp}/home"}, capture_output=True)
        wall = time.perf_counter() - start
        web.stop()
        if not trace.exists():
            raise SystemExit(r.stderr.decode())
        events = [json.loads(l) for l in trace.read_text().splitlines()]
    end = events[-1]
    stats = end["stats"]
    ms = stats["ms"]
    steps = stats["steps"]
    model = stats.get("model", {})
    print(f"session: {steps} steps, {stats['calls']} tool calls {stats['tools']}, ended: {end['reason']}")
    print(f"process wall: {wall:.2f} s (includes interpreter start and model load)")
    print(f"session wall: {ms['total'] / 1000:.2f} s = model {ms['model'] / 1000:.2f} s + tools {ms['tools'] / 1000:.2f} s"
          f" + vdr {ms['vdr'] / 1000:.3f} s")
    share = ms["vdr"] / ms["total"] if ms["total"] else 0.0
    print(f"vdr overhead: {share * 100:.2f}% of the session  (goal <= 2%: {'met' if share <= 0.02 else 'NOT met'})")
    ctx = stats["tokens"]["context"]
    evaluated = model.get("tokens_evaluated", 0)
    ratio = evaluated / ctx if ctx else 0.0
    print(f"tokens evaluated {evaluated} / final context {ctx} = {ratio:.3f}  (goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'});"
          f" images encoded: {model.get('images_encoded')}")


if __name__ == "__main__":
    main()
