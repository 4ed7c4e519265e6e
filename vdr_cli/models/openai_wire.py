"""The OpenAI chat-completions wire format: messages, image parts, base URLs.

Pure functions, no I/O: `openai_http.OpenAISession` sends what these build.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

from .base import IMAGE_MARKER, ImageInput, Turn
from .chat_template import turn_content
from .errors import ModelError, NoVisionError

_IMAGE_TOKENS_GUESS = 256  # only for the n_tokens estimate before the server reports usage


def image_part(image: ImageInput) -> dict[str, Any]:
    """One ``image_url`` content part: a base64 data URL, its MIME type sniffed from the bytes."""
    from vdr_cli.errors import VdrError
    from vdr_cli.tools.images import sniff_mime, upright_bytes

    data = image.read_bytes()
    try:
        # EXIF-turned photos are sent upright: what the server decodes is what boxes refer to.
        data = upright_bytes(data, f"image {image.id}")
    except VdrError:
        pass  # not readable here: the server judges the bytes as they are
    mime = sniff_mime(data)
    if mime is None:
        raise ModelError(f"image {image.id!r}: not JPEG, PNG, GIF, WebP or BMP")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def to_message(turn: Turn, vision: bool = True) -> dict[str, Any]:
    """A Turn as a chat message. Tool turns become user turns, as the reference model was trained."""
    role = "user" if turn.role == "tool" else turn.role
    if turn.parts and (vision or not turn.images):  # one content part each, in the caller's order
        return {"role": role, "content": [image_part(p) if isinstance(p, ImageInput) else {"type": "text", "text": p}
                                          for p in turn.parts]}
    if not turn.images:
        return {"role": role, "content": turn.text}
    if not vision:
        raise NoVisionError("this model server was declared without vision (has_vision=False)")
    text = turn_content(turn)  # images where their markers are, else first (as Qwen-VL's template puts them)
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(text.split(IMAGE_MARKER)):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(turn.images):
            parts.append(image_part(turn.images[i]))
    return {"role": role, "content": parts}


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Rough prompt size: ~4 characters a token, a few per message, a guess per image."""
    total = 0
    for m in messages:
        content = m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        total += 4 + sum(len(p["text"]) // 4 if p["type"] == "text" else _IMAGE_TOKENS_GUESS for p in parts)
    return total


def normalize_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/v1/`` or ``.../v1/chat/completions`` -> ``http://h:8000/v1``."""
    url = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url if url.endswith("/v1") else url + "/v1"
