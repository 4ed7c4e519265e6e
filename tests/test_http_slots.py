"""A batch over HTTP: the server's slots as the default --parallel, and several --model servers.

Real `vdr` processes against loopback OpenAI-compatible servers (tests/openai_recorder.py):
one answers llama-server's `/props` `total_slots` or not (vLLM has no /props), counts the
agent requests it holds at once and, with `hold=N`, keeps the first N waiting for each
other, so that sessions sent at once are seen at once without any timing threshold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import run_vdr
from tests.openai_recorder import RecordingModel
from tests.test_conformance import answer
from vdr_cli.agent.servers import Server, ServerPool
from vdr_cli.models.openai_probe import ServerFacts
from vdr_cli.trace.schema import validate_lines
from web import Response, WebServer, dead_url, web  # noqa: F401  (fixture)

BUDGET = ("--summaries", "extractive", "--max-steps", "2", "--temperature", "0")
ENV = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": "http://127.0.0.1:9/searxng",
       "VDR_NET_ALLOW_PRIVATE": "1"}  # never reached: every session answers at once


@pytest.fixture
def web2() -> Iterator[WebServer]:
    server = WebServer().start()
    try:
        yield server
    finally:
        server.stop()


def batch_file(tmp_path: Path, n: int) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    items = tmp_path / "questions.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n" for i in range(n)))
    return items


def run_batch(tmp_path: Path, n: int, *models: str, args: tuple[str, ...] = (), env: dict[str, str] | None = None):
    out = tmp_path / "runs"
    cmd = ["ask", "--batch", str(batch_file(tmp_path, n)), "-o", str(out), *BUDGET, *args]
    for m in models:
        cmd += ["--model", m]
    r = run_vdr(*cmd, env={**ENV, **(env or {})}, timeout=120)
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert sorted(line["id"] for line in lines) == [f"q{i}" for i in range(n)], r.stderr.decode()  # none lost
    traces = {}
    for line in lines:
        text = Path(line["trace"]).read_text().splitlines()
        assert list(validate_lines(text)) == []
        events = [json.loads(x) for x in text]
        assert events[0]["type"] == "session" and events[-1]["type"] == "end"
        traces[line["id"]] = events
    return r, lines, traces


def test_without_parallel_a_batch_runs_as_many_sessions_as_the_server_has_slots(web, tmp_path):
    server = RecordingModel(web, [answer()] * 6, total_slots=4, hold=4)
    r, lines, traces = run_batch(tmp_path, 6, server.spec())
    assert r.returncode == 0, r.stderr.decode()
    assert all(line["answer"] for line in lines)
    assert server.most_in_flight == 4  # the first four were in flight together; never more
    assert len(server.requests) == 6
    for events in traces.values():
        model = events[0]["model"]
        assert (model["parallel"], model["parallel_source"]) == (4, "server /props total_slots")
    assert "4 sessions at once (server /props total_slots)" in r.stderr.decode()


def test_a_server_that_does_not_say_its_slots_gets_one_session_at_a_time_and_a_warning(web, web2, tmp_path):
    server = RecordingModel(web, [answer()] * 3)  # vLLM-shaped: /v1/models, no /props
    r, lines, traces = run_batch(tmp_path, 3, server.spec())
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert err.count("does not say how many sessions it serves at once") == 1, err
    assert "give --parallel N" in err
    assert server.most_in_flight == 1
    assert {events[0]["model"]["parallel"] for events in traces.values()} == {1}
    assert traces["q0"][0]["model"]["parallel_source"].startswith("default")
    # --parallel given: no warning, the figure is the user's
    r, _, traces = run_batch(tmp_path / "given", 3, RecordingModel(web2, [answer()] * 3).spec(),
                             args=("--parallel", "3"))
    assert "does not say" not in r.stderr.decode()
    assert traces["q0"][0]["model"]["parallel_source"] == "--parallel"


def test_a_server_still_loading_is_asked_again_before_its_slots_count_as_unknown(web, tmp_path):
    """llama-server answers 503 while it loads its model: the probe asks again (0.5 s, 1 s)."""
    server = RecordingModel(web, [answer()] * 2, total_slots=2, hold=2)
    ready = {"total_slots": 2}
    web.add_route("GET", "/props", lambda r: Response(503, '{"error": {"message": "Loading model"}}', "application/json")
                  if web.count("/props") <= 2 else Response(200, json.dumps(ready), "application/json"))
    r, _, traces = run_batch(tmp_path, 2, server.spec())
    assert r.returncode == 0, r.stderr.decode()
    assert web.count("/props") == 3 and server.most_in_flight == 2
    assert traces["q0"][0]["model"]["parallel"] == 2


def test_two_servers_share_the_sessions_by_their_slots(web, web2, tmp_path):
    one = RecordingModel(web, [answer()] * 8, model="m", total_slots=1, hold=1)
    three = RecordingModel(web2, [answer()] * 8, model="m", total_slots=3, hold=3)
    r, lines, traces = run_batch(tmp_path, 8, one.spec(), three.spec(), env={"VDR_OPENAI_KEY": "sk-s3cret"})
    assert r.returncode == 0, r.stderr.decode()
    assert all(line["answer"] for line in lines)
    specs = [events[0]["model"]["spec"] for events in traces.values()]
    public = three.spec()
    assert set(specs) <= {one.spec(), public}
    assert specs.count(one.spec()) == len(one.requests) >= 1  # each header names the server that answered it
    assert specs.count(public) == len(three.requests) >= 1
    assert (one.most_in_flight, three.most_in_flight) == (1, 3)  # 1 + 3 at once, as their slots say
    assert {events[0]["model"]["parallel"] for events in traces.values()} == {4}
    assert "4 sessions at once over 2 servers (server /props total_slots: 1 + 3)" in r.stderr.decode()
    for line in lines:
        assert "s3cret" not in Path(line["trace"]).read_text()
    assert "s3cret" not in r.stderr.decode() + r.stdout.decode()


@pytest.mark.parametrize("args, moved", [((), False), (("--parallel", "2", "--ctx", "4096"), True)],
                         ids=["probe-finds-it-down", "first-request-refused"])
def test_a_dead_server_is_taken_out_and_its_sessions_run_on_the_live_one(web, tmp_path, args, moved):
    """Without --parallel the probe of /props finds the second server down before any session;
    with --parallel and --ctx nothing is probed, so sessions sent there fail to connect at
    their first request and run again from the start on the live server."""
    live = RecordingModel(web, [answer()] * 4, model="m", total_slots=2)
    dead = f"openai:m@{dead_url()}v1"
    r, lines, traces = run_batch(tmp_path, 4, live.spec(), dead, args=args)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert all(line["answer"] for line in lines) and len(live.requests) == 4
    assert {events[0]["model"]["spec"] for events in traces.values()} == {live.spec()}
    assert err.count("its sessions go to the other servers") == 1 and "connection failed" in err, err
    movers = [events for events in traces.values() if events[0]["model"].get("moved_from")]
    if moved:
        assert movers and all(events[0]["model"]["moved_from"] == [dead] for events in movers)
    else:
        assert not movers and traces["q0"][0]["model"]["parallel"] == 2  # the dead server adds no slots


def test_with_no_server_up_every_item_ends_with_its_connection_error(tmp_path):
    r, lines, traces = run_batch(tmp_path, 2, f"openai:m@{dead_url()}v1", f"openai:m@{dead_url()}v1",
                                 args=("--parallel", "2", "--ctx", "4096"))
    assert r.returncode == 1, r.stderr.decode()
    for line in lines:
        assert line["reason"] == "error" and "connection failed" in line["error"], line
    for events in traces.values():
        assert events[-1]["reason"] == "error" and "connection failed" in events[-1]["error"]


def test_several_models_are_for_batches_of_http_servers_only(tmp_path):
    a, b = "openai:a@http://127.0.0.1:9/v1", "openai:b@http://127.0.0.1:9/v1"
    r = run_vdr("ask", "What is this?", "-m", a, "-m", b)
    assert r.returncode == 2 and "one question runs on one model" in r.stderr.decode()
    assert len(r.stderr.decode().strip().splitlines()) == 2  # the error and its hint, no traceback
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    r = run_vdr("ask", "--batch", str(batch_file(tmp_path, 1)), "-o", str(tmp_path / "o"), "-m", a, "-m", str(gguf))
    assert r.returncode == 2 and "must all be HTTP servers" in r.stderr.decode()
    r = run_vdr("eval", str(batch_file(tmp_path, 1)), "-o", str(tmp_path / "e"), "-m", str(gguf), "-m", b)
    assert r.returncode == 2 and "must all be HTTP servers" in r.stderr.decode()


def test_a_new_session_goes_to_the_server_with_the_most_room_for_its_slots():
    pool = ServerPool(["openai:m@http://127.0.0.1:1/v1", "openai:m@http://127.0.0.1:2/v1",
                       "openai:m@http://127.0.0.1:3/v1"])
    a, b, c = pool.servers
    a.facts, b.facts, c.facts = ServerFacts(slots=1), ServerFacts(slots=3), ServerFacts()  # c: does not say
    picked = [pool.pick() for _ in range(5)]
    assert picked == [a, b, c, b, b]  # ties to the first given; 1/1 full before 2/3 on b
    pool.release(a)
    assert pool.pick() is a
    c.down = "connection failed"
    pool.release(b)
    assert pool.pick() is b  # c, at 1/1, is out anyway
    for s in (a, b):
        s.down = "connection failed"
    assert isinstance(pool.pick(), Server)  # none up: sessions still go somewhere and fail there


def test_eval_spreads_its_items_over_two_servers(web, web2, tmp_path):
    one = RecordingModel(web, [answer("Paris")] * 4, model="m", total_slots=2)
    two = RecordingModel(web2, [answer("Paris")] * 4, model="m", total_slots=2)
    bench = tmp_path / "set.jsonl"
    bench.write_text("".join(json.dumps({"id": f"e{i}", "question": "Capital of France?", "answer": "Paris"}) + "\n"
                             for i in range(4)))
    out = tmp_path / "eval"
    r = run_vdr("eval", str(bench), "-o", str(out), "-m", one.spec(), "-m", two.spec(), "--judge", "exact", *BUDGET,
                env=ENV, timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "vdr eval: info: 4 sessions at once over 2 servers (server /props total_slots: 2 + 2)" in err
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(rec["id"] for rec in results) == [f"e{i}" for i in range(4)] and all(rec["correct"] for rec in results)
    specs = [json.loads(Path(rec["trace"]).read_text().splitlines()[0])["model"]["spec"] for rec in results]
    assert specs.count(one.spec()) == len(one.requests) >= 1 and specs.count(two.spec()) == len(two.requests) >= 1
    assert json.loads((out / "metrics.json").read_text())["models"] == [one.spec(), two.spec()]
