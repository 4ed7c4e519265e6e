#!/usr/bin/env python3
"""`vdr ask --batch` against llama.cpp's own multi-slot `llama-server -np 8` on loopback
(SmolLM2-135M, grammar on, temperature 0, a loopback web): `--parallel 8` vs `1`,
generated tokens per second, beside `llama-batched-bench`'s own aggregate decode figure
for the same GGUF at batch size 1 and 8, and vdr's own time per step.

    scripts/build_llama_server.sh && python bench/http_parallel.py [--items 16] [--slots 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ROOT, smollm2, start_site  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests import llamacpp_server  # noqa: E402


def run(items: Path, out: Path, url: str, parallel: int, ctx: int, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "vdr_cli", "ask", "--batch", str(items), "-o", str(out), "--parallel", str(parallel),
           "--model", f"openai:smollm2@{url}", "--ctx", str(ctx), "--grammar", "on", "--temperature", "0",
           "--max-steps", "3", "--max-tokens", "120", "--summaries", "extractive"]
    start = time.perf_counter()
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True)
    wall = time.perf_counter() - start
    if r.returncode not in (0, 3):
        raise SystemExit(r.stderr.decode()[-2000:])
    completion = steps = 0
    vdr_ms = 0.0
    for trace in out.rglob("*.jsonl"):
        for line in trace.read_text().splitlines():
            ev = json.loads(line) if line.strip() else {}
            if ev.get("type") == "end" and "stats" in ev:
                completion += ev["stats"]["tokens"]["completion"]
                steps += ev["stats"]["steps"]
                vdr_ms += ev["stats"]["ms"]["vdr"]
    return {"wall": wall, "tokens": completion, "tps": completion / wall, "steps": steps,
            "vdr_ms_per_step": vdr_ms / steps if steps else 0.0}


def batched_bench(slots: int, threads: int) -> dict[int, float]:
    """llama-batched-bench's decode speed (S_TG t/s) at batch 1 and `slots`."""
    exe = llamacpp_server.binary("llama-batched-bench")
    if exe is None:
        return {}
    r = subprocess.run([str(exe), "-m", str(smollm2()), "-c", "16384", "-npp", "256", "-ntg", "64",
                        "-npl", f"1,{slots}", "-t", str(threads)], capture_output=True, text=True)
    found: dict[int, float] = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and re.fullmatch(r"\d+", cells[0] or "x") and re.fullmatch(r"\d+", cells[2] or "x"):
            found[int(cells[2])] = float(cells[7])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    why = llamacpp_server.unavailable()
    if why:
        raise SystemExit(f"http_parallel: {why}")
    per_slot = 2048
    web, env = start_site(delay=0.3)  # a search provider that takes 300 ms, like a real one
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "VDR_HOME": f"{tmp}/home"}
        items = Path(tmp) / "items.jsonl"
        items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n"
                                 for i in range(args.items)))
        (Path(tmp) / "server").mkdir()
        gen = llamacpp_server.start(Path(tmp) / "server", slots=args.slots, ctx=per_slot * args.slots,
                                    threads=args.threads)
        server = next(gen)
        try:
            one = run(items, Path(tmp) / "p1", server.url, 1, per_slot, env)
            many = run(items, Path(tmp) / "pn", server.url, args.slots, per_slot, env)
        finally:
            try:
                next(gen)
            except StopIteration:
                pass
            web.stop()
    ref = batched_bench(args.slots, args.threads)
    print(f"{args.items} sessions against llama-server -np {args.slots} (SmolLM2-135M, {args.threads} threads)")
    for name, r in (("--parallel 1", one), (f"--parallel {args.slots}", many)):
        print(f"  {name:<12} {r['wall']:6.1f} s wall, {r['tokens']} tokens generated, {r['tps']:6.1f} tokens/s,"
              f" vdr {r['vdr_ms_per_step']:.2f} ms/step")
    print(f"speed-up (generated tokens/s): {many['tps'] / one['tps']:.2f}x")
    worst = max(one["vdr_ms_per_step"], many["vdr_ms_per_step"])
    print(f"vdr's own time per step: {worst:.2f} ms (goal <= 5 ms: {'met' if worst <= 5 else 'NOT met'})")
    if ref:
        line = ", ".join(f"batch {b}: {tps:.1f} tokens/s" for b, tps in sorted(ref.items()))
        print(f"llama-batched-bench decode (npp 256, ntg 64): {line}")
        if 1 in ref and args.slots in ref:
            print(f"llama-batched-bench speed-up batch {args.slots} vs 1: {ref[args.slots] / ref[1]:.2f}x")
    else:
        print("llama-batched-bench: not built (scripts/build_llama_server.sh)")


if __name__ == "__main__":
    main()
