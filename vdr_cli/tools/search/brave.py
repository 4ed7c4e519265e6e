"""Brave Search API: `GET {base}/web/search` and `/images/search`, key in `X-Subscription-Token`."""

from __future__ import annotations

from vdr_cli.tools.search.base import BaseProvider, Context, Hit, text_of


class Brave(BaseProvider):
    name = "brave"
    images = True
    url_setting = "search.brave_url"
    key_setting = "keys.brave"

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        headers = {"X-Subscription-Token": self.key(ctx), "Accept": "application/json"}
        # The API caps count at 20 for web and 200 for images.
        endpoint, count = ("images/search", min(max(n, 1), 200)) if images else ("web/search", min(max(n, 1), 20))
        response = await self.send(ctx, "GET", f"{self.base_url(ctx)}/{endpoint}",
                                   params={"q": query, "count": str(count)}, headers=headers)
        data = self.json(response)
        hits = []
        if images:
            for item in self.items(data, "results"):
                page = text_of(item.get("url"))
                props = item.get("properties") if isinstance(item.get("properties"), dict) else {}
                thumb = item.get("thumbnail") if isinstance(item.get("thumbnail"), dict) else {}
                image = text_of(props.get("url")) or None
                if page and image:
                    hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=page,
                                    provider=self.name, image_url=image, thumbnail_url=text_of(thumb.get("src")) or image,
                                    source=text_of(item.get("source")) or None))
            return hits
        for item in self.items(data, "web", "results"):
            url = text_of(item.get("url"))
            if url:
                hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=url,
                                snippet=_strip_tags(text_of(item.get("description"))), provider=self.name,
                                date=text_of(item.get("age")) or None))
        return hits


def _strip_tags(text: str) -> str:
    # Brave highlights matches with <strong>; the model and terminals want plain text.
    import re

    return re.sub(r"</?(strong|b|em)>", "", text)
