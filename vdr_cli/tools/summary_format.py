"""The reference's page-summary format: the summariser's JSON in, the model's text out.

The summariser is asked for JSON with exactly `rational` (the reference's spelling),
`evidence` and `summary`. Small models wrap it in code fences, add prose after it, use
single quotes or a <think> block; `parse_summary` takes all of that, and when nothing
parses it falls back as the reference does: evidence = summary = the raw text.

What the agent model reads after a `visit` call is written by `vdr_cli.agent.prompt`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from typing import Any

KEYS = ("rational", "evidence", "summary")

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```(?:json|JSON|javascript)?\s*(.*?)```", re.S)


def parse_summary(raw: str) -> dict[str, Any]:
    """{rational, evidence, summary, parsed}; `parsed` is False when the fallback was used."""
    text = _THINK.sub("", raw or "").strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        obj = _first_object(cand)
        if obj is not None:
            return {**{k: _as_text(obj.get(k, obj.get("rationale", "") if k == "rational" else "")) for k in KEYS}, "parsed": True}
    by_key = _by_regex(text)
    if by_key:
        return {**by_key, "parsed": True}
    stripped = text.strip()
    return {"rational": "", "evidence": stripped, "summary": stripped, "parsed": False}


def _first_object(text: str) -> dict[str, Any] | None:
    """The first {...} in `text` that reads as JSON or a Python dict literal and has our keys."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is None:
            break
        chunk = text[start : end + 1]
        for loader in (json.loads, _literal, _json_loose):
            try:
                obj = loader(chunk)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(obj, dict) and any(k in obj for k in (*KEYS, "rationale")):
                return obj
        start = text.find("{", start + 1)
    return None


def _matching_brace(text: str, start: int) -> int | None:
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _literal(chunk: str) -> Any:
    # Single-quoted dicts (Python-style output); literal_eval evaluates no code.
    return ast.literal_eval(chunk)


def _json_loose(chunk: str) -> Any:
    # Trailing commas and raw newlines inside strings: the two commonest near-misses.
    chunk = re.sub(r",\s*([}\]])", r"\1", chunk)
    return json.loads(chunk, strict=False)


_KEY_RX = {k: re.compile(rf"""["']?{k}e?["']?\s*:\s*["'](.*?)["']\s*(?:,\s*["']?(?:rational|evidence|summary)|\}}|$)""", re.S | re.I)
           for k in KEYS}


def _by_regex(text: str) -> dict[str, str] | None:
    found = {k: (m.group(1).strip() if (m := rx.search(text)) else "") for k, rx in _KEY_RX.items()}
    return found if found["summary"] or found["evidence"] else None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return "\n".join(_as_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


