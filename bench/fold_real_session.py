"""A real-engine session that outlasts its window (a script, not a test).

SmolLM2-135M in-process, grammar mode, `--ctx 4096 --max-steps 60`, greedy,
against the loopback web (search answering with article pages of realistic
size, bench/fold_capacity.py's). Without folding such a session ends with
`context_full` after a few visits; with the default folding it must end by
its step budget or an answer. Prints the end reason, steps, calls, folds,
tokens evaluated and the final context, for each --fold given.

    python bench/fold_real_session.py [--fold keep-last:3 off] [--max-tokens 160]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback import smollm2, start_site  # noqa: E402
from fold_capacity import add_pages  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fold", nargs="+", default=["keep-last:3", "off"])
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--max-steps", type=int, default=60)
    ap.add_argument("--ctx", default="4096")
    args = ap.parse_args()
    web, env = start_site()
    add_pages(web)
    print(f"SmolLM2-135M, --grammar on --ctx {args.ctx} --max-steps {args.max_steps} --max-tokens {args.max_tokens}",
          flush=True)
    print(f"{'fold':<12} {'ended by':<13} {'steps':>5} {'calls':>5} {'folds':>5} {'evaluated':>9} {'context':>7} {'s':>6}",
          flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for fold in args.fold:
                trace = Path(tmp) / f"{fold.replace(':', '-')}.jsonl"
                t0 = time.perf_counter()
                r = subprocess.run(
                    [sys.executable, "-m", "vdr_cli", "ask", "Who designed and built the Eiffel Tower? Search and read.",
                     "--model", str(smollm2()), "--grammar", "on", "--temperature", "0", "--ctx", args.ctx,
                     "--max-steps", str(args.max_steps), "--max-tokens", str(args.max_tokens), "--fold", fold,
                     "--summaries", "extractive", "--no-cache", "-o", str(trace)],
                    cwd=ROOT, env={**os.environ, **env, "VDR_HOME": tmp}, capture_output=True, text=True)
                events = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
                end = events[-1] if events and events[-1]["type"] == "end" else {"reason": f"exit {r.returncode}", "stats": {}}
                stats = end.get("stats") or {}
                tokens = stats.get("tokens") or {}
                model = stats.get("model") or {}
                print(f"{fold:<12} {end['reason']:<13} {stats.get('steps', 0):>5} {stats.get('calls', 0):>5} "
                      f"{stats.get('folds', 0):>5} {model.get('tokens_evaluated', 0):>9} {tokens.get('context', 0):>7} "
                      f"{time.perf_counter() - t0:>6.0f}", flush=True)
                if r.returncode not in (0, 1):
                    print(r.stderr[-2000:], file=sys.stderr)
    finally:
        web.stop()


if __name__ == "__main__":
    main()
