"""How long a multi-query `search` call takes against its slowest query.

Starts the loopback test server with a SearXNG-shaped endpoint that waits
300 ms before every answer, then times `run_queries` with 1 query and with 5
(best of a few runs each, no cache).  Concurrent queries should make the
5-query call cost about one round trip: goal ratio <= 1.3x.

    python bench/search_concurrency.py [--delay 0.3] [--queries 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.server import Response, WebServer  # noqa: E402

FIXTURE = (ROOT / "tests" / "fixtures" / "providers" / "searxng_general.json").read_text("utf-8")


def timed(queries: list[str], get) -> float:
    from vdr_cli.tools.search.run import run_queries

    start = time.perf_counter()
    results = asyncio.run(run_queries(queries, provider="searxng", cache=False, get=get))
    elapsed = time.perf_counter() - start
    if not all(r.ok and r.hits for r in results):
        raise SystemExit(f"a query failed: {[str(r.error) for r in results if not r.ok]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3, help="seconds the server waits per request")
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is reported")
    args = parser.parse_args()

    os.environ["VDR_HOME"] = tempfile.mkdtemp(prefix="vdr-bench-")  # never touch the user's config or cache
    from vdr_cli.config import Config

    with WebServer() as web:
        web.add_route("GET", "/searxng/search",
                      lambda r: Response(200, FIXTURE, "application/json", delay=args.delay))
        cfg = Config(environ={"VDR_SEARCH_SEARXNG_URL": web.url("/searxng"), "VDR_CACHE_ENABLED": "false"})
        timed(["warm-up"], cfg.get)  # imports and first connection outside the measurement
        one = min(timed(["eiffel tower"], cfg.get) for _ in range(args.repeat))
        many = min(timed([f"query {i}" for i in range(args.queries)], cfg.get) for _ in range(args.repeat))
    ratio = many / one
    print(f"server delay per request: {args.delay * 1000:.0f} ms")
    print(f"1 query:  {one * 1000:7.1f} ms")
    print(f"{args.queries} queries: {many * 1000:7.1f} ms  (sequential would be ~{args.queries * args.delay * 1000:.0f} ms)")
    print(f"ratio:    {ratio:.2f}x  (goal <= 1.3x) {'OK' if ratio <= 1.3 else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
