"""The reference's metrics and the paper's per-benchmark table, from result records.

Pure functions of `results.jsonl` records (one dict per item: `benchmark`,
`correct`, `judge`, `reason`), so a merge of shards computes exactly what one
run does.

- `reference_metrics`: Vision-DeepResearch's own (rllm/eval/eval_runner.py@67af60f
  `compute_metrics`): total, correct, accuracy = correct / total, the ending
  ("termination") counts, average_reward = mean reward (1 right, 0 wrong) over
  the items that produced a trajectory: an item whose session errored has none.
- `paper_table`: accuracy in percent per column of the paper's table (README.md
  "Performance": VDR, FVQA, MMSearch+, MMSearch, LiveVQA, BC-VL, Avg.), each
  column pooled over the benchmark files that make it (BC-VL: level 1 and 2),
  Avg. the mean of the six columns when all six ran ("--" otherwise, as the paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PAPER_COLUMNS: tuple[str, ...] = ("VDR", "FVQA", "MMSearch+", "MMSearch", "LiveVQA", "BC-VL")
AVG = "Avg."
# The reference's eval files (rllm/eval/README.md@67af60f "Datasets": testmini500_v1 is
# VDR-Bench, bcvl_level1_199 / bcvl_level2_200, fvqa_300, MMSearch-Plus_221,
# mmsearch_vision_171, livevqa_webwatcher_subset_300, ...) by name prefix, most specific first.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("testmini", "VDR"), ("vdr", "VDR"), ("fvqa", "FVQA"),
    ("mmsearch-plus", "MMSearch+"), ("mmsearch_plus", "MMSearch+"), ("mmsearchplus", "MMSearch+"),
    ("mmsearch+", "MMSearch+"), ("mmsearch", "MMSearch"), ("livevqa", "LiveVQA"),
    ("bcvl", "BC-VL"), ("bc-vl", "BC-VL"), ("bc_vl", "BC-VL"),
)


def paper_column(benchmark: str) -> str | None:
    """The paper's column a benchmark file counts towards (None: not in the paper's table)."""
    name = benchmark.lower().rsplit("/", 1)[-1]
    return next((col for prefix, col in _PREFIXES if name.startswith(prefix)), None)


def _rewarded(rec: Mapping[str, Any]) -> bool:
    return bool(rec.get("judge"))  # judged: the session produced a trajectory


def reference_metrics(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """eval_runner.py `compute_metrics`, on vdr's records (ending names are vdr's)."""
    recs = list(records)
    total = len(recs)
    correct = sum(1 for r in recs if r.get("correct"))
    termination: dict[str, int] = {}
    for r in recs:
        reason = r.get("reason") or "unknown"
        termination[reason] = termination.get(reason, 0) + 1
    rewards = [1.0 if r.get("correct") else 0.0 for r in recs if _rewarded(r)]
    return {"total": total, "correct": correct, "accuracy": correct / total if total else 0.0,
            "termination_distribution": termination,
            "average_reward": sum(rewards) / len(rewards) if rewards else None}


def by_benchmark(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """reference_metrics per benchmark file (records without one count as "(set)"), with its column."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r.get("benchmark") or "(set)"), []).append(r)
    return {name: {**reference_metrics(recs), "column": paper_column(name)} for name, recs in sorted(groups.items())}


def paper_table(benchmarks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{column: {"total", "correct", "accuracy" (percent, 1 decimal)} or None, "Avg.": float or None}."""
    table: dict[str, Any] = {}
    for col in PAPER_COLUMNS:
        parts = [m for m in benchmarks.values() if m.get("column") == col]
        total = sum(int(m["total"]) for m in parts)
        correct = sum(int(m["correct"]) for m in parts)
        table[col] = {"total": total, "correct": correct, "accuracy": round(100 * correct / total, 1)} if total else None
    scores = [table[c]["accuracy"] for c in PAPER_COLUMNS if table[c]]
    table[AVG] = round(sum(scores) / len(scores), 1) if len(scores) == len(PAPER_COLUMNS) else None
    return table


def paper_rows(table: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Header and one row of the paper's layout ("--" where a column did not run)."""
    header = [*PAPER_COLUMNS, AVG]
    cells = [f"{table[c]['accuracy']:.1f}" if table.get(c) else "--" for c in PAPER_COLUMNS]
    cells.append(f"{table[AVG]:.1f}" if table.get(AVG) is not None else "--")
    return header, cells
