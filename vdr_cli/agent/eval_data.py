"""Benchmark sets for `vdr eval`: JSONL or Parquet rows into items with image files.

Images come as paths (relative to the set's folder), http(s) URLs (left for the
batch runner to fetch), base64 / data: URLs or bytes; decoded images are files
named by their content, so a re-run reuses them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vdr_cli.errors import InputError

_CORE = {"id", "idx", "_id", "question", "answer", "images", "image_packed"}
_B64 = re.compile(r"[A-Za-z0-9+/=\s_-]+")


@dataclass
class EvalItem:
    id: str
    question: str
    answer: Any  # as given: a string, or a list of acceptable answers
    images: list[str]  # paths or http(s) URLs
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        return [str(a) for a in self.answer] if isinstance(self.answer, list) else [str(self.answer)]


def load_dataset(path: Path, images_dir: Path) -> list[EvalItem]:
    """Every item of a JSONL or Parquet set; a bad record is a one-line error naming file:line (or row)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = _parquet_rows(path) if path.suffix.lower() in (".parquet", ".pq") else _jsonl_rows(path)
    items: list[EvalItem] = []
    seen: dict[str, str] = {}
    for where, pos, row in rows:
        item = _item(row, where, pos, path.parent, images_dir)
        if item.id in seen:
            raise InputError(f"{where}: duplicate id {item.id!r} (first at {seen[item.id]})")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise InputError(f"{path}: no items")
    return items


def _jsonl_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    from vdr_cli.trace.jsonl import LineError, parse_line

    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = parse_line(line, str(path), lineno)
        if isinstance(row, LineError):
            raise InputError(str(row), hint='each line: {"id": ..., "question": ..., "answer": ..., "images": [...]}')
        yield f"{path}:{lineno}", lineno, row


def _parquet_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow: install vdr-cli[parquet]") from None
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=64)  # image bytes: not the whole table at once
        pos = 0
        for batch in batches:
            for row in batch.to_pylist():
                yield f"{path}: row {pos}", pos, row
                pos += 1
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise InputError(f"{path}: cannot read Parquet ({' '.join(str(exc).split())[:200]})") from None


def _item(row: dict[str, Any], where: str, pos: int, base: Path, images_dir: Path) -> EvalItem:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: no question")
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if isinstance(answer, list):
        answer = [str(a) for a in answer if str(a).strip()] or None
    if not answer or not (isinstance(answer, list) or str(answer).strip()):
        raise InputError(f"{where}: no answer")
    item_id = next((row[k] for k in ("id", "idx", "_id") if row.get(k) is not None), pos)
    sources = _as_list(row.get("image_packed")) + _as_list(row.get("images"))
    images = [_image(s, f"{where}: image {n}", base, images_dir) for n, s in enumerate(sources, start=1)]
    tags = {k: v for k, v in row.items() if k not in _CORE and isinstance(v, (str, int, float, bool))}
    return EvalItem(str(item_id), question.strip(), answer, images, tags)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, (list, tuple)) else [value]


def _image(source: Any, where: str, base: Path, images_dir: Path) -> str:
    """A path or URL for one image given as a path, URL, base64 / data: URL, bytes or {bytes, path}."""
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (bytes, bytearray)):
        return _save(bytes(source), images_dir)
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"{where}: not a path, URL or base64 image")
    text = source.strip()
    if text.startswith(("http://", "https://")):
        return text
    if text.startswith("data:"):
        return _save(_b64(text.partition(",")[2], where), images_dir)
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists() and (base / path).exists():
        path = base / path  # relative to the set's folder
    if path.exists() or len(text) < 32 or not _B64.fullmatch(text):
        return str(path)
    data = _b64(text, where)
    if not _kind(data):  # decodes, but is no image: it was meant as a path
        return str(path)
    return _save(data, images_dir)


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()).replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: not valid base64") from None


def _kind(data: bytes) -> str | None:
    from vdr_cli.tools.images import EXTENSIONS, sniff_mime

    mime = sniff_mime(data)
    return EXTENSIONS[mime] if mime else None


def _save(data: bytes, folder: Path) -> str:
    """Decoded images are files named by content, so a re-run reuses them."""
    ext = _kind(data) or ".img"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(data).hexdigest()}{ext}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target)
