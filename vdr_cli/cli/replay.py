"""`vdr replay`: render, check, list and import session traces.

Re-running a session's tools (`--rerun`) and forking it at a step
(`--from-step`) are planned beside these modes; they will take the same
TRACE argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vdr_cli.cli import complete
from vdr_cli.cli.docs import epilog
from vdr_cli.cli.failures import reports
from vdr_cli.render.output import say
from vdr_cli.errors import ExitStatus, UsageError

HELP = """\
Render, check, list or import session traces (the JSONL files `vdr ask` writes).

TRACE is a trace file, or - for stdin; --last takes the newest trace in the
data folder. On a terminal (or with --text) the session is drawn as a
timeline: the question, each step's thought, tool call and a digest of its
result, the answer and the totals. Piped (or with --json) the trace's lines are
passed through unchanged, unknown event types included.

--check validates every line against the event schemas shipped with vdr and
checks that the events make one session (one header, first; steps 1..n; each
result answers one earlier call of the same tool; one end, last). Problems go
to stderr as FILE:LINE: message. A trace with no end event is incomplete: an
error unless --allow-incomplete.

--html FILE writes one self-contained page (no network access: styles,
script and downscaled images inline) with the cropped regions drawn on the
session images.

--list prints the traces in the data folder, newest first. --from reference
FILE -o DIR converts episodes saved by the reference system
(Vision-DeepResearch's eval runner, episodes.jsonl) into vdr traces.

Exit status: 0 ok; 1 a problem with the trace (unreadable, empty, malformed
lines, --check findings); 2 usage; 3 some episodes of an import failed.
"""

FORMATS = ("reference",)


def register(app: typer.Typer) -> None:
    app.command("replay", help=HELP, epilog=epilog("replay"),
                short_help="Render, check, re-run, fork, list or import session traces.")(replay_command)


@reports("replay")
def replay_command(
    trace: Optional[str] = typer.Argument(None, help="Trace file, or - for stdin (with --from: the file to import).", show_default=False),
    last: bool = typer.Option(False, "--last", help="Use the newest trace in the data folder."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the traces in the data folder, newest first."),
    check: bool = typer.Option(False, "--check", help="Validate the trace (schema and consistency); problems on stderr."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="With --check: a trace with no end event is not an error."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report to FILE.", show_default=False),
    text: bool = typer.Option(False, "--text", "-t", help="Render the timeline as text even when stdout is not a terminal."),
    json_out: bool = typer.Option(False, "--json", "-j", help="Pass the trace's lines through as JSONL even on a terminal."),
    width: Optional[int] = typer.Option(None, "--width", "-w", min=40, help="Text width (default: the terminal's, or 100).", show_default=False),
    full: bool = typer.Option(False, "--full", help="Do not shorten thoughts, arguments, hits or summaries."),
    from_format: Optional[str] = typer.Option(None, "--from", help="Import episodes in this format (reference) from TRACE.", show_default=False),
    out_dir: Optional[Path] = typer.Option(None, "--output", "-o", help="With --from: folder for the converted traces; with --from-step: the fork's trace file.", show_default=False),
    rerun: bool = typer.Option(False, "--rerun", help="Play the recorded model turns, run the tools again (cache first) and report which results changed."),
    live_model: Optional[str] = typer.Option(None, "--live-model", help="With --rerun: run the whole session again on this model and compare the answers.", show_default=False),
    from_step: Optional[int] = typer.Option(None, "--from-step", help="Fork: rebuild the context up to step N and continue live (--model) into -o FILE.", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.model_names, help="Model for --from-step (default: the trace's model spec, else config model.default).", show_default=False),
    no_cache: bool = typer.Option(False, "--no-cache", help="With --rerun/--from-step: do not read or write the network cache."),
) -> int:
    if rerun or from_step is not None:
        from vdr_cli.cli.replay_run import run_again

        return run_again(_trace_name(trace, last), rerun=rerun, live_model=live_model, from_step=from_step, model=model,
                         output=out_dir, no_cache=no_cache, as_json=json_out or (not text and _piped()))
    if live_model is not None:
        raise UsageError("--live-model goes with --rerun")
    if list_:
        if trace or last or check or html_out or from_format:
            raise UsageError("--list takes no trace and no other mode")
        return _list(json_out or (not text and _piped()))
    if from_format is not None:
        return _import(from_format, trace, out_dir, json_out or (not text and _piped()))
    if out_dir is not None:
        raise UsageError("-o/--output goes with --from", hint="vdr replay --from reference episodes.jsonl -o traces/")
    if text and json_out:
        raise UsageError("--text and --json exclude each other")
    name = _trace_name(trace, last)

    from vdr_cli.trace.catalog import open_trace

    tf = open_trace(name)
    if check:
        return _check(tf, allow_incomplete)
    if allow_incomplete:
        raise UsageError("--allow-incomplete goes with --check")
    status = ExitStatus.OK
    if html_out is not None:
        status = max(status, _html(tf, html_out))
        if not (text or json_out):
            return status
    if json_out or (not text and _piped()):
        return max(status, _passthrough(tf))
    return max(status, _render_text(tf, width, full))


def _piped() -> bool:
    from vdr_cli.render.output import json_mode

    return json_mode(False)


def _trace_name(trace: Optional[str], last: bool) -> str:
    if trace and last:
        raise UsageError("give a trace or --last, not both")
    if last:
        from vdr_cli.trace.catalog import latest_trace

        return str(latest_trace())
    if not trace:
        raise UsageError("no trace given", hint="vdr replay TRACE.jsonl (or --last, --list, - for stdin)")
    return trace


def _events(tf, warn: bool = True) -> tuple[list[dict], int]:
    """The trace's parsed events; each malformed line is reported (and makes the exit status 1)."""
    from vdr_cli.trace.jsonl import LineError

    events, bad = [], 0
    for _lineno, item, _text in tf.items():
        if isinstance(item, LineError):
            bad += 1
            if warn:
                say("replay", "warning", f"{item} (line skipped)")
            continue
        events.append(item)
    return events, bad


def _require_header(tf, events: list[dict]) -> None:
    from vdr_cli.errors import InputError

    header = next((ev for ev in events if ev.get("type") == "session"), None)
    if header is None:
        raise InputError(f"{tf.source}: no session header (is this a vdr trace?)", hint="vdr replay --check shows what is wrong")
    from vdr_cli.trace.schema import validate_event

    problems = validate_event(header)  # renderers read the header's fields as the schema shapes them
    if problems:
        raise InputError(f"{tf.source}: session header: {problems[0]}", hint="vdr replay --check shows what is wrong")


def _render_text(tf, width: Optional[int], full: bool) -> int:
    import os
    import shutil
    import sys

    from vdr_cli.render.output import print_line
    from vdr_cli.render.timeline import render_text

    events, bad = _events(tf)
    _require_header(tf, events)
    tty = sys.stdout.isatty()
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns if tty else 100
    color = tty and not os.environ.get("NO_COLOR")
    for line in render_text(events, width=width, full=full, color=color):
        print_line(line)
    return ExitStatus.ERROR if bad else ExitStatus.OK


def _passthrough(tf) -> int:
    """The lines as they are: a filter must not change what it passes on."""
    import sys

    from vdr_cli.trace.jsonl import LineError, PipeClosed

    bad = 0
    out = sys.stdout
    try:
        for _lineno, item, raw in tf.items():
            if isinstance(item, LineError):
                bad += 1
                say("replay", "warning", f"{item} (line skipped)")
                continue
            out.write(raw + "\n")
        out.flush()
    except BrokenPipeError as exc:
        raise PipeClosed() from exc
    return ExitStatus.ERROR if bad else ExitStatus.OK


def _html(tf, target: Path) -> int:
    from vdr_cli.errors import InputError
    from vdr_cli.render.html import render_html

    events, bad = _events(tf)
    _require_header(tf, events)
    page = render_html(events, tf.base_dir, title_source=tf.source)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
    say("replay", "info", f"report: {target}")
    return ExitStatus.ERROR if bad else ExitStatus.OK


def _check(tf, allow_incomplete: bool) -> int:
    import sys

    from vdr_cli.trace.check import check_items, incomplete_finding

    report = check_items(tf.items(), allow_torn_tail=allow_incomplete)
    problems = list(report.problems)
    if not report.complete and not allow_incomplete:
        problems.append(incomplete_finding(report))
    for finding in problems:
        sys.stderr.write(finding.format(tf.source) + "\n")
    if problems:
        return ExitStatus.ERROR
    note = "" if report.complete else " (incomplete: no end event)"
    if report.torn_line is not None:
        note = f" (incomplete: line {report.torn_line} is cut short, no end event)"
    sys.stderr.write(f"ok: {report.events} events{note}\n")
    return ExitStatus.OK


def _list(as_json: bool) -> int:
    from vdr_cli.render.output import print_line, stdout_writer
    from vdr_cli.render.timeline import when
    from vdr_cli.trace.catalog import list_traces, traces_dir

    found, warnings = list_traces()
    for warning in warnings:
        say("replay", "warning", warning)
    if as_json:
        writer = stdout_writer()
        for s in found:
            writer.write(s.to_dict())
        return ExitStatus.OK
    if not found:
        say("replay", "info", f"no traces in {traces_dir()}")
        return ExitStatus.OK
    for s in found:
        question = " ".join(s.question.split())
        question = question if len(question) <= 60 else question[:59] + "…"
        print_line(f"{when(s.ts)[:16]:16}  {s.steps:>3} steps  {s.reason:<12}  {question}  {s.path.name}")
    return ExitStatus.OK


def _import(fmt: str, source: Optional[str], out_dir: Optional[Path], as_json: bool) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"--from {fmt}: unknown format", hint=f"formats: {', '.join(FORMATS)}")
    if not source:
        raise UsageError("--from needs the file to import", hint="vdr replay --from reference episodes.jsonl -o traces/")
    if out_dir is None:
        raise UsageError("--from needs -o DIR for the converted traces")
    from vdr_cli.agent.turns import parse_turn
    from vdr_cli.render.output import print_line, stdout_writer
    from vdr_cli.trace.catalog import open_trace
    from vdr_cli.trace.reference import import_episodes

    tf = open_trace(source)
    writer = stdout_writer() if as_json else None
    ok = failed = 0
    for outcome in import_episodes(tf, out_dir, parse_turn):
        if isinstance(outcome, str):
            failed += 1
            say("replay", "error", outcome)
            if writer:
                from vdr_cli.trace.events import error_event

                writer.write(error_event(outcome, tf.source))
            continue
        ok += 1
        if writer:
            writer.write(outcome.to_dict())
        else:
            print_line(f"{outcome.path}  {outcome.steps} steps  {outcome.reason}")
    return ExitStatus.for_outcome(ok, failed)
