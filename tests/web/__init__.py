"""The loopback web for tests: `web` fixture (a started `WebServer`) and helpers.

Use it with `from web import web` in a test module (pytest puts tests/ on sys.path for the
rootdir conftest), or register it once with `pytest_plugins = ["web"]` in tests/conftest.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .server import Request, Response, WebServer, article_html

__all__ = ["Request", "Response", "WebServer", "article_html", "dead_url", "web"]


@pytest.fixture
def web() -> Iterator[WebServer]:
    """A fresh server per test (starting one costs about a millisecond), stopped afterwards."""
    server = WebServer().start()
    try:
        yield server
    finally:
        server.stop()


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused, fast)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
