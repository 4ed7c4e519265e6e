"""browse(): pages, goals, summaries, challenges, caching, concurrency; `vdr browse` through real pipes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdr_cli.cache import Cache
from vdr_cli.net.client import RetryPolicy
from vdr_cli.tools.browse import browse, normalise_url
from vdr_cli.tools.summary_format import parse_summary
from web import dead_url, web  # noqa: F401

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=2.0)


def run(urls, **kwargs):
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 10)
    return asyncio.run(browse(urls, **kwargs))


def test_page_event_fields(web) -> None:
    [page] = run([web.url("/article")], goal="who was the architect")
    assert page["type"] == "page" and page["status"] == 200 and page["url"] == web.url("/article")
    assert page["title"] == "The Iron Lady of Paris"
    assert "Maurice Koechlin" in page["text"]
    for furniture in ("We value your privacy", "Related story number", "First! Great article", "All rights reserved"):
        assert furniture not in page["text"]
    assert page["meta"]["og_title"] == "The Iron Lady of Paris"
    assert page["meta"]["published"].startswith("2024-03-31")
    assert page["meta"]["canonical"] == web.url("/article")
    assert {"url": web.url("/history"), "text": "our history section"} in page["links"]
    assert page["images"][0]["src"] == web.url("/img/tower.jpg")
    assert page["challenge"] is None and page["truncated"] is False
    assert page["goal"] == "who was the architect"
    assert "architect" in page["summary"]  # extractive summary, no model
    assert page["cached"] is False and isinstance(page["ms"], int)


def test_no_goal_no_summary(web) -> None:
    [page] = run([web.url("/article")])
    assert page["summary"] is None and page["goal"] is None


def test_max_chars_truncates(web) -> None:
    [page] = run([web.url("/article")], max_chars=100)
    assert page["truncated"] is True and len(page["text"]) <= 100


def test_errors_name_the_url(web) -> None:
    dead = dead_url()
    events = run([web.url("/status?code=404"), dead, web.url("/pdf"), "ftp://example.com/x"])
    assert [e["type"] for e in events] == ["error"] * 4
    assert [e["where"] for e in events] == [web.url("/status?code=404"), dead, web.url("/pdf"), "ftp://example.com/x"]
    assert "HTTP 404" in events[0]["message"] and events[0]["status"] == 404
    assert "connection refused" in events[1]["message"]
    assert "PDF is not supported" in events[2]["message"]
    assert "only http and https" in events[3]["message"]


def test_challenge_page_has_no_summary(web) -> None:
    calls: list[str] = []

    def summarise(text: str, goal: str) -> str:
        calls.append(text)
        return '{"rational": "r", "evidence": "e", "summary": "s"}'

    cache = Cache(ttl=60)
    for path in ("/challenge", "/challenge-200"):
        [page] = run([web.url(path)], goal="anything", summarise=summarise, cache=cache)
        assert page["type"] == "page" and page["challenge"] == "cloudflare"
        assert page["summary"] is None and "challenge" in page["error"]
    assert calls == []
    assert cache.stats()["entries"] == 0  # never cached


def test_model_summary_is_parsed(web) -> None:
    def summarise(text: str, goal: str) -> str:
        assert "Stephen Sauvestre" in text and goal == "architect"
        return ("Sure! Here it is:\n```json\n{'rational': 'names the designers', 'evidence': 'the architect Stephen Sauvestre',"
                " 'summary': 'Sauvestre was the architect.'}\n```\nHope this helps.")

    [page] = run([web.url("/article")], goal="architect", summarise=summarise)
    assert page["summary"] == "Sauvestre was the architect."
    assert page["evidence"] == "the architect Stephen Sauvestre" and page["rational"] == "names the designers"


def test_async_summariser_and_summary_cache(web) -> None:
    calls = []

    async def summarise(text: str, goal: str) -> str:
        calls.append(goal)
        return '{"rational": "r", "evidence": "e", "summary": "s"}'

    summarise.cache_key = "test-model"  # type: ignore[attr-defined]
    cache = Cache(ttl=60)
    for _ in range(2):
        [page] = run([web.url("/article")], goal="architect", summarise=summarise, cache=cache)
        assert page["summary"] == "s"
    assert calls == ["architect"] and web.count("/article") == 1


def test_cache_hit_and_no_cache(web) -> None:
    cache = Cache(ttl=60)
    first = run([web.url("/article")], cache=cache)[0]
    second = run([web.url("/article#section")], cache=cache)[0]  # same page, normalised key
    assert first["cached"] is False and second["cached"] is True
    assert second["text"] == first["text"] and web.count("/article") == 1
    run([web.url("/article")], cache=None)
    assert web.count("/article") == 2


def test_errors_and_empty_pages_are_not_cached(web) -> None:
    cache = Cache(ttl=60)
    target = "/flaky?status=500&fail=3&id=nocache"
    assert run([web.url(target)], cache=cache)[0]["type"] == "error"
    assert run([web.url(target)], cache=cache)[0]["type"] == "page"  # fetched again, not a cached error
    run([web.url("/empty")], cache=cache)
    assert cache.stats()["namespaces"] == {"browse": 1}


def test_cached_page_does_not_let_the_model_past_the_policy(web) -> None:
    cache = Cache(ttl=60)
    assert run([web.url("/article")], cache=cache)[0]["type"] == "page"  # a person fetched it
    [ev] = run([web.url("/article")], cache=cache, mode="agent")
    assert ev["type"] == "error" and "loopback" in ev["message"]


def test_urls_run_concurrently(web) -> None:
    urls = [web.url(f"/slow?delay=1&n={i}") for i in range(4)]
    start = time.monotonic()
    events = run(urls)
    assert all(e["type"] == "page" for e in events)
    assert time.monotonic() - start < 2.5  # four one-second pages, not four seconds
    assert [e["url"] for e in events] == urls  # input order kept


def test_agent_mode(web) -> None:
    [blocked] = run([web.url("/article")], mode="agent")
    assert blocked["type"] == "error" and "loopback" in blocked["message"]
    [ok] = run([web.url("/article")], mode="agent", allow_private=True)
    assert ok["type"] == "page"
    events = run([web.url("/article"), web.url("/json")], mode=["user", "agent"])
    assert [e["type"] for e in events] == ["page", "error"]


def test_json_and_text_pages(web) -> None:
    j, t = run([web.url("/json"), web.url("/text")])
    assert j["text"] == '{"hello": "world"}' and j["content_type"] == "application/json"
    assert t["text"].startswith("plain text body")


def test_normalise_url() -> None:
    assert normalise_url("HTTP://Example.COM:80/a?b=1#x") == "http://example.com/a?b=1"
    assert normalise_url("https://example.com:443/") == normalise_url("https://example.com/")
    assert normalise_url("https://example.com:8443/") == "https://example.com:8443/"


# -- the reference formats ----------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    '{"rational": "R", "evidence": "E", "summary": "S"}',
    '```json\n{"rational": "R", "evidence": "E", "summary": "S"}\n```',
    '<think>hmm {not json}</think>\n{"rational": "R", "evidence": "E", "summary": "S"} trailing words',
    "{'rational': 'R', 'evidence': 'E', 'summary': 'S'}",
    '{"rational": "R", "evidence": "E", "summary": "S",}',
    '{"rationale": "R", "evidence": ["E"], "summary": "S"}',
    'here: {"rational": "R", "evidence": "E", "summary": "S"',  # unterminated: read key by key
])
def test_parse_summary_tolerates(raw: str) -> None:
    got = parse_summary(raw)
    assert (got["rational"], got["evidence"], got["summary"], got["parsed"]) == ("R", "E", "S", True)


def test_parse_summary_fallback_is_the_raw_text() -> None:
    got = parse_summary("The page says Sauvestre designed the arches.")
    assert got == {"rational": "", "evidence": "The page says Sauvestre designed the arches.",
                   "summary": "The page says Sauvestre designed the arches.", "parsed": False}


def _events(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def test_cli_urls_on_stdin(vdr, web) -> None:
    proc = vdr("browse", "--goal", "architect", "--json", input=f"{web.url('/article')}\n\n{web.url('/text')}\n")
    assert proc.returncode == 0, proc.stderr.decode()
    events = _events(proc)
    assert [e["type"] for e in events] == ["page", "page"]
    assert "architect" in events[0]["summary"]
    assert proc.stderr == b""


def test_cli_jsonl_records(vdr, web) -> None:
    hits = "".join(json.dumps({"type": "hit", "rank": i, "url": web.url(p), "title": "t"}) + "\n"
                   for i, p in enumerate(["/article", "/text", "/article"]))
    blocked = vdr("browse", input=hits)  # records are untrusted: loopback refused
    assert blocked.returncode == 1
    assert all(e["type"] == "error" and "loopback" in e["message"] for e in _events(blocked))
    allowed = vdr("browse", "--allow-private", input=hits)
    assert allowed.returncode == 0
    assert [e["url"] for e in _events(allowed)] == [web.url("/article"), web.url("/text")]  # duplicates dropped


def test_cli_bad_records(vdr, web) -> None:
    lines = f'{{"type":"hit","title":"no url"}}\n{{not json\n{{"type":"error","message":"upstream"}}\n{web.url("/article")}\n'
    proc = vdr("browse", input=lines)
    assert proc.returncode == 3
    types = [e["type"] for e in _events(proc)]
    assert types.count("error") == 2 and types.count("page") == 1


def test_cli_dead_host(vdr) -> None:
    url = dead_url()
    proc = vdr("browse", url)
    assert proc.returncode == 1
    [ev] = _events(proc)
    assert ev["type"] == "error" and ev["where"] == url
    err = proc.stderr.decode()
    assert err == f"vdr browse: error: {url}: connection refused\n"


def test_cli_partial_failure(vdr, web) -> None:
    proc = vdr("browse", web.url("/article"), web.url("/challenge"), "--json")
    assert proc.returncode == 3
    page, challenge = _events(proc)
    assert challenge["challenge"] == "cloudflare" and challenge["summary"] is None
    assert "Traceback" not in proc.stderr.decode()


def test_cli_usage(vdr) -> None:
    assert vdr("browse").returncode == 2  # nothing on stdin, no arguments
    assert vdr("browse", "http://x.example/", "--max-chars", "0").returncode == 2


def test_cli_head_closes_the_pipe(web, vdr_home: Path) -> None:
    urls = " ".join(web.url(f"/article/page-{i}") for i in range(6))
    script = f"set -o pipefail; {sys.executable} -m vdr_cli browse {urls} | head -1"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["type"] == "page"
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr


def test_cli_no_cache(vdr, web) -> None:
    for _ in range(2):
        assert vdr("browse", web.url("/article")).returncode == 0
    assert web.count("/article") == 1
    assert vdr("browse", web.url("/article"), "--no-cache").returncode == 0
    assert web.count("/article") == 2


def test_terminal_rendering(web, capsys) -> None:
    from vdr_cli.cli.browse import _Sink

    [page] = run([web.url("/article")], goal="architect")
    sink = _Sink(as_json=False)
    sink.emit(page)
    out = capsys.readouterr().out
    assert out.startswith("The Iron Lady of Paris\n" + web.url("/article"))
    assert "architect" in out and "{" not in out
