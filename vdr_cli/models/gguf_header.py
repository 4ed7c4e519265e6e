"""Read a GGUF file's metadata header without numpy or the gguf package.

`vdr model info` and `vdr model add` only need the key/value header
(architecture, context length, chat template); tensor data is never read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from vdr_cli.errors import InputError

MAGIC = b"GGUF"
# GGUF value types → struct format (scalars) or special handling.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_LARGE_ARRAY = 64  # longer arrays (vocabularies) are summarised, not kept


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    data = fh.read(n)
    if len(data) != n:
        raise EOFError
    return data.decode("utf-8", errors="replace")


def _value(fh: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        item_kind = _read(fh, "<I")
        count = _read(fh, "<Q")
        if count > _LARGE_ARRAY:
            if item_kind in _SCALARS:  # skip the bytes without decoding them
                fh.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
            else:
                for _ in range(count):
                    _value(fh, item_kind)
            return {"array_of": item_kind, "length": count}
        return [_value(fh, item_kind) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path) -> dict[str, Any]:
    """The header's key/value pairs plus `gguf.version` and `gguf.tensor_count`."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != MAGIC:
                raise InputError(f"{path}: not a GGUF file (no GGUF magic bytes)")
            version = _read(fh, "<I")
            tensors = _read(fh, "<Q")
            n_kv = _read(fh, "<Q")
            meta: dict[str, Any] = {"gguf.version": version, "gguf.tensor_count": tensors}
            for _ in range(n_kv):
                key = _string(fh)
                meta[key] = _value(fh, _read(fh, "<I"))
            return meta
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (EOFError, ValueError, struct.error) as exc:
        raise InputError(f"{path}: truncated or corrupt GGUF header ({exc or 'unexpected end of file'})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def summary(path: Path) -> dict[str, Any]:
    """What a person wants to know about a GGUF file."""
    meta = read_metadata(path)
    arch = meta.get("general.architecture", "")
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "architecture": arch,
        "name": meta.get("general.name"),
        "context_length": meta.get(f"{arch}.context_length"),
        "projector_type": meta.get("clip.projector_type"),
        "has_chat_template": isinstance(meta.get("tokenizer.chat_template"), str),
        "file_type": meta.get("general.file_type"),
        "tensors": meta.get("gguf.tensor_count"),
        "gguf_version": meta.get("gguf.version"),
    }
