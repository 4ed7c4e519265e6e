"""The HTTP model servers a batch runs on, and which one a new session goes to.

`--model` given several times (every one openai:MODEL@URL) spreads the
sessions of `ask --batch` and `eval` over those servers: each new session
goes to the server with the fewest sessions open relative to its slots
(llama-server's `/props` `total_slots`; 1 where a server does not say), the
first given on a tie. Without --parallel the batch runs as many sessions at
once as the servers have slots together.

A server that cannot be connected to (its probe, or a session's request) is
taken out for the rest of the run; a session that could not connect before
its first model turn runs again from the start on a server still up
(agent/host.py run_fresh). One that had had an answer from it ends with its
error (its tools ran; a re-run of the batch redoes it). With no server left up,
sessions still go to the servers given and end with the connection error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from vdr_cli.errors import UsageError


def check_models(models: list[str], batch: bool) -> None:
    """`--model` given several times: only for a batch, and only HTTP servers."""
    if len(models) < 2:
        return
    from vdr_cli.models.spec import public_spec

    if not batch:
        raise UsageError(f"--model given {len(models)} times, but one question runs on one model",
                         hint="several --model spread a --batch or an eval over servers; give one --model here")
    for text in models:
        if not text.strip().startswith("openai:"):
            raise UsageError(f"--model {public_spec(text)!r}: several --model must all be HTTP servers (openai:MODEL@URL)",
                             hint="an in-process model (.gguf or a registered name) runs alone: give it as the only --model")


@dataclass(eq=False)
class Server:
    text: str  # the --model as given (may hold a key in its URL: never shown, see `public`)
    spec: Any  # its ModelSpec
    facts: Any = None  # openai_probe.ServerFacts, once asked
    open: int = 0  # sessions open on it now
    down: str = ""  # why it was taken out ("": up)

    @property
    def slots(self) -> int:
        return (self.facts.slots if self.facts is not None else None) or 1

    @property
    def public(self) -> str:
        from vdr_cli.models.spec import public_spec

        return public_spec(self.text)


class ServerPool:
    """The servers of one ModelHost; thread-safe (sessions open and close on worker threads)."""

    def __init__(self, texts: list[str], mmproj: str | None = None, command: str = "ask") -> None:
        from vdr_cli.models.spec import parse_spec

        self.command = command
        self.servers = [Server(text, parse_spec(text, mmproj=mmproj)) for text in texts]
        self._lock = threading.Lock()
        self._where: dict[int, Server] = {}  # id(session) -> its server

    def pick(self) -> Server:
        """The server the next session goes to; its open count already taken."""
        with self._lock:
            up = [s for s in self.servers if not s.down] or self.servers
            best = min(up, key=lambda s: s.open / s.slots)  # min keeps the first of equals
            best.open += 1
            return best

    def bind(self, session: Any, server: Server) -> None:
        with self._lock:
            self._where[id(session)] = server

    def server_of(self, session: Any) -> Server | None:
        with self._lock:
            return self._where.get(id(session))

    def release(self, server: Server, session: Any = None) -> None:
        with self._lock:
            if session is not None:
                self._where.pop(id(session), None)
            server.open -= 1

    def take_down(self, server: Server, why: str) -> bool:
        """Take `server` out (said once on stderr); True when another server is still up."""
        from vdr_cli.render.output import say

        with self._lock:
            first = not server.down
            # "http://host/v1/chat/completions: connection failed ...": the server is named once
            server.down = server.down or (why.split(": ", 1)[-1] if why.startswith("http") else why) or "unreachable"
            left = any(not s.down for s in self.servers)
        if first and len(self.servers) > 1:
            say(self.command, "warning", f"{server.public}: {server.down}; "
                + ("its sessions go to the other servers" if left else "no server is left up"))
        return left and len(self.servers) > 1


def http_parallel(given: int | None, servers: list[Server]) -> tuple[int, str, list[Server]]:
    """Sessions at once over HTTP, where that figure came from, and the servers that do not
    say their slot count. `given` None or 0 (auto): the servers' slots added up."""
    up = [s for s in servers if not s.down] or servers  # a server down adds no slots
    silent = [s for s in up if s.facts is None or s.facts.slots is None]
    if given:
        return given, "--parallel", silent
    total = sum(s.slots for s in up)
    if not silent:
        return total, "server /props total_slots", silent
    if len(silent) == len(up):
        return total, "default: the server does not say its slots", silent
    return total, "server /props total_slots (1 where a server does not say)", silent


def parallel_lines(parallel: int, source: str, servers: list[Server], silent: list[Server]) -> list[tuple[str, str]]:
    """What a batch says on stderr about its sessions at once: (level, line) pairs."""
    derived = source != "--parallel"
    lines = [("warning", f"{s.public} does not say how many sessions it serves at once: 1 at a time there "
                         "(give --parallel N for more)") for s in silent if derived and not s.down]
    if len(servers) > 1 or (derived and not silent):
        where = f" over {len(servers)} servers" if len(servers) > 1 else ""
        slots = f": {' + '.join('down' if s.down else str(s.slots) for s in servers)}" if derived and len(servers) > 1 else ""
        lines.append(("info", f"{parallel} session{'s' if parallel != 1 else ''} at once{where} ({source}{slots})"))
    return lines
