"""Where a session's events go: its trace file, stdout (JSONL mode) and the live view."""

from __future__ import annotations

import datetime as _dt
import sys
import threading
from pathlib import Path
from typing import Any

from vdr_cli.errors import InputError
from vdr_cli.trace.events import Event


def trace_path(output: Path | None, session_id: str) -> Path:
    if output is not None:
        return output
    from vdr_cli.paths import data_dir

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return data_dir() / "traces" / f"{stamp}-{session_id}.jsonl"


class Sinks:
    """Fans each event out to the trace, stdout (JSONL mode) and the live view."""

    def __init__(self, trace_file: Path, json_stdout: bool, live: Any, keep: list[Event] | None = None) -> None:
        from vdr_cli.trace.jsonl import JsonlWriter
        from vdr_cli.trace.output_file import open_trace_output

        self.path = trace_file
        self.file = open_trace_output(trace_file, keep or [])
        self.trace = JsonlWriter(self.file)
        self.stdout = JsonlWriter(sys.stdout) if json_stdout else None
        self.live = live
        self.answer: str | None = None
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        from vdr_cli.trace.jsonl import PipeClosed

        with self.lock:
            try:
                self.trace.write(ev)  # first: a closed stdout must not lose the trace
            except (OSError, PipeClosed) as exc:
                cause = exc.__cause__ if isinstance(exc, PipeClosed) else exc
                raise InputError(f"{self.path}: cannot write the trace ({getattr(cause, 'strerror', None) or cause})") from None
            if ev.get("type") == "answer":
                self.answer = ev.get("text")
            if self.live is not None:
                self.live.on_event(ev)
            if self.stdout is not None:
                try:
                    self.stdout.write(ev)
                except PipeClosed:
                    self.stdout = None  # the rest (the `end` event) still goes to the trace
                    raise

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        try:
            self.file.close()
        except OSError:
            pass  # a write error was already reported by the event that failed
