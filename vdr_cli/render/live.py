"""The live view of `vdr ask` on a terminal (stderr): steps, thoughts, tools.

It consumes the same events the trace gets, plus streamed tokens, so what
people watch is what the trace records.  It is never blank: while the model
loads, reads the prompt (and images) or a tool runs, a status line says what
is happening and for how long; a step's header comes before its streamed
thought; a tool call is shown as parsed (tool name, arguments as JSON), not
as the raw tags the model wrote.  Its totals are what it saw, so they stay
right when Ctrl-C cuts a step short.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Any, Iterator

from vdr_cli.render.output import clean


def _safe(text: Any) -> str:
    """Model and web text for the console: no control characters, no rich markup."""
    from rich.markup import escape

    return escape(clean(text))


def _short(text: str, n: int = 110) -> str:
    text = " ".join(clean(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def digest(result: dict[str, Any]) -> str:
    """One line saying what a tool result holds."""
    data = result.get("data") or []
    kinds: dict[str, int] = {}
    for item in data:
        kinds[item.get("type", "?")] = kinds.get(item.get("type", "?"), 0) + 1
    parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in kinds.items()]
    if not result.get("ok"):
        parts.append("failed: " + _short(result.get("error") or "", 60))
    return ", ".join(parts) or _short(result.get("content", ""), 60)


class _Elapsed:
    """A status text that shows the seconds since it started (re-rendered by rich on each refresh)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.t0 = time.perf_counter()

    def __rich__(self) -> Any:
        from rich.text import Text

        # Text, not a str: a str would be read as markup, and labels hold tool names the model chose.
        return Text(f"{self.label} {time.perf_counter() - self.t0:.1f} s")


class Status:
    """A spinner with elapsed time on a redrawable terminal; one plain line elsewhere (TERM=dumb)."""

    def __init__(self, console: Any, animated: bool) -> None:
        self.console = console
        self.animated = animated
        self.live: Any = None

    def start(self, label: str) -> None:
        self.stop()
        if self.animated:
            from rich.live import Live
            from rich.spinner import Spinner

            self.live = Live(Spinner("dots", text=_Elapsed(label)), console=self.console, transient=True, refresh_per_second=10)
            self.live.start(refresh=True)  # drawn at once, however short the phase
        else:
            self.console.print(f"… {label}", style="dim", markup=False, highlight=False)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class _TurnFilter:
    """Shows the thought of a streamed turn without its tags; hides the call and answer markup
    (the call is shown parsed when its event comes; the answer when it is final)."""

    def __init__(self) -> None:
        self.text = ""
        self.shown = 0

    def feed(self, piece: str) -> str:
        self.text += piece
        visible = self.text
        for tag in ("<tool_call>", "<answer>", "<tool_response>"):
            at = visible.find(tag)
            if at >= 0:
                visible = visible[:at]
        visible = visible.replace("<think>", "").replace("</think>", "")
        # Hold back what may be the start of a tag still arriving.
        lt = visible.rfind("<")
        safe = visible if lt < 0 or ">" in visible[lt:] or len(visible) - lt > 14 else visible[:lt]
        out, self.shown = safe[self.shown:], max(self.shown, len(safe))
        return out


