"""`vdr eval`: run a benchmark set through the agent and judge every answer.

A set (JSONL, or Parquet with pyarrow) becomes one session per item through
the batch machinery (`batch.run_items`, traces in DIR/traces/); each item
that ended is judged with the reference evaluation's prompt (Vision-
DeepResearch `rllm/eval/eval_runner.py`) or by normalised exact match, and
its result line is appended to DIR/results.jsonl at once, so Ctrl-C keeps
what is done.  A re-run skips judged items; an item whose trace already
ended with an answer is judged without running again; items that errored
or were interrupted run again.  DIR/metrics.json holds the totals: the
reference's metrics, per benchmark file, and the paper's table (eval_metrics.py).

The judge is an LLM, as the paper scores: --judge MODEL, by default the
policy model itself (the reference's JUDGE_MODEL default, eval_runner.py
`main`).  --judge exact is normalised exact match: not the paper's metric.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vdr_cli.agent.eval_data import EvalItem, load_dataset
from vdr_cli.agent.shard import parse_shard
from vdr_cli.errors import UsageError

JUDGE_SYSTEM = "You are a helpful assistant."
JUDGE_PROMPT = """You are a impartial judge evaluating whether a deep research report contains the correct answer.

[Question]
{question}

[Correct Answer]
{reference_answer}

[Deep Research Report]
{assistant_answer}

Task: Determine if the deep research report contains the correct answer anywhere in its content.

Instructions:
1. Read through the entire research report carefully
2. Look for the correct answer anywhere in the report (it may be embedded in paragraphs, tables, or sections)
3. Check if the information in the report is consistent with the correct answer
4. The answer does NOT need to be in a specific format or labeled as "final answer"
5. Provide your reasoning
6. Answer with "yes" if the report contains the correct answer, "no" if it doesn't or contradicts it

Output format:
correct: [yes/no]
reasoning: [your explanation]
"""

EXACT = ("exact", "none")  # --judge values for normalised exact match
EXACT_NOTE = "exact match is not the paper's metric (the paper judges with an LLM: --judge MODEL)"
ENDINGS = ("answer", "max_steps", "context_full", "error", "interrupted")
RETRIED = ("error", "interrupted")  # endings a re-run tries again; the others are judged and final
@dataclass
class EvalRequest:
    dataset: Path
    out_dir: Path
    ask: Any  # an AskRequest: model, budgets, sampling, parallel
    judge: str | None = None  # a model spec; None: the policy model; "exact": exact match
    judge_max_tokens: int = 1024
    group_by: list[str] = field(default_factory=list)
    limit: int | None = None


@dataclass
class EvalOutcome:
    items: list[EvalItem]
    records: dict[str, dict[str, Any]]  # id -> its latest result line
    metrics: dict[str, Any]


# --- judging ----------------------------------------------------------------------------

def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").strip().lower()).strip(".,;:!?\"'").strip()


def prediction_of(text: str | None) -> str:
    """The answer text (eval_runner.py `_extract_final_answer`): <think> removed, the
    <answer> part if there is one, else a \\boxed{...}, else the whole text."""
    cleaned = re.sub(r"<think>.*?(</think>|$)", "", text or "", flags=re.S).strip()
    found = re.search(r"<answer>(.*?)(</answer>|$)", cleaned, flags=re.S) or re.search(r"\\boxed\{([^{}]+)\}", cleaned)
    return (found.group(1) if found else cleaned).strip()


def parse_verdict(text: str) -> bool | None:
    """`correct: yes/no` from a judge's text, as the reference reads it; None when absent."""
    for line in (text or "").lower().splitlines():
        if "correct:" not in line:
            continue
        after = line.split("correct:", 1)[1].strip().strip("[]*").strip()
        if after.startswith("yes"):
            return True
        if after.startswith("no"):
            return False
        if "yes" in after:
            return True
        if "no" in after:
            return False
    return None


@dataclass
class Verdict:
    correct: bool
    judge: str  # "llm", "exact" or "exact-fallback"
    text: str | None


def judge_spec_text(judge: str | None, ask: Any) -> str:
    """What judges: --judge as given, else the policy model (--model, else config model.default)."""
    if judge is not None:
        return judge
    from vdr_cli.agent.host import settings

    return ask.model or settings(ask)["model"] or ""


