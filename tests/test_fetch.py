"""fetch() against the loopback web: redirects, caps, bombs, retries, resets, charsets, types."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from vdr_cli.net.client import RetryPolicy
from vdr_cli.net.errors import BlockedUrl, ConnectFailed, HttpStatusError, RateLimited, TooLarge, Unsupported
from vdr_cli.net.charset import charset_name, decode_body
from vdr_cli.net.fetch import WITH_IMAGES, FetchResult, RedirectError, fetch
from vdr_cli.net.policy import UrlPolicy
from web import dead_url, web  # noqa: F401
from web.server import gzip_bomb

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=2.0)
USER = UrlPolicy(mode="user")
# Agent mode against the loopback server: loopback 127.0.0.1 is let through one address at
# a time, so every other private target (10.x, 127.0.0.2, metadata) stays blocked.
AGENT_LOCAL = UrlPolicy(mode="agent", allow=("127.0.0.1/32",))


def get(url: str, policy: UrlPolicy = USER, **kwargs) -> FetchResult:
    async def go() -> FetchResult:
        async with policy.make_client(timeout=5) as client:
            return await fetch(url, client=client, policy=policy, retry=kwargs.pop("retry", FAST),
                               timeout=kwargs.pop("timeout", 10), **kwargs)

    return asyncio.run(go())


def test_article(web) -> None:
    r = get(web.url("/article"))
    assert r.status == 200 and r.content_type == "text/html" and r.charset == "utf-8"
    assert "Maurice Koechlin" in r.text and not r.truncated and r.redirects == []
    assert r.final_url == web.url("/article")
    assert "set-cookie" not in r.headers and r.headers["content-type"].startswith("text/html")
    assert "body" not in r.to_dict()


def test_redirect_chain_is_followed_and_reported(web) -> None:
    r = get(web.url("/redirect/chain?n=3"))
    assert r.final_url == web.url("/article")
    assert [h["status"] for h in r.redirects] == [302, 302, 302]
    assert r.redirects[0]["url"] == web.url("/redirect/chain?n=3")


def test_redirect_limit(web) -> None:
    with pytest.raises(RedirectError, match="more than 2 redirects"):
        get(web.url("/redirect/chain?n=4"), max_redirects=2)


def test_redirect_loop(web) -> None:
    with pytest.raises(RedirectError, match="redirect loop"):
        get(web.url("/redirect/loop-a"))


@pytest.mark.parametrize("target", [
    "http://10.0.0.1/",
    "http://127.0.0.2:{port}/article",
    "http://[::ffff:127.0.0.2]:{port}/article",
    "http://2130706434:{port}/article",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
])
def test_agent_redirect_to_private_is_blocked(web, target: str) -> None:
    target = target.format(port=web.port)
    with pytest.raises(BlockedUrl) as info:
        get(web.url(f"/redirect/to?url={target}"), AGENT_LOCAL)
    assert "redirected from" in str(info.value)


def test_agent_mode_blocks_the_loopback_server_itself(web) -> None:
    with pytest.raises(BlockedUrl, match="loopback"):
        get(web.url("/article"), UrlPolicy(mode="agent"))
    assert web.count("/article") == 0
    assert get(web.url("/article"), UrlPolicy(mode="agent", allow_private=True)).status == 200


def test_user_mode_follows_redirect_to_loopback(web) -> None:
    assert get(web.url("/redirect/self-loopback")).final_url == web.url("/article")


@pytest.mark.parametrize("mode", ["length", "lie", "chunked"])
def test_size_cap_truncates_text(web, mode: str) -> None:
    r = get(web.url(f"/big?size=3000000&mode={mode}"), max_bytes=200_000)
    assert r.truncated and len(r.body) == 200_000


def test_gzip_bomb_stays_bounded(web) -> None:
    size = 64_000_000
    gzip_bomb(size)  # build the bomb (server side, same process) before measuring
    tracemalloc.start()
    try:
        r = get(web.url(f"/gzip-bomb?size={size}"), max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.truncated and len(r.body) == 1_000_000
    assert peak < 12_000_000, f"peak {peak:,} bytes for a 1 MB cap"


def test_gzip_body_is_decoded(web) -> None:
    r = get(web.url("/gzip"))
    assert "Maurice Koechlin" in r.text and not r.truncated


def test_unknown_content_encoding_is_unsupported(web) -> None:
    with pytest.raises(Unsupported, match="'br'"):
        get(web.url("/brotli"))


def test_429_with_retry_after_is_retried(web) -> None:
    target = "/flaky?status=429&fail=1&retry_after=1&id=t429"
    start = time.monotonic()
    r = get(web.url(target))
    assert r.status == 200 and web.count(target) == 2
    assert time.monotonic() - start >= 0.9  # Retry-After: 1 was honoured


def test_500_is_retried(web) -> None:
    target = "/flaky?status=500&fail=2&id=t500"
    assert get(web.url(target)).status == 200 and web.count(target) == 3


def test_persistent_500_is_an_error(web) -> None:
    with pytest.raises(HttpStatusError, match="HTTP 500"):
        get(web.url("/flaky?status=500&fail=99&id=t500x"))


def test_persistent_429_is_rate_limited(web) -> None:
    with pytest.raises(RateLimited, match="HTTP 429"):
        get(web.url("/flaky?status=429&fail=99&id=t429x"))


def test_404_is_an_error_or_returned(web) -> None:
    with pytest.raises(HttpStatusError, match="HTTP 404 Not Found"):
        get(web.url("/status?code=404"))
    assert get(web.url("/status?code=404"), raise_for_status=False).status == 404


def test_connection_reset_is_a_clear_error(web) -> None:
    with pytest.raises(ConnectFailed) as info:
        get(web.url("/reset"))
    assert str(info.value) == f"{web.url('/reset')}: connection reset by the server"
    assert web.count("/reset") == 3  # retried before giving up


def test_reset_mid_body_is_a_clear_error(web) -> None:
    with pytest.raises(ConnectFailed, match="reset|broke"):
        get(web.url("/reset-midway"))


def test_reset_then_success_is_retried(web) -> None:
    assert get(web.url("/reset-then-ok?fail=1&id=r1")).status == 200


def test_refused_connection(web) -> None:
    url = dead_url()
    with pytest.raises(ConnectFailed, match="connection refused"):
        get(url)


def test_total_timeout(web) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectFailed, match="timed out"):
        get(web.url("/slow?delay=5"), timeout=0.5)
    assert time.monotonic() - start < 3


def test_pdf_is_unsupported(web) -> None:
    with pytest.raises(Unsupported, match="PDF is not supported"):
        get(web.url("/pdf"))
    with pytest.raises(Unsupported, match="PDF is not supported"):
        get(web.url("/pdf-as-html"))  # sniffed: the header lies


def test_other_types(web) -> None:
    with pytest.raises(Unsupported, match="video/mp4"):
        get(web.url("/video"))
    with pytest.raises(Unsupported, match="image/png"):
        get(web.url("/image.png"))
    img = get(web.url("/image.png"), accept=WITH_IMAGES)
    assert img.body.startswith(b"\x89PNG") and img.text == "" and img.charset is None
    with pytest.raises(TooLarge):
        get(web.url("/image.png"), accept=WITH_IMAGES, max_bytes=10)
    assert get(web.url("/json")).text == '{"hello": "world"}'
    assert get(web.url("/no-type")).content_type == "text/html"  # sniffed
    assert get(web.url("/empty")).text == ""


@pytest.mark.parametrize("path, charset", [
    ("/charset/latin1-as-utf8", "cp1252"),  # declared UTF-8, is latin-1: no UTF-8 sequence at all
    ("/charset/bogus", "utf-8"),  # unknown label: ignored
    ("/charset/evil-codec", "utf-8"),  # a Python codec that is not a text encoding for pages
    ("/charset/meta-latin1", "cp1252"),
    ("/charset/header-latin1", "cp1252"),
    ("/charset/bom-utf16", "utf-16-le"),
])
def test_charsets(web, path: str, charset: str) -> None:
    r = get(web.url(path))
    assert r.charset == charset
    assert "Café crème" in r.text


def test_garbage_bytes_never_crash(web) -> None:
    r = get(web.url("/charset/garbage"))
    assert isinstance(r.text, str) and len(r.text) > 0


def test_decode_body_edge_cases() -> None:
    assert decode_body("é".encode() + b"\xff", "utf-8")[1] == "utf-8"  # real UTF-8 plus a bad byte: keep UTF-8
    assert decode_body(b"\xe9t\xe9")[0] == "été"
    assert decode_body(b'<meta charset="utf-16"><p>x</p>')[1] == "utf-8"
    assert charset_name("rot13") is None and charset_name("zlib") is None and charset_name("latin1") == "cp1252"
    assert charset_name('"Shift_JIS"') == "shift_jis"


def test_challenge_page_is_returned_with_status(web) -> None:
    r = get(web.url("/challenge"), raise_for_status=False)
    assert r.status == 403 and "Just a moment" in r.text
