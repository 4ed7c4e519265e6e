"""Parsing one assistant turn: `<think>`, then one `<tool_call>` or an `<answer>`.

Models slip: single quotes, trailing commas, unquoted keys, code fences,
Python literals.  `loads_lenient` repairs those before giving up, so a small
slip costs nothing and a real mess gets the corrective message.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.agent.prompt import PYTHON

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_FENCE = re.compile(r"^\s*```(?:json|JSON|json5)?\s*(.*?)\s*```\s*$", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_BARE_KEY = re.compile(r'([{,]\s*)([A-Za-z_][\w\-]*)(\s*:)')


@dataclass
class ParsedTurn:
    kind: str  # "call", "answer" or "invalid"
    think: str | None = None
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    error: str | None = None  # why a turn is invalid (for the trace, not the model)


def loads_lenient(text: str) -> Any:
    """JSON with the usual model slips repaired; raises ValueError when hopeless."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an over-long integer, nested too deep
        pass
    repaired = _BARE_KEY.sub(r'\1"\2"\3', _TRAILING_COMMA.sub(r"\1", text))
    try:
        return json.loads(repaired)
    except (ValueError, RecursionError):
        pass
    # Single quotes and Python literals: let Python's own parser read it.
    pythonic = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", text)))
    try:
        value = ast.literal_eval(pythonic)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[1]: 2}
        raise ValueError("not valid JSON") from None
    return value


def parse_turn(raw: str) -> ParsedTurn:
    """Classify one assistant turn; a tool call wins over an answer, as in the reference."""
    think_match = _THINK.search(raw)
    think = think_match.group(1).strip() if think_match else None
    # Anything after a hallucinated tool response is not the model's to say.
    if "<tool_response>" in raw:
        raw = raw[: raw.index("<tool_response>")]
    call = _CALL.search(raw)
    if call:
        python = python_args(raw)
        if python is not None:
            return ParsedTurn("call", think=think, tool=PYTHON, args=python)
        try:
            data = loads_lenient(call.group(1))
        except ValueError:
            return ParsedTurn("invalid", think=think, error="tool call is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return ParsedTurn("invalid", think=think, error='tool call needs {"name": ..., "arguments": {...}}')
        args = data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = loads_lenient(args)
            except ValueError:
                return ParsedTurn("invalid", think=think, error="tool call arguments are not valid JSON")
        if not isinstance(args, dict):
            return ParsedTurn("invalid", think=think, error="tool call arguments must be an object")
        return ParsedTurn("call", think=think, tool=data["name"], args=args)
    answer = _ANSWER.search(raw)
    if answer:
        return ParsedTurn("answer", think=think, answer=answer.group(1).strip())
    return ParsedTurn("invalid", think=think, error="no <tool_call> or <answer>")


def python_args(raw: str) -> dict[str, str] | None:
    """The reference's PythonInterpreter rule: a tool call whose text mentions "python"
    (any case, anywhere: even a search query) is a Python call, and its code is what
    lies between <code> and </code> inside it, stripped.

    Returns None for other calls, {"code": CODE} for a Python call, and {} when
    it has no <code> (the reference's "[Python Interpreter Error]: Python code
    formatting error.").  The string
    splits are the reference's own (deepresearch_agent.py@67af60f `_run`; bac38dc
    lines 490-503), so edge cases (no </code>, several calls) cut where it cuts.
    """
    if "<tool_call>" not in raw or "</tool_call>" not in raw:
        return None
    call_text = raw.split("<tool_call>")[1].split("</tool_call>")[0]
    if "python" not in call_text.lower():
        return None
    if "<code>" not in call_text:
        return {}
    return {"code": call_text.split("<code>")[1].split("</code>")[0].strip()}


def is_repetitive(text: str, n: int = 30, threshold: float = 0.5) -> bool:
    """Degenerate repetition: few distinct character n-grams (the reference's test)."""
    if len(text) < n:
        return False
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(Counter(grams)) / len(grams) < threshold


def word_count(text: str) -> int:
    return len(re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*", text))