class Judge:
    """`exact`: normalised exact match; otherwise a model spec asked once per item (a side generation)."""

    def __init__(self, spec_text: str, ask: Any, max_tokens: int) -> None:
        from vdr_cli.models.spec import parse_spec

        self.spec = None if spec_text.strip().lower() in (*EXACT, "") else parse_spec(spec_text)
        self.ask = ask
        self.max_tokens = max_tokens
        self.session: Any = None
        self.broken: str | None = None  # a judge that cannot open is not retried per item
        self.calls = 0

    def __call__(self, question: str, answers: list[str], prediction: str) -> Verdict:
        exact = any(normalize(a) == normalize(prediction) for a in answers) and bool(prediction.strip())
        if self.spec is None or not prediction.strip():  # an empty report is wrong, whatever a judge says
            return Verdict(exact, "exact", None)
        from vdr_cli.models.base import SamplingParams, Turn

        prompt = JUDGE_PROMPT.format(question=question, reference_answer=" / ".join(answers),
                                     assistant_answer=prediction)
        try:
            if self.broken:
                raise RuntimeError(self.broken)
            session = self._open()
            self.calls += 1
            result = session.side_generate([Turn("system", JUDGE_SYSTEM), Turn("user", prompt)],
                                           SamplingParams(temperature=0.0, top_p=1.0, seed=0,
                                                          max_tokens=self.max_tokens))
            text = result.text.strip()
        except Exception as exc:  # any judge failure: the item still gets a verdict
            message = " ".join(str(getattr(exc, "message", exc)).split())[:300]
            return Verdict(exact, "exact-fallback", f"judge_error: {type(exc).__name__}: {message}")
        verdict = parse_verdict(text)
        return Verdict(exact, "exact-fallback", text) if verdict is None else Verdict(verdict, "llm", text)

    def _open(self) -> Any:
        if self.session is None:
            from vdr_cli.agent.host import settings
            from vdr_cli.models.loader import LoadOptions, open_model

            conf = settings(self.ask)
            opts = LoadOptions(ctx=8192 if self.spec.kind == "llama" else None, n_gpu_layers=conf["n_gpu_layers"],
                               threads=conf["threads"], api_key=conf["api_key"], has_vision=False)
            try:
                self.session = open_model(self.spec, opts)
            except Exception as exc:
                self.broken = f"cannot open judge {self.spec.name!r}: {exc}"
                raise
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


# --- running ----------------------------------------------------------------------------

