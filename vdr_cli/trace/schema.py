"""Validate events against the JSON Schemas shipped in `schemas/`.

A deliberately small validator for the subset of JSON Schema the shipped
schemas use (type, const, enum, properties, required, items, min/max,
minItems/maxItems, anyOf): the `jsonschema` package would be one more
dependency with a large import tree for a dozen keywords.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from vdr_cli.trace.events import EVENT_TYPES
from vdr_cli.trace.jsonl import LineError, parse_line

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@lru_cache(maxsize=None)
def load_schema(type_: str) -> dict[str, Any]:
    """The shipped JSON Schema of one event type."""
    text = resources.files("vdr_cli.trace").joinpath("schemas", f"{type_}.json").read_text("utf-8")
    return json.loads(text)


def _is_type(value: Any, name: str) -> bool:
    # bool is an int subclass in Python but not a number in JSON.
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def check(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Problems found in `value` against `schema`, as `path: message` strings."""
    where = path or "(record)"
    problems: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{where}: must be {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: must be one of {', '.join(map(str, schema['enum']))}"]
    if "anyOf" in schema and not any(not check(value, s, path) for s in schema["anyOf"]):
        return [f"{where}: matches none of the allowed shapes"]
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not any(_is_type(value, k) for k in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {_json_type(value)}"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: must be <= {schema['maximum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path + '.' if path else ''}{name}: required field missing")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems.extend(check(value[name], sub, f"{path}.{name}" if path else name))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: allows at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                problems.extend(check(item, schema["items"], f"{path}[{i}]"))
    return problems


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def validate_event(record: dict[str, Any]) -> list[str]:
    """Problems with one event; unknown types are passed through (no problems)."""
    type_ = record.get("type")
    if not isinstance(type_, str):
        return ["type: required string field missing"]
    if type_ not in EVENT_TYPES:
        return []
    problems = check(record, load_schema(type_))
    # Nested typed records (a result's data) are events too.
    if type_ == "result":
        for i, item in enumerate(record.get("data") or []):
            if isinstance(item, dict) and "type" in item:
                problems.extend(f"data[{i}].{p}" for p in validate_event(item))
    return problems


@dataclass
class Problem:
    """A schema problem at a line of a stream."""

    lineno: int
    message: str

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.message}"


def validate_lines(stream: Iterable[str], source: str = "<stdin>") -> Iterator[Problem]:
    """Check every line of a JSONL stream; yield a `Problem` per fault, by line number."""
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        item = parse_line(line, source, lineno)
        if isinstance(item, LineError):
            yield Problem(lineno, item.message)
            continue
        for message in validate_event(item):
            yield Problem(lineno, f"{item.get('type', '?')}: {message}")
