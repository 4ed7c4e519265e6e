"""A real HTTP server on 127.0.0.1 for network tests: pages, redirects, failures, hostile bodies.

Every test that needs the web talks to this server over real sockets (no mocked httpx), so
what is tested is what runs. Routes are plain functions `handler(Request) -> Response` (or
bytes, str, or a dict/list sent as JSON); `server.add_route(method, path, handler)` lets other
test modules (search providers) register their own endpoints. `server.hits` counts requests
per target (path plus query), which is how "fail N times, then succeed" routes keep state:
give each test its own `?id=` and the counters never collide.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the query
    target: str  # path and query, as sent
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    server: "WebServer"


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None  # sent with Transfer-Encoding: chunked
    chunk_delay: float = 0.0
    delay: float = 0.0  # seconds before the status line
    content_length: int | None = None  # declared length; may lie (bigger than the body)
    reset: bool = False  # abort the connection with a TCP RST instead of answering
    reset_after_bytes: int | None = None  # send headers and this much body, then RST


Handler = Callable[[Request], "Response | bytes | str | dict | list"]


class WebServer:
    """A threaded HTTP/1.1 server on a random loopback port with pluggable routes."""

    def __init__(self, port: int = 0) -> None:
        self._port_wanted = port  # 0: any free port; fixed ports make URLs (and model prompts) repeatable
        self._routes: dict[tuple[str, str], tuple[Handler, bool]] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        install_default_routes(self)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "WebServer":
        server = self

        class _Handler(_RequestHandler):
            web = server

        httpd = ThreadingHTTPServer(("127.0.0.1", self._port_wanted), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a slow route must not hold up the test's teardown
        httpd.handle_error = lambda request, client_address: None  # resets are the point here
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    # -- routes ------------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve `path` (or every path under it when `prefix`) with `handler`; replaces an existing route."""
        self._routes[(method.upper(), path)] = (handler, prefix)

    def route(self, method: str, path: str, *, prefix: bool = False) -> Callable[[Handler], Handler]:
        """Decorator form of `add_route`."""

        def deco(fn: Handler) -> Handler:
            self.add_route(method, path, fn, prefix=prefix)
            return fn

        return deco

    def json_route(self, path: str, payload: Any, *, method: str = "GET", status: int = 200) -> None:
        """A fixed JSON answer (provider-shaped fixtures)."""
        self.add_route(method, path, lambda req: Response(status, json.dumps(payload), "application/json"))

    def find(self, method: str, path: str) -> Handler | None:
        exact = self._routes.get((method, path))
        if exact:
            return exact[0]
        best: tuple[int, Handler] | None = None
        for (m, p), (handler, prefix) in self._routes.items():
            if prefix and m == method and path.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), handler)
        return best[1] if best else None

    def count(self, target: str) -> int:
        with self._lock:
            return self.hits[target]

    def _record(self, req: Request) -> int:
        with self._lock:
            self.hits[req.target] += 1
            self.requests.append(req)
            return self.hits[req.target]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    web: WebServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parts.path,
            target=self.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            server=self.web,
        )
        self.web._record(req)
        handler = self.web.find(self.command, parts.path)
        if handler is None:
            result: Any = Response(404, "<html><body><h1>Not found</h1></body></html>")
        else:
            result = handler(req)
        self._send(_as_response(result))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def _rst(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: a "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _send(self, resp: Response) -> None:
        if resp.delay:
            time.sleep(resp.delay)
        if resp.reset:
            self._rst()
            return
        body = resp.body.encode("utf-8") if isinstance(resp.body, str) else resp.body
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.close_connection = True
        try:
            if resp.chunks is not None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in resp.chunks:
                    if resp.chunk_delay:
                        time.sleep(resp.chunk_delay)
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
                return
            declared = resp.content_length if resp.content_length is not None else len(body)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            if self.command == "HEAD":
                return
            if resp.reset_after_bytes is not None:
                self.wfile.write(body[: resp.reset_after_bytes])
                self.wfile.flush()
                self._rst()
                return
            self.wfile.write(body)
        except OSError:
            pass  # the client hung up (a size cap or a timeout on its side): expected


def _as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, (dict, list)):
        return Response(200, json.dumps(result), "application/json")
    if isinstance(result, str):
        return Response(200, result)
    if isinstance(result, bytes):
        return Response(200, result, "application/octet-stream")
    raise TypeError(f"route returned {type(result).__name__}")


# -- the default site ----------------------------------------------------------------------

