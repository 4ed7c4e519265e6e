"""Serper.dev (Google results): `POST {base}/search|images|lens`, key in `X-API-KEY`.

Lens takes only a public image URL.  A local file is searchable only when the
user configured `search.uploader` (a command that prints a URL for a path):
vdr never uploads an image anywhere on its own.
"""

from __future__ import annotations

import asyncio
import shlex
import tempfile
from pathlib import Path

from vdr_cli.tools.search.base import BaseProvider, Context, Hit, ImageInput, NotSupported, ProviderError, text_of


class Serper(BaseProvider):
    name = "serper"
    images = True
    reverse = True
    url_setting = "search.serper_url"
    key_setting = "keys.serper"

    async def _post(self, ctx: Context, endpoint: str, body: dict) -> dict:
        headers = {"X-API-KEY": self.key(ctx), "Content-Type": "application/json"}
        response = await self.send(ctx, "POST", f"{self.base_url(ctx)}/{endpoint}", json=body, headers=headers)
        return self.json(response)

    async def search(self, ctx: Context, query: str, n: int, *, images: bool = False) -> list[Hit]:
        data = await self._post(ctx, "images" if images else "search", {"q": query, "num": max(n, 10)})
        if images:
            return self._image_hits(data, "images", query)
        hits = []
        for item in self.items(data, "organic"):
            link = text_of(item.get("link"))
            if link:
                hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=link,
                                snippet=text_of(item.get("snippet")), provider=self.name,
                                date=text_of(item.get("date")) or None, source=text_of(item.get("source")) or None))
        return hits

    def _image_hits(self, data: dict, key: str, query: str) -> list[Hit]:
        hits = []
        for item in self.items(data, key):
            link = text_of(item.get("link"))
            image = text_of(item.get("imageUrl")) or None
            if link and image:  # as the reference: a lens hit is useful only with both
                hits.append(Hit(query=query, rank=len(hits) + 1, title=text_of(item.get("title")), url=link,
                                snippet=text_of(item.get("snippet")), provider=self.name, image_url=image,
                                thumbnail_url=text_of(item.get("thumbnailUrl")) or image,
                                source=text_of(item.get("source")) or None))
        return hits

    async def reverse_search(self, ctx: Context, image: ImageInput, n: int, *, description: str | None = None) -> list[Hit]:
        self.key(ctx)  # a missing key is the first thing to report, before any upload
        url = image.url or await self._upload(ctx, image)
        data = await self._post(ctx, "lens", {"url": url})
        return self._image_hits(data, "organic", image.name)

    async def _upload(self, ctx: Context, image: ImageInput) -> str:
        command = str(ctx.get("search.uploader") or "").strip()
        if not command:
            raise self.error(
                NotSupported,
                f"{image.name}: Serper Lens needs a public image URL, and search.uploader is not set",
                hint="use --provider serpapi (takes the file), --provider describe --describe TEXT, "
                "or `vdr config set search.uploader 'CMD'` (CMD PATH must print a URL)",
            )
        if image.path:
            return await self._run_uploader(command, image.path, image.name)
        with tempfile.TemporaryDirectory(prefix="vdr-upload-") as tmp:
            path = Path(tmp) / ("image" + {"image/png": ".png", "image/webp": ".webp"}.get(image.mime, ".jpg"))
            path.write_bytes(image.data or b"")
            return await self._run_uploader(command, str(path), image.name)

    async def _run_uploader(self, command: str, path: str, name: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(command), path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        except (OSError, ValueError) as exc:
            raise self.error(ProviderError, f"search.uploader could not run ({type(exc).__name__}: {exc})") from None
        except asyncio.TimeoutError:
            proc.kill()
            raise self.error(ProviderError, f"{name}: search.uploader took over 120 s") from None
        lines = out.decode("utf-8", "replace").strip().splitlines()
        url = lines[-1].strip() if lines else ""
        if proc.returncode != 0 or not url.startswith(("http://", "https://")):
            raise self.error(ProviderError, f"{name}: search.uploader failed (exit {proc.returncode}) or printed no http(s) URL")
        return url
