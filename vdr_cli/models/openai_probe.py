"""What an OpenAI-compatible server says about itself: model id, context size, slot count.

One probe per server: an `OpenAISession` asks before its first request, and a
batch (agent/host.py) asks once per server and hands the answer to every
session it opens there. A server that does not say keeps the defaults;
`reachable` says whether a connection could be opened at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from .openai_wire import context_size, slot_count


@dataclass(frozen=True)
class ServerFacts:
    model: str | None = None  # /v1/models' id (the one asked for, else the first)
    n_ctx: int | None = None
    ctx_source: str = "guess"  # see openai_wire.context_size
    slots: int | None = None  # llama-server's /props total_slots; None: the server does not say
    reachable: bool = True
    error: str = ""  # why not reachable: "connection failed (ConnectError)"
    busy: bool = False  # it answered 503 throughout (llama-server while it loads its model)


def probe(client: httpx.Client, base_url: str, headers: dict[str, str], model: str | None, *,
          ctx: bool, slots: bool) -> ServerFacts:
    """Ask `base_url` (ending in /v1) what is wanted: `ctx` the context size (and the model
    id, which /v1/models gives with it), `slots` the slot count (/props, at the server root)."""
    found: dict[str, Any] = {}
    busy = False
    if ctx or not model:
        listing, error, busy = _get_json(client, base_url + "/models", headers)
        if error:
            return ServerFacts(reachable=False, error=error)
        entries = [e for e in listing.get("data") or [] if isinstance(e, dict)] if isinstance(listing.get("data"), list) else []
        found = next((e for e in entries if e.get("id") == model), entries[0] if entries else {})
    props: dict[str, Any] = {}
    if slots or (ctx and not context_size(found, {})[0]):
        root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
        props, error, still = _get_json(client, root + "/props", headers)  # llama-server only
        if error:
            return ServerFacts(reachable=False, error=error)
        busy = busy or still
    n, source = context_size(found, props) if ctx else (None, "guess")
    return ServerFacts(model=str(found["id"]) if found.get("id") else None, n_ctx=n, ctx_source=source,
                       slots=slot_count(props), busy=busy)


def _get_json(client: httpx.Client, url: str, headers: dict[str, str],
              waits: tuple[float, ...] = (0.5, 1.0, 2.0)) -> tuple[dict[str, Any], str, bool]:
    """The JSON object at `url` ({} for any other answer), a transport failure's name, and
    whether it answered 503 to the last try (llama-server answers so while it loads)."""
    for wait in (*waits, None):
        try:
            resp = client.get(url, headers=headers, timeout=10.0)
        except httpx.TransportError as exc:
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"connection failed ({type(exc).__name__})"
            return {}, what, False
        except httpx.HTTPError:
            return {}, "", False
        if resp.status_code != 503 or wait is None:
            break
        time.sleep(wait)
    try:
        data = resp.json() if resp.status_code == 200 else None
    except ValueError:
        data = None
    return (data if isinstance(data, dict) else {}), "", resp.status_code == 503
