"""SearXNG (self-hosted, keyless): `GET {base}/search?format=json`.

An instance answers 403 until `json` is in its `search.formats`, which is off
by default: that case gets its own message and the fix.
"""

from __future__ import annotations

from vdr_cli.tools.search.base import BaseProvider, Context, Hit, ProviderError, text_of


class Searxng(BaseProvider):
    name = "searxng"
    images = True
    url_setting = "search.searxng_url"

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        params = {"q": query, "format": "json", "categories": "images" if images else "general", "pageno": "1"}
        response = await self.send(ctx, "GET", f"{self.base_url(ctx)}/search", params=params, raise_for_status=False)
        if response.status_code == 403:
            raise self.error(
                ProviderError,
                f"{self.base_url(ctx)} refused the JSON API (HTTP 403)",
                hint="add `json` to search.formats in the instance's settings.yml, or point search.searxng_url at one that allows it",
            )
        if response.status_code >= 400:
            raise self.error(ProviderError, f"{self.base_url(ctx)}/search: HTTP {response.status_code}")
        data = self.json(response)
        hits = []
        for item in self.items(data, "results"):
            url = text_of(item.get("url"))
            if not url:
                continue
            hit = Hit(
                query=query,
                rank=len(hits) + 1,
                title=text_of(item.get("title")),
                url=url,
                snippet=text_of(item.get("content")),
                provider=self.name,
                date=text_of(item.get("publishedDate")) or None,
                source=text_of(item.get("source")) or None,
            )
            if images:
                hit.image_url = text_of(item.get("img_src")) or None
                hit.thumbnail_url = text_of(item.get("thumbnail_src")) or hit.image_url
                if not hit.image_url:
                    continue
            hits.append(hit)
        return hits
