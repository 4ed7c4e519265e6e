"""`vdr eval`: run a benchmark set through the agent, judge the answers, report accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports

HELP = """\
Run a benchmark set through the agent and judge every answer.

SET is a file or a folder of them (every .parquet and .jsonl in it, each one
benchmark named by its file name, ids "FILE/ID"). JSONL: one item a line
("question", "answer", optional "id", "images" as paths, http(s) URLs or
base64 / data: URLs, and tag fields such as "domain"). Parquet (needs
pyarrow: install vdr-cli[parquet]): the reference's ready-to-infer shape
("images" as absolute paths, or {bytes, path}), or its packed shape (an
"image_packed" JSON column), unpacked as its unpack_parquet.py does: images
become DIR/images/ROW_I_FILENAME and the question names them by path.
Each item runs as one session (traces in DIR/traces/); each answer is then
judged as the paper scores it: by an LLM with the reference evaluation's
prompt, --judge MODEL (any model spec; by default the --model itself). A
judge that fails or answers without "correct: yes/no" falls back to exact
match, recorded as "exact-fallback". --judge exact is normalised exact
match alone, which is not the paper's metric.

One result line per item goes to DIR/results.jsonl as it is judged, and to
stdout (JSONL when piped); accuracy (overall, per "domain" and per
--group-by field), the reference's metrics per benchmark file, the paper's
table (VDR, FVQA, MMSearch+, MMSearch, LiveVQA, BC-VL, Avg.), endings, mean
steps and tool calls go to stderr and to DIR/metrics.json. A re-run with the
same DIR skips judged items and judges items whose trace already ended with
an answer without running them again; items that errored run again. Ctrl-C
keeps what is done.

More than one machine: --shard I/N runs every N-th item from the I-th
(each machine with its own -o DIR); vdr eval --merge DIR... -o ALL folds
their results into one folder with the metrics of the whole set (idempotent).

