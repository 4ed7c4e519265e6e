"""Download the web images a page summariser is shown (search-hit previews, page images).

Their URLs come from search results and page content, so they are fetched as the model's
own URLs are (agent mode: public addresses only unless allowed). As in the reference eval
(rllm/eval/tools.py @ 67af60f, CropAndSearchTool._encode_url_to_base64: 10 MB cap, 5 s
timeout, failures skipped), an image that cannot be had is left out, never an error.
Beyond it, bytes that are not an image, or whose header claims too many pixels, are left
out too: a summariser request must not fail on one bad picture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TIMEOUT = 5.0


async def fetch_images(urls: Sequence[str], *, allow_private: bool = False, max_bytes: int = MAX_IMAGE_BYTES,
                       timeout: float = IMAGE_TIMEOUT) -> list[bytes | None]:
    """The bytes of each URL's image, in order; None for each one that could not be had."""
    from vdr_cli.errors import VdrError
    from vdr_cli.net.client import RetryPolicy
    from vdr_cli.net.fetch import fetch
    from vdr_cli.net.policy import UrlPolicy
    from vdr_cli.tools.images import MODEL_MAX_PIXELS, open_source, sniff_mime

    if not urls:
        return []
    policy = UrlPolicy(mode="agent", allow_private=allow_private)
    client = policy.make_client(timeout=timeout)

    async def one(url: str) -> bytes | None:
        if not url.lower().startswith(("http://", "https://")):
            return None
        try:
            result = await fetch(url, client=client, policy=policy, max_bytes=max_bytes, timeout=timeout,
                                 accept=frozenset({"image"}), retry=RetryPolicy(attempts=1))
            data = result.body
            if sniff_mime(data) is None:
                return None
            open_source(data, url, MODEL_MAX_PIXELS)  # header only: refuses non-images and bombs
            return data
        except VdrError:
            return None

    try:
        return list(await asyncio.gather(*(one(u) for u in urls)))
    finally:
        await client.aclose()
