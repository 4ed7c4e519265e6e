"""Conventions people expect of a command-line tool, one test each (issue 13, items 4-6).

--quiet on every command, --answer-only, `-` for the question or an image,
image URLs, TERM=dumb, usage errors as `vdr CMD: error:`, secrets read from
stdin, typo hints, `vdr doctor`, completions that complete values, and the
jq ergonomics of the event stream.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_on_pty, run_vdr
from tests.test_agent import ANSWER, call, events, script, site  # noqa: F401  (fixture)
from web import Response, web  # noqa: F401  (fixture)

TINY = ROOT / "tests" / "fixtures" / "gguf" / "qwen3vl-tiny.gguf"
TINY_MM = ROOT / "tests" / "fixtures" / "gguf" / "qwen3vl-tiny-mmproj.gguf"


def scripted(tmp: Path, turns: list[str]) -> str:
    name = f"s{len(list(tmp.glob('s*.jsonl')))}.jsonl"
    return f"scripted:{script(tmp, turns, name=name)}"


def test_every_command_takes_quiet_and_quiet_drops_info_lines(site):
    from typer.core import TyperGroup

    from vdr_cli.cli.main import build_command

    def walk(cmd, path):
        yield path, cmd
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])

    for path, cmd in walk(build_command(), ["vdr"]):
        assert any("--quiet" in p.opts for p in cmd.params), " ".join(path)
    web, tmp, env = site
    loud = run_vdr("ask", "q?", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / "a.jsonl"), env=env)
    quiet = run_vdr("ask", "q?", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / "b.jsonl"), "--quiet", env=env)
    assert "info: trace:" in loud.stderr.decode() and quiet.stderr.decode() == "" and quiet.returncode == 0
    assert run_vdr("config", "unset", "net.timeout", "--quiet").stderr.decode().startswith("vdr config: warning:")  # warnings stay


def test_answer_only_gives_just_the_answer_piped(site):
    web, tmp, env = site
    r = run_vdr("ask", "who?", "--answer-only", "--model", scripted(tmp, [call("search", {"query": ["x"]}), ANSWER]),
                "--summaries", "extractive", "-o", str(tmp / "t.jsonl"), env=env)
    assert r.returncode == 0 and r.stdout.decode() == "Gustave Eiffel's company\n"
    plain = run_vdr("ask", "who?", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / "u.jsonl"), env=env)
    assert json.loads(plain.stdout.decode().splitlines()[0])["type"] == "session"  # without it a pipe gets JSONL
    assert run_vdr("ask", "who?", "--answer-only", "--json", "--model", scripted(tmp, [ANSWER]), env=env).returncode == 2


def test_dash_reads_the_question_or_the_image_from_stdin(site):
    web, tmp, env = site
    r = run_vdr("ask", str(tmp / "photo.png"), "-", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / "q.jsonl"),
                input="what is red here?\n", env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert events(tmp / "q.jsonl")[0]["question"] == "what is red here?"
    data = (tmp / "photo.png").read_bytes()
    r = run_vdr("ask", "-", "what is it?", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / "i.jsonl"), input=data, env=env)
    assert r.returncode == 0, r.stderr.decode()
    [image] = events(tmp / "i.jsonl")[0]["images"]
    assert image["sha256"] == hashlib.sha256(data).hexdigest() and Path(image["path"]).read_bytes() == data
    r = run_vdr("ask", "-", "-", env=env)
    assert r.returncode == 2 and "not both" in r.stderr.decode()
    r = run_vdr("ask", "-", "q", input=b"not an image", env=env)
    assert r.returncode == 1 and r.stderr.decode().startswith("vdr ask: error: <stdin>: not an image")


def test_an_image_url_is_downloaded_once_and_cached(site):
    web, tmp, env = site
    png = (tmp / "photo.png").read_bytes()
    web.add_route("GET", "/pics/photo.png", lambda req: Response(200, png, "image/png"))
    web.add_route("GET", "/pics/page.html", lambda req: Response(200, "<html>hello</html>"))
    url = web.url("/pics/photo.png")
    for name in ("u1.jsonl", "u2.jsonl"):
        r = run_vdr("ask", url, "what is it?", "--model", scripted(tmp, [ANSWER]), "-o", str(tmp / name), env=env)
        assert r.returncode == 0, r.stderr.decode()
        [image] = events(tmp / name)[0]["images"]
        assert Path(image["path"]).read_bytes() == png and "inputs" in image["path"]
    assert web.hits["/pics/photo.png"] == 1
    batch = tmp / "b.jsonl"
    batch.write_text(json.dumps({"id": "u", "question": "what is it?", "images": [url]}) + "\n")
    r = run_vdr("ask", "--batch", str(batch), "-o", str(tmp / "bo"), "--model", scripted(tmp, [ANSWER]), env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert events(tmp / "bo" / "u.jsonl")[0]["images"][0]["path"] == image["path"] and web.hits["/pics/photo.png"] == 1
    r = run_vdr("ask", web.url("/pics/page.html"), "what?", "--model", scripted(tmp, [ANSWER]), env=env)
    err = r.stderr.decode()
    assert r.returncode == 1 and err.startswith(f"vdr ask: error: {web.url('/pics/page.html')}: cannot download the image")


def test_term_dumb_gets_no_escape_sequences(site):
    web, tmp, env = site
    status, screen = run_on_pty(["ask", "who?", "--model", scripted(tmp, [call("search", {"query": ["x"]}), ANSWER]),
                                 "--summaries", "extractive", "-o", str(tmp / "d.jsonl")], {**env, "TERM": "dumb"})
    assert status == 0, screen
    assert "\x1b" not in screen and "→ search" in screen and "ended: answer" in screen, repr(screen)


@pytest.mark.parametrize("args, where", [(["ask", "--nope"], "ask"), (["model", "pul"], "model"),
                                         (["crop", "x.png", "--box"], "crop"), (["model", "info"], "model info")])
def test_usage_errors_use_the_documented_form(vdr, args, where):
    r = vdr(*args)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 2 and lines[0].startswith(f"vdr {where}: error: ") and lines[1].startswith(f"vdr {where}: hint: ")
    assert "Usage:" not in r.stderr.decode()


def test_config_reads_a_secret_from_stdin_and_hints_at_typos(vdr):
    r = vdr("config", "set", "keys.serper", "-", input="sk-test-0123456789\n")
    assert r.returncode == 0 and "0123456789" not in r.stdout.decode() + r.stderr.decode()
    assert vdr("config", "get", "keys.serper", "--reveal").stdout.decode().strip() == "sk-test-0123456789"
    assert vdr("config", "get", "keys.serper").stdout.decode().strip() == "****6789"
    assert vdr("config", "set", "keys.brave", input="").returncode == 2  # nothing on stdin: a usage error
    for typo, meant in (("keys.serpr", "keys.serper"), ("serper", "keys.serper"), ("modle.ctx", "model.ctx"), ("search.prov", "search.provider")):
        r = vdr("config", "get", typo)
        assert r.returncode == 2 and f"did you mean {meant}?" in r.stderr.decode(), (typo, r.stderr.decode())


def test_doctor_says_whether_ask_can_run(vdr, web):
    r = vdr("doctor", "--offline", "--json")
    checks = [json.loads(l) for l in r.stdout.decode().splitlines()]
    by = {c["check"]: c for c in checks}
    assert r.returncode == 1 and by["model"]["state"] == "fail" and "vdr model pull" in by["model"]["fix"]
    assert by["llama.cpp"]["state"] == "ok" and "llama-cpp-python" in by["llama.cpp"]["detail"]
    assert {c["state"] for c in checks if c["check"] == "search" and "describe" not in c["detail"]} == {"skip"}
    assert any(c["check"] == "cache" for c in checks) and sum(c["check"] == "folders" for c in checks) == 3
    assert vdr("model", "add", "tiny", "--gguf", str(TINY), "--mmproj", str(TINY_MM)).returncode == 0
    web.add_route("GET", "/serpapi/account.json", lambda req: Response(401, '{"error": "Invalid API key"}', "application/json"))
    env = {"VDR_SEARCH_PROVIDER": "duckduckgo,serper", "VDR_SEARCH_IMAGE_PROVIDER": "serpapi", "VDR_SERPAPI_KEY": "bad",
           "VDR_SEARCH_DDG_URL": web.url("/ddg/"), "VDR_SEARCH_SERPAPI_URL": web.url("/serpapi")}
    r = vdr("doctor", "--model", "tiny", "--json", env=env)
    by = {}
    for c in map(json.loads, r.stdout.decode().splitlines()):
        by.setdefault(c["check"], []).append(c)
    assert r.returncode == 0, r.stdout.decode()  # ask can run; a provider problem is not fatal
    [model] = by["model"]
    assert model["state"] == "ok" and "llama.cpp loads it" in model["detail"] and "qwen3vl_merger" in model["detail"]
    assert "window that fits" in by["memory"][0]["detail"]
    states = {c["detail"].split(":")[0]: c["state"] for c in by["search"]}
    assert states == {"duckduckgo (provider)": "ok", "serper (provider)": "fail", "serpapi (image provider)": "fail"}
    assert any("key refused" in c["detail"] for c in by["search"])
    status, text = run_on_pty(["doctor", "--model", "tiny", "--offline"], stream="stdout")
    assert status == 0 and text.rstrip().endswith("vdr ask can run.") and re.search(r"^ok\s+model\s+tiny:", text, re.M)


def complete(*words: str, cword: int | None = None) -> list[str]:
    env = {**os.environ, "_VDR_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words),
           "COMP_CWORD": str(cword if cword is not None else len(words) - 1)}
    r = subprocess.run([sys.executable, "-m", "vdr_cli"], env=env, capture_output=True, timeout=60)
    return r.stdout.decode().split()


def test_completions_complete_values(vdr):
    assert vdr("model", "add", "tiny", "--gguf", str(TINY)).returncode == 0
    assert {"tiny", "qwen3-vl-8b", "vdr-8b"} <= set(complete("vdr", "ask", "--model", ""))
    assert set(complete("vdr", "model", "rm", "ti")) == {"tiny"}
    assert "keys.serper" in complete("vdr", "config", "set", "keys.")
    assert "search.provider" in complete("vdr", "config", "get", "search.p")
    assert {"duckduckgo", "serpapi", "searxng"} <= set(complete("vdr", "search", "--provider", ""))
    assert set(complete("vdr", "completion", "")) == {"bash", "zsh", "fish"}
    assert set(complete("vdr", "config", "path", "")) == {"config", "data", "cache"}


def test_every_event_of_a_step_carries_its_number_and_endings_use_one_word(site, vdr_home):
    web, tmp, env = site
    trace = vdr_home / "data" / "traces" / "x.jsonl"
    turns = [call("search", {"query": ["Eiffel"]}), "not a turn", ANSWER]
    r = run_vdr("ask", "who?", "--model", scripted(tmp, turns), "--summaries", "extractive", "-o", str(trace), env=env)
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    per_step = [e for e in evs if e["type"] in ("step", "call", "result", "answer")]
    assert [(e["type"], e["step"]) for e in per_step] == [("step", 1), ("call", 1), ("result", 1), ("step", 2), ("step", 3), ("answer", 3)]
    [listed] = [json.loads(l) for l in run_vdr("replay", "--list", "--json").stdout.decode().splitlines()]
    assert listed["reason"] == evs[-1]["reason"] == "answer" and "ending" not in listed


def test_man_synopsis_names_the_real_arguments():
    pages = {p.stem: p.read_text() for p in (ROOT / "man").glob("*.1")}
    synopsis = {name: text.split(".SH SYNOPSIS\n", 1)[1].split(".SH", 1)[0].replace("\\-", "-") for name, text in pages.items()}
    assert "[OPTIONS] [IMAGE...] QUESTION" in synopsis["vdr-ask"]
    assert "[OPTIONS] KEY [VALUE]" in synopsis["vdr-config-set"]
    assert "[OPTIONS] NAME" in synopsis["vdr-model-pull"] and "[OPTIONS] [URLS...]" in synopsis["vdr-browse"]
    assert not any("{" in s for s in synopsis.values())