ARTICLE_TITLE = "The Iron Lady of Paris"
ARTICLE_PARAGRAPHS = [
    "The Eiffel Tower was designed by the engineers Maurice Koechlin and Émile Nouguier, who worked "
    "for the company of Gustave Eiffel, and the architect Stephen Sauvestre refined its shape with the "
    "decorative arches at the base.",
    "Construction began in January 1887 and took two years, two months and five days, finishing in "
    "March 1889 in time for the Exposition Universelle, the world's fair that marked the centennial of "
    "the French Revolution.",
    "The tower is made of puddled iron, about 7,300 tonnes of it, held together by some 2.5 million "
    "rivets, and it was the tallest man-made structure in the world until the Chrysler Building was "
    "finished in New York in 1930.",
    "Many artists of the day protested against the project, calling it useless and monstrous, yet the "
    "tower became a symbol of Paris and of France, and it now welcomes millions of visitors a year.",
    "Its height is 330 metres including antennas, and the top platform, at 276 metres, is the highest "
    "observation deck accessible to the public in the European Union, reached by lifts and stairs.",
    "The tower was almost demolished in 1909, when its twenty-year permit expired, but it was saved by "
    "its value as a radiotelegraph station, which the French army used during the First World War.",
]


def article_html(title: str = ARTICLE_TITLE, paragraphs: list[str] | None = None) -> str:
    """An article page wrapped in the usual furniture: nav, cookie banner, related list, comments, footer."""
    paras = "\n".join(f"<p>{p}</p>" for p in (paragraphs or ARTICLE_PARAGRAPHS))
    related = "".join(f'<li><a href="/related/{i}">Related story number {i}</a></li>' for i in range(12))
    return f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>{title} | Example News</title>
<link rel="canonical" href="/article">
<meta property="og:title" content="{title}">
<meta property="og:image" content="/img/tower.jpg">
<meta name="description" content="How the Eiffel Tower was designed and built.">
<meta property="article:published_time" content="2024-03-31T09:00:00Z">
</head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a> <a href="/arts">Arts</a></nav>
<div id="cookie-banner" class="cookie-consent">We value your privacy. Accept all cookies or manage cookies.</div>
<main><article>
<h1>{title}</h1>
{paras}
<figure><img src="/img/tower.jpg" alt="The tower at dusk"><figcaption>The tower at dusk</figcaption></figure>
<p>Read more in <a href="/history">our history section</a>, which covers the fair in detail.</p>
</article></main>
<aside class="related"><h2>Related</h2><ul>{related}</ul></aside>
<section id="comments" class="comments"><h2>Comments</h2>
<div class="comment">First! Great article, thanks.</div><div class="comment">I climbed it in 1999.</div></section>
<footer><p>© 2024 Example News. All rights reserved.</p><a href="/about">About</a> <a href="/privacy">Privacy</a></footer>
</body></html>"""


CHALLENGE_HTML = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"></head><body>
<div class="main-wrapper"><h1>example.org</h1><h2>Checking your browser before accessing example.org.</h2>
<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>
<noscript>Enable JavaScript and cookies to continue</noscript>
<form id="challenge-form" action="/?__cf_chl_f_tk=abc" method="POST"></form>
<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>
</div><div class="footer">Performance &amp; security by Cloudflare</div></body></html>"""

# The smallest valid PNG: 1x1, one grey pixel.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63680000008200815fbd8d0b0000000049454e44ae426082"
)


@lru_cache(maxsize=4)
def gzip_bomb(decoded_size: int) -> bytes:
    """`decoded_size` bytes of spaces, gzipped (about a thousandth of the size)."""
    return gzip.compress(b" " * decoded_size, compresslevel=9)


def _int(req: Request, name: str, default: int) -> int:
    try:
        return int(req.query.get(name, default))
    except ValueError:
        return default


