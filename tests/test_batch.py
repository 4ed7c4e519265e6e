"""`vdr ask --batch` with --parallel against llama-cpp-python's OpenAI server on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import run_vdr
from tests.llama_server import LlamaServer, llama, server_available, start_server  # noqa: E402,F401
from vdr_cli.trace.schema import validate_lines
from web import web  # noqa: F401  (fixture)




@pytest.fixture
def searx(web):
    web.add_route("GET", "/searxng/search", lambda r: {"query": r.query.get("q", ""), "results": [
        {"url": web.url("/article/gustave-eiffel"), "title": "Gustave Eiffel", "content": "He built it.", "engine": "x"}]})
    return {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"), "VDR_NET_ALLOW_PRIVATE": "1"}


def test_batch_in_parallel_then_skips_what_is_done(llama, searx, tmp_path):
    items = tmp_path / "questions.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark number {i}?"}) + "\n" for i in range(6)))
    out = tmp_path / "runs"
    args = ["ask", "--batch", str(items), "-o", str(out), "--parallel", "4", "--model", f"openai:smollm2@{llama.url}",
            "--ctx", "2048", "--grammar", "on", "--temperature", "0", "--max-steps", "2", "--max-tokens", "120",
            "--summaries", "extractive"]
    r = run_vdr(*args, env=searx, timeout=900)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert sorted(l["id"] for l in lines) == [f"q{i}" for i in range(6)]  # one summary line per item, as each finishes
    assert all(l["type"] == "end" for l in lines)
    for l in lines:
        trace = Path(l["trace"])
        assert trace.exists() and list(validate_lines(trace.read_text().splitlines())) == []
        assert json.loads(trace.read_text().splitlines()[0])["model"]["backend"] == "openai"
    answered = {l["id"] for l in lines if l["answer"]}
    assert r.returncode in (0, 3), (r.stderr.decode(), [(l["id"], l["reason"], l.get("answer"), l.get("error")) for l in lines])
    again = run_vdr(*args, env=searx, timeout=900)
    second = [json.loads(l) for l in again.stdout.decode().splitlines()]
    assert {l["id"] for l in second if l.get("skipped")} == answered


def test_batch_input_errors(tmp_path, searx):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "ok?"}\n{"id": "b"}\n')
    r = run_vdr("ask", "--batch", str(bad), "-o", str(tmp_path / "o"), "--model", "openai:m@http://127.0.0.1:9/v1", env=searx)
    assert r.returncode == 1 and "item 'b' has no question" in r.stderr.decode()
    bad.write_text('{"id": "a", "question": "ok?"}\nnot json\n')
    r = run_vdr("ask", "--batch", str(bad), "-o", str(tmp_path / "o"), "--model", "openai:m@http://127.0.0.1:9/v1", env=searx)
    assert r.returncode == 1 and "bad.jsonl:2" in r.stderr.decode()
    r = run_vdr("ask", "--batch", str(bad), "--model", "openai:m@http://127.0.0.1:9/v1", env=searx)
    assert r.returncode == 2 and "needs -o DIR" in r.stderr.decode()


# --- llama.cpp's own llama-server: several slots, continuous batching ------------------------

from tests.llamacpp_server import llamacpp  # noqa: E402,F401  (fixture: -np 4, -c 8192)


def busy_slots(log_text: str) -> int:
    """The most slots llama-server had processing at once, from its own log lines
    ("slot launch_slot_: id  3 | task 1 | processing task", "slot      release: id  3 | ...")."""
    busy = most = 0
    for line in log_text.splitlines():
        if "launch_slot_:" in line and "processing task" in line:
            busy += 1
            most = max(most, busy)
        elif " release: id " in line and "stop processing" in line:
            busy -= 1
    return most


def test_batch_against_a_multi_slot_llama_server(llamacpp, searx, tmp_path):
    """No --parallel against `llama-server -np 4`: vdr reads total_slots from /props and runs
    four sessions at once (the server's own log shows four slots busy together); every item
    ends with a valid trace, and with no --ctx the window is the server's per-slot n_ctx."""
    import httpx

    props = httpx.get(llamacpp.base + "/props", timeout=10).json()
    assert props["total_slots"] == 4
    per_slot = props["default_generation_settings"]["n_ctx"]
    items = tmp_path / "questions.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark number {i}?"}) + "\n"
                             for i in range(4)))
    out = tmp_path / "runs"
    log_start = llamacpp.log.stat().st_size
    r = run_vdr("ask", "--batch", str(items), "-o", str(out), "--model", f"openai:smollm2@{llamacpp.url}",
                "--grammar", "on", "--temperature", "0", "--max-steps", "2", "--max-tokens", "40",
                "--summaries", "extractive", env=searx, timeout=900)
    assert r.returncode in (0, 3), r.stderr.decode()
    assert "4 sessions at once (server /props total_slots)" in r.stderr.decode()
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert sorted(l["id"] for l in lines) == [f"q{i}" for i in range(4)] and all(l["type"] == "end" for l in lines)
    for l in lines:
        events = [json.loads(x) for x in Path(l["trace"]).read_text().splitlines()]
        assert list(validate_lines(Path(l["trace"]).read_text().splitlines())) == []
        header = events[0]
        assert header["model"]["ctx"] == per_slot, header["model"]
        assert (header["model"]["parallel"], header["model"]["parallel_source"]) == (4, "server /props total_slots")
        assert events[-1]["type"] == "end" and any(e["type"] == "step" for e in events)
    with open(llamacpp.log, encoding="utf-8", errors="replace") as fh:
        fh.seek(log_start)
        assert busy_slots(fh.read()) == 4
