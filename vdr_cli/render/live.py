"""The live view of `vdr ask` on a terminal (stderr): steps, thoughts, tools.

It consumes the same events the trace gets, plus streamed tokens, so what
people watch is what the trace records.
"""

from __future__ import annotations

import time
from typing import Any


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
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


class LiveView:
    """Prints a session as it happens to a rich console on stderr."""

    def __init__(self, console: Any, show_tokens: bool = True) -> None:
        self.console = console
        self.show_tokens = show_tokens
        self.status: Any = None
        self.streaming = False
        self.t_call = 0.0

    def on_token(self, text: str) -> None:
        if not self.show_tokens:
            return
        if not self.streaming:
            self.streaming = True
        self.console.print(text, end="", style="dim", markup=False, highlight=False, soft_wrap=True)

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if kind == "session":
            model = ev.get("model") or {}
            images = ", ".join(img.get("id", "") for img in ev.get("images") or []) or "no image"
            self.console.print(f"[bold]vdr ask[/] · {model.get('name', '?')} ({model.get('backend', '?')}) · {images}")
            self.console.print(f"[bold]Q:[/] {ev.get('question', '')}", markup=True, highlight=False)
        elif kind == "step":
            if self.streaming:
                self.console.print()
                self.streaming = False
            tokens = ev.get("tokens") or {}
            note = f" [red]{ev['error']}[/]" if ev.get("error") else ""
            self.console.print(f"[cyan]step {ev.get('n')}[/] [dim]{tokens.get('prompt_eval', 0)}+{tokens.get('completion', 0)} tok, "
                               f"{(ev.get('ms') or 0) / 1000:.1f} s[/]{note}")
            if ev.get("think") and not self.show_tokens:
                self.console.print(_short(ev["think"], 300), style="dim", markup=False)
        elif kind == "call":
            self.t_call = time.perf_counter()
            self.console.print(f"  [yellow]→ {ev.get('tool')}[/] {_short(str(ev.get('args')), 100)}", markup=True, highlight=False)
            self.status = self.console.status(f"{ev.get('tool')}…", spinner="dots")
            self.status.start()
        elif kind == "result":
            if self.status is not None:
                self.status.stop()
                self.status = None
            mark = "[green]✓[/]" if ev.get("ok") else "[red]✗[/]"
            cached = " cached" if ev.get("cached") else ""
            self.console.print(f"  {mark} {ev.get('tool')} [dim]{(ev.get('ms') or 0) / 1000:.1f} s{cached}[/] {digest(ev)}", highlight=False)
        elif kind == "answer":
            self.console.print(f"[bold green]answer[/] (step {ev.get('step')})")
        elif kind == "end":
            stats = ev.get("stats") or {}
            ms = stats.get("ms") or {}
            self.console.print(f"[dim]ended: {ev.get('reason')} · {stats.get('steps', 0)} steps, {stats.get('calls', 0)} calls · "
                               f"{(ms.get('total') or 0) / 1000:.1f} s (model {(ms.get('model') or 0) / 1000:.1f}, "
                               f"tools {(ms.get('tools') or 0) / 1000:.1f})[/]")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
