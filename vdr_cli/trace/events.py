"""Event types: the one contract between vdr commands, traces and users.

Every record that crosses a process boundary is a JSON object on one line with
a `type`.  The tables here mirror DESIGN.md; the JSON Schemas beside this
module (`schemas/<type>.json`) are the authority for field shapes.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

SCHEMA_VERSION = 1

EVENT_TYPES: tuple[str, ...] = (
    "session",
    "step",
    "call",
    "result",
    "fold",
    "crop",
    "hit",
    "page",
    "answer",
    "end",
    "error",
    "python",
)

END_REASONS: tuple[str, ...] = ("answer", "max_steps", "context_full", "error", "interrupted")

Event = dict[str, Any]


def event(type_: str, **fields: Any) -> Event:
    """Build an event dict with `type` first (so `head` and `jq` read naturally)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {"type": type_, **fields}


def error_event(message: str, where: str, **fields: Any) -> Event:
    """An `error` event: what failed (`message`) and on which input (`where`)."""
    return event("error", message=message, where=where, **fields)


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string with a `Z` suffix."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
