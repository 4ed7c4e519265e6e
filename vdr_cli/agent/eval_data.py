"""Benchmark sets for `vdr eval`: JSONL or Parquet rows into items with image files.

A set is a file or a folder of files (every .parquet / .jsonl in it, each one
benchmark named by its file name, as the reference's run_eval.sh takes a folder).
Images come as paths (relative to the set's folder), http(s) URLs (left for the
batch runner to fetch), base64 / data: URLs or bytes; decoded images are files
named by their content, so a re-run reuses them.

The reference's packed Parquet (`image_packed`: a JSON list of {"filename",
"data": base64}) is unpacked as its rllm/eval/unpack_parquet.py@67af60f
`unpack_one` does: image i of row r is written as `{r}_{i}_{filename}`, the
row's images become those files (absolute paths), and each filename in the
question is replaced by its file's absolute path, so the question names its
image exactly as the reference's ready-to-infer parquet does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vdr_cli.errors import InputError

_CORE = {"id", "idx", "_id", "question", "answer", "images", "image_packed", "__row_index__"}
_B64 = re.compile(r"[A-Za-z0-9+/=\s_-]+")


@dataclass
class EvalItem:
    id: str
    question: str
    answer: Any  # as given: a string, or a list of acceptable answers
    images: list[str]  # paths or http(s) URLs
    tags: dict[str, Any] = field(default_factory=dict)
    benchmark: str = ""  # the file it came from (its name without suffix)

    @property
    def answers(self) -> list[str]:
        return [str(a) for a in self.answer] if isinstance(self.answer, list) else [str(self.answer)]


SET_SUFFIXES = (".parquet", ".pq", ".jsonl")


def load_dataset(path: Path, images_dir: Path) -> list[EvalItem]:
    """Every item of a JSONL or Parquet set, or of every such file in a folder (ids then
    "FILE/ID", images in images_dir/FILE/); a bad record is a one-line error naming file:line (or row)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SET_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no benchmark files (.parquet or .jsonl) in this folder")
        return [item for f in files for item in _load_file(f, images_dir / f.stem, f.stem + "/")]
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return _load_file(path, images_dir, "")


def _load_file(path: Path, images_dir: Path, id_prefix: str) -> list[EvalItem]:
    parquet = path.suffix.lower() in (".parquet", ".pq")
    rows = _parquet_rows(path) if parquet else _jsonl_rows(path)
    items: list[EvalItem] = []
    seen: dict[str, str] = {}
    for where, pos, row in rows:
        item = _item(row, where, pos, path.parent, images_dir)
        item.id, item.benchmark = id_prefix + item.id, path.stem
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
        handle = pq.ParquetFile(path)
        index = _row_index(handle.schema_arrow.pandas_metadata or {})
        batches = handle.iter_batches(batch_size=64)  # image bytes: not the whole table at once
        pos = 0
        for batch in batches:
            for row in batch.to_pylist():
                row["__row_index__"] = index(pos, row)
                yield f"{path}: row {pos}", pos, row
                pos += 1
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise InputError(f"{path}: cannot read Parquet ({' '.join(str(exc).split())[:200]})") from None


def _row_index(meta: dict[str, Any]):
    """The pandas index of each row (unpack_parquet.py names files by it): a stored index
    column, a stored range, or the row's position."""
    columns = meta.get("index_columns") or []
    first = columns[0] if len(columns) == 1 else None
    if isinstance(first, str):
        return lambda pos, row: row.get(first, pos)
    if isinstance(first, dict) and first.get("kind") == "range":
        start, step = int(first.get("start", 0)), int(first.get("step", 1))
        return lambda pos, row: start + pos * step
    return lambda pos, row: pos


def _unpack(packed: str, question: str, row_index: Any, where: str, images_dir: Path) -> tuple[list[str], str]:
    """unpack_parquet.py `unpack_one` for one row: (its image files, the question naming them)."""
    try:
        entries = json.loads(packed or "[]")
    except ValueError:
        entries = []  # as the reference: an unreadable pack is no images
    paths: list[str] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
            raise InputError(f"{where}: image_packed entry {i} has no filename")
        filename, data = entry["filename"], entry.get("data")
        if data is None:
            continue  # the reference keeps a None path; it never becomes an image
        # Named as the reference names it; a filename cannot climb out of the folder.
        target = images_dir / f"{row_index}_{i}_{os.path.basename(filename)}"
        if not target.exists():
            images_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(_b64(str(data), f"{where}: image_packed entry {i}"))
            os.replace(tmp, target)
        absolute = str(target.resolve())
        paths.append(absolute)
        question = question.replace(filename, absolute)
    return paths, question


def _is_reference_pack(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith("[")


def _item(row: dict[str, Any], where: str, pos: int, base: Path, images_dir: Path) -> EvalItem:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: no question")
    if _is_reference_pack(row.get("image_packed")):
        images, question = _unpack(row["image_packed"], str(question), row.get("__row_index__", pos), where, images_dir)
        row = {**row, "image_packed": None, "images": None}  # the pack replaces the images column, as unpacked
    else:
        images = []
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if isinstance(answer, list):
        answer = [str(a) for a in answer if str(a).strip()] or None
    if not answer or not (isinstance(answer, list) or str(answer).strip()):
        raise InputError(f"{where}: no answer")
    item_id = next((row[k] for k in ("id", "idx", "_id") if row.get(k) is not None), row.get("__row_index__", pos))
    sources = _as_list(row.get("image_packed")) + _as_list(row.get("images"))
    images += [_image(s, f"{where}: image {n}", base, images_dir) for n, s in enumerate(sources, start=1)]
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
