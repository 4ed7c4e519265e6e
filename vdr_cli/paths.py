"""Where vdr keeps its files: one config, one data and one cache folder.

platformdirs picks the usual places for the OS; `VDR_HOME` puts all three
under one folder (tests and portable installs use it).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "vdr"


def _home() -> Path | None:
    value = os.environ.get("VDR_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = _home()
    if home:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    home = _home()
    if home:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    home = _home()
    if home:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def config_file() -> Path:
    """The config file; `VDR_CONFIG` names another one."""
    value = os.environ.get("VDR_CONFIG")
    return Path(value).expanduser() if value else config_dir() / "config.toml"
