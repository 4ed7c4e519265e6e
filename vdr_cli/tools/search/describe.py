"""Keyless reverse-image fallback: search by a description of the image.

Nothing keyless does reverse image search through an official API, and vdr
does not upload a user's image anywhere unasked.  So the caller (the user's
`--describe TEXT`, or the agent's own caption of a crop) supplies what the
image shows, and that text runs as an image search plus a web search on the
configured text provider.  The image bytes never leave the machine: they only
key the cache.
"""

from __future__ import annotations

import asyncio

from vdr_cli.tools.search.base import BaseProvider, Context, Hit, ImageInput, ProviderError, get_provider


class Describe(BaseProvider):
    name = "describe"
    text = False
    reverse = True

    def backend_name(self, ctx: Context) -> str:
        name = str(ctx.get("search.provider") or "duckduckgo")
        return "duckduckgo" if name == self.name else name

    def identity(self, ctx: Context) -> str:
        backend = get_provider(self.backend_name(ctx))
        return f"describe+{backend.name}@{backend.identity(ctx)}"

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        text = " ".join((description or "").split())
        if not text:
            raise self.error(
                ProviderError,
                f"{image.name}: the describe provider needs a description of the image",
                hint="pass --describe 'what the image shows', or use --provider serpapi (uploads to SerpApi) or serper",
            )
        backend = get_provider(self.backend_name(ctx))
        if not backend.text:
            raise self.error(ProviderError, f"search.provider {backend.name!r} cannot run text searches")
        jobs = [backend.search(ctx, text, n, images=False)]
        if backend.images:
            jobs.insert(0, backend.search(ctx, text, n, images=True))
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        lists = [o for o in outcomes if isinstance(o, list)]
        if not lists:
            raise outcomes[0]  # type: ignore[misc]  # the image search's failure says most
        # Interleave image and web hits: the first few of each kind are the useful ones.
        merged: list[Hit] = []
        for i in range(max(len(lst) for lst in lists)):
            for lst in lists:
                if i < len(lst):
                    hit = lst[i]
                    hit.query = image.name
                    hit.provider = f"{self.name}/{hit.provider}"
                    hit.rank = len(merged) + 1
                    merged.append(hit)
        return merged