def install_default_routes(web: WebServer) -> None:
    add = web.add_route

    add("GET", "/article", lambda r: article_html())
    add("GET", "/article/", lambda r: article_html(title=r.path.rsplit("/", 1)[-1].replace("-", " ").title()), prefix=True)
    add("GET", "/text", lambda r: Response(200, "plain text body\nsecond line\n", "text/plain; charset=utf-8"))
    add("GET", "/json", lambda r: {"hello": "world"})
    add("GET", "/empty", lambda r: Response(200, b""))
    add("GET", "/echo", lambda r: {"headers": r.headers, "target": r.target})
    add("GET", "/image.png", lambda r: Response(200, TINY_PNG, "image/png"))
    add("GET", "/pdf", lambda r: Response(200, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n", "application/pdf"))
    add("GET", "/pdf-as-html", lambda r: Response(200, b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n", "text/html"))
    add("GET", "/no-type", lambda r: Response(200, article_html(), None))
    add("GET", "/video", lambda r: Response(200, b"\x00\x00\x00\x18ftypmp42", "video/mp4"))

    # Redirects. /redirect/chain?n=3 -> n=2 -> n=1 -> /article
    def chain(r: Request) -> Response:
        n = _int(r, "n", 1)
        location = "/article" if n <= 1 else f"/redirect/chain?n={n - 1}"
        return Response(302, "", headers={"Location": location})

    add("GET", "/redirect/chain", chain)
    add("GET", "/redirect/loop-a", lambda r: Response(302, "", headers={"Location": "/redirect/loop-b"}))
    add("GET", "/redirect/loop-b", lambda r: Response(301, "", headers={"Location": "/redirect/loop-a"}))
    # /redirect/to?url=http://10.0.0.1/ (any target, absolute or relative)
    add("GET", "/redirect/to", lambda r: Response(_int(r, "status", 302), "", headers={"Location": r.query.get("url", "/article")}))
    add("GET", "/redirect/self-loopback", lambda r: Response(302, "", headers={"Location": f"{web.base}/article"}))

    # Slow and failing.
    add("GET", "/slow", lambda r: Response(200, article_html(), delay=float(r.query.get("delay", "1"))))
    add("GET", "/drip", lambda r: Response(200, chunks=(b"<p>drip</p>" for _ in range(_int(r, "n", 50))),
                                           chunk_delay=float(r.query.get("every", "0.1"))))

    def flaky(r: Request) -> Response:
        # /flaky?status=429&fail=1&retry_after=1&id=X: `fail` failures, then the article.
        if web.count(r.target) <= _int(r, "fail", 1):
            headers = {"Retry-After": r.query["retry_after"]} if "retry_after" in r.query else {}
            return Response(_int(r, "status", 500), "<html><body>try again later</body></html>", headers=headers)
        return Response(200, article_html())

    add("GET", "/flaky", flaky)
    add("GET", "/status", lambda r: Response(_int(r, "code", 404), f"<html><body><h1>Error {_int(r, 'code', 404)}</h1></body></html>"))
    add("GET", "/reset", lambda r: Response(reset=True))
    add("GET", "/reset-midway", lambda r: Response(200, article_html() * 4, reset_after_bytes=300))

    def reset_then_ok(r: Request) -> Response:
        return Response(reset=True) if web.count(r.target) <= _int(r, "fail", 1) else Response(200, article_html())

    add("GET", "/reset-then-ok", reset_then_ok)

    # Oversized bodies: ?size=N bytes; mode=length (honest), lie (declares 10 GB), chunked.
    def big(r: Request) -> Response:
        size = _int(r, "size", 20_000_000)
        mode = r.query.get("mode", "length")
        block = b"<p>" + b"x" * 1020 + b"</p>"
        if mode == "chunked":
            return Response(200, chunks=(block for _ in range(size // len(block) + 1)))
        body = (block * (size // len(block) + 1))[:size]
        return Response(200, body, content_length=10_000_000_000 if mode == "lie" else None)

    add("GET", "/big", big)
    add("GET", "/gzip-bomb", lambda r: Response(200, gzip_bomb(_int(r, "size", 64_000_000)),
                                                headers={"Content-Encoding": "gzip"}))
    add("GET", "/gzip", lambda r: Response(200, gzip.compress(article_html().encode()), headers={"Content-Encoding": "gzip"}))
    add("GET", "/brotli", lambda r: Response(200, b"\x1b\x00", headers={"Content-Encoding": "br"}))

    # Charsets.
    latin = "<html><head><title>Caf\u00e9 cr\u00e8me</title></head><body><p>Un caf\u00e9 cr\u00e8me \u00e0 la fran\u00e7aise.</p></body></html>"
    add("GET", "/charset/latin1-as-utf8", lambda r: Response(200, latin.encode("latin-1"), "text/html; charset=utf-8"))
    add("GET", "/charset/bogus", lambda r: Response(200, latin.encode("utf-8"), "text/html; charset=x-no-such-charset-42"))
    add("GET", "/charset/evil-codec", lambda r: Response(200, latin.encode("utf-8"), "text/html; charset=unicode_escape"))
    add("GET", "/charset/meta-latin1", lambda r: Response(
        200, latin.replace("<head>", '<head><meta charset="iso-8859-1">').encode("latin-1"), "text/html"))
    add("GET", "/charset/header-latin1", lambda r: Response(200, latin.encode("latin-1"), "text/html; charset=ISO-8859-1"))
    add("GET", "/charset/bom-utf16", lambda r: Response(200, "\ufeff".encode("utf-16-le") + latin.encode("utf-16-le"), "text/html"))
    add("GET", "/charset/garbage", lambda r: Response(200, bytes(range(256)) * 8, "text/html; charset=utf-8"))

    # Anti-bot pages: Cloudflare answers 403 (or 503) with a short interstitial.
    add("GET", "/challenge", lambda r: Response(403, CHALLENGE_HTML, headers={"Server": "cloudflare", "cf-ray": "8a1b2c3d4e5f-CDG"}))
    add("GET", "/challenge-200", lambda r: Response(200, CHALLENGE_HTML))
