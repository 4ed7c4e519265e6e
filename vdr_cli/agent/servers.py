"""The HTTP model servers a batch runs on, and which one a new session goes to.

`--model` given several times (every one openai:MODEL@URL) spreads the
sessions of `ask --batch` and `eval` over those servers: each new session
goes to the server with the fewest sessions open relative to its slots
(llama-server's `/props` `total_slots`; 1 where a server does not say), the
first given on a tie. Without --parallel the batch runs as many sessions at
once as the servers have slots together. Each server is asked once what it
serves (models/openai_probe.py) and the answer is shared by its sessions;
one that said nothing useful (503 while it loads) is asked again.

A server that cannot be connected to (its probe, or a session's request) is
taken out for the rest of the run; a session that could not connect before
its first model turn runs again from the start on a server still up
(agent/host.py run_fresh). One that had had an answer from it ends with its
error (its tools ran; a re-run of the batch redoes it). With no server left up,
sessions still go to the servers given and end with the connection error.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable

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

    def count_slots(self, parallel: int | None, open_session: Callable[[Server], Any]) -> tuple[int, str, list[tuple[str, str]]]:
        """A batch's sessions at once: --parallel, else what the servers say (one probe each, on a
        session `open_session` opens there); where the figure came from; the stderr lines about it."""
        if not parallel:
            for server in self.servers:
                probe = open_session(server)
                try:
                    server.facts = probe.server_facts(slots=True)
                finally:
                    probe.close()
                if not server.facts.reachable:
                    self.take_down(server, server.facts.error)
        n, source, silent = http_parallel(parallel, self.servers)
        return n, source, parallel_lines(n, source, self.servers, silent)

    def open(self, open_session: Callable[[Server], Any], window: Any) -> tuple[Any, Any]:
        """A new session on the server with the most room, and what that server said about itself;
        a server found unreachable is taken out and the next one tried while another is up."""
        while True:
            server = self.pick()
            try:
                session = open_session(server)
                facts = self._facts_for(server, session, window)
            except BaseException:
                self.release(server)
                raise
            if not facts.reachable and self.take_down(server, facts.error):
                self.release(server)
                session.close()
                continue
            with self._lock:
                self._where[id(session)] = server
            return session, facts

    def _facts_for(self, server: Server, session: Any, window: Any) -> Any:
        """What `server` said, asked once and shared by its sessions; one that said nothing
        useful yet (503 while it loads, no context size) is asked again by the next session."""
        def useful(f: Any) -> bool:
            return f is not None and f.reachable and not f.busy and bool(f.n_ctx or window)

        if useful(server.facts):
            return server.facts  # the session was opened with them
        facts = session.server_facts()
        if useful(facts):
            server.facts = dataclasses.replace(facts, slots=server.facts.slots if server.facts else None)
        return facts

    def moves(self, session: Any, exc: BaseException) -> str | None:
        """After `exc` ended `session`: the server it leaves (public spec) when it is to run again
        from the start on another, as it could not connect before its first model turn. A
        server that cannot be connected to is taken out either way."""
        from vdr_cli.models.openai_wire import OpenAIConnectError

        server = self.server_of(session)
        if server is None or not isinstance(exc, OpenAIConnectError) or not exc.refused:
            return None
        moved = self.take_down(server, exc.message) and session.stats.generate_calls == 0
        return server.public if moved else None

    def release_session(self, session: Any) -> None:
        with self._lock:
            server = self._where.pop(id(session), None)
            if server is not None:
                server.open -= 1

    def server_of(self, session: Any) -> Server | None:
        with self._lock:
            return self._where.get(id(session))

    def release(self, server: Server) -> None:
        with self._lock:
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
    lines = [("warning", f"{s.public} " + ("answered 503 (still loading?) when asked" if s.facts is not None and s.facts.busy
                                           else "does not say") + " how many sessions it serves at once: "
              "1 at a time there (give --parallel N for more)") for s in silent if derived and not s.down]
    if len(servers) > 1 or (derived and not silent):
        where = f" over {len(servers)} servers" if len(servers) > 1 else ""
        slots = f": {' + '.join('down' if s.down else str(s.slots) for s in servers)}" if derived and len(servers) > 1 else ""
        lines.append(("info", f"{parallel} session{'s' if parallel != 1 else ''} at once{where} ({source}{slots})"))
    return lines
