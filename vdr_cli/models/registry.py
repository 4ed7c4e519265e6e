"""The model registry: named local models in `models.toml` in the data folder.

An entry records the GGUF path, an optional vision projector (mmproj), a chat
template override, a context size and default sampling.  Names resolve here
first, then in the download catalog.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vdr_cli.errors import ConfigError, InputError, UsageError
from vdr_cli.paths import data_dir

NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class ModelEntry:
    name: str
    gguf: str
    mmproj: str | None = None
    chat_template: str | None = None
    ctx: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # "pull:REPO" or "add"

    def to_toml(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name" and v not in (None, {}, "")}


def registry_path() -> Path:
    return data_dir() / "models.toml"


def models_dir() -> Path:
    """Where pulled model files are stored."""
    return data_dir() / "models"


def check_name(name: str) -> str:
    if not name or not set(name) <= NAME_OK or name.startswith((".", "-")) or name.endswith(".gguf") or ":" in name:
        raise UsageError(f"invalid model name {name!r}", hint="use letters, digits, '-', '_' and '.'")
    return name


class Registry:
    """Read, add and remove named models; written atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or registry_path()
        self._entries: dict[str, ModelEntry] | None = None

    @property
    def entries(self) -> dict[str, ModelEntry]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, ModelEntry]:
        if not self.path.exists():
            return {}
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            data = tomllib.loads(self.path.read_text("utf-8"))
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read the model registry ({exc})", hint="fix or remove the file") from None
        out = {}
        for name, raw in (data.get("models") or {}).items():
            if not isinstance(raw, dict) or not isinstance(raw.get("gguf"), str):
                raise ConfigError(f"{self.path}: model {name!r} has no gguf path")
            known = {k: v for k, v in raw.items() if k in ModelEntry.__dataclass_fields__}
            out[name] = ModelEntry(name=name, **known)
        return out

    def get(self, name: str) -> ModelEntry | None:
        return self.entries.get(name)

    def add(self, entry: ModelEntry, replace: bool = False) -> None:
        check_name(entry.name)
        if entry.name in self.entries and not replace:
            raise UsageError(f"model {entry.name!r} is already registered", hint="remove it first or use --replace")
        for label, value in (("gguf", entry.gguf), ("mmproj", entry.mmproj)):
            if value is not None:
                from vdr_cli.models.gguf_header import is_gguf

                if not Path(value).is_file():
                    raise InputError(f"{value}: no such file ({label})")
                if not is_gguf(Path(value)):
                    raise InputError(f"{value}: not a GGUF file ({label})")
        self.entries[entry.name] = entry
        self._write()

    def remove(self, name: str) -> ModelEntry:
        entry = self.entries.pop(name, None)
        if entry is None:
            raise InputError(f"no model named {name!r} in the registry", hint="`vdr model list` shows them")
        self._write()
        return entry

    def _write(self) -> None:
        import tomli_w

        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"models": {name: e.to_toml() for name, e in sorted(self.entries.items())}}
        fd, tmp = tempfile.mkstemp(prefix=".models-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                tomli_w.dump(data, fh)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
