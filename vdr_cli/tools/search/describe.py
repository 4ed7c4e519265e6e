"""The offline fallback for reverse image search: a text search for a description.

This is not a reverse image search.  When no engine can look at the image (none
reachable, all rate-limited, or the user wants nothing uploaded), the caller's
description (`--describe TEXT`, or the agent's goal for the crop) runs as an
image search plus a web search on the text providers of `search.provider`.  The
image bytes never leave the machine: they only key the cache.  Its hits say
`provider: "describe/ENGINE"`, and `vdr search` says on stderr what they are.
"""

from __future__ import annotations

import asyncio

from vdr_cli.errors import VdrError
from vdr_cli.tools.search.base import BaseProvider, Context, Hit, ImageInput, Provider, ProviderError, get_chain

NOT_REVERSE = "describe is not a reverse image search: these hits are a text search for the image's description"


class Describe(BaseProvider):
    name = "describe"
    text = False
    reverse = True

    def backends(self, ctx: Context) -> list[Provider]:
        chain = [p for p in get_chain(str(ctx.get("search.provider") or "duckduckgo")) if p.name != self.name and p.text]
        return chain or get_chain("duckduckgo")

    def identity(self, ctx: Context) -> str:
        return "describe+" + ",".join(f"{b.name}@{b.identity(ctx)}" for b in self.backends(ctx))

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        text = " ".join((description or "").split())
        if not text:
            raise self.error(
                ProviderError,
                f"{image.name}: describe (not a reverse image search) needs a description of the image",
                hint="pass --describe 'what the image shows', or list a reverse-search engine (bing, yandex, lens) in search.image_provider",
            )
        failure: BaseException | None = None
        for backend in self.backends(ctx):
            try:
                hits = await self._one(ctx, backend, text, n)
            except VdrError as exc:
                failure = failure or exc
                continue
            for hit in hits:
                hit.query = image.name
                hit.provider = f"{self.name}/{hit.provider}"
            return hits
        raise failure if failure is not None else self.error(ProviderError, "no text provider answered")

    async def _one(self, ctx: Context, backend: Provider, text: str, n: int) -> list[Hit]:
        jobs = [backend.search(ctx, text, n, images=False)]
        if backend.images:
            jobs.insert(0, backend.search(ctx, text, n, images=True))
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        lists = [o for o in outcomes if isinstance(o, list)]
        if not lists:
            raise outcomes[0]  # type: ignore[misc]  # the image search's failure says most
        # Interleave image and web hits: the first few of each kind are the useful ones;
        # a page that came back as both is kept once (it is fetched once downstream).
        merged: list[Hit] = []
        seen: set[str] = set()
        from vdr_cli.tools.search.run import url_key

        for i in range(max(len(lst) for lst in lists)):
            for lst in lists:
                if i < len(lst) and url_key(lst[i].url) not in seen:
                    seen.add(url_key(lst[i].url))
                    lst[i].rank = len(merged) + 1
                    merged.append(lst[i])
        return merged
