"""Settings: precedence, the config file, masking, and `vdr config`."""

from __future__ import annotations

import json
import os
import stat

import pytest

from vdr_cli.config import Config
from vdr_cli.errors import ConfigError, UsageError
from vdr_cli.settings import SETTINGS, coerce, mask


def test_precedence_flag_env_file_default(tmp_path):
    path = tmp_path / "config.toml"
    cfg = Config(path, environ={})
    assert cfg.resolve("search.provider").source == "default"
    cfg.set("search.provider", "searxng")
    assert (cfg.get("search.provider"), cfg.resolve("search.provider").source) == ("searxng", "file")
    cfg = Config(path, environ={"VDR_SEARCH_PROVIDER": "brave"})
    assert (cfg.get("search.provider"), cfg.resolve("search.provider").source) == ("brave", "env")
    assert cfg.resolve("search.provider", flag="serper").value == "serper"


def test_values_are_typed(tmp_path):
    cfg = Config(tmp_path / "c.toml", environ={"VDR_NET_ALLOW_PRIVATE": "yes", "VDR_CTX": "4096"})
    assert cfg.get("net.allow_private") is True
    assert cfg.get("model.ctx") == 4096
    cfg.set("net.timeout", "30")
    assert Config(tmp_path / "c.toml", environ={}).get("net.timeout") == 30.0
    with pytest.raises(UsageError, match="expected int"):
        cfg.set("model.ctx", "lots")
    with pytest.raises(ConfigError, match="VDR_CTX"):
        Config(tmp_path / "c.toml", environ={"VDR_CTX": "big"}).get("model.ctx")


def test_file_is_0600_and_written_atomically(tmp_path):
    path = tmp_path / "sub" / "config.toml"
    cfg = Config(path, environ={})
    cfg.set("keys.serper", "sk-very-secret-1234")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".config-")]
    assert cfg.resolve("keys.serper").shown() == "****1234"
    assert cfg.resolve("keys.serper").shown(reveal=True) == "sk-very-secret-1234"


def test_unset_and_unknown_keys(tmp_path):
    cfg = Config(tmp_path / "c.toml", environ={})
    cfg.set("crop.quality", "80")
    assert cfg.unset("crop.quality") is True
    assert cfg.unset("crop.quality") is False
    assert Config(tmp_path / "c.toml", environ={}).get("crop.quality") == 90
    with pytest.raises(UsageError, match="unknown setting 'search.provder'"):
        cfg.get("search.provder")


def test_broken_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("search = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config(path, environ={}).get("search.provider")


def test_every_setting_default_has_its_type():
    for s in SETTINGS.values():
        assert isinstance(s.default, s.type), s.key
        assert s.doc and s.env_var.startswith("VDR_")
    assert coerce(SETTINGS["net.allow_private"], "off") is False
    assert mask("short") == "****" and mask("") == ""


def test_cli_set_get_path_list_unset(vdr, vdr_home):
    r = vdr("config", "set", "search.provider", "searxng")
    assert r.returncode == 0, r.stderr
    path = vdr("config", "path").stdout.decode().strip()
    assert path == str(vdr_home / "config" / "config.toml")
    assert 'provider = "searxng"' in open(path).read()
    assert vdr("config", "get", "search.provider").stdout == b"searxng\n"
    vdr("config", "set", "keys.brave", "BSA-abcdefgh-9876")
    rows = [json.loads(line) for line in vdr("config", "list").stdout.decode().splitlines()]
    by_key = {r["key"]: r for r in rows}
    assert by_key["search.provider"]["source"] == "file"
    assert by_key["keys.brave"]["value"] == "****9876"
    assert "BSA-abcdefgh" not in vdr("config", "list").stdout.decode()
    env_rows = vdr("config", "list", env={"VDR_SEARCH_PROVIDER": "brave"}).stdout.decode()
    assert '"key":"search.provider","value":"brave","source":"env"' in env_rows
    assert vdr("config", "get", "keys.brave", "--reveal").stdout == b"BSA-abcdefgh-9876\n"
    assert vdr("config", "unset", "search.provider").returncode == 0
    assert vdr("config", "get", "search.provider").stdout == b"duckduckgo,brave-web,mojeek\n"
    assert vdr("config", "path", "cache").stdout.decode().strip() == str(vdr_home / "cache")


def test_cli_errors_are_one_line_with_status(vdr):
    r = vdr("config", "get", "nope.key")
    assert r.returncode == 2
    lines = r.stderr.decode().splitlines()
    assert lines[0] == "vdr config: error: unknown setting 'nope.key'"
    assert lines[1].startswith("vdr config: hint:")
    assert "Traceback" not in r.stderr.decode()
    r = vdr("config", "set", "model.ctx", "huge")
    assert r.returncode == 2 and "expected int" in r.stderr.decode()