def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The latest line per id of a results file (a torn last line is ignored)."""
    out: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text("utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out[str(rec["id"])] = rec
    return out


def trace_info(path: Path) -> dict[str, Any]:
    """The end event, answer and first error message of a trace."""
    info: dict[str, Any] = {"end": None, "answer": None, "error": None}
    if path.exists():
        for line in path.read_text("utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = ev.get("type") if isinstance(ev, dict) else None
            if kind in ("end", "answer"):
                info[kind] = ev if kind == "end" else ev.get("text")
            elif kind == "error" and info["error"] is None:
                info["error"] = ev.get("message")
    return info


def run_eval(req: EvalRequest, on_result: Callable[[dict[str, Any]], None]) -> EvalOutcome:
    from vdr_cli.agent.batch import ProgressBar, run_items
    from vdr_cli.render.output import say
    from vdr_cli.trace.jsonl import JsonlWriter

    if req.limit is not None and req.limit < 1:
        raise UsageError("--limit must be at least 1")
    out = req.out_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: not a folder")
    items = load_dataset(req.dataset, out / "images")[: req.limit]
    shard = parse_shard(getattr(req.ask, "shard", None))
    if shard is not None:
        items = shard.take(items)
    judge = Judge(judge_spec_text(req.judge, req.ask), req.ask, req.judge_max_tokens)  # a bad spec fails first
    if judge.spec is None:
        say("eval", "warning", EXACT_NOTE)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    records = read_results(results_path)
    todo = [it for it in items if not (records.get(it.id) or {}).get("judge")]
    if len(todo) < len(items):
        say("eval", "info", f"{len(items) - len(todo)} of {len(items)} items already judged in {results_path}")
    by_id = {it.id: it for it in todo}
    progress = ProgressBar(len(todo), "eval")
    t0 = time.perf_counter()
    with open(results_path, "a", encoding="utf-8") as fh:
        writer = JsonlWriter(fh)

        def done(summary: dict[str, Any]) -> None:
            record = _record(by_id[summary["id"]], summary, judge)
            writer.write(record)  # flushed: Ctrl-C or kill keeps every judged item
            records[record["id"]] = record
            progress.advance()
            on_result(record)

        try:
            batch = [{"id": it.id, "question": it.question, "images": it.images} for it in todo]
            run_items(batch, req.ask, out / "traces", done)
        finally:
            progress.close()
            judge.close()
            metrics = compute_metrics(items, records, req, time.perf_counter() - t0)
            _write_outputs(out, items, records, metrics)
    return EvalOutcome(items, records, metrics)


def _record(item: EvalItem, summary: dict[str, Any], judge: Judge) -> dict[str, Any]:
    trace = Path(summary["trace"])
    info = trace_info(trace)
    stats = (info["end"] or {}).get("stats") or summary.get("stats") or {}
    reason = summary.get("reason") or "error"
    prediction = prediction_of(summary.get("answer") or info["answer"])
    ms = summary.get("ms") if summary.get("ms") is not None else (stats.get("ms") or {}).get("total")
    record: dict[str, Any] = {"id": item.id, "benchmark": item.benchmark, "question": item.question,
                              "answer": item.answer, "prediction": prediction, "correct": False, "judge": None,
                              "judge_text": None}
    if reason not in RETRIED:
        verdict = judge(item.question, item.answers, prediction)
        record.update(correct=verdict.correct, judge=verdict.judge, judge_text=verdict.text)
    record.update(reason=reason, steps=stats.get("steps", 0), calls=stats.get("calls", 0), ms=ms,
                  trace=str(trace), tags=item.tags)
    if reason in RETRIED:
        record["error"] = summary.get("error") or info["error"] or f"the session ended: {reason}"
    return record


def compute_metrics(items: list[EvalItem], records: dict[str, dict[str, Any]], req: EvalRequest,
                    wall_s: float) -> dict[str, Any]:
    """metrics_of the set, and what ran it."""
    judge = judge_spec_text(req.judge, req.ask)
    from vdr_cli.models.spec import public_spec

    several = [public_spec(m) for m in getattr(req.ask, "models", None) or []]
    return {**metrics_of(items, records, req.group_by), "wall_s": round(wall_s, 2), "model": req.ask.model,
            **({"models": several} if len(several) > 1 else {}),
            "judge": judge, "dataset": str(req.dataset),
            **({"shard": str(parse_shard(req.ask.shard))} if getattr(req.ask, "shard", None) else {}),
            **({"judge_note": EXACT_NOTE} if judge.strip().lower() in (*EXACT, "") else {})}


def metrics_of(items: list[EvalItem], records: dict[str, dict[str, Any]], group_by: list[str] = ()) -> dict[str, Any]:
    """Accuracy over the items that ran (errors count as wrong; pending ones never ran), the
    reference's metrics, per benchmark file, and the paper's table.  Pure: a merge of shards
    passes all their records and gets what one run would."""
    from vdr_cli.agent.eval_metrics import by_benchmark, paper_table, reference_metrics

    recs = [{"benchmark": it.benchmark, **records[it.id]} for it in items if it.id in records]
    correct = sum(1 for r in recs if r.get("correct"))
    fields = (["domain"] if any("domain" in it.tags for it in items) else []) + \
        [f for f in group_by if f != "domain"]
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for name in fields:
        table: dict[str, dict[str, Any]] = {}
        for r in recs:
            row = table.setdefault(str((r.get("tags") or {}).get(name, "(none)")), {"n": 0, "correct": 0})
            row["n"] += 1
            row["correct"] += bool(r.get("correct"))
        for row in table.values():
            row["accuracy"] = row["correct"] / row["n"]
        groups[name] = dict(sorted(table.items()))
    endings = Counter({k: 0 for k in ENDINGS})
    endings.update(r.get("reason") or "error" for r in recs)
    judges = Counter(r.get("judge") or "none" for r in recs)
    n = len(recs) or 1
    benchmarks = by_benchmark(recs)
    return {
        "items": len(items), "ran": len(recs), "pending": len(items) - len(recs),
        "judged": sum(1 for r in recs if r.get("judge")), "correct": correct,
        "accuracy": correct / len(recs) if recs else 0.0, "groups": groups, "endings": dict(endings),
        "judges": dict(judges), "mean_steps": sum(r.get("steps") or 0 for r in recs) / n,
        "mean_calls": sum(r.get("calls") or 0 for r in recs) / n,
        "reference": reference_metrics(recs), "benchmarks": benchmarks, "paper": paper_table(benchmarks),
    }


def _write_outputs(out: Path, items: list[EvalItem], records: dict[str, dict[str, Any]],
                   metrics: dict[str, Any]) -> None:
    """results.jsonl rewritten in set order, one line per item (appends of re-runs folded)."""
    from vdr_cli.trace.jsonl import dumps

    ordered = [records[it.id] for it in items if it.id in records]
    ordered += [r for k, r in records.items() if k not in {it.id for it in items}]  # e.g. outside --limit
    for name, text in (("results.jsonl", "".join(dumps(r) + "\n" for r in ordered)),
                       ("metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")):
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, "utf-8")
        os.replace(tmp, out / name)
