"""`vdr search` and the search library against provider-shaped endpoints on a loopback server.

Every provider answers from fixture files shaped like its real API
(tests/fixtures/providers/); requests go over real sockets through the shared
httpx client, and the CLI runs as a real subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.web.server import Request, Response, WebServer  # noqa: E402
from vdr_cli.tools.search import Hit, reverse_search, run_queries, search_many  # noqa: E402
from tests.web.engines import install_engines  # noqa: E402
from vdr_cli.tools.search.web_engines import unwrap  # noqa: E402
from vdr_cli.trace.schema import validate_event  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "providers"
SERPER_KEY = "serper-FAKEKEY-7d1c0ffee"
SERPAPI_KEY = "serpapi-FAKEKEY-5ca1ab1e42"
BRAVE_KEY = "brave-FAKEKEY-deadbeef99"
IMAGE_ID = "img_7f3a9c1e2b"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text("utf-8")


def as_json(name: str) -> Response:
    return Response(200, fixture(name), "application/json")


def unauthorized() -> Response:
    return Response(401, json.dumps({"message": "Unauthorized.", "statusCode": 401}), "application/json")


def install_providers(web: WebServer) -> None:
    """Provider endpoints under /searxng, /ddg, /serper, /brave, /serpapi; keys are checked."""

    def searxng(req: Request) -> Response:
        if req.query.get("format") != "json":
            return Response(200, "<html>no json</html>")
        if req.query.get("q") == "boom":
            return Response(200, "<html><body>Internal trouble</body></html>")  # not JSON
        return as_json("searxng_images.json" if req.query.get("categories") == "images" else "searxng_general.json")

    def ddg(req: Request) -> Response:
        return Response(200, fixture("ddg_results.html"))

    def serper(kind: str):
        def handler(req: Request) -> Response:
            if req.headers.get("x-api-key") != SERPER_KEY:
                return unauthorized()
            return as_json(f"serper_{kind}.json")
        return handler

    def brave(kind: str):
        def handler(req: Request) -> Response:
            if req.headers.get("x-subscription-token") != BRAVE_KEY:
                return unauthorized()
            return as_json(f"brave_{kind}.json")
        return handler

    def serpapi_search(req: Request) -> Response:
        if req.query.get("api_key") != SERPAPI_KEY:
            return Response(401, json.dumps({"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}), "application/json")
        engine = req.query.get("engine")
        if engine == "google_lens":
            if req.query.get("image_id") not in (IMAGE_ID, None) or not (req.query.get("image_id") or req.query.get("url")):
                return Response(400, json.dumps({"error": "Missing image"}), "application/json")
            return as_json("serpapi_lens.json")
        return as_json("serpapi_google.json")

    def serpapi_upload(req: Request) -> Response:
        if req.query.get("api_key") != SERPAPI_KEY:
            return Response(401, json.dumps({"error": "Invalid API key."}), "application/json")
        return as_json("serpapi_image_upload.json")

    web.add_route("GET", "/searxng/search", searxng)
    web.add_route("POST", "/ddg/html/", ddg)
    for kind in ("search", "images", "lens"):
        web.add_route("POST", f"/serper/{kind}", serper(kind))
    web.add_route("GET", "/brave/web/search", brave("web"))
    web.add_route("GET", "/brave/images/search", brave("images"))
    web.add_route("GET", "/serpapi/search.json", serpapi_search)
    web.add_route("POST", "/serpapi/image", serpapi_upload)


@pytest.fixture
def web():
    with WebServer() as server:
        server.engines = install_engines(server)  # every keyless engine on loopback too
        install_providers(server)
        yield server


def provider_env(web: WebServer, **extra: str) -> dict[str, str]:
    env = {
        **web.engines.env(),
        "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
        "VDR_SEARCH_DDG_URL": web.url("/ddg/html/"),
        "VDR_SEARCH_SERPER_URL": web.url("/serper"),
        "VDR_SEARCH_BRAVE_URL": web.url("/brave"),
        "VDR_SEARCH_SERPAPI_URL": web.url("/serpapi"),
        "VDR_CACHE_ENABLED": "false",
    }
    env.update(extra)
    return env


@pytest.fixture
def env(web, monkeypatch):
    """Point the in-process config at the loopback providers (library tests)."""
    values = provider_env(web)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "photo.png"
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    img.paste((30, 30, 200), (32, 0, 64, 48))
    img.save(path)
    return path


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


def hits_of(items) -> list[Hit]:
    return [h for h in items if isinstance(h, Hit)]


def errors_of(items) -> list[dict]:
    return [e for e in items if isinstance(e, dict) and e.get("type") == "error"]


def requests_to(web: WebServer, prefix: str) -> list[Request]:
    return [r for r in web.requests if r.path.startswith(prefix)]


# --- parsing each provider -----------------------------------------------------------------


def test_searxng_text_and_images(env, web):
    out = asyncio.run(search_many(["eiffel tower"], provider="searxng", cache=False))
    hits = hits_of(out)
    assert [h.url for h in hits] == [
        "https://en.wikipedia.org/wiki/Eiffel_Tower",
        "https://www.toureiffel.paris/en",
        "https://www.britannica.com/topic/Eiffel-Tower-Paris-France",
    ]  # the trailing-slash duplicate is gone
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].snippet.startswith("The Eiffel Tower is a wrought-iron")
    assert hits[1].date == "2025-11-02T00:00:00"
    ev = hits[0].to_event()
    assert ev["type"] == "hit" and ev["query"] == "eiffel tower" and ev["provider"] == "searxng"
    assert validate_event(ev) == []
    req = requests_to(web, "/searxng")[0]
    assert req.query["format"] == "json" and req.query["categories"] == "general"

    images = hits_of(asyncio.run(search_many(["eiffel tower"], provider="searxng", images=True, cache=False)))
    assert images[0].image_url == "https://upload.wikimedia.org/wikipedia/commons/a/a8/Tour_Eiffel.jpg"
    assert images[0].thumbnail_url.endswith("320px-Tour_Eiffel.jpg")
    assert images[0].url == "https://commons.wikimedia.org/wiki/File:Tour_Eiffel.jpg"  # the source page
    assert images[1].thumbnail_url == images[1].image_url  # no thumbnail: the image stands in
    assert validate_event(images[0].to_event()) == []


def test_searxng_json_disabled_is_a_clear_error(env, web):
    web.add_route("GET", "/searxng/search", lambda r: Response(403, "<html><body>403 Forbidden</body></html>"))
    out = asyncio.run(search_many(["q"], provider="searxng", cache=False))
    [err] = errors_of(out)
    assert "403" in err["message"] and "JSON" in err["message"]
    assert "search.formats" in err["hint"] and err["where"] == "q"


def test_duckduckgo_unwraps_redirects_skips_ads_and_dedupes(env, web):
    out = asyncio.run(search_many(["eiffel tower"], provider="duckduckgo", cache=False))
    hits = hits_of(out)
    assert [h.url for h in hits] == [
        "https://en.wikipedia.org/wiki/Eiffel_Tower",
        "https://www.toureiffel.paris/en?lang=en&x=1",
        "https://www.britannica.com/topic/Eiffel-Tower-Paris-France",
    ]
    assert hits[0].title == "Eiffel Tower - Wikipedia"
    assert hits[0].snippet.startswith("The Eiffel Tower is a wrought-iron")
    assert hits[1].snippet == "Tickets, opening hours & news."
    assert not any("y.js" in h.url or "duckduckgo.com" in h.url for h in hits)
    [req] = requests_to(web, "/ddg")
    assert req.method == "POST" and b"q=eiffel+tower" in req.body
    assert "python-httpx" not in req.headers.get("user-agent", "")  # ddgs's browser-like client, not a bare HTTP library


def test_duckduckgo_helpers():
    from vdr_cli.tools.search.web_engines import DuckDuckGo

    assert unwrap("//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&rut=z") == "https://a.example/x?y=1"
    assert unwrap("https://b.example/") == "https://b.example/"
    page = '<a class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2&amp;rut=q">'
    # Still percent-encoded for ddgs, which unquotes every href once.
    assert DuckDuckGo().pre_process_html(page) == '<a class="result__a" href="https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2">'


@pytest.mark.parametrize("status,page", [(202, "ddg_anomaly.html"), (200, "ddg_anomaly.html"), (403, "ddg_no_results.html"), (418, "ddg_no_results.html")])
def test_duckduckgo_anomaly_pages_are_errors_not_empty_results(env, web, status, page):
    web.add_route("POST", "/ddg/html/", lambda r: Response(status, fixture(page)))
    [err] = errors_of(asyncio.run(search_many(["eiffel tower"], provider="duckduckgo", cache=False)))
    assert "duckduckgo" in err["message"] and f"HTTP {status}" in err["message"]
    assert "search.provider" in err["hint"]


def test_duckduckgo_no_results_is_empty_not_error(env, web):
    web.add_route("POST", "/ddg/html/", lambda r: Response(200, fixture("ddg_no_results.html")))
    assert asyncio.run(search_many(["zzqxv"], provider="duckduckgo", cache=False)) == []


def test_serper_text_images_and_key_header(env, web, monkeypatch):
    monkeypatch.setenv("VDR_SERPER_KEY", SERPER_KEY)
    hits = hits_of(asyncio.run(search_many(["eiffel tower"], provider="serper", cache=False)))
    assert [h.url for h in hits] == [
        "https://en.wikipedia.org/wiki/Eiffel_Tower",
        "https://www.britannica.com/topic/Eiffel-Tower-Paris-France",
        "https://www.toureiffel.paris/en",
    ]  # the http/#fragment duplicate of Wikipedia is dropped
    assert hits[1].date == "Mar 31, 2025"
    req = requests_to(web, "/serper/search")[0]
    assert json.loads(req.body)["q"] == "eiffel tower" and req.headers["x-api-key"] == SERPER_KEY

    images = hits_of(asyncio.run(search_many(["eiffel tower"], provider="serper", images=True, cache=False)))
    assert images[0].image_url.endswith("Tour_Eiffel.jpg") and images[0].url == "https://en.wikipedia.org/wiki/Eiffel_Tower"
    assert images[0].thumbnail_url.startswith("https://encrypted-tbn0")


def test_serper_without_key_names_the_setting_and_env_var(env, web):
    [err] = errors_of(asyncio.run(search_many(["q"], provider="serper", cache=False)))
    assert "keys.serper" in err["message"] and "VDR_SERPER_KEY" in err["message"]
    assert requests_to(web, "/serper") == []  # nothing sent without a key


def test_serper_rejected_key(env, web, monkeypatch):
    monkeypatch.setenv("VDR_SERPER_KEY", "wrong-key-123456")
    [err] = errors_of(asyncio.run(search_many(["q"], provider="serper", cache=False)))
    assert "rejected" in err["message"] and "401" in err["message"]
    assert "VDR_SERPER_KEY" in err["hint"]
    assert "wrong-key-123456" not in json.dumps(err)


def test_malformed_json_is_one_error(env, web, monkeypatch):
    monkeypatch.setenv("VDR_SERPER_KEY", SERPER_KEY)
    web.add_route("POST", "/serper/search", lambda r: Response(200, "{not json", "application/json"))
    [err] = errors_of(asyncio.run(search_many(["q"], provider="serper", cache=False)))
    assert "malformed" in err["message"]
    web.add_route("POST", "/serper/search", lambda r: {"organic": {"oops": 1}})
    [err] = errors_of(asyncio.run(search_many(["q"], provider="serper", cache=False)))
    assert "organic is not a list" in err["message"]


def test_brave_web_and_images(env, web, monkeypatch):
    monkeypatch.setenv("VDR_BRAVE_KEY", BRAVE_KEY)
    hits = hits_of(asyncio.run(search_many(["eiffel tower"], provider="brave", n=5, cache=False)))
    assert [h.url for h in hits] == ["https://en.wikipedia.org/wiki/Eiffel_Tower", "https://www.history.com/topics/landmarks/eiffel-tower"]
    assert hits[0].snippet == "The Eiffel Tower is a wrought-iron lattice tower in Paris."  # <strong> removed
    assert hits[1].date == "March 31, 2024"
    req = requests_to(web, "/brave/web")[0]
    assert req.headers["x-subscription-token"] == BRAVE_KEY and req.query["count"] == "5"
    [img] = hits_of(asyncio.run(search_many(["eiffel tower"], provider="brave", images=True, cache=False)))
    assert img.image_url.endswith("Tour_Eiffel.jpg") and img.thumbnail_url.startswith("https://imgs.search.brave.com/")
    assert img.url == "https://commons.wikimedia.org/wiki/File:Tour_Eiffel.jpg"


def test_brave_429_is_retried_after_retry_after_then_reported(env, web, monkeypatch):
    monkeypatch.setenv("VDR_BRAVE_KEY", BRAVE_KEY)
    web.add_route("GET", "/brave/web/search", lambda r: Response(429, '{"type":"ErrorResponse"}', "application/json",
                                                                   headers={"Retry-After": "1", "X-RateLimit-Remaining": "0, 0"}))
    start = time.monotonic()
    [err] = errors_of(asyncio.run(search_many(["q"], provider="brave", cache=False)))
    elapsed = time.monotonic() - start
    assert "rate-limited" in err["message"] and "429" in err["message"]
    assert len(requests_to(web, "/brave")) == 3  # two retries
    assert elapsed >= 1.9  # Retry-After honoured between tries


def test_serpapi_text(env, web, monkeypatch):
    monkeypatch.setenv("VDR_SERPAPI_KEY", SERPAPI_KEY)
    hits = hits_of(asyncio.run(search_many(["eiffel tower"], provider="serpapi", cache=False)))
    assert [h.source for h in hits] == ["Wikipedia", "Britannica"] and hits[1].date == "Mar 31, 2025"
    assert requests_to(web, "/serpapi")[0].query["engine"] == "google"


# --- reverse image search ---------------------------------------------------------------------


def test_serpapi_lens_uploads_the_file_then_searches_by_image_id(env, web, monkeypatch, photo):
    monkeypatch.setenv("VDR_SERPAPI_KEY", SERPAPI_KEY)
    out = asyncio.run(reverse_search(str(photo), provider="serpapi", cache=False))
    hits = hits_of(out)
    [upload] = requests_to(web, "/serpapi/image")
    assert upload.method == "POST" and upload.headers["content-type"].startswith("multipart/form-data")
    assert photo.read_bytes() in upload.body  # the bytes arrived
    assert b'name="image"' in upload.body and str(photo.parent).encode() not in upload.body  # no local path leaks
    [search] = requests_to(web, "/serpapi/search.json")
    assert search.query["engine"] == "google_lens" and search.query["image_id"] == IMAGE_ID
    assert "url" not in search.query  # no public URL involved
    # exact match first; its visual duplicate is deduplicated; hits without an image keep the thumbnail
    assert [h.url for h in hits] == ["https://photos.example.org/tour-eiffel-dusk", "https://en.wikipedia.org/wiki/Eiffel_Tower",
                                     "https://travel.example.com/paris"]
    assert hits[0].image_url == "https://photos.example.org/img/dusk.jpg" and hits[0].query == str(photo)
    assert hits[2].image_url == hits[2].thumbnail_url
    assert all(validate_event(h.to_event()) == [] for h in hits)


def test_serpapi_lens_with_a_url_sends_url_and_uploads_nothing(env, web, monkeypatch):
    monkeypatch.setenv("VDR_SERPAPI_KEY", SERPAPI_KEY)
    hits = hits_of(asyncio.run(reverse_search("https://img.example.net/crop.jpg", provider="serpapi", n=2, cache=False)))
    assert len(hits) == 2
    assert requests_to(web, "/serpapi/image") == []
    assert requests_to(web, "/serpapi/search.json")[0].query["url"] == "https://img.example.net/crop.jpg"


def test_serper_lens_needs_a_url_or_an_uploader(env, web, monkeypatch, photo, tmp_path):
    monkeypatch.setenv("VDR_SERPER_KEY", SERPER_KEY)
    hits = hits_of(asyncio.run(reverse_search("https://img.example.net/crop.jpg", provider="serper", cache=False)))
    assert [h.url for h in hits] == ["https://en.wikipedia.org/wiki/Eiffel_Tower", "https://www.paris.fr/tour-eiffel"]  # both imageUrl and link
    assert json.loads(requests_to(web, "/serper/lens")[0].body) == {"url": "https://img.example.net/crop.jpg"}

    [err] = errors_of(asyncio.run(reverse_search(str(photo), provider="serper", cache=False)))
    assert "public image URL" in err["message"] and "search.uploader" in err["hint"]

    script = tmp_path / "upload.py"
    script.write_text("import sys, os\nprint('https://img.example.net/u/' + os.path.basename(sys.argv[1]))\n")
    monkeypatch.setenv("VDR_SEARCH_UPLOADER", f"{sys.executable} {script}")
    assert hits_of(asyncio.run(reverse_search(str(photo), provider="serper", cache=False)))
    assert json.loads(requests_to(web, "/serper/lens")[-1].body) == {"url": "https://img.example.net/u/photo.png"}


def test_describe_searches_the_description_and_never_uploads(env, web, monkeypatch, photo):
    monkeypatch.setenv("VDR_SEARCH_PROVIDER", "searxng")
    monkeypatch.setenv("VDR_SERPAPI_KEY", SERPAPI_KEY)  # even with a key configured, describe sends nothing there
    out = asyncio.run(reverse_search(str(photo), provider="describe", description="wrought  iron tower", cache=False))
    hits = hits_of(out)
    assert hits and all(h.provider.startswith("describe/") for h in hits)
    assert hits[0].image_url  # image hits interleaved first
    assert any(not h.image_url for h in hits)
    sent = {r.query["categories"] for r in requests_to(web, "/searxng")}
    assert sent == {"images", "general"}
    assert all(r.query["q"] == "wrought iron tower" for r in requests_to(web, "/searxng"))
    assert all(r.path.startswith("/searxng") for r in web.requests)  # no upload, anywhere
    assert all(photo.read_bytes()[:64] not in r.body for r in web.requests)

    [err] = errors_of(asyncio.run(reverse_search(str(photo), provider="describe", cache=False)))
    assert "description" in err["message"] and "--describe" in err["hint"]


# --- running many queries ---------------------------------------------------------------------


def test_n_limits_per_query_and_failures_are_isolated(env, web):
    results = asyncio.run(run_queries(["eiffel tower", "boom", "paris"], provider="searxng", n=2, cache=False))
    assert [r.ok for r in results] == [True, False, True]
    assert [len(r.hits) for r in results] == [2, 0, 2]
    assert results[1].where == "boom" and "malformed" in results[1].error.message
    flat = asyncio.run(search_many(["eiffel tower", "boom", "paris"], provider="searxng", n=2, cache=False))
    assert [x.query if isinstance(x, Hit) else x["where"] for x in flat] == ["eiffel tower"] * 2 + ["boom"] + ["paris"] * 2


def test_queries_run_concurrently(env, web):
    web.add_route("GET", "/searxng/search", lambda r: Response(200, fixture("searxng_general.json"), "application/json", delay=0.3))
    start = time.monotonic()
    results = asyncio.run(run_queries([f"q{i}" for i in range(5)], provider="searxng", cache=False))
    elapsed = time.monotonic() - start
    assert all(r.ok and r.hits for r in results)
    assert elapsed < 0.9, f"5 queries × 300 ms took {elapsed:.2f} s: not concurrent"


class DictCache:
    """A test double with the shared cache's interface."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.keys: list[dict] = []

    def get(self, namespace, key):
        return self.data.get(namespace + json.dumps(key, sort_keys=True))

    def put(self, namespace, key, value, ttl):
        self.keys.append(key)
        self.data[namespace + json.dumps(key, sort_keys=True)] = json.loads(json.dumps(value))


