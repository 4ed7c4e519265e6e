"""The reliability suite's workloads, shared by tests/test_reliability.py and bench/reliability.py.

Everything runs against loopback servers (tests/web) and the scripted backend, in real
processes: fault injection during sessions (resets, stalls, 429 with Retry-After, 5xx,
truncated JSON, a server dying mid-stream, on the web and on the model server), `kill -9`
at random points of sessions that are then resumed, and hypothesis fuzzing of the parsers
and decisions that take untrusted input. Each workload returns counts, so the test asserts
on them and the bench prints them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.web.server import Response, WebServer

ANSWER = "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"


def call(name: str, args: dict) -> str:
    return f"<think>use {name}</think>\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def script(folder: Path, turns: list[str], name: str) -> Path:
    path = folder / name
    with open(path, "w") as fh:
        fh.write(json.dumps({"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [],
                             "model": {}, "vdr": "0"}) + "\n")
        for n, raw in enumerate(turns, 1):
            fh.write(json.dumps({"type": "step", "n": n, "raw": raw}) + "\n")
    return path


def trace_events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a torn last line after kill -9
    return out


@dataclass
class Tally:
    faults: int = 0
    sessions: int = 0
    survived: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.sessions += 1
        if ok:
            self.survived += 1
        else:
            self.problems.append(what)


def vdr(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vdr_cli", *args], capture_output=True, env={**os.environ, **env},
                          timeout=timeout, stdin=subprocess.DEVNULL)


def clean_end(r: subprocess.CompletedProcess, trace: Path) -> tuple[bool, str]:
    """A session survived: documented status, one-line errors only, a trace whose last event is `end`."""
    err = r.stderr.decode(errors="replace")
    if "Traceback" in err or "internal error" in err:
        return False, err[-400:]
    if r.returncode not in (0, 1, 3, 130):
        return False, f"exit {r.returncode}: {err[-200:]}"
    evs = trace_events(trace) if trace.exists() else []
    if not evs or evs[-1].get("type") != "end":
        return False, f"trace does not end with an end event ({len(evs)} events)"
    return True, ""


# --- fault injection ------------------------------------------------------------------------------

WEB_FAULTS = ("reset", "stall", "429", "500", "truncated-json", "dies-mid-stream", "garbage", "empty")


def install_faulty_web(web: WebServer) -> None:
    """A SearXNG endpoint and pages that fail the way real servers do, each fault by name."""
    def fault_response(kind: str, good: Any) -> Response | dict:
        if kind == "reset":
            return Response(reset=True)
        if kind == "stall":
            return Response(delay=3.0, body=json.dumps(good), content_type="application/json")
        if kind == "429":
            return Response(status=429, body="slow down", content_type="text/plain", headers={"Retry-After": "0"})
        if kind == "500":
            return Response(status=500, body="oops", content_type="text/plain")
        if kind == "truncated-json":
            return Response(body=json.dumps(good)[:37], content_type="application/json")
        if kind == "dies-mid-stream":
            return Response(body=json.dumps(good), content_type="application/json", reset_after_bytes=20)
        if kind == "garbage":
            return Response(body=b"\x00\xff<html>" * 100, content_type="application/json")
        return Response(body=b"", content_type="application/json")

    def searxng(req):
        good = {"query": "q", "results": [{"url": web.url(f"/fault-page/{req.query.get('q', '')}"), "title": "t",
                                           "content": "c", "engine": "e"}]}
        kind = req.query.get("q", "").split("-", 1)[-1] if "-" in req.query.get("q", "") else ""
        return fault_response(kind, good) if kind else good

    def page(req):
        kind = req.path.rsplit("/", 1)[-1].split("-", 1)[-1]
        html = "<html><head><title>Eiffel</title></head><body><p>" + "Gustave Eiffel built it. " * 30 + "</p></body></html>"
        if kind in ("reset", "stall", "429", "500", "dies-mid-stream"):
            r = fault_response(kind, {})
            if isinstance(r, Response):
                r.content_type = "text/html"
                r.body = html if kind in ("stall", "dies-mid-stream") else r.body
            return r
        return html

    web.add_route("GET", "/fsx/search", searxng)
    web.add_route("GET", "/fault-page", page, prefix=True)


def web_fault_sessions(web: WebServer, folder: Path, rounds: int = 1) -> Tally:
    """One scripted session per fault: it searches with the fault, visits a faulty page, answers."""
    install_faulty_web(web)
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/fsx"), "VDR_NET_ALLOW_PRIVATE": "1",
           "VDR_NET_TIMEOUT": "1", "VDR_CACHE_ENABLED": "0"}
    tally = Tally()
    for r in range(rounds):
        for kind in WEB_FAULTS:
            turns = [call("search", {"query": [f"eiffel-{kind}"]}),
                     call("visit", {"url": [web.url(f"/fault-page/p{r}-{kind}")], "goal": "who built it"}), ANSWER]
            trace = folder / f"web-{r}-{kind}.jsonl"
            res = vdr("ask", "who built it?", "-m", f"scripted:{script(folder, turns, f'w{r}{kind}.jsonl')}",
                      "--summaries", "extractive", "-o", str(trace), env=env)
            tally.faults += 2
            ok, why = clean_end(res, trace)
            ok = ok and trace_events(trace)[-1].get("reason") == "answer"  # a tool failing is not the session failing
            tally.check(ok, f"web fault {kind}: {why}")
    return tally


MODEL_FAULTS = ("429-then-ok", "500-then-ok", "truncated-json", "dies-mid-stream", "reset", "400", "garbage")


def model_fault_sessions(web: WebServer, folder: Path) -> Tally:
    """A session on an OpenAI-compatible loopback server that fails once (or always) per fault."""
    state: dict[str, int] = {}

    def chat(req):
        kind = req.path.split("/")[2]
        n = state[kind] = state.get(kind, 0) + 1
        body = {"choices": [{"message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
        if kind == "429-then-ok" and n == 1:
            return Response(status=429, body="{}", content_type="application/json", headers={"Retry-After": "0"})
        if kind == "500-then-ok" and n == 1:
            return Response(status=500, body="{}", content_type="application/json", headers={"Retry-After": "0"})
        if kind == "truncated-json":
            return Response(body=json.dumps(body)[:50], content_type="application/json")
        if kind == "dies-mid-stream":
            return Response(body=json.dumps(body), content_type="application/json", reset_after_bytes=30)
        if kind == "reset":
            return Response(reset=True)
        if kind == "400":
            return Response(status=400, body='{"error": {"message": "bad request"}}', content_type="application/json")
        if kind == "garbage":
            return Response(body="<html>not json</html>", content_type="text/html")
        return body

    for kind in MODEL_FAULTS:
        web.add_route("POST", f"/m/{kind}/v1/chat/completions", chat)
        web.add_route("GET", f"/m/{kind}/v1/models", lambda r: {"data": [{"id": "m", "max_model_len": 4096}]})
    tally = Tally()
    for kind in MODEL_FAULTS:
        trace = folder / f"model-{kind}.jsonl"
        res = vdr("ask", "q?", "-m", f"openai:m@{web.url(f'/m/{kind}/v1')}", "-o", str(trace), env={})
        tally.faults += 1
        ok, why = clean_end(res, trace)
        if kind.endswith("then-ok"):
            ok = ok and res.returncode == 0
        else:
            ok = ok and res.returncode in (0, 1)
        tally.check(ok, f"model fault {kind}: {why}")
    return tally


# --- kill -9 and resume ---------------------------------------------------------------------------

def kill_and_resume(web: WebServer, folder: Path, sessions: int = 20, seed: int = 10, parallel: int = 4) -> Tally:
    """`kill -9` each session at a random moment after its header, then resume it to an answer."""
    web.add_route("GET", "/ksx/search", lambda r: (time.sleep(0.15), {"query": "q", "results": [
        {"url": web.url("/article"), "title": "Eiffel", "content": "c", "engine": "e"}]})[1])
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/ksx"), "VDR_NET_ALLOW_PRIVATE": "1"}
    rng = random.Random(seed)
    tally = Tally()
    turns = [call("search", {"query": [f"q{i}"]}) for i in range(6)] + [ANSWER]
    first = script(folder, turns, "kill-script.jsonl")
    rest = script(folder, [ANSWER], "kill-rest.jsonl")
    jobs = list(range(sessions))
    while jobs:
        batch, jobs = jobs[:parallel], jobs[parallel:]
        running = []
        for i in batch:
            trace = folder / f"kill-{i}.jsonl"
            proc = subprocess.Popen([sys.executable, "-m", "vdr_cli", "ask", "who?", "-m", f"scripted:{first}", "-o", str(trace),
                                     "--summaries", "extractive"], env={**os.environ, **env},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            running.append((i, trace, proc, rng.uniform(0.0, 1.2)))
        for i, trace, proc, delay in running:
            deadline = time.time() + 60
            while time.time() < deadline and not (trace.exists() and trace.stat().st_size > 0):
                time.sleep(0.02)
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)
            tally.faults += 1
        for i, trace, proc, delay in running:
            before = trace_events(trace)
            if before and before[-1].get("type") == "end" and before[-1].get("reason") == "answer":
                tally.check(True, "")  # finished before the kill landed: nothing to resume
                continue
            res = vdr("ask", "--resume", str(trace), "-m", f"scripted:{rest}", "--summaries", "extractive", env=env)
            ok, why = clean_end(res, trace)
            evs = trace_events(trace)
            steps = [e["n"] for e in evs if e.get("type") == "step"]
            ok = ok and res.returncode == 0 and evs[-1].get("reason") == "answer" and steps == list(range(1, len(steps) + 1))
            ok = ok and [e.get("type") for e in evs].count("session") == 1
            tally.check(ok, f"kill {i} after {delay:.2f} s: {why or res.stderr.decode()[-200:]}")
    return tally


# --- fuzzing --------------------------------------------------------------------------------------

def fuzz_all(max_examples: int = 300) -> tuple[int, list[str]]:
    """Hypothesis over the turn parser, the JSONL reader, boxes and units, and URL decisions.

    Returns (inputs tried, failures). Only the documented exceptions may escape."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    tried = {"n": 0}
    failures: list[str] = []
    common = settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))

    def counted(fn: Callable[..., None]) -> Callable[..., None]:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            tried["n"] += 1
            fn(*args, **kwargs)
        return wrapper

    from vdr_cli.agent.turns import parse_turn

    json_ish = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                            max_leaves=12)
    turn_text = st.one_of(
        st.text(max_size=300),
        st.builds(lambda t, body: f"<think>{t}</think>\n<tool_call>{body}</tool_call>", st.text(max_size=40),
                  st.one_of(st.text(max_size=80), json_ish.map(json.dumps),
                            st.sampled_from(["{[1]: 2}", "[" * 5000, '{"name": "x", "arguments": ' + "9" * 5000 + "}",
                                             "{'name': 'visit', 'arguments': {'url': ['u'],},}", "{name: search}"]))),
        st.builds(lambda a: f"<answer>{a}</answer>", st.text(max_size=60)),
    )

    @common
    @given(turn_text)
    @counted
    def turns(raw: str) -> None:
        parsed = parse_turn(raw)
        assert parsed.kind in ("call", "call_error", "answer", "invalid")  # call_error: the reference's Json Parse Error

    from vdr_cli.trace.jsonl import LineError, parse_line

    @common
    @given(st.one_of(st.text(max_size=200), json_ish.map(json.dumps),
                     st.integers(0, 20000).map(lambda n: "[" * n + "]" * n),
                     st.integers(1, 6000).map(lambda n: '{"n": ' + "7" * n + "}")))
    @counted
    def jsonl(line: str) -> None:
        item = parse_line(line, "fuzz", 1)
        assert isinstance(item, (dict, LineError))

    from vdr_cli.errors import InputError, UsageError
    from vdr_cli.tools.crop import CropOptions, box_from_record, output_size, parse_box, plan_regions

    number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
    box_value = st.one_of(st.lists(number, min_size=0, max_size=6), st.text(max_size=30), json_ish,
                          st.lists(number, min_size=4, max_size=4).map(lambda v: ",".join(map(str, v))))

    @common
    @given(box_value, st.sampled_from(["px", "1000", "frac", "bogus"]),
           st.lists(st.one_of(st.floats(-1, 5), st.just(float('nan'))), min_size=0, max_size=3), st.integers(1, 5000), st.integers(1, 5000),
           st.integers(0, 70000))
    @counted
    def boxes(value: Any, units: str, scales: list, w: int, h: int, min_side: int) -> None:
        try:
            box = parse_box(value) if isinstance(value, str) else box_from_record(value, "fuzz")
            opts = CropOptions(out_dir=Path("/nonexistent"), units=units, scales=scales or [1.0], min_side=min_side)
            for region in plan_regions(box, opts.units, opts.scales, w, h):
                ow, oh = output_size(region, opts)
                assert 1 <= ow <= 16384 and 1 <= oh <= 16384, (ow, oh)
        except (InputError, UsageError):
            pass

    from vdr_cli.net.errors import BlockedUrl
    from vdr_cli.net.policy import UrlPolicy, classify, parse_ipv4

    host = st.one_of(st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
                     st.text(alphabet="0123456789abcdefx.:[]%", max_size=30), st.from_regex(r"[a-z0-9.-]{1,30}", fullmatch=True))

    @common
    @given(st.sampled_from(["http", "https", "ftp", "file", "javascript", ""]), host,
           st.sampled_from(["", ":80", ":0", ":65536", ":x"]), st.text(max_size=30), st.booleans())
    @counted
    def urls(scheme: str, hostname: str, port: str, path: str, private: bool) -> None:
        url = f"{scheme}://{hostname}{port}/{path}"
        for policy in (UrlPolicy(mode="agent", allow_private=private), UrlPolicy(mode="user")):
            try:
                checked = policy.check(url)
            except BlockedUrl:
                continue
            assert checked.startswith(("http://", "https://"))
            if policy.guarded:
                ip = parse_ipv4(hostname)
                if ip is not None:  # a numeric host the agent may reach is public (or private allowed)
                    found = classify(ip)
                    assert found is None or (private and found[1]), (url, found)

    for name, test in (("turn parser", turns), ("JSONL reader", jsonl), ("boxes and units", boxes), ("URL decisions", urls)):
        try:
            test()
        except Exception as exc:  # hypothesis re-raises the minimal failing example(s)
            for sub in getattr(exc, "exceptions", None) or [exc]:
                note = " ".join(getattr(sub, "__notes__", []) or [])
                failures.append(f"{name}: {type(sub).__name__}: {str(sub)[:200]} {note[:300]}")
    return tried["n"], failures


