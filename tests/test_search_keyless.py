"""Keyless search with the defaults: reverse image search through picimagesearch's engines
(Bing, Yandex, Google Lens) and text search through ddgs's (DuckDuckGo, Brave, Mojeek), each
tried in the configured order, against loopback servers that answer as those engines do
(tests/web/engines.py). Nothing here names a provider unless the test is about choosing one:
what runs is what a new user gets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_vdr
from tests.web.engines import install_engines
from tests.web.server import WebServer
from vdr_cli.tools.search import Hit, reverse_search, run_queries, search_many
from vdr_cli.trace.schema import validate_event


@pytest.fixture
def web():
    with WebServer() as server:
        server.engines = install_engines(server)
        yield server


@pytest.fixture
def env(web, monkeypatch):
    """Every keyless engine pointed at loopback; the providers themselves left at their defaults."""
    values = {**web.engines.env(), "VDR_CACHE_ENABLED": "false", "VDR_NET_ALLOW_PRIVATE": "1"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "photo.png"
    img = Image.new("RGB", (320, 240), (200, 30, 30))
    img.paste((30, 30, 200), (160, 0, 320, 240))
    img.save(path)
    return path


def hits_of(items) -> list[Hit]:
    return [h for h in items if isinstance(h, Hit)]


def errors_of(items) -> list[dict]:
    return [e for e in items if isinstance(e, dict) and e.get("type") == "error"]


# --- reverse image search ------------------------------------------------------------------


@pytest.mark.parametrize("engine, image_field", [("bing", True), ("yandex", True), ("lens", False)])
def test_each_engine_receives_the_file_and_its_answer_becomes_hits(env, web, photo, engine, image_field):
    hits = hits_of(asyncio.run(reverse_search(str(photo), provider=engine)))
    assert hits and all(h.provider == engine for h in hits)
    assert hits[0].url == web.url("/article/gustave-eiffel") and hits[0].title.startswith("Gustave Eiffel")
    assert bool(hits[0].image_url) is image_field
    assert all(not (h.thumbnail_url or "").startswith("data:") for h in hits)  # inline thumbnails are dropped
    assert web.engines.uploads[engine] == [photo.read_bytes()]  # the file itself, to that engine only
    assert all(r.path.startswith(f"/{engine}") for r in web.requests)
    assert validate_event(hits[0].to_event()) == []


def test_default_order_falls_back_past_rate_limits_and_bot_checks(env, web, photo):
    web.engines.mode.update(bing="429", yandex="captcha")
    results = asyncio.run(_image_results(photo))
    [result] = results
    assert result.ok and result.provider == "lens" and result.hits
    assert [name for name, _ in result.failed] == ["bing", "yandex"]
    assert "429" in result.failed[0][1] and "showcaptcha" in result.failed[1][1]


async def _image_results(photo, **kw):
    from vdr_cli.tools.search import Searcher
    from vdr_cli.tools.search.base import ImageInput
    from vdr_cli import config

    async with Searcher(use_cache=False) as searcher:
        return [await searcher.image(ImageInput.from_spec(str(photo)), provider=str(config.current().get("search.image_provider")),
                                     n=10, **kw)]


def test_a_changed_page_is_an_error_and_the_next_engine_answers(env, web, photo):
    web.engines.mode.update(bing="garbled", yandex="garbled")
    [result] = asyncio.run(_image_results(photo))
    assert result.provider == "lens"
    assert "BCID" in result.failed[0][1] or "unexpected" in result.failed[0][1]
    assert "not understood" in result.failed[1][1]


def test_every_engine_failing_is_one_error_naming_each_then_describe_is_the_offline_fallback(env, web, photo):
    web.engines.mode.update(bing="403", yandex="429", lens="captcha")
    [err] = errors_of(asyncio.run(reverse_search(str(photo))))
    for name in ("bing", "yandex", "lens", "describe"):
        assert f"{name}:" in err["message"]
    assert "not a reverse image search" in err["message"]
    # With a description, the chain ends in describe: a text search, and it says so.
    [result] = asyncio.run(_image_results(photo, description="red and blue flag"))
    assert result.ok and result.not_reverse and all(h.provider.startswith("describe/duckduckgo") for h in result.hits)
    assert web.engines.queries["duckduckgo"] == ["red and blue flag"]


def test_reverse_hits_are_cached_by_the_image_bytes(web, photo, tmp_path, monkeypatch):
    for k, v in {**web.engines.env(), "VDR_CACHE_ENABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    web.engines.mode["bing"] = "429"
    first = hits_of(asyncio.run(reverse_search(str(photo))))
    copy = tmp_path / "same-bytes-other-name.png"
    copy.write_bytes(photo.read_bytes())
    before = len(web.requests)
    again = hits_of(asyncio.run(reverse_search(str(copy))))
    assert len(web.requests) == before  # no engine asked again, not even the one that failed first
    assert [h.url for h in again] == [h.url for h in first] and again[0].provider == "yandex"


def test_hits_name_the_crop_by_image_id_and_box(env, web, tmp_path, photo):
    crop_path = tmp_path / "cache" / "crops" / "3f9a.png"
    crop_path.parent.mkdir(parents=True)
    crop_path.write_bytes(photo.read_bytes())
    crop = {"type": "crop", "source": str(photo), "image_id": "image_1", "requested": [100, 200, 600, 700],
            "box": [32, 48, 192, 168], "path": str(crop_path), "width": 160, "height": 120}
    hits = hits_of(asyncio.run(reverse_search(crop)))
    assert hits and {h.query for h in hits} == {"image_1 [100,200,600,700]"}
    ev = hits[0].to_event()
    assert ev["image_id"] == "image_1" and ev["box"] == [100, 200, 600, 700]
    assert "3f9a" not in json.dumps([h.to_event() for h in hits])
    assert validate_event(ev) == []


# --- text search ---------------------------------------------------------------------------


def test_default_text_search_is_duckduckgo_then_falls_back(env, web):
    [result] = asyncio.run(run_queries(["gustave eiffel"], cache=False))
    assert result.provider == "duckduckgo" and [h.url for h in result.hits][:1] == [web.url("/article/gustave-eiffel")]
    web.engines.mode["duckduckgo"] = "captcha"
    [result] = asyncio.run(run_queries(["gustave eiffel"], cache=False))
    assert result.provider == "brave-web" and result.hits[0].title == "Gustave Eiffel (Brave)"
    assert "bot-check" in result.failed[0][1]
    web.engines.mode["brave-web"] = "429"
    [result] = asyncio.run(run_queries(["gustave eiffel"], cache=False))
    assert result.provider == "mojeek" and [n for n, _ in result.failed] == ["duckduckgo", "brave-web"]
    web.engines.mode["mojeek"] = "403"
    [err] = errors_of(asyncio.run(search_many(["gustave eiffel"], cache=False)))
    assert all(f"{n}:" in err["message"] for n in ("duckduckgo", "brave-web", "mojeek"))


# --- chains with defaults --------------------------------------------------------------------


def test_crop_search_browse_jq_pipe_with_defaults(web, photo):
    env = {**os.environ, **web.engines.env(), "VDR_CACHE_ENABLED": "false", "VDR_NET_ALLOW_PRIVATE": "1"}
    vdr = f"{sys.executable} -m vdr_cli"
    cmd = (f"{vdr} crop {photo} --box 0,0,160,240 | {vdr} search --image - | "
           f"{vdr} browse --goal 'who built the tower' | jq -r .summary")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    summaries = [line for line in out.stdout.decode().splitlines() if line.strip()]
    assert summaries and all(s != "null" for s in summaries)
    # Bing returned /article/gustave-eiffel twice (the page includes the image, and looks like it): read once.
    pages = [r.path for r in web.requests if r.path.startswith("/article/")]
    assert sorted(pages) == sorted(set(pages)) and "/article/gustave-eiffel" in pages
    assert web.engines.uploads["bing"] and "yandex" not in web.engines.uploads  # the first engine answered


def test_cli_says_which_engine_answered_and_that_describe_is_not_reverse_search(web, photo):
    env = {**web.engines.env(), "VDR_CACHE_ENABLED": "false"}
    web.engines.mode.update(bing="429")
    r = run_vdr("search", "--image", str(photo), "-n", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert b"bing: rate-limited" in r.stderr and b"answered by yandex" in r.stderr
    assert {json.loads(l)["provider"] for l in r.stdout.decode().splitlines()} == {"yandex"}
    r = run_vdr("search", "--image", str(photo), "--provider", "describe", "--describe", "red flag", "-n", "2", env=env)
    assert r.returncode == 0 and b"not a reverse image search" in r.stderr


def test_default_ask_session_reverse_searches_with_no_key(web, photo, tmp_path):
    """A scripted model calls crop_and_search; with no provider settings and no key, Bing gets the crop."""
    env = {**web.engines.env(), "VDR_CACHE_ENABLED": "false", "VDR_NET_ALLOW_PRIVATE": "1"}
    turns = ['<think>look closer</think>\n<tool_call>\n' + json.dumps(
        {"name": "crop_and_search", "arguments": {"image_id": "image_1", "bbox": [[0, 0, 500, 1000]], "goal": "who built it"}}) + "\n</tool_call>",
             "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"]
    script = tmp_path / "script.jsonl"
    lines = [{"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"}]
    lines += [{"type": "step", "n": n, "raw": raw} for n, raw in enumerate(turns, 1)]
    script.write_text("".join(json.dumps(x) + "\n" for x in lines))
    trace = tmp_path / "t.jsonl"
    r = run_vdr("ask", str(photo), "who built this?", "--model", f"scripted:{script}", "--summaries", "extractive",
                "-o", str(trace), env=env)
    assert r.returncode == 0, r.stderr.decode()
    evs = [json.loads(l) for l in trace.read_text().splitlines()]
    [result] = [e for e in evs if e["type"] == "result"]
    assert result["ok"], result
    crop = next(d for d in result["data"] if d["type"] == "crop")
    hits = [d for d in result["data"] if d["type"] == "hit"]
    assert hits and {h["provider"] for h in hits} == {"bing"}
    assert {h["image_id"] for h in hits} == {"image_1"} and all(h["box"] == [0, 0, 500, 1000] for h in hits)
    assert web.engines.uploads["bing"] == [Path(crop["path"]).read_bytes()]  # the crop, not the photo
    assert hashlib.sha256(web.engines.uploads["bing"][0]).hexdigest() != hashlib.sha256(photo.read_bytes()).hexdigest()
    assert any(d["type"] == "page" and d["url"] == web.url("/article/gustave-eiffel") for d in result["data"])
