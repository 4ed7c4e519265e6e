#!/usr/bin/env python3
"""In-process parallel sessions (SmolLM2-135M): figures for issue 14.

1. `vdr ask --batch` of 8 items (temperature 0, grammar on, a loopback web
   whose search takes 300 ms): generated tokens/s at `--parallel 1` and `4`
   in-process, and the same batch against llama.cpp's `llama-server -np 4`
   in the same run.
2. Aggregate decode tokens/s of the engine alone (4 sequences, 128-token
   prompts, 128 generated tokens each, no stop) beside `llama-batched-bench`
   on the same GGUF, batch size and threads.

llama-server and llama-batched-bench come from scripts/build_llama_server.sh
(cache: $VDR_LLAMA_SERVER_DIR, else $VDR_LLAMA_BIN_CACHE/<version>, else
~/.cache/vdr/llama-bin/<version>); without them those rows say "not built".

    python bench/batch_inprocess.py [--items 8] [--threads 2] [--skip-batch]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ROOT, smollm2, start_site  # noqa: E402

sys.path.insert(0, str(ROOT))

CTX = 4096  # per session: room for 3 steps without folding, so the figures measure batching


def batch_run(items: Path, out: Path, model: str, parallel: int, env: dict[str, str], threads: int) -> dict:
    cmd = [sys.executable, "-m", "vdr_cli", "ask", "--batch", str(items), "-o", str(out), "--parallel", str(parallel),
           "--model", model, "--ctx", str(CTX), "--grammar", "on", "--temperature", "0",
           "--max-steps", "3", "--max-tokens", "120", "--summaries", "extractive"]
    start = time.perf_counter()
    r = subprocess.run(cmd, env={**os.environ, **env, "VDR_MODEL_THREADS": str(threads)}, capture_output=True)
    took = time.perf_counter() - start
    if r.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    tokens, loads, folds = 0, set(), 0
    for trace in out.glob("*.jsonl"):
        for line in trace.read_text().splitlines():
            ev = json.loads(line)
            folds += ev.get("type") == "fold"
            if ev.get("type") == "end":
                tokens += ev["stats"]["tokens"]["completion"]
                loads.add((ev["stats"].get("model") or {}).get("model_loads"))
    return {"s": took, "tokens": tokens, "tps": tokens / took, "loads": loads, "folds": folds}


def engine_decode(gguf: Path, n_seq: int, n_prompt: int, n_gen: int, threads: int) -> float:
    """Aggregate generated tokens/s of `n_seq` sequences decoding together (prompts excluded)."""
    from vdr_cli.models.base import SamplingParams
    from vdr_cli.models.llama_engine import LlamaEngine, Work
    from vdr_cli.models.llama_sampling import Sampler

    with LlamaEngine(gguf, n_ctx=n_prompt + n_gen + 16, n_parallel=n_seq, n_threads=threads) as engine:
        ready = threading.Barrier(n_seq + 1)
        done = threading.Barrier(n_seq + 1)
        vocab = engine.vocab

        def worker(i: int) -> None:
            seq = 1 + i  # the conversations' sequence ids (llama_engine: 1..N)
            prompt = (vocab.tokenize(f"Story {i}: once upon a time " * 200))[:n_prompt]
            sampler = Sampler(vocab, SamplingParams(temperature=0), None)
            tok = engine.submit(Work(engine.ctx, seq, prompt, 0, "sample", sampler))
            engine.generating(seq, True)
            ready.wait()
            for k in range(n_gen - 1):  # like llama-batched-bench: no stop, every step decodes
                tok = engine.submit(Work(engine.ctx, seq, [tok], n_prompt + k, "sample", sampler))
            engine.generating(seq, False)
            sampler.free()
            done.wait()

        threads_ = [threading.Thread(target=worker, args=(i,)) for i in range(n_seq)]
        for t in threads_:
            t.start()
        ready.wait()
        t0 = time.perf_counter()
        done.wait()
        took = time.perf_counter() - t0
        for t in threads_:
            t.join()
    return n_seq * (n_gen - 1) / took


def batched_bench(exe: Path | None, gguf: Path, n_seq: int, n_prompt: int, n_gen: int, threads: int) -> str:
    if exe is None:
        return "not built (scripts/build_llama_server.sh)"
    cmd = [str(exe), "-m", str(gguf), "-c", str(n_seq * (n_prompt + n_gen + 16)), "-b", "512", "-ub", "512",
           "-npp", str(n_prompt), "-ntg", str(n_gen), "-npl", str(n_seq), "-t", str(threads), "-kvu"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0] == str(n_prompt) and cells[2] == str(n_seq):
            return cells[7]  # S_TG t/s
    return f"no figure ({r.returncode}): {(r.stderr or r.stdout)[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-batch", action="store_true", help="only the decode figures")
    args = parser.parse_args()
    from tests.llamacpp_server import binary, start

    gguf = smollm2()
    server_exe, bench_exe = binary("llama-server"), binary("llama-batched-bench")
    if not args.skip_batch:
        web, env = start_site(delay=0.3)
        with tempfile.TemporaryDirectory() as tmp:
            env = {**env, "VDR_HOME": f"{tmp}/home"}
            items = Path(tmp) / "items.jsonl"
            items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n"
                                     for i in range(args.items)))
            rows = {}
            for p in (1, 4):
                rows[f"in-process --parallel {p}"] = batch_run(items, Path(tmp) / f"p{p}", str(gguf), p, env,
                                                               args.threads)
            if server_exe is not None:
                (Path(tmp) / "server").mkdir()
                gen = start(Path(tmp) / "server", slots=4, ctx=4 * CTX, threads=args.threads, model=gguf)
                server = next(gen)
                try:
                    rows["llama-server -np 4, --parallel 4"] = batch_run(
                        items, Path(tmp) / "srv", f"openai:smollm2@{server.url}", 4, env, args.threads)
                finally:
                    gen.close()
            web.stop()
        print(f"vdr ask --batch, {args.items} items, SmolLM2-135M, grammar on, temperature 0, "
              f"{args.threads} threads:")
        for name, row in rows.items():
            loads = "" if name.startswith("llama-server") else f", model loads per trace {sorted(row['loads'])}"
            print(f"  {name:<36} {row['s']:6.1f} s  {row['tokens']:5d} tokens  {row['tps']:6.1f} tokens/s, {row['folds']} folds{loads}")
        if server_exe is None:
            print("  llama-server -np 4                   not built (scripts/build_llama_server.sh)")
        one, four = rows["in-process --parallel 1"], rows["in-process --parallel 4"]
        print(f"  in-process speed-up --parallel 4 vs 1: {four['tps'] / one['tps']:.2f}x")
        if "llama-server -np 4, --parallel 4" in rows:
            print(f"  in-process --parallel 4 vs llama-server -np 4: "
                  f"{four['tps'] / rows['llama-server -np 4, --parallel 4']['tps']:.2f}x")
    ours = engine_decode(gguf, 4, 128, 128, args.threads)
    theirs = batched_bench(bench_exe, gguf, 4, 128, 128, args.threads)
    print(f"aggregate decode, 4 sequences, pp 128, tg 128, {args.threads} threads:")
    print(f"  vdr engine           {ours:7.1f} tokens/s")
    try:
        print(f"  llama-batched-bench  {float(theirs):7.1f} tokens/s  -> vdr at {100 * ours / float(theirs):.0f}%")
    except ValueError:
        print(f"  llama-batched-bench  {theirs}")


if __name__ == "__main__":
    main()