# --- hostile pages and images ---------------------------------------------------------------------

def hostile_inputs(web: WebServer, folder: Path) -> Tally:
    """Pages and images built to hurt: nesting, bombs, exotic formats. Each must fail (or pass) in one line."""
    from PIL import Image

    from tests.web.server import gzip_bomb

    n = 100_000
    web.add_route("GET", "/h/nested", lambda r: "<html><body><p>lead</p>" + "<div>" * n + "</div>" * n + "</body></html>")
    web.add_route("GET", "/h/gzip-bomb", lambda r: Response(body=gzip_bomb(200_000_000), headers={"Content-Encoding": "gzip"}))
    web.add_route("GET", "/h/escapes", lambda r: "<html><head><title>\x1b]0;pwned\x07</title></head><body><p>x</p></body></html>")
    web.add_route("GET", "/h/binary", lambda r: Response(body=os.urandom(50_000), content_type="text/html"))
    tally = Tally()
    for path in ("/h/nested", "/h/gzip-bomb", "/h/escapes", "/h/binary"):
        r = vdr("browse", web.url(path), "--json", env={}, timeout=90)
        err = r.stderr.decode(errors="replace")
        tally.faults += 1
        tally.check(r.returncode in (0, 1) and "Traceback" not in err and "internal error" not in err, f"page {path}: {err[-200:]}")
    images = {}
    Image.new("RGB", (64, 64), "red").save(folder / "icon.icns", "ICNS")
    images["icns"] = folder / "icon.icns"
    bomb = folder / "bomb.png"
    Image.new("1", (30_000, 30_000)).save(bomb, "PNG")  # 900 Mpx declared, a few hundred KB on disk
    images["bomb"] = bomb
    (folder / "truncated.jpg").write_bytes((lambda p: (Image.new("RGB", (400, 300), "blue").save(p, "JPEG"), p.read_bytes()[:500])[1])(folder / "full.jpg"))
    images["truncated"] = folder / "truncated.jpg"
    (folder / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    images["fake"] = folder / "fake.png"
    for name, path in images.items():
        r = vdr("crop", str(path), "--box", "0,0,10,10", "--out", str(folder / "crops"), env={}, timeout=90)
        err = r.stderr.decode(errors="replace")
        tally.faults += 1
        tally.check(r.returncode == 1 and "Traceback" not in err and "internal error" not in err, f"image {name}: exit {r.returncode} {err[-200:]}")
    return tally