Exit status: 0 every item ran and was judged (right or wrong), 3 some items
errored, 1 none could run, 2 usage, 130 interrupted.
"""


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP, epilog=epilog("eval"),
                short_help="Run a benchmark set through the agent and judge the answers.")(eval_command)


@reports("eval")
def eval_command(
    dataset: List[Path] = typer.Argument(..., metavar="SET | DIR...", help="Benchmark set: .jsonl, .parquet (with pyarrow), or a folder of them; with --merge, the output folders of shards.", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for traces, results.jsonl and metrics.json (required; re-use it to resume)."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", autocompletion=complete.model_names, help="The agent's model: registered name, .gguf path, openai:MODEL@URL or scripted:TRACE [config model.default]. Give several openai:MODEL@URL to spread the items over those servers (each new session to the server with the most free slots)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge model spec (as --model; default: the --model itself, the first one if several), or exact for normalised exact match (not the paper's metric).", show_default=False),
    judge_max_tokens: int = typer.Option(1024, "--judge-max-tokens", help="Longest judge reply, in tokens (the reference uses 1024)."),
    group_by: Optional[List[str]] = typer.Option(None, "--group-by", "-g", help="Also report accuracy per value of this item field (repeatable; domain always)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run only slice I of N (every N-th item from the I-th; 1-based), e.g. 2/4 on the second of four machines; combine the folders with --merge.", show_default=False),
    merge: bool = typer.Option(False, "--merge", help="Combine the output folders of shards (the arguments) into -o DIR: results.jsonl and the metrics of the whole set."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N items of the set."),
    parallel: Optional[str] = typer.Option(None, "--parallel", "-P", help="Sessions at once: N, or auto. Default: over HTTP, the slots the server says it has (llama-server's /props total_slots; added up over several --model; else 1); in-process 1, auto as many context windows as memory holds (they decode in shared batches).", show_default=False),
    mmproj: Optional[str] = typer.Option(None, "--mmproj", help="Vision projector GGUF for a .gguf --model."),
    max_steps: int = typer.Option(50, "--max-steps", help="Model calls per item before the final answer is requested (reference: 50)."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Wall-time budget per item in seconds."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context window in tokens [config model.ctx]."),
    grammar: str = typer.Option("auto", "--grammar", help="Constrain decoding to the turn format: auto (in-process models not trained on it; never over HTTP), on, off."),
    temperature: float = typer.Option(0.6, "--temperature", help="The agent's sampling temperature (0: greedy)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling seed, for repeatable runs."),
    date: Optional[str] = typer.Option(None, "--date", help="The date the system prompt gives the model (YYYY-MM-DD; default today), e.g. a benchmark's own date.", show_default=False),
    max_tokens: int = typer.Option(4096, "--max-tokens", help="Longest single model turn, in tokens."),
    summaries: str = typer.Option("model", "--summaries", help="How visit summarises pages: model or extractive."),
    search_provider: Optional[str] = typer.Option(None, "--search-provider", autocompletion=complete.providers, help="Text search provider [config search.provider]."),
    image_provider: Optional[str] = typer.Option(None, "--image-provider", autocompletion=complete.providers, help="Reverse image provider [config search.image_provider]."),
    allow_private: Optional[bool] = typer.Option(None, "--allow-private/--no-allow-private", help="Let model-chosen URLs reach private addresses [config net.allow_private]."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the network cache."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Write result lines to stdout as JSONL even on a terminal."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show llama.cpp's own logs."),
) -> int:
    from vdr_cli.agent.evaluate import EvalRequest, run_eval
    from vdr_cli.agent.host import parse_date, parse_parallel
    from vdr_cli.agent.runner import AskRequest
    from vdr_cli.render.output import json_mode
    from vdr_cli.errors import ExitStatus, UsageError

    if output is None:
        raise UsageError("vdr eval needs -o DIR for traces and results", hint="vdr eval SET -o runs/NAME")
    if merge:
        return _merge(dataset, output, list(group_by or []), shard)
    if len(dataset) != 1:
        raise UsageError("vdr eval takes one SET (several folders only with --merge)",
                         hint="vdr eval --merge runs/s1 runs/s2 -o runs/all")
    dataset_path = dataset[0]
    if judge_max_tokens < 1:
        raise UsageError("--judge-max-tokens must be at least 1")
    from vdr_cli.agent.servers import check_models

    models = list(model or [])
    check_models(models, batch=True)
    ask = AskRequest(model=models[0] if models else None, models=models, mmproj=mmproj, max_steps=max_steps, max_time=max_time, ctx=ctx, grammar=grammar,
                     temperature=temperature, top_p=top_p, seed=seed, max_tokens=max_tokens, summaries=summaries,
                     search_provider=search_provider, image_provider=image_provider, allow_private=allow_private,
                     no_cache=no_cache, parallel=parse_parallel(parallel), shard=shard, verbose=verbose, date=parse_date(date),
                     command="eval")
    req = EvalRequest(dataset=dataset_path, out_dir=output, ask=ask, judge=judge, judge_max_tokens=judge_max_tokens,
                      group_by=list(group_by or []), limit=limit)
    show = _result_printer(json_mode(json_out))
    try:
        outcome = run_eval(req, show)
    except KeyboardInterrupt:
        _interrupted(output, ask.parallel)
        raise
    print_report(outcome.metrics)
    errored = sum(1 for it in outcome.items if not (outcome.records.get(it.id) or {}).get("judge"))
    return ExitStatus.for_outcome(len(outcome.items) - errored, errored)


def _merge(folders: List[Path], output: Path, group_by: List[str], shard: Optional[str]) -> int:
    from vdr_cli.agent.shard import merge
    from vdr_cli.errors import ExitStatus, UsageError

    if shard:
        raise UsageError("--merge combines shards; it takes no --shard")
    metrics = merge(folders, output, group_by)
    print_report(metrics)
    return ExitStatus.for_outcome(metrics["ran"], metrics["ran"] - metrics["judged"])


def _result_printer(as_json: bool):
    from vdr_cli.render.output import print_line, stdout_writer

    writer = stdout_writer()

    def show(record: dict[str, Any]) -> None:
        if as_json:
            writer.write(record)
            return
        mark = "ok " if record["correct"] else ("ERR" if not record["judge"] else "no ")
        gold = record["answer"] if isinstance(record["answer"], str) else " / ".join(map(str, record["answer"]))
        said = record.get("error") if not record["judge"] else record["prediction"]
        print_line(f"{mark} {record['id']}: {_short(said)}  [gold: {_short(gold)}; {record['reason']}]")

    return show


def _short(text: Any, n: int = 80) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _interrupted(output: Path, parallel: int | None) -> None:
    import os
    import sys

    from vdr_cli.render.output import say

    say("eval", "info", f"judged items are kept in {output / 'results.jsonl'}; run the same command again to go on")
    if parallel != 1:
        say("eval", "error", "interrupted")
        # Sessions still running in worker threads would keep the process alive until
        # they finish; their traces are flushed line by line, so leave them now.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(130)


def print_report(metrics: dict[str, Any]) -> None:
    """The summary table on stderr: rich on a terminal, plain text otherwise."""
    from vdr_cli.render.output import stderr_console, stderr_is_terminal

    rows = report_rows(metrics)
    if stderr_is_terminal():
        from rich.table import Table

        table = Table(title="vdr eval", show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for label, value in rows:
            table.add_row(label, value)
        stderr_console().print(table)
        return
    import sys

    width = max(len(label) for label, _ in rows)
    sys.stderr.write("".join(f"{label.ljust(width)}  {value}\n" for label, value in rows))
    sys.stderr.flush()


def report_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    from vdr_cli.agent.eval_metrics import PAPER_COLUMNS, paper_rows

    def acc(correct: int, n: int) -> str:
        return f"{correct}/{n}  {100 * correct / n:.1f}%" if n else "0/0"

    rows = [("accuracy", acc(m["correct"], m["ran"]) + (f"  ({m['pending']} not run)" if m["pending"] else ""))]
    for name, table in m["groups"].items():
        rows += [(f"  {name}={value}", acc(row["correct"], row["n"])) for value, row in table.items()]
    benchmarks = m.get("benchmarks") or {}
    if len(benchmarks) > 1 or any(b.get("column") for b in benchmarks.values()):
        for name, b in benchmarks.items():
            rows.append((f"  {name}" + (f" ({b['column']})" if b.get("column") else ""), acc(b["correct"], b["total"])))
    if any(m.get("paper", {}).get(c) for c in PAPER_COLUMNS):
        header, cells = paper_rows(m["paper"])
        widths = [max(len(h), len(c)) for h, c in zip(header, cells)]
        rows.append(("paper table", "  ".join(h.rjust(w) for h, w in zip(header, widths))))
        rows.append(("", "  ".join(c.rjust(w) for c, w in zip(cells, widths))))
    if m.get("judge_note"):
        rows.append(("note", m["judge_note"]))
    rows.append(("endings", ", ".join(f"{k} {v}" for k, v in m["endings"].items())))
    rows.append(("judged by", ", ".join(f"{k} {v}" for k, v in m["judges"].items()) or "-"))
    rows.append(("mean steps", f"{m['mean_steps']:.1f}  (tool calls {m['mean_calls']:.1f})"))
    rows.append(("wall time", f"{m['wall_s']:.1f} s"))
    return rows
