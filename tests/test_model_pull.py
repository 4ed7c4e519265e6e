"""`vdr model pull/list/rm/info` against a loopback hub that lists repositories as the real one does."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_on_pty, run_vdr
from tests.hub import Hub

FIXTURES = ROOT / "tests" / "fixtures" / "gguf"
TINY = FIXTURES / "qwen3vl-tiny.gguf"
TINY_MM = FIXTURES / "qwen3vl-tiny-mmproj.gguf"
QWEN = "Qwen/Qwen3-VL-8B-Instruct-GGUF"


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


def pull(hub: Hub, *args: str, **kw) -> subprocess.CompletedProcess:
    return run_vdr("model", "pull", *args, "--hub", hub.url, **kw)


def test_hf_reference_finds_the_quantisation_and_projector_whatever_their_names(hub, vdr_home):
    # A publisher's own naming: dots before the quantisation, a projector in a sub-folder, split parts.
    hub.publish("someone/Odd-Names-GGUF", {
        "README.md": b"# odd\n", "odd.Q8_0.gguf": TINY.read_bytes(), "odd.Q4_K_M.gguf": TINY.read_bytes(),
        "odd.Q6_K-00001-of-00002.gguf": b"GGUF", "vision/odd-mmproj-f32.gguf": TINY_MM.read_bytes(),
        "vision/odd-mmproj-bf16.gguf": TINY_MM.read_bytes()})
    r = pull(hub, "hf:someone/Odd-Names-GGUF:Q8_0")
    assert r.returncode == 0, r.stderr.decode()
    entry = json.loads([l for l in run_vdr("model", "list", "--json").stdout.decode().splitlines() if '"odd-names"' in l][0])
    assert entry["installed"] and entry["gguf"].endswith("odd.Q8_0.gguf") and entry["mmproj"].endswith("odd-mmproj-bf16.gguf")
    assert entry["source"] == "pull:someone/Odd-Names-GGUF"
    r = pull(hub, "hf:someone/Odd-Names-GGUF", "--name", "odd4")  # no :QUANT → Q4_K_M
    assert r.returncode == 0 and "odd.Q4_K_M.gguf" in r.stderr.decode()
    r = pull(hub, "hf:someone/Odd-Names-GGUF:Q6_K")
    assert r.returncode == 1 and "split into parts" in r.stderr.decode()
    r = pull(hub, "hf:someone/Odd-Names-GGUF:IQ2_XS")
    err = r.stderr.decode()
    assert r.returncode == 1 and "no IQ2_XS model file" in err and "Q4_K_M, Q6_K, Q8_0" in err


def test_a_missing_repository_says_what_to_do_next(hub):
    r = pull(hub, "hf:nobody/nothing-GGUF")
    err = r.stderr.decode()
    assert r.returncode == 1 and "nobody/nothing-GGUF: no such repository" in err and "hint:" in err and "HF_TOKEN" in err
    assert pull(hub, "hf:not-a-repo").returncode == 2
    hub.requests.clear()
    r = pull(hub, "vdr-8b")  # published as safetensors only
    err = r.stderr.decode()
    assert r.returncode == 1 and "no GGUF of this model is published" in err and "convert_hf_to_gguf.py" in err
    assert "vdr model pull qwen3-vl-8b" in err and hub.requests == []  # nothing asked of the hub


def test_gguf_magic_and_projector_are_checked_before_any_download(hub, vdr_home):
    hub.publish(QWEN, {"Qwen3VL-8B-Instruct-Q4_K_M.gguf": b"<html>login page</html>" * 50_000,
                       "mmproj-Qwen3VL-8B-Instruct-F16.gguf": TINY_MM.read_bytes()})
    r = pull(hub, "qwen3-vl-8b")
    assert r.returncode == 1 and "not a GGUF file" in r.stderr.decode() and "nothing was downloaded" in r.stderr.decode()
    assert all(req["range"] == "bytes=0-3" for req in hub.requests if "/resolve/" in req["path"])
    assert not list((vdr_home).rglob("*.part")) and not list(vdr_home.rglob("*.gguf"))
    hub.files.clear()
    hub.publish(QWEN, {"Qwen3VL-8B-Instruct-Q4_K_M.gguf": TINY.read_bytes()})  # the catalog's projector is missing
    r = pull(hub, "qwen3-vl-8b")
    assert r.returncode == 1 and "has no file mmproj-Qwen3VL-8B-Instruct-F16.gguf" in r.stderr.decode()
    assert not list(vdr_home.rglob("*.gguf*"))


def test_a_failed_pull_says_what_it_kept_resumes_and_rm_removes_it(hub, vdr_home):
    hub.publish(QWEN, {"Qwen3VL-8B-Instruct-Q4_K_M.gguf": TINY.read_bytes(), "mmproj-Qwen3VL-8B-Instruct-F16.gguf": TINY_MM.read_bytes()})
    hub.cut_after[f"/{QWEN}/resolve/main/Qwen3VL-8B-Instruct-Q4_K_M.gguf"] = 300_000
    r = pull(hub, "qwen3-vl-8b")
    err = r.stderr.decode()
    assert r.returncode == 1 and ".part: the same command resumes it" in err and "vdr model rm qwen3-vl-8b" in err
    listing = run_vdr("model", "list", "--json").stdout.decode()
    assert '"partial_bytes":300000' in listing
    r = pull(hub, "qwen3-vl-8b")  # piped stderr: one line per file, and the resume said out loud
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "Qwen3VL-8B-Instruct-Q4_K_M.gguf: resuming at 300.0 kB" in err
    per_file = [l for l in err.splitlines() if "sha256 verified" in l]
    assert len(per_file) == 2 and all(re.search(r": [\d.]+ [kM]B in \d+s, sha256 verified$", l) for l in per_file), err
    # an unfinished pull that is never resumed: rm removes what it left
    hub.cut_after[f"/{QWEN}/resolve/main/Qwen3VL-8B-Instruct-Q4_K_M.gguf"] = 1000
    assert pull(hub, "hf:" + QWEN, "--name", "half").returncode == 1
    assert list((vdr_home).rglob("half/*.part"))
    assert '"name":"half","installed":false' in run_vdr("model", "list", "--json").stdout.decode()  # listed, not hidden
    r = run_vdr("model", "rm", "half")
    assert r.returncode == 0 and "unfinished download" in r.stderr.decode()
    assert not list(vdr_home.rglob("half"))


def test_progress_on_a_terminal_shows_percent_and_eta(hub, vdr_home):
    hub.publish(QWEN, {"Qwen3VL-8B-Instruct-Q4_K_M.gguf": TINY.read_bytes(), "mmproj-Qwen3VL-8B-Instruct-F16.gguf": TINY_MM.read_bytes()})
    status, out = run_on_pty(["model", "pull", "qwen3-vl-8b", "--hub", hub.url], {"COLUMNS": "120", "TERM": "xterm"})
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert status == 0, screen
    assert "100%" in screen and "ETA" in screen and "Qwen3VL-8B-Instruct-Q4_K_M.gguf" in screen, screen


def test_model_list_has_a_header_and_sizes_and_info_reads_like_a_summary(hub, vdr):
    r = vdr("model", "add", "tiny", "--gguf", str(TINY), "--mmproj", str(TINY_MM))
    assert r.returncode == 0
    status, table = run_on_pty(["model", "list"], {"COLUMNS": "120"}, stream="stdout")
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "STATE", "SOURCE"]
    tiny = next(l for l in lines if l.startswith("tiny"))
    size = (TINY.stat().st_size + TINY_MM.stat().st_size) / 1e6
    assert f"{size:.1f} MB" in tiny and "installed +vision" in tiny
    assert "6.2 GB" in next(l for l in lines if l.startswith("qwen3-vl-8b"))
    assert "no GGUF published" in next(l for l in lines if l.startswith("vdr-8b"))
    status, info = run_on_pty(["model", "info", "tiny"], {"COLUMNS": "120"}, stream="stdout")
    assert info.startswith("tiny: ") and "(qwen3vl" in info
    assert "vision: yes, projector qwen3vl_merger" in info and "memory: about" in info and "tokens" in info
    assert "this machine:" in info and "room for a window of about" in info
