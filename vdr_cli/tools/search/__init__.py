"""Web search for vdr: text, images by text, and reverse image search.

Providers live one per module and register by name in `base.PROVIDERS`;
`run` runs many queries concurrently with per-query error isolation, dedupe,
`-n` and caching.  The agent calls `run_queries` / `reverse_search`; what the
model reads is written by `vdr_cli.agent.prompt`.
"""

from __future__ import annotations

from vdr_cli.tools.search.base import (
    AuthFailed,
    BadResponse,
    Blocked,
    Hit,
    ImageInput,
    MissingKey,
    NotSupported,
    PROVIDERS,
    Provider,
    ProviderError,
    RateLimitedError,
    get_provider,
)
from vdr_cli.tools.search.run import (
    QueryResult,
    Searcher,
    reverse_search,
    run_queries,
    search_many,
)

__all__ = [
    "AuthFailed", "BadResponse", "Blocked", "Hit", "ImageInput", "MissingKey", "NotSupported", "PROVIDERS",
    "Provider", "ProviderError", "QueryResult", "RateLimitedError", "Searcher", "get_provider", "reverse_search", "run_queries", "search_many",
]
