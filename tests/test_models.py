"""Model registry, --model specs, GGUF headers and `vdr model pull` against a loopback hub."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.hub import Hub
from vdr_cli.errors import InputError, UsageError
from vdr_cli.models.download import DownloadError, download
from vdr_cli.models.gguf_header import read_metadata, summary
from vdr_cli.models.registry import ModelEntry, Registry
from vdr_cli.models.spec import parse_spec

FIXTURES = ROOT / "tests" / "fixtures" / "gguf"
TINY = FIXTURES / "qwen3vl-tiny.gguf"
TINY_MM = FIXTURES / "qwen3vl-tiny-mmproj.gguf"


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


# --- GGUF header ---------------------------------------------------------------------

def test_gguf_header_of_fixtures():
    s = summary(TINY)
    assert s["architecture"] == "qwen3vl" and s["has_chat_template"] and s["tensors"] > 0
    assert summary(TINY_MM)["projector_type"] == "qwen3vl_merger"
    meta = read_metadata(TINY)
    assert meta["tokenizer.ggml.tokens"]["length"] > 1000  # big arrays are summarised


def test_gguf_header_rejects_bad_files(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"NOPE" + b"\0" * 20)
    with pytest.raises(InputError, match="not a GGUF file"):
        read_metadata(tmp_path / "x.gguf")
    (tmp_path / "cut.gguf").write_bytes(TINY.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated or corrupt GGUF header"):
        read_metadata(tmp_path / "cut.gguf")


# --- registry and specs ----------------------------------------------------------------

def test_registry_add_get_remove(tmp_path):
    reg = Registry(tmp_path / "models.toml")
    reg.add(ModelEntry(name="tiny", gguf=str(TINY), mmproj=str(TINY_MM), ctx=2048, sampling={"temperature": 0.2}))
    again = Registry(tmp_path / "models.toml").get("tiny")
    assert again.mmproj == str(TINY_MM) and again.ctx == 2048 and again.sampling == {"temperature": 0.2}
    with pytest.raises(UsageError, match="already registered"):
        reg.add(ModelEntry(name="tiny", gguf=str(TINY)))
    with pytest.raises(InputError, match="not a GGUF file"):
        reg.add(ModelEntry(name="bad", gguf=str(ROOT / "README.md")))
    with pytest.raises(UsageError, match="invalid model name"):
        reg.add(ModelEntry(name="a/b", gguf=str(TINY)))
    reg.remove("tiny")
    with pytest.raises(InputError, match="no model named"):
        reg.remove("tiny")


def test_parse_spec_forms(tmp_path):
    s = parse_spec("openai:vdr-8b@http://gpu:8000/v1/")
    assert (s.kind, s.name, s.base_url) == ("openai", "vdr-8b", "http://gpu:8000/v1")
    assert parse_spec("openai:@http://127.0.0.1:8080/v1").name == ""
    assert parse_spec("openai:org/model@name@https://h/v1").name == "org/model@name"
    for bad in ("openai:vdr-8b", "openai:m@ftp://x", ""):
        with pytest.raises(UsageError):
            parse_spec(bad)
    s = parse_spec(str(TINY), mmproj=str(TINY_MM))
    assert s.kind == "llama" and s.gguf == TINY.resolve() and s.mmproj == TINY_MM.resolve()
    with pytest.raises(InputError, match="no such model file"):
        parse_spec(str(tmp_path / "missing.gguf"))
    with pytest.raises(InputError, match="not downloaded yet"):
        parse_spec("qwen3-vl-8b")
    with pytest.raises(InputError, match="unknown model 'nothing'"):
        parse_spec("nothing")
    Registry().add(ModelEntry(name="tiny", gguf=str(TINY), mmproj=str(TINY_MM), ctx=1024))
    s = parse_spec("tiny")
    assert s.gguf == TINY and s.ctx == 1024
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    assert parse_spec(f"scripted:{trace}").kind == "scripted"


# --- downloads -------------------------------------------------------------------------

def test_download_verifies_against_linked_etag(hub, tmp_path):
    data = TINY.read_bytes()
    hub.files["/r/resolve/main/m.gguf"] = data
    got = download(f"{hub.url}/r/resolve/main/m.gguf", tmp_path / "m.gguf")
    assert got.verified and got.sha256 == hashlib.sha256(data).hexdigest() and got.resumed_from == 0
    assert (tmp_path / "m.gguf").read_bytes() == data and not (tmp_path / "m.gguf.part").exists()


def test_interrupted_download_resumes_with_range(hub, tmp_path):
    data = TINY.read_bytes()
    hub.files["/r/resolve/main/m.gguf"] = data
    hub.cut_after["/r/resolve/main/m.gguf"] = 500_000
    with pytest.raises(DownloadError, match="after 500000 bytes|connection closed at 500000"):
        download(f"{hub.url}/r/resolve/main/m.gguf", tmp_path / "m.gguf")
    part = tmp_path / "m.gguf.part"
    assert part.exists() and 0 < part.stat().st_size < len(data) and not (tmp_path / "m.gguf").exists()
    got = download(f"{hub.url}/r/resolve/main/m.gguf", tmp_path / "m.gguf")
    assert got.resumed_from == part_size_at_resume(hub) and got.resumed_from > 0
    assert (tmp_path / "m.gguf").read_bytes() == data and got.verified


def part_size_at_resume(hub: Hub) -> int:
    return int(hub.requests[-1]["range"].split("=")[1].rstrip("-"))


def test_checksum_mismatch_removes_the_part(hub, tmp_path):
    hub.files["/r/resolve/main/m.gguf"] = TINY.read_bytes()
    hub.bad_etag.add("/r/resolve/main/m.gguf")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{hub.url}/r/resolve/main/m.gguf", tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists() and not (tmp_path / "m.gguf.part").exists()
    hub.bad_etag.clear()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{hub.url}/r/resolve/main/m.gguf", tmp_path / "m.gguf", sha256="0" * 64)


def test_pull_cli_end_to_end(hub, vdr, vdr_home):
    hub.files["/Qwen/Qwen3-VL-8B-Instruct-GGUF/resolve/main/Qwen3VL-8B-Instruct-Q4_K_M.gguf"] = TINY.read_bytes()
    hub.files["/Qwen/Qwen3-VL-8B-Instruct-GGUF/resolve/main/mmproj-Qwen3VL-8B-Instruct-F16.gguf"] = TINY_MM.read_bytes()
    r = vdr("model", "pull", "qwen3-vl-8b", "--hub", hub.url, env={"HF_TOKEN": "hf_secret_token_123"})
    assert r.returncode == 0, r.stderr.decode()
    assert "hf_secret_token_123" not in r.stderr.decode() + r.stdout.decode()
    assert all(req["auth"] == "Bearer hf_secret_token_123" for req in hub.requests)
    gguf = Path(vdr("model", "path", "qwen3-vl-8b").stdout.decode().strip())
    assert gguf.read_bytes() == TINY.read_bytes() and gguf.is_relative_to(vdr_home)
    [row] = [json.loads(l) for l in vdr("model", "list").stdout.decode().splitlines() if '"qwen3-vl-8b"' in l]
    assert row["installed"] and row["mmproj"]
    info = json.loads(vdr("model", "info", "qwen3-vl-8b", "--json").stdout)
    assert info["architecture"] == "qwen3vl" and info["mmproj"]["projector_type"] == "qwen3vl_merger"
    assert vdr("model", "rm", "qwen3-vl-8b", "--delete-files").returncode == 0
    assert not gguf.exists()


def test_pull_errors_are_one_line(hub, vdr):
    r = vdr("model", "pull", "qwen3-vl-8b", "--hub", hub.url)  # the hub has no such repository
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "no such repository" in err and "HF_TOKEN" in err and "Traceback" not in err and len(err.splitlines()) == 2
    r = vdr("model", "pull", "qwen3-vl-8b", "--hub", "http://127.0.0.1:9")
    assert r.returncode == 1 and "cannot reach" in r.stderr.decode() and "vdr model add" in r.stderr.decode()
    assert vdr("model", "pull", "unknown-thing").returncode == 2


def test_add_and_info_cli(vdr, tmp_path):
    assert vdr("model", "add", "tiny", "--gguf", str(TINY), "--mmproj", str(TINY_MM)).returncode == 0
    assert vdr("model", "path", "tiny", "--mmproj").stdout.decode().strip() == str(TINY_MM.resolve())
    r = vdr("model", "add", "t2", "--gguf", str(tmp_path / "none.gguf"))
    assert r.returncode == 1 and "no such file" in r.stderr.decode()
