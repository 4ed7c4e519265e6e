"""URLs as messages and traces may show them: no credentials, no query string.

Query strings carry API keys (SerpApi's `api_key`) and `user:password@`
carries passwords; neither belongs in an error message, a log or a trace.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def public_url(url: str) -> str:
    """``scheme://host[:port]/path`` of `url`."""
    p = urlsplit(url)
    host = p.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{p.port}" if p.port else ""
    except ValueError:  # a malformed port: leave it out rather than fail while reporting
        port = ""
    return f"{p.scheme}://{host}{port}{p.path}"