class LiveView:
    """Prints a session as it happens to a rich console on stderr."""

    def __init__(self, console: Any, show_tokens: bool = True, animated: bool = True) -> None:
        self.console = console
        self.show_tokens = show_tokens
        self.status = Status(console, animated)
        self.streaming = False
        self.step = 0  # the step being generated (its header printed when its first token comes)
        self.header_shown = False
        self.filter = _TurnFilter()
        self.t_first = 0.0
        self.t0 = time.perf_counter()
        self.steps = self.calls = self.tokens = 0
        self.tool_s = 0.0  # tool time as seen here: a call Ctrl-C cut short counts too
        self.t_call: float | None = None

    # --- the phases without events ------------------------------------------------------

    @contextmanager
    def loading(self, what: str) -> Iterator[None]:
        self.status.start(f"loading {what}…")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.status.stop()
        self.console.print(f"[dim]loaded {_safe(what)} in {time.perf_counter() - t0:.1f} s[/]", highlight=False)

    def _next_step(self, n: int, note: str) -> None:
        self.step = n
        self.header_shown = False
        self.filter = _TurnFilter()
        self.status.start(f"step {n}: {note}…")

    def _header(self) -> None:
        if not self.header_shown:
            self.status.stop()
            self.console.print(f"[cyan]step {self.step}[/]")
            self.header_shown = True
            self.t_first = time.perf_counter()

    def on_token(self, text: str) -> None:
        if not self.show_tokens:
            return
        self._header()
        shown = self.filter.feed(text)
        if shown:
            self.streaming = True
            self.console.print(clean(shown), end="", style="dim", markup=False, highlight=False, soft_wrap=True)

    # --- events --------------------------------------------------------------------

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if kind == "session":
            model = ev.get("model") or {}
            images = ", ".join(_safe(img.get("id", "")) for img in ev.get("images") or []) or "no image"
            self.console.print(f"[bold]vdr ask[/] · {_safe(model.get('name', '?'))} ({_safe(model.get('backend', '?'))}) · {images}")
            self.console.print(f"[bold]Q:[/] {_safe(ev.get('question', ''))}", markup=True, highlight=False)
            self._next_step(1, "reading the prompt" + (" and images" if ev.get("images") else ""))
        elif kind == "step":
            self._header()
            if self.streaming:
                self.console.print()
                self.streaming = False
            tokens = ev.get("tokens") or {}
            completion = int(tokens.get("completion") or 0)
            self.steps += 1
            self.tokens += completion
            gen_s = time.perf_counter() - self.t_first
            if gen_s < 0.05:  # too short to time from the first token (fast machine, few tokens): the step's time bounds it
                gen_s = (ev.get("ms") or 0) / 1000
            rate = f", {completion / gen_s:.1f} tok/s" if completion and gen_s > 0 else ""
            note = f" [red]{_safe(ev['error'])}[/]" if ev.get("error") else ""
            self.console.print(f"  [dim]{tokens.get('prompt_eval', 0)}+{completion} tok, {(ev.get('ms') or 0) / 1000:.1f} s{rate}[/]{note}")
            if ev.get("think") and not self.show_tokens:
                self.console.print(_short(ev["think"], 300), style="dim", markup=False)
            self._next_step(int(ev.get("n") or self.step) + 1, "thinking")
        elif kind == "call":
            self.calls += 1
            args = json.dumps(ev.get("args"), ensure_ascii=False)
            self.console.print(f"  [yellow]→ {_safe(ev.get('tool'))}[/] {_safe(_short(args, 160))}", markup=True, highlight=False)
            self.status.start(f"{clean(ev.get('tool'))}…")
            self.t_call = time.perf_counter()
        elif kind == "result":
            self.status.stop()
            if self.t_call is not None:
                self.tool_s += time.perf_counter() - self.t_call
                self.t_call = None
            mark = "[green]✓[/]" if ev.get("ok") else "[red]✗[/]"
            cached = " cached" if ev.get("cached") else ""
            self.console.print(f"  {mark} {_safe(ev.get('tool'))} [dim]{(ev.get('ms') or 0) / 1000:.1f} s{cached}[/] {_safe(digest(ev))}", highlight=False)
            self.status.start(f"step {self.step}: reading the tool's result…")
        elif kind == "answer":
            self.status.stop()
            self.console.print(f"[bold green]answer[/] (step {ev.get('step')})")
        elif kind == "end":
            self.status.stop()
            if self.streaming:
                self.console.print()
                self.streaming = False
            ms = ((ev.get("stats") or {}).get("ms")) or {}
            wall = time.perf_counter() - self.t0
            if self.t_call is not None:  # interrupted while a tool ran
                self.tool_s += time.perf_counter() - self.t_call
                self.t_call = None
            self.console.print(f"[dim]ended: {ev.get('reason')} · {self.steps} steps, {self.calls} calls, {self.tokens} tokens · "
                               f"{wall:.1f} s (model {(ms.get('model') or 0) / 1000:.1f}, tools {self.tool_s:.1f})[/]")

    def close(self) -> None:
        self.status.stop()


def batch_line(summary: dict[str, Any]) -> str:
    """One human line per `ask --batch` item, as `vdr eval` prints its results."""
    answer = summary.get("answer")
    reason = summary.get("reason", "?")
    mark = "ok " if answer else "ERR"
    said = answer if answer else (summary.get("error") or f"no answer ({reason})")
    secs = (summary.get("ms") or 0) / 1000
    extra = "skipped: already answered" if summary.get("skipped") else f"{reason}, {secs:.1f} s"
    return f"{mark} {summary.get('id')}: {_short(said, 80)}  [{extra}]"
