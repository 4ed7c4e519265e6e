"""What an OpenAI-compatible server says about itself: model id, context size, slot count.

One probe per server: an `OpenAISession` asks before its first request, and a
batch (agent/host.py) asks once per server and hands the answer to every
session it opens there. A server that does not say keeps the defaults;
`reachable` says whether a connection could be opened at all.
"""

from __future__ import annotations

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


def probe(client: httpx.Client, base_url: str, headers: dict[str, str], model: str | None, *,
          ctx: bool, slots: bool) -> ServerFacts:
    """Ask `base_url` (ending in /v1) what is wanted: `ctx` the context size (and the model
    id, which /v1/models gives with it), `slots` the slot count (/props, at the server root)."""
    found: dict[str, Any] = {}
    if ctx or not model:
        listing, error = _get_json(client, base_url + "/models", headers)
        if error:
            return ServerFacts(reachable=False, error=error)
        entries = [e for e in listing.get("data") or [] if isinstance(e, dict)] if isinstance(listing.get("data"), list) else []
        found = next((e for e in entries if e.get("id") == model), entries[0] if entries else {})
    props: dict[str, Any] = {}
    if slots or (ctx and not context_size(found, {})[0]):
        root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
        props, error = _get_json(client, root + "/props", headers)  # llama-server only
        if error:
            return ServerFacts(reachable=False, error=error)
    n, source = context_size(found, props) if ctx else (None, "guess")
    return ServerFacts(model=str(found["id"]) if found.get("id") else None, n_ctx=n, ctx_source=source,
                       slots=slot_count(props))


def _get_json(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The JSON object at `url` ({} for any other answer), and a transport failure's name."""
    try:
        resp = client.get(url, headers=headers, timeout=10.0)
        data = resp.json() if resp.status_code == 200 else None
    except httpx.TransportError as exc:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"connection failed ({type(exc).__name__})"
        return {}, what
    except (httpx.HTTPError, ValueError):
        return {}, ""
    return (data if isinstance(data, dict) else {}), ""
