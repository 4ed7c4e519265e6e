"""More than one machine: `--shard I/N` slices of a batch or an eval, and `vdr eval --merge`.

A shard is every N-th item of the set in its given order, starting at the I-th
(1-based): deterministic, balanced (sizes differ by at most one) and, over
I = 1..N, covering every item exactly once.  Round-robin rather than contiguous
blocks, so a set sorted by benchmark or difficulty spreads evenly over machines.
Each shard runs with its own output folder; `merge` folds their results.jsonl
files into one folder with the metrics one run over the whole set would give.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

from vdr_cli.errors import InputError, UsageError

T = TypeVar("T")
_SHARD = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index - 1::self.count])


def parse_shard(text: str | None) -> Shard | None:
    """`I/N` with 1 <= I <= N, or None for no sharding."""
    if text is None or text == "":
        return None
    m = _SHARD.fullmatch(text)
    if not m:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 1/4", hint="shards count from 1: --shard 1/4 … --shard 4/4")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text}: I must be between 1 and N (N >= 1)",
                         hint="shards count from 1: --shard 1/4 … --shard 4/4")
    return Shard(index, count)


def _better(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """A judged record beats an unjudged one; otherwise the later wins (a re-run)."""
    return old is None or bool(new.get("judge")) or not old.get("judge")


def read_shard_results(folders: Sequence[Path]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Records by id over every folder's results.jsonl, and each folder's metrics.json (or {})."""
    records: dict[str, dict[str, Any]] = {}
    metas: list[dict[str, Any]] = []
    for folder in folders:
        path = folder / "results.jsonl"
        if not path.is_file():
            raise InputError(f"{folder}: no results.jsonl (not a vdr eval output folder)")
        for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError, ValueError) as exc:
                raise InputError(f"{path}:{n}: not a JSON line ({type(exc).__name__})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                raise InputError(f"{path}:{n}: a result line needs a string \"id\"")
            if _better(records.get(rec["id"]), rec):
                records[rec["id"]] = rec
        meta_path = folder / "metrics.json"
        try:
            meta = json.loads(meta_path.read_text("utf-8")) if meta_path.is_file() else {}
        except (json.JSONDecodeError, ValueError):
            meta = {}
        metas.append(meta if isinstance(meta, dict) else {})
    return records, metas


def merge(folders: Sequence[Path], out: Path, group_by: Sequence[str] = ()) -> dict[str, Any]:
    """Fold shard folders into `out` (results.jsonl in a stable order, metrics.json).
    Idempotent: merging the same folders again, or `out` with them, gives the same files."""
    from vdr_cli.agent.eval_data import EvalItem
    from vdr_cli.agent.evaluate import metrics_of
    from vdr_cli.trace.jsonl import dumps

    if not folders:
        raise UsageError("vdr eval --merge needs at least one folder", hint="vdr eval --merge runs/s1 runs/s2 -o runs/all")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: not a folder")
    records, metas = read_shard_results(folders)
    ordered = [records[k] for k in sorted(records)]
    items = [EvalItem(id=r["id"], question=str(r.get("question", "")), answer=r.get("answer", ""), images=[],
                      tags=r.get("tags") if isinstance(r.get("tags"), dict) else {},
                      benchmark=str(r.get("benchmark") or "")) for r in ordered]
    metrics = metrics_of(items, records, list(group_by))
    shards = sorted({str(m["shard"]) for m in metas if m.get("shard")}
                    | {str(s) for m in metas for s in (m.get("merged") or {}).get("shards", [])})
    for key in ("model", "judge", "dataset", "judge_note"):
        values = {json.dumps(m.get(key)) for m in metas if m.get(key) is not None}
        if len(values) == 1:
            metrics[key] = json.loads(values.pop())
    # The slowest input: the wall time when the shards ran side by side (and a max stays idempotent).
    metrics["wall_s"] = max((float(m.get("wall_s") or 0) for m in metas), default=0.0)
    metrics["merged"] = {"folders": len(folders), "shards": shards}
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.jsonl", "".join(dumps(r) + "\n" for r in ordered)),
                       ("metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")):
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, "utf-8")
        os.replace(tmp, out / name)
    return metrics
