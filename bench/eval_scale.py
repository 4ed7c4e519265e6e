#!/usr/bin/env python3
"""A 1,000-item `vdr eval` on the scripted backend (search, then answer, against a loopback
web): wall time per item and the process's memory from the first to the last item, then the
same eval killed (SIGKILL) at a random point and run again: the re-run must finish only the
items that are missing.

    python bench/eval_scale.py [--items 1000] [--parallel 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import start_site  # noqa: E402

CALL = json.dumps({"name": "search", "arguments": {"query": ["Eiffel tower builder"]}})
TURNS = [f"<think>search</think>\n<tool_call>\n{CALL}\n</tool_call>",
         "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"]


def write_inputs(tmp: Path, n: int) -> tuple[Path, Path]:
    script = tmp / "script.jsonl"
    lines = [{"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"}]
    lines += [{"type": "step", "n": k, "raw": raw} for k, raw in enumerate(TURNS, 1)]
    script.write_text("".join(json.dumps(x) + "\n" for x in lines))
    bench = tmp / "set.jsonl"
    gold = ["Gustave Eiffel's company", "Maurice Koechlin"]
    bench.write_text("".join(json.dumps({"id": f"q{i:05d}", "question": f"Who built landmark {i}?",
                                         "answer": gold[i % 2]}) + "\n" for i in range(n)))
    return bench, script


def command(bench: Path, script: Path, out: Path, parallel: int) -> list[str]:
    return [sys.executable, "-m", "vdr_cli", "eval", str(bench), "--model", f"scripted:{script}", "-o", str(out),
            "--judge", "exact", "--summaries", "extractive", "-P", str(parallel), "--json"]


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watched_run(cmd: list[str], env: dict[str, str], results: Path, kill_after: int | None = None) -> dict:
    """Run, polling results.jsonl: (time, items done, RSS) samples; SIGKILL once kill_after lines exist."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, int, float | None]] = []
    t0 = time.perf_counter()
    killed = False
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        done = lines(results)
        samples.append((time.perf_counter() - t0, done, rss_mib(proc.pid)))
        if kill_after is not None and done >= kill_after and not killed:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    reader.join(5)
    return {"rc": proc.returncode, "wall": time.perf_counter() - t0, "samples": samples, "killed": killed,
            "stderr": b"".join(err).decode(errors="replace")}


def per_item(samples: list[tuple[float, int, float | None]], lo: int, hi: int) -> float:
    """Seconds per item between the moments `lo` and `hi` items were done."""
    t_lo = next(t for t, d, _ in samples if d >= lo)
    t_hi = next(t for t, d, _ in samples if d >= hi)
    return (t_hi - t_lo) / max(1, hi - lo)


def rss_at(samples: list[tuple[float, int, float | None]], done: int) -> float:
    return next((r for _, d, r in samples if d >= done and r is not None), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.items
    web, env = start_site()
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            env = {**os.environ, **env, "VDR_HOME": str(tmp / "home")}
            bench, script = write_inputs(tmp, n)
            out = tmp / "run"
            run = watched_run(command(bench, script, out, args.parallel), env, out / "results.jsonl")
            if run["rc"] != 0:
                raise SystemExit(f"eval failed ({run['rc']}): {run['stderr'][-1500:]}")
            tenth = max(1, n // 10)
            first, last = per_item(run["samples"], 1, tenth), per_item(run["samples"], n - tenth, n)
            print(f"{n} items, --parallel {args.parallel}, scripted backend: {run['wall']:.1f} s wall, "
                  f"{run['wall'] / n * 1000:.1f} ms/item")
            print(f"  ms/item, first {tenth}: {first * 1000:.1f}; last {tenth}: {last * 1000:.1f}"
                  f"  (ratio {last / first if first else float('nan'):.2f})")
            print(f"  RSS at {tenth} / {n // 2} / {n - 1} items done: {rss_at(run['samples'], tenth):.0f} / "
                  f"{rss_at(run['samples'], n // 2):.0f} / {rss_at(run['samples'], n - 1):.0f} MiB")

            # kill -9 at a random point, then run again
            cut = random.Random(args.seed).randint(n // 10, n - n // 10)
            out2 = tmp / "killed"
            first_run = watched_run(command(bench, script, out2, args.parallel), env, out2 / "results.jsonl", cut)
            judged_before = lines(out2 / "results.jsonl")
            traces_before = {p.name: p.stat().st_mtime_ns for p in (out2 / "traces").glob("*.jsonl")}
            again = watched_run(command(bench, script, out2, args.parallel), env, out2 / "results.jsonl")
            recs = [json.loads(x) for x in (out2 / "results.jsonl").read_text().splitlines() if x.strip()]
            ids = [r["id"] for r in recs]
            rerun = sum(1 for p in (out2 / "traces").glob("*.jsonl")
                        if traces_before.get(p.name) != p.stat().st_mtime_ns)
            complete = sorted(ids) == sorted(f"q{i:05d}" for i in range(n)) and len(ids) == len(set(ids))
            print(f"kill -9 after {judged_before} judged items (target {cut}; killed: {first_run['killed']}); "
                  f"the re-run ran {rerun} sessions for {n - judged_before} missing items, exit {again['rc']}; "
                  f"results complete and unique: {complete}")
    finally:
        web.stop()


if __name__ == "__main__":
    main()
