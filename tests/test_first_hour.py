"""The README's first run, as a new user follows it: install, pull a model, ask about the example.

The wheel is built from this checkout and installed with pip into a fresh
prefix (so the man pages and completions land where pip puts data files);
`vdr model pull qwen3-vl-8b` downloads from a loopback hub that answers as
the real one does (tests/hub.py) and serves the tiny real Qwen3-VL GGUF pair
from tests/fixtures under the official repository's file names; the default
keyless search engines answer on loopback too (tests/web/engines.py).
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.hub import Hub

FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "gguf" / "qwen3vl-tiny.gguf"
TINY_MM = FIXTURES / "gguf" / "qwen3vl-tiny-mmproj.gguf"
# The official repository's file names (checked against the hub's listing; see models/catalog.py).
QWEN_REPO = "Qwen/Qwen3-VL-8B-Instruct-GGUF"
QWEN_FILES = ("Qwen3VL-8B-Instruct-Q4_K_M.gguf", "mmproj-Qwen3VL-8B-Instruct-F16.gguf")
# Only to keep the run short on a random-weight model: a few steps of few tokens.
FAST = ["--max-steps", "1", "--max-tokens", "64", "--ctx", "4096", "--seed", "3", "--summaries", "extractive"]


def readme_first_run() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- first-run", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """`pip install .`: the wheel built from this checkout, installed into a fresh prefix
    (--ignore-installed: pip would otherwise uninstall the checkout's own install first)."""
    tmp = tmp_path_factory.mktemp("install")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                            str(ROOT)], capture_output=True, timeout=300)
    assert build.returncode == 0, build.stderr.decode()[-2000:]
    [wheel] = (tmp / "dist").glob("vdr_cli-*.whl")
    prefix = tmp / "prefix"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
                          capture_output=True, timeout=300)
    assert inst.returncode == 0, inst.stderr.decode()[-2000:]
    [site] = prefix.glob("lib/python*/site-packages")
    from importlib.metadata import distribution

    assert Path(str(distribution("vdr-cli").locate_file(""))) != Path(site)  # the checkout's own install is untouched
    return {"prefix": prefix, "bin": prefix / "bin" / "vdr", "env": {**os.environ, "PYTHONPATH": str(site)}}


def test_readme_first_run_from_install_to_an_answer(installed, tmp_path, vdr_home):
    from web.engines import install_engines
    from web.server import WebServer

    lines = readme_first_run()
    assert lines[0] == "pip install ." and lines[1].startswith("vdr model pull") and "--example" in lines[2]
    hub = Hub()
    web = WebServer().start()
    try:
        hub.publish(QWEN_REPO, {QWEN_FILES[0]: TINY.read_bytes(), QWEN_FILES[1]: TINY_MM.read_bytes(), "README.md": b"# Qwen3-VL\n"})
        engines = install_engines(web)  # the default keyless engines, answering on loopback
        env = {**installed["env"], **engines.env(), "VDR_HOME": str(vdr_home), "VDR_HUB_URL": hub.url,
               "VDR_NET_ALLOW_PRIVATE": "1"}
        # the installed copy runs, not the checkout
        where = subprocess.run([sys.executable, "-c", "import vdr_cli; print(vdr_cli.__file__)"], env=env,
                               capture_output=True, cwd=tmp_path)
        assert str(installed["prefix"]) in where.stdout.decode()
        outputs = []
        for line in lines[1:]:
            argv = shlex.split(line)
            assert argv[0] == "vdr"
            argv = [str(installed["bin"]), *argv[1:]] + (FAST if argv[1] == "ask" else [])
            r = subprocess.run(argv, env=env, capture_output=True, timeout=600, cwd=tmp_path)
            assert r.returncode == 0, (line, r.stderr.decode())
            outputs.append(r)
        pull, ask = outputs
        err = pull.stderr.decode()
        assert all(f in err for f in QWEN_FILES) and err.count("sha256 verified") == 2, err
        events = [json.loads(l) for l in ask.stdout.decode().splitlines()]
        header = events[0]
        assert header["type"] == "session" and header["question"] == "What does the sign above the door say?"
        assert Path(header["images"][0]["path"]).name == "example.png" and header["images"][0]["width"] == 640
        assert any(e["type"] == "answer" and e["text"].strip() for e in events)
        assert events[-1]["type"] == "end" and events[-1]["stats"]["model"]["images_encoded"] == 1
    finally:
        hub.close()
        web.stop()


def test_the_wheel_installs_man_pages_and_completions(installed):
    share = installed["prefix"] / "share"
    pages = {p.name for p in (share / "man" / "man1").glob("*.1")}
    assert {"vdr.1", "vdr-ask.1", "vdr-model-pull.1"} <= pages
    assert (share / "bash-completion" / "completions" / "vdr.bash").is_file()
    assert (share / "zsh" / "site-functions" / "_vdr").is_file()
    assert (share / "fish" / "vendor_completions.d" / "vdr.fish").is_file()
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    env = {**installed["env"], "MANPATH": str(share / "man"), "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"}
    for page, words in (("vdr", ["vdr ask"]), ("vdr-ask", ["SYNOPSIS", "[IMAGE...] QUESTION", "--answer-only"])):
        r = subprocess.run(["man", page], env=env, capture_output=True, timeout=60)
        text = re.sub(r".\x08", "", r.stdout.decode())
        assert r.returncode == 0 and all(w in text for w in words), (page, r.stderr.decode(), text[:500])


def test_readme_links_stay_inside_the_repository():
    text = (ROOT / "README.md").read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)]+)\)", prose):
        assert not re.match(r"[a-z]+:", target) and (ROOT / target.split("#")[0]).exists(), target
    assert not re.findall(r"(?<![`\w])https?://\S+", re.sub(r"`[^`]*`", "", prose)), "a bare URL outside code"
    assert "../" not in prose
