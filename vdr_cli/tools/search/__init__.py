"""Web search for vdr: text, images by text, and reverse image search.

Providers live one per module and register by name in `base.PROVIDERS`;
`run` runs many queries concurrently with per-query error isolation, dedupe,
`-n` and caching.  The agent calls `search_many` / `reverse_search` and shows
the model `format_results_for_model`.
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
    format_many_for_model,
    format_results_for_model,
    reverse_search,
    run_queries,
    search_many,
)

__all__ = [
    "AuthFailed", "BadResponse", "Blocked", "Hit", "ImageInput", "MissingKey", "NotSupported", "PROVIDERS",
    "Provider", "ProviderError", "QueryResult", "RateLimitedError", "Searcher", "format_many_for_model",
    "format_results_for_model", "get_provider", "reverse_search", "run_queries", "search_many",
]
