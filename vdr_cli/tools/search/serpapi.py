"""SerpApi: Google text, images and Google Lens, key as the `api_key` query parameter.

Reverse image search takes a local file: `POST {base}/image` (multipart
`image`) returns an `image_id` valid for 10 minutes, then
`search.json?engine=google_lens&image_id=…`.  No public URL is involved.
The key travels in the query string, so every message about a request names
the endpoint only (net.client redacts; `Context.scrub` double-checks).
"""

from __future__ import annotations

from typing import Any

from vdr_cli.tools.search.base import BadResponse, BaseProvider, Context, Hit, ImageInput, ProviderError, text_of

NO_RESULTS = "hasn't returned any results"


class SerpApi(BaseProvider):
    name = "serpapi"
    images = True
    reverse = True
    url_setting = "search.serpapi_url"
    key_setting = "keys.serpapi"

    async def _search_json(self, ctx: Context, params: dict[str, str]) -> dict[str, Any] | None:
        params = {**params, "api_key": self.key(ctx)}
        response = await self.send(ctx, "GET", f"{self.base_url(ctx)}/search.json", params=params)
        data = self.json(response)
        error = data.get("error")
        if error:
            # SerpApi reports "no results" as an error field on a 200 answer.
            if NO_RESULTS in str(error):
                return None
            raise self.error(ProviderError, "search failed: " + ctx.scrub(text_of(error))[:200])
        return data

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        if images:
            data = await self._search_json(ctx, {"engine": "google_images", "q": query})
            return [] if data is None else self._image_hits(data, "images_results", query)
        data = await self._search_json(ctx, {"engine": "google", "q": query, "num": str(max(n, 10))})
        hits: list[Hit] = []
        for item in self.items(data or {}, "organic_results"):
            link = text_of(item.get("link"))
            if link:
                hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=link,
                                snippet=text_of(item.get("snippet")), provider=self.name,
                                date=text_of(item.get("date")) or None, source=text_of(item.get("source")) or None))
        return hits

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        params = {"engine": "google_lens", "type": "all"}
        if image.url and image.data is None:
            params["url"] = image.url
        else:
            params["image_id"] = await self.upload(ctx, image)
        if description:
            params["q"] = description
        data = await self._search_json(ctx, params)
        if data is None:
            return []
        # Exact matches first: they show the same image, visual matches only a similar one.
        hits = self._image_hits(data, "exact_matches", image.name)
        for hit in self._image_hits(data, "visual_matches", image.name):
            hit.rank = len(hits) + 1
            hits.append(hit)
        return hits

    async def upload(self, ctx: Context, image: ImageInput) -> str:
        """Send the file to SerpApi's own image endpoint; returns its `image_id`."""
        files = {"image": (_filename(image), image.data or b"", image.mime)}
        response = await self.send(ctx, "POST", f"{self.base_url(ctx)}/image",
                                   params={"api_key": self.key(ctx)}, files=files)
        data = self.json(response)
        image_id = data.get("image_id")
        if not isinstance(image_id, str) or not image_id:
            raise self.error(BadResponse, f"{image.name}: image upload answered without an image_id")
        return image_id

    def _image_hits(self, data: dict[str, Any], key: str, query: str) -> list[Hit]:
        hits = []
        for item in self.items(data, key):
            link = text_of(item.get("link"))
            if not link:
                continue
            image = text_of(item.get("image") or item.get("original")) or None
            thumb = text_of(item.get("thumbnail")) or image
            hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=link,
                            snippet=text_of(item.get("snippet")), provider=self.name,
                            image_url=image or thumb, thumbnail_url=thumb, source=text_of(item.get("source")) or None))
        return hits


def _filename(image: ImageInput) -> str:
    ext = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}.get(image.mime, "jpg")
    return f"image.{ext}"  # never the local path: it may name the user's folders
