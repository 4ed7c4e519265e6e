"""Reading and writing `config.toml`, and resolving settings by precedence.

Precedence: a command-line flag > a `VDR_*` environment variable > the config
file > the built-in default.  The file is written atomically with mode 0600
because it may hold API keys.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdr_cli.errors import ConfigError, UsageError
from vdr_cli.paths import config_file
from vdr_cli.settings import SETTINGS, Setting, coerce, mask


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


@dataclass
class Resolved:
    """A setting's effective value and where it came from."""

    setting: Setting
    value: Any
    source: str  # "flag", "env", "file" or "default"

    def shown(self, reveal: bool = False) -> str:
        value = self.value
        if self.setting.secret and not reveal:
            return mask(str(value))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def lookup(key: str) -> Setting:
    try:
        return SETTINGS[key]
    except KeyError:
        import difflib

        # A typo (keys.serpr), a missing section (serper) or a prefix (search.prov).
        close = (difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.75)
                 or [k for k in SETTINGS if k.split(".")[-1] == key.split(".")[-1] or (len(key) > 3 and k.startswith(key))]
                 or difflib.get_close_matches(key, [k.split(".")[-1] for k in SETTINGS], n=1, cutoff=0.8))
        if close and close[0] not in SETTINGS:
            close = [k for k in SETTINGS if k.split(".")[-1] == close[0]]
        hint = f"did you mean {close[0]}?" if close else "`vdr config list` shows the known settings"
        raise UsageError(f"unknown setting {key!r}", hint=hint) from None


def flag_name(setting: Setting, option: str | None = None) -> str:
    """How a person names the setting on the command line (for messages)."""
    return f"{option or '--' + setting.key.split('.')[-1].replace('_', '-')} (setting {setting.key})"


class Config:
    """The config file's contents plus the environment, resolved per setting."""

    def __init__(self, path: Path | None = None, environ: dict[str, str] | None = None) -> None:
        self.path = path or config_file()
        self.environ = os.environ if environ is None else environ
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._read()
        return self._data

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read config file ({exc})") from None
        try:
            return _toml_loads(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: not valid TOML ({exc})", hint="fix the file or remove it") from None

    def file_value(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def resolve(self, key: str, flag: Any = None, option: str | None = None) -> Resolved:
        """`option` names the flag `flag` came from, for the message if it is refused."""
        setting = lookup(key)
        if flag is not None:
            try:
                return Resolved(setting, coerce(setting, flag), "flag")
            except ValueError as exc:
                raise UsageError(f"{flag_name(setting, option)}: {exc}") from None
        env = self.environ.get(setting.env_var)
        if env is not None and env != "":
            try:
                return Resolved(setting, coerce(setting, env), "env")
            except ValueError as exc:
                raise ConfigError(f"environment variable {setting.env_var}: {exc}") from None
        raw = self.file_value(key)
        if raw is not None:
            try:
                return Resolved(setting, coerce(setting, raw), "file")
            except ValueError as exc:
                raise ConfigError(f"{self.path}: setting {key}: {exc}", hint=f"vdr config set {key} VALUE") from None
        return Resolved(setting, setting.default, "default")

    def get(self, key: str, flag: Any = None, option: str | None = None) -> Any:
        return self.resolve(key, flag, option).value

    def check_all(self) -> None:
        """Resolve every setting once, so a bad variable or file value fails at the
        start of a command, not in the middle of a session (ConfigError names it)."""
        for key in SETTINGS:
            self.resolve(key)

    def set(self, key: str, text: str) -> Any:
        setting = lookup(key)
        try:
            value = coerce(setting, text)
        except ValueError as exc:
            raise UsageError(f"setting {key}: {exc}") from None
        node = self.data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{self.path}: {part} is not a table")
        node[parts[-1]] = value
        self._write()
        return value

    def unset(self, key: str) -> bool:
        lookup(key)
        parts = key.split(".")
        node: Any = self.data
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or parts[-1] not in node:
            return False
        del node[parts[-1]]
        self._write()
        return True

    def _write(self) -> None:
        import tomli_w

        data = {k: v for k, v in self.data.items() if v != {}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written to a 0600 temporary file then renamed: the file may hold API
        # keys, and a crash mid-write must not leave half a config.
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                tomli_w.dump(data, fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_default: Config | None = None


def current() -> Config:
    """The process-wide config (read lazily, once)."""
    global _default
    if _default is None:
        _default = Config()
    return _default