def test_cache_keeps_successes_only_and_keys_images_by_sha256(env, web, monkeypatch, photo):
    cache = DictCache()
    first = asyncio.run(search_many(["eiffel tower", "boom"], provider="searxng", cache=cache))
    count = len(web.requests)
    again = asyncio.run(search_many(["eiffel  tower", "boom"], provider="searxng", cache=cache))  # whitespace normalised
    assert len(web.requests) == count + 1  # only the failed query went out again
    assert [h.to_event() for h in hits_of(again)] == [h.to_event() | {"query": "eiffel  tower"} for h in hits_of(first)]
    assert len(cache.keys) == 1  # the error was not cached
    web.add_route("POST", "/ddg/html/", lambda r: Response(200, fixture("ddg_no_results.html")))
    asyncio.run(search_many(["nothing"], provider="duckduckgo", cache=cache))
    assert len(cache.keys) == 1  # empty results are not cached

    monkeypatch.setenv("VDR_SERPAPI_KEY", SERPAPI_KEY)
    asyncio.run(reverse_search(str(photo), provider="serpapi", cache=cache))
    key = cache.keys[-1]
    import hashlib

    assert key["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert IMAGE_ID not in json.dumps(key) and "url" not in key
    uploads = len(requests_to(web, "/serpapi/image"))
    asyncio.run(reverse_search(str(photo), provider="serpapi", cache=cache))
    assert len(requests_to(web, "/serpapi/image")) == uploads  # cached: no second upload


def test_cli_partial_failure_exit_3(vdr, web):
    result = vdr("search", "eiffel tower", "boom", "paris", "-n", "2", "--provider", "searxng", env=provider_env(web))
    assert result.returncode == 3, result.stderr
    recs = records(result)
    assert [r["type"] for r in recs] == ["hit", "hit", "error", "hit", "hit"]
    assert recs[2]["where"] == "boom"
    assert b"malformed" in result.stderr


def test_cli_all_failed_exit_1_and_no_key_message(vdr, web):
    result = vdr("search", "a", "b", "--provider", "serper", env=provider_env(web))
    assert result.returncode == 1
    recs = records(result)
    assert [r["type"] for r in recs] == ["error", "error"] and [r["where"] for r in recs] == ["a", "b"]
    assert b"VDR_SERPER_KEY" in result.stderr
    assert b"Traceback" not in result.stderr


def test_cli_usage_errors(vdr, web):
    env = provider_env(web)
    assert vdr("search", "--images", "x", "--provider", "duckduckgo", env=env).returncode == 2
    assert vdr("search", "--image", "https://e.org/a.jpg", "--provider", "brave", env=env).returncode == 2
    assert vdr("search", "q", "--provider", "nope", env=env).returncode == 2
    assert vdr("search", "q", "-n", "0", env=env).returncode == 2
    assert vdr("search", env=env).returncode == 2


def test_cli_reads_queries_from_stdin(vdr, web):
    result = vdr("search", "-", "-n", "1", "--provider", "searxng", input="eiffel tower\n{\"query\": [\"paris\"]}\n", env=provider_env(web))
    assert result.returncode == 0
    assert [r["query"] for r in records(result)] == ["eiffel tower", "paris"]


def test_keys_never_appear_in_output(vdr, web, photo):
    env = provider_env(web, VDR_SERPAPI_KEY=SERPAPI_KEY, VDR_SERPER_KEY=SERPER_KEY, VDR_BRAVE_KEY=BRAVE_KEY)
    runs = [vdr("search", "--image", str(photo), "--provider", "serpapi", env=env),
            vdr("search", "q", "--provider", "serper", env=env),
            vdr("search", "q", "--provider", "brave", env=env)]
    # Failures that could echo a key: a provider error text quoting it, a rejected key, an unreachable host.
    web.add_route("GET", "/serpapi/search.json", lambda r: {"error": f"Invalid API key {r.query.get('api_key')}"})
    runs.append(vdr("search", "q", "--provider", "serpapi", env=env))
    web.add_route("GET", "/serpapi/search.json", lambda r: Response(403, "forbidden " + r.query.get("api_key", "")))
    runs.append(vdr("search", "q", "--provider", "serpapi", env=env))
    runs.append(vdr("search", "q", "--provider", "serpapi", env={**env, "VDR_SEARCH_SERPAPI_URL": "http://127.0.0.1:9"}))
    assert [r.returncode for r in runs] == [0, 0, 0, 1, 1, 1]
    for r in runs:
        text = r.stdout + r.stderr
        for key in (SERPAPI_KEY, SERPER_KEY, BRAVE_KEY):
            assert key.encode() not in text, r.stderr
    assert b"search failed: Invalid API key ****" in runs[3].stderr


def test_crop_pipe_into_reverse_search(web, photo):
    env = {**os.environ, **provider_env(web, VDR_SERPAPI_KEY=SERPAPI_KEY)}
    crop = subprocess.run([sys.executable, "-m", "vdr_cli", "crop", str(photo), "--box", "0,0,32,48", "--box", "32,0,64,48"],
                          capture_output=True, env=env, timeout=60)
    assert crop.returncode == 0, crop.stderr
    search = subprocess.run([sys.executable, "-m", "vdr_cli", "search", "--image", "-", "--provider", "serpapi", "-n", "2"],
                            input=crop.stdout, capture_output=True, env=env, timeout=60)
    assert search.returncode == 0, search.stderr
    recs = records(search)
    assert [r["type"] for r in recs] == ["hit"] * 4
    # One reverse search per crop event, each hit naming its crop by image and box, not by the crop's cache path.
    assert sorted({r["query"] for r in recs}) == ["photo.png [0,0,32,48]", "photo.png [32,0,64,48]"]
    assert {(r["image_id"], tuple(r["box"])) for r in recs} == {("photo.png", (0, 0, 32, 48)), ("photo.png", (32, 0, 64, 48))}
    paths = [json.loads(line)["path"] for line in crop.stdout.decode().splitlines()]
    assert not any(p in json.dumps(recs) for p in paths)
    uploads = requests_to(web, "/serpapi/image")
    assert len(uploads) == 2
    bodies = b"".join(u.body for u in uploads)
    assert all(Path(p).read_bytes() in bodies for p in paths)


def test_cli_describe_reads_image_bytes_from_stdin(vdr, web, photo):
    env = provider_env(web, VDR_SEARCH_PROVIDER="searxng")
    result = vdr("search", "--image", "-", "--provider", "describe", "--describe", "red and blue flag", "-n", "3", input=photo.read_bytes(), env=env)
    assert result.returncode == 0, result.stderr
    recs = records(result)
    assert len(recs) == 3 and all(r["query"] == "<stdin>" and r["provider"].startswith("describe/") for r in recs)
    assert all(r.path.startswith("/searxng") for r in web.requests)


def test_head_closing_the_pipe_exits_0(web):
    def searxng(req: Request) -> Response:
        delay = 0.6 if req.query.get("q") == "later" else 0.0
        return Response(200, fixture("searxng_general.json"), "application/json", delay=delay)

    web.add_route("GET", "/searxng/search", searxng)
    env = {**os.environ, **provider_env(web)}
    proc = subprocess.Popen([sys.executable, "-m", "vdr_cli", "search", "first", "later", "--provider", "searxng"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline()
    proc.stdout.close()  # like `head -1`
    assert json.loads(line)["type"] == "hit"
    assert proc.wait(timeout=30) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_head_in_a_real_shell_pipeline(web):
    env = {**os.environ, **provider_env(web)}
    cmd = f"{sys.executable} -m vdr_cli search 'eiffel tower' paris --provider searxng | head -1; echo \"status=${{PIPESTATUS[0]}}\""
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, env=env, timeout=60)
    lines = out.stdout.decode().splitlines()
    assert json.loads(lines[0])["type"] == "hit" and lines[1] == "status=0"


def test_cli_cache_and_no_cache(vdr, web):
    pytest.importorskip("vdr_cli.cache")
    env = provider_env(web, VDR_CACHE_ENABLED="true")
    assert vdr("search", "eiffel tower", "--provider", "searxng", env=env).returncode == 0
    count = len(web.requests)
    again = vdr("search", "eiffel tower", "--provider", "searxng", env=env)
    assert again.returncode == 0 and records(again) and len(web.requests) == count
    assert vdr("search", "eiffel tower", "--provider", "searxng", "--no-cache", env=env).returncode == 0
    assert len(web.requests) == count + 1
