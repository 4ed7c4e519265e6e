"""The command tree as a whole: help, start-up imports, docs, exit statuses."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys

import pytest
import typer
from typer.core import TyperArgument, TyperGroup

from tests.conftest import ROOT, run_on_pty
from vdr_cli.cli import docs
from vdr_cli.cli.main import make_app

COMMANDS = ["ask", "crop", "search", "browse", "replay", "model", "config", "completion"]

PROBE = """
import atexit, sys
def report():
    heavy = sorted(m for m in ("llama_cpp", "numpy", "httpx", "rich") if m in sys.modules)
    sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
atexit.register(report)
sys.argv = ["vdr"] + sys.argv[1:]
from vdr_cli.cli.entry import run
run()
"""


def heavy_modules(*args: str, **kw) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, timeout=60, **kw)
    line = [l for l in r.stderr.decode().splitlines() if l.startswith("HEAVY=")][-1]
    return [m for m in line[6:].split(",") if m]


def test_help_lists_every_command(vdr):
    r = vdr("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for name in COMMANDS:
        assert f"  {name} " in out, name
    assert vdr().returncode in (0, 2)  # no args: help


def test_version(vdr):
    from vdr_cli import __version__

    assert vdr("--version").stdout.decode().strip() == f"vdr {__version__}"


def test_help_and_crop_do_not_import_heavy_modules(tmp_path):
    assert heavy_modules("--help") == []
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "p.png")
    assert heavy_modules("crop", str(tmp_path / "p.png"), "-b", "0,0,10,10", "--out", str(tmp_path)) == []


def walk(cmd, path):
    yield path, cmd
    if isinstance(cmd, TyperGroup):
        for name, sub in cmd.commands.items():
            yield from walk(sub, path + [name])


def test_every_command_and_option_is_documented():
    root = typer.main.get_command(make_app())
    for path, cmd in walk(root, []):
        key = " ".join(path) or "vdr"
        assert (cmd.help or "").strip(), f"{key}: no help text"
        assert docs.EXAMPLES.get(key), f"{key}: no examples in vdr_cli/cli/docs.py"
        for param in cmd.params:
            assert getattr(param, "help", None), f"{key}: {param.name} has no help"


def test_man_pages_and_completions_are_fresh():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode() + "\nrun: python scripts/gen_docs.py"


def test_man_pages_have_every_section():
    for page in (ROOT / "man").glob("*.1"):
        text = page.read_text()
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"):
            assert f".SH {section}" in text, f"{page.name}: no {section}"


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc not installed (.ci/run installs it)")
def test_man_pages_lint_clean():
    pages = sorted(str(p) for p in (ROOT / "man").glob("*.1"))
    r = subprocess.run(["mandoc", "-T", "lint", *pages], capture_output=True)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o default -F"), ("zsh", "#compdef vdr"), ("fish", "complete --command vdr")])
def test_completion_scripts(vdr, shell, marker):
    r = vdr("completion", shell)
    assert r.returncode == 0 and marker in r.stdout.decode()
    assert vdr("completion", "tcsh").returncode == 2


def test_bash_completion_answers_for_real():
    env = {**os.environ, "_VDR_COMPLETE": "complete_bash", "COMP_WORDS": "vdr cr", "COMP_CWORD": "1"}
    r = subprocess.run([sys.executable, "-m", "vdr_cli"], env=env, capture_output=True, timeout=60)
    assert "crop" in r.stdout.decode().split()


def run_with_tty_stderr(args: list[str], env: dict[str, str]) -> str:
    return run_on_pty(args, env)[1]


def test_colour_only_on_a_terminal_and_never_with_no_color(vdr):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[" in run_with_tty_stderr(["crop", "missing.jpg"], env)
    assert "\x1b[" not in run_with_tty_stderr(["crop", "missing.jpg"], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in vdr("crop", "missing.jpg").stderr.decode()


def test_debug_shows_traceback(vdr):
    assert "Traceback" in vdr("crop", "missing.jpg", env={"VDR_DEBUG": "1"}).stderr.decode()
    assert "Traceback" not in vdr("crop", "missing.jpg").stderr.decode()


def test_out_folder_that_is_a_file(vdr, tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 20)).save(tmp_path / "p.png")
    (tmp_path / "taken").write_text("x")
    r = vdr("crop", str(tmp_path / "p.png"), "--out", str(tmp_path / "taken"))
    assert r.returncode == 1 and "cannot create the output folder" in r.stderr.decode()
