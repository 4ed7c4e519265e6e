"""Keyless search engines on the loopback server, answering as the real ones do.

The answers are built from the shapes each library parses (picimagesearch 3.12's
`model/yandex.py`, `model/google_lens.py`, `model/bing.py` and `engines/*.py`; ddgs
9.16's `engines/duckduckgo.py`, `brave.py`, `mojeek.py`: request method, path,
form fields, result markup), so the real libraries run unchanged against them.
Results point at article pages on the same server, so a chain can read them.

`Engines.mode[name]` switches an engine to failing: "429", "403", "captcha" (a
bot-check page or redirect), "garbled" (a page the parser does not understand),
"empty" (no results). `Engines.uploads[name]` holds the image bytes each engine
received: tests check that the crop file, and only it, reached the engine.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, quote

from .server import Request, Response, WebServer

PAGES = ("gustave-eiffel", "maurice-koechlin", "champ-de-mars")


def form_parts(req: Request) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name."""
    ctype = req.headers.get("content-type", "")
    if "multipart/form-data" not in ctype:
        return {}
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
    out: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = part.get_payload(decode=True) or b""
    return out


@dataclass
class Engines:
    web: WebServer
    mode: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, list[bytes]] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)

    def page(self, i: int) -> str:
        return self.web.url(f"/article/{PAGES[i % len(PAGES)]}")

    def env(self) -> dict[str, str]:
        """Settings that point every keyless engine at this server."""
        return {
            "VDR_SEARCH_BING_URL": self.web.url("/bing"),
            "VDR_SEARCH_YANDEX_URL": self.web.url("/yandex"),
            "VDR_SEARCH_LENS_URL": self.web.url("/lens"),
            "VDR_SEARCH_DDG_URL": self.web.url("/ddg/html/"),
            "VDR_SEARCH_BRAVE_WEB_URL": self.web.url("/brave-web/search"),
            "VDR_SEARCH_MOJEEK_URL": self.web.url("/mojeek/search"),
        }

    def failure(self, name: str) -> Response | None:
        mode = self.mode.get(name, "")
        if mode in ("429", "403", "202"):
            return Response(int(mode), "<html><body>Too many requests</body></html>", headers={"Retry-After": "0"})
        return None

    # --- reverse image search -------------------------------------------------------------

    def bing_upload(self, req: Request) -> Response:
        # engines/bing.py: POST images/search?view=detailv2&iss=sbiupload, multipart cbir=sbi, imageBin=<base64>
        if (fail := self.failure("bing")) is not None:
            return fail
        parts = form_parts(req)
        if req.query.get("iss") != "sbiupload" or parts.get("cbir") != b"sbi" or "imageBin" not in parts:
            return Response(400, "<html><body>bad upload</body></html>")
        self.uploads.setdefault("bing", []).append(base64.b64decode(parts["imageBin"]))
        if self.mode.get("bing") == "garbled":
            return Response(200, "<html><body>Something changed</body></html>")
        return Response(200, '<html><body><div id="insights" data-bcid="bcid_Q7rT.9x-2">Visual search</div></body></html>')

    def bing_knowledge(self, req: Request) -> Response:
        # engines/bing.py: POST images/api/custom/knowledge?...&insightsToken=bcid_…, multipart knowledgeRequest (JSON)
        if not req.query.get("insightsToken", "").startswith("bcid_"):
            return Response(400, json.dumps({"error": "no token"}), "application/json")
        if self.mode.get("bing") == "empty":
            return Response(200, json.dumps({"tags": []}), "application/json")
        value = lambda i, name: {"name": name, "hostPageUrl": self.page(i), "contentUrl": self.web.url(f"/image.png?bing={i}"),
                                 "thumbnailUrl": self.web.url(f"/image.png?th={i}")}
        body = {"tags": [{"displayName": "", "actions": [
            {"actionType": "BestRepresentativeQuery", "displayName": "Eiffel Tower"},
            {"actionType": "PagesIncluding", "data": {"value": [value(0, "Gustave Eiffel - the engineer"), value(1, "Maurice Koechlin")]}},
            {"actionType": "VisualSearch", "data": {"value": [value(2, "Champ de Mars view"), value(0, "Gustave Eiffel again")]}},
        ]}]}
        return Response(200, json.dumps(body), "application/json")

    def yandex(self, req: Request) -> Response:
        # engines/yandex.py: POST images/search?rpt=imageview&cbir_page=sites, multipart upfile, prg=1;
        # model/yandex.py reads div.Root[id^=ImagesApp-] data-state -> initialState.cbirSites.sites
        if (fail := self.failure("yandex")) is not None:
            return fail
        if self.mode.get("yandex") == "captcha":
            return Response(302, "", headers={"Location": "/yandex/showcaptcha?retpath=x"})
        parts = form_parts(req)
        if req.query.get("rpt") != "imageview" or "upfile" not in parts:
            return Response(400, "<html><body>bad request</body></html>")
        self.uploads.setdefault("yandex", []).append(parts["upfile"])
        if self.mode.get("yandex") == "garbled":
            return Response(200, "<html><body><div class='Root'>new layout</div></body></html>")
        sites = [{"url": self.page(i), "title": title, "thumb": {"url": "//avatars.example/i?id=" + str(i)},
                  "domain": "127.0.0.1", "description": desc,
                  "originalImage": {"url": self.web.url(f"/image.png?yandex={i}"), "width": 800, "height": 600}}
                 for i, (title, desc) in enumerate([("Gustave Eiffel", "The engineer whose company built the tower."),
                                                    ("Maurice Koechlin", "He drew the first design.")])]
        state = {"initialState": {"cbirSites": {"sites": sites}}}
        return Response(200, f'<html><body><div class="Root" id="ImagesApp-r4kx" data-state="{html.escape(json.dumps(state))}"></div></body></html>')

    def yandex_captcha(self, req: Request) -> Response:
        return Response(200, "<html><body><form class='CheckboxCaptcha'>Are you a robot?</form></body></html>")

    def lens_upload(self, req: Request) -> Response:
        # engines/google_lens.py: POST v3/upload?hl=en-US, multipart encoded_image; Google redirects to the results page
        if (fail := self.failure("lens")) is not None:
            return fail
        if self.mode.get("lens") == "captcha":
            return Response(302, "", headers={"Location": "/lens/sorry/index?continue=x"})
        parts = form_parts(req)
        if "encoded_image" not in parts:
            return Response(400, "<html><body>bad request</body></html>")
        self.uploads.setdefault("lens", []).append(parts["encoded_image"])
        return Response(303, "", headers={"Location": f"/lens/search?ep=subb&hl={quote(req.query.get('hl', ''))}"})

    def lens_results(self, req: Request) -> Response:
        # model/google_lens.py: items .vEWxFf.RCxtQc.my5z3d, link a.LBcIee, title .Yt787, thumbnails via google.ldi
        items = "".join(
            f'<div class="vEWxFf RCxtQc my5z3d"><a class="LBcIee" href="{self.page(i)}"><div class="Yt787">{title}</div>'
            f'<div class="R8BTeb q8U8x LJEGod du278d i0Rdmd">127.0.0.1</div></a>'
            f'<div class="gdOPf q07dbf uhHOwf ez24Df"><img data-iid="dimg_{i}" src="data:image/gif;base64,R0lGOD"></div></div>'
            for i, title in enumerate(["Gustave Eiffel | Lens", "Champ de Mars | Lens"]))
        ldi = "{" + ",".join(f"'dimg_{i}':'{self.web.url(f'/image.png?lens={i}')}'" for i in range(2)) + "}"
        return Response(200, f'<html><body>{items}<script nonce="n0">google.ldi={ldi};</script></body></html>')

    # --- text search ----------------------------------------------------------------------

    def ddg(self, req: Request) -> Response:
        # ddgs engines/duckduckgo.py: POST html/ form q, b, l; results div.result__body (h2 a, a.result__snippet)
        if (fail := self.failure("duckduckgo")) is not None:
            return fail
        q = parse_qs(req.body.decode()).get("q", [""])[0]
        self.queries.setdefault("duckduckgo", []).append(q)
        if self.mode.get("duckduckgo") == "captcha":
            return Response(202, '<html><body><div class="anomaly-modal__title">Unfortunately, bots use DuckDuckGo too.</div></body></html>')
        rows = "".join(
            f'<div class="result results_links web-result"><div class="links_main links_deep result__body">'
            f'<h2 class="result__title"><a class="result__a" href="//duckduckgo.com/l/?uddg={quote(self.page(i), safe="")}&amp;rut=r{i}">{title}</a></h2>'
            f'<a class="result__snippet" href="//duckduckgo.com/l/?uddg={quote(self.page(i), safe="")}&amp;rut=r{i}">{snippet}</a></div></div>'
            for i, (title, snippet) in enumerate([("Gustave Eiffel - Wikipedia", "French civil engineer."),
                                                  ("Maurice Koechlin", "Structural engineer of the tower.")]))
        return Response(200, f'<html><body class="body--html"><div id="links" class="results">{rows}</div></body></html>')

    def brave_web(self, req: Request) -> Response:
        # ddgs engines/brave.py: GET search?q=…&source=web; div[data-type=web], a[div.title]/@href, div.snippet div.content
        if (fail := self.failure("brave-web")) is not None:
            return fail
        self.queries.setdefault("brave-web", []).append(req.query.get("q", ""))
        rows = "".join(
            f'<div class="snippet" data-type="web"><a href="{self.page(i)}"><div class="title">{title}</div></a>'
            f'<div class="snippet-content"><div class="content">{snippet}</div></div></div>'
            for i, (title, snippet) in enumerate([("Gustave Eiffel (Brave)", "Engineer and entrepreneur."),
                                                  ("Maurice Koechlin (Brave)", "Drew the tower.")]))
        return Response(200, f"<html><body><main>{rows}</main></body></html>")

    def mojeek(self, req: Request) -> Response:
        # ddgs engines/mojeek.py: GET search?q=…; ul.results li, h2 a, p.s
        if (fail := self.failure("mojeek")) is not None:
            return fail
        self.queries.setdefault("mojeek", []).append(req.query.get("q", ""))
        rows = "".join(f'<li><h2><a href="{self.page(i)}">{title}</a></h2><p class="s">{snippet}</p></li>'
                       for i, (title, snippet) in enumerate([("Champ de Mars (Mojeek)", "The park by the tower.")]))
        return Response(200, f'<html><body><ul class="results-standard">{rows}</ul></body></html>')


def install_engines(web: WebServer) -> Engines:
    engines = Engines(web)
    web.add_route("POST", "/bing/images/search", engines.bing_upload)
    web.add_route("POST", "/bing/images/api/custom/knowledge", engines.bing_knowledge)
    web.add_route("POST", "/yandex/images/search", engines.yandex)
    web.add_route("GET", "/yandex/showcaptcha", engines.yandex_captcha)
    web.add_route("POST", "/lens/v3/upload", engines.lens_upload)
    web.add_route("GET", "/lens/search", engines.lens_results)
    web.add_route("GET", "/lens/sorry/index", lambda r: Response(429, "<html><body>unusual traffic</body></html>"))
    web.add_route("POST", "/ddg/html/", engines.ddg)
    web.add_route("GET", "/brave-web/search", engines.brave_web)
    web.add_route("GET", "/mojeek/search", engines.mojeek)
    return engines
