"""`vdr replay --rerun` and `--from-step`: the thin CLI side of agent/rerun.py."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from vdr_cli.render.output import say
from vdr_cli.errors import ExitStatus, InputError, UsageError


def _load(name: str) -> list[dict]:
    from vdr_cli.trace.catalog import open_trace
    from vdr_cli.trace.jsonl import LineError

    tf = open_trace(name)
    events = []
    for _lineno, item, _text in tf.items():
        if isinstance(item, LineError):
            raise InputError(str(item), hint="vdr replay --check shows what is wrong")
        events.append(item)
    return events


def run_again(name: str, *, rerun: bool, live_model: Optional[str], from_step: Optional[int], model: Optional[str],
              output: Optional[Path], no_cache: bool, as_json: bool) -> int:
    from vdr_cli.agent.host import ModelHost, build_toolbox, loop_config, settings
    from vdr_cli.agent.runner import AskRequest

    if rerun and from_step is not None:
        raise UsageError("--rerun and --from-step exclude each other")
    events = _load(name)
    header = next((e for e in events if e.get("type") == "session"), None)
    if header is None:
        raise InputError(f"{name}: no session header (is this a vdr trace?)")
    req = AskRequest(no_cache=no_cache, summaries="extractive", grammar="off", max_tokens=4096)
    conf = settings(req)
    tools = list(header.get("tools") or [])
    image_ids = [img.get("id") for img in header.get("images") or []]

    if rerun:
        from vdr_cli.agent.rerun import rerun as do_rerun

        host = live = None
        if live_model:
            req.grammar, req.summaries = "auto", "model"
            host = ModelHost(req, conf, live_model)
        try:
            live = host.open_session() if host is not None else None
            config = loop_config(req, "recorded" if live is None else live_model, tools, None, image_ids)
            rows, summary = do_rerun(events, lambda images: build_toolbox(req, conf, images, live, tools), config, live)
        finally:
            if live is not None:
                live.close()
            if host is not None:
                host.close()
        _print(rows + [summary], as_json)
        return ExitStatus.OK

    if output is None:
        raise UsageError("--from-step needs -o FILE for the new trace")
    from vdr_cli.agent.rerun import fork
    from vdr_cli.agent.runner import live_view
    from vdr_cli.agent.sinks import Sinks

    req.grammar, req.summaries = "auto", "model"
    spec_text = model or (header.get("model") or {}).get("spec")
    with ModelHost(req, conf, spec_text) as host:
        session = host.open_session()
        try:
            sinks = Sinks(output, as_json, live_view(req))
            say("replay", "info", f"fork of {name} at step {from_step}: {output}")
            try:
                config = loop_config(req, host.model_name(session), tools, None, image_ids,
                                     http=host.spec.kind == "openai")
                outcome = fork(events, Path(name), int(from_step), session,
                               lambda images: host.toolbox(images, session, tools), config, sinks)
            finally:
                sinks.close()
        finally:
            session.close()
    return ExitStatus.OK if outcome.answer else ExitStatus.ERROR


def _print(rows: list[dict], as_json: bool) -> None:
    from vdr_cli.render.output import print_line, stdout_writer

    if as_json:
        stdout_writer().write_all(rows)
        return
    for r in rows:
        if r["type"] == "rerun":
            mark = "changed" if r["changed"] else "same"
            print_line(f"{r['id']:<6} {r['tool']:<16} {mark:<8} {'cached' if r['cached'] else ''}")
        else:
            line = f"{r['changed']} of {r['calls']} results changed"
            if r.get("answer_changed") is not None:
                line += f"; answer {'changed' if r['answer_changed'] else 'unchanged'} ({r['answer_now']!r})"
            print_line(line)
