"""Parsing one assistant turn: `<think>`, then one `<tool_call>` or an `<answer>`.

`parse_turn` follows the reference eval's rules to the letter (json5, the "python"
routing, the first call of a turn, a call winning over an answer), because the model
was trained on what those rules send back. Models not trained on the format may get
`loads_lenient`, which repairs the usual slips (single quotes, trailing commas,
unquoted keys, code fences, Python literals) before giving up.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vdr_cli.agent import prompt

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_FENCE = re.compile(r"^\s*```(?:json|JSON|json5)?\s*(.*?)\s*```\s*$", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_BARE_KEY = re.compile(r'([{,]\s*)([A-Za-z_][\w\-]*)(\s*:)')


@dataclass
class ParsedTurn:
    """One assistant turn, classified as the reference eval classifies it.

    kind: "call" (run `tool` with `args`), "call_error" (a <tool_call> the reference cannot
    run: `result` is the tool response it sends instead), "answer" or "invalid" (neither:
    the format-error turn follows)."""

    kind: str
    think: str | None = None
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    error: str | None = None  # why a turn is invalid (for the trace, not the model)
    content: str = ""  # the turn cut at a hallucinated <tool_response> (not stripped)
    result: str | None = None  # call_error: the tool response text

    @property
    def history(self) -> str:
        """The assistant turn as the conversation keeps it: cut, then stripped (reference)."""
        return self.content.strip()


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


def parse_turn(raw: str, lenient: bool = False) -> ParsedTurn:
    """Classify one assistant turn exactly as deepresearch_agent.py@67af60f does (lines 397-466).

    - Anything from a hallucinated `<tool_response>` on is cut (lines 397-400).
    - A `<tool_call>` and a `</tool_call>` anywhere make a call, even after an answer
      (line 403); only the first call of a turn runs (line 413).
    - A call whose text contains "python" (any case) is a PythonInterpreter call whatever
      its JSON says; its code is the first `<code>` block in it, args {} without one (lines 417-440).
    - Other calls are read with json5, as the reference reads them (line 444); what json5
      refuses gets the reference's Json Parse Error as its tool response.
    - Else `<answer>` and `</answer>` make an answer (line 462); else the turn is invalid.

    `lenient`: for models not trained on the format, the usual JSON slips are repaired
    (loads_lenient) before a call is refused. Never on by default.
    """
    think_match = _THINK.search(raw)
    think = think_match.group(1).strip() if think_match else None
    content = raw[: raw.index("<tool_response>")] if "<tool_response>" in raw else raw
    if "<tool_call>" in content and "</tool_call>" in content:
        text = content.split("<tool_call>")[1].split("</tool_call>")[0]
        if "python" in text.lower():
            # No <code>: args {} (the toolbox answers the reference's formatting error).
            code = {"code": text.split("<code>")[1].split("</code>")[0].strip()} if "<code>" in text else {}
            return ParsedTurn("call", think=think, tool=prompt.PYTHON, args=code, content=content)
        return _json_call(text, think, content, lenient)
    if "<answer>" in content and "</answer>" in content:
        answer = content.split("<answer>")[1].split("</answer>")[0].strip()
        return ParsedTurn("answer", think=think, answer=answer, content=content)
    return ParsedTurn("invalid", think=think, content=content, error="no <tool_call> or <answer>")


def _json_call(text: str, think: str | None, content: str, lenient: bool) -> ParsedTurn:
    def refused(why: str) -> ParsedTurn:
        return ParsedTurn("call_error", think=think, content=content, result=prompt.JSON_PARSE_ERROR, error=why)

    try:
        import json5

        data = json5.loads(text)
    except Exception:  # json5 raises ValueError, and RecursionError on deep nesting
        if not lenient:
            return refused("tool call is not valid JSON")
        try:
            data = loads_lenient(text)
        except (ValueError, TypeError):
            return refused("tool call is not valid JSON")
    if not isinstance(data, dict):
        return refused('tool call needs {"name": ..., "arguments": {...}}')  # the reference's .get() fails
    name = data.get("name", "")
    args = data.get("arguments", {})
    if lenient and isinstance(args, str):
        try:
            args = loads_lenient(args)
        except (ValueError, TypeError):
            pass
    if isinstance(name, (list, dict)):
        return refused("tool name is not a string")  # unhashable: the reference's registry lookup fails
    if not isinstance(args, dict):
        # The reference sets args["image_id"] for crop_and_search (a TypeError, so Json Parse
        # Error); other tools fail inside the tool call.
        if name == "crop_and_search":
            return refused("tool call arguments must be an object")
        return ParsedTurn("call_error", think=think, content=content, tool=_py_str(name),
                          result=prompt.tool_error(_py_str(name), "arguments must be a JSON object"),
                          error="tool call arguments must be an object")
    return ParsedTurn("call", think=think, tool=_py_str(name), args=args, content=content)


def _py_str(value: Any) -> str:
    """A JSON scalar as Python's str() writes it (the reference formats names with f-strings)."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def is_repetitive(text: str, n: int = 30, threshold: float = 0.5) -> bool:
    """Degenerate repetition: few distinct character n-grams (the reference's test)."""
    if len(text) < n:
        return False
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(Counter(grams)) / len(grams) < threshold


def word_count(text: str) -> int:
    return len(re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*", text))
