"""The OpenAI chat-completions wire format: messages, image parts, base URLs.

Pure functions, no I/O: `openai_http.OpenAISession` sends what these build.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Sequence

from .base import IMAGE_MARKER, ImageInput, SamplingParams, Turn
from .chat_template import turn_content
from .errors import ContextFullError, ModelError, NoVisionError

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


def request_body(messages: Sequence[dict[str, Any]], params: SamplingParams, stop: Sequence[str], model: str | None,
                 *, side: bool = False, llama_params: bool = True, grammar: tuple[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat-completions request: the reference eval's fields (eval_runner.py@67af60f run_task:
    temperature and top_p always, max_tokens only when given), the user's explicit settings
    (llama.cpp's own sampling fields unless `llama_params` is off), `grammar` as (field, GBNF),
    and streaming (transport only: the model sees the same prompt). Side generations (page
    summaries) always cap their length; `extra` (extra_body) goes over everything."""
    body: dict[str, Any] = {
        "messages": list(messages), "stream": True,
        "stream_options": {"include_usage": True},  # servers that don't know it ignore it
        "temperature": max(params.temperature, 0.0), "top_p": params.top_p,
    }
    if model:
        body["model"] = model
    if side or "max_tokens" in params.explicit:
        body["max_tokens"] = params.max_tokens
    if stop:
        body["stop"] = list(stop)  # also applied here, for servers that cap or ignore stops
    if params.seed is not None:
        body["seed"] = params.seed
    if llama_params:
        body.update({k: getattr(params, k) for k in ("top_k", "min_p", "repeat_penalty") if k in params.explicit})
    if grammar:
        body[grammar[0]] = grammar[1]
    body.update(extra or {})
    return body


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


class OpenAIHTTPError(ModelError):
    """The server answered with an HTTP error (after retries, where retrying made sense)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OpenAIConnectError(ModelError):
    """The server could not be reached, timed out, or broke off a stream.

    ``refused``: no connection could be opened at all (nothing listens, no route):
    the server is down, and a batch moves its sessions to another server."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


# Servers word "prompt too long" differently: vLLM/OpenAI "maximum context length",
# llama-server "exceeds the available context size", OpenAI's code "context_length_exceeded".
_CONTEXT_RE = re.compile(r"context[ _](length|size|window)|maximum context|exceeds? the (available )?context", re.I)


def http_error(endpoint: str, status: int | None, reason: str, data: bytes, api_key: str | None) -> ModelError:
    """A server's error answer as one line: the server's message, the key scrubbed from it."""
    detail = " ".join(data.decode("utf-8", "replace").split())
    try:
        err = json.loads(data).get("error")
        detail = str(err.get("message") or err) if isinstance(err, dict) else str(err or detail)
    except (ValueError, AttributeError):
        pass
    detail = " ".join(detail.split())[:300]
    if api_key:
        detail = detail.replace(api_key, "***")
    head = f"{endpoint}: HTTP {status} {reason}".rstrip() if status else f"{endpoint}: server error"
    if (status is None or 400 <= status < 500) and _CONTEXT_RE.search(detail):
        return ContextFullError(f"{endpoint}: context full: {detail}")
    if status in (401, 403):
        detail += " (check the API key: keys.openai, VDR_OPENAI_KEY or OPENAI_API_KEY)"
    return OpenAIHTTPError(f"{head}: {detail}" if detail else head, status)


def context_size(models_entry: dict[str, Any], props: dict[str, Any]) -> tuple[int | None, str]:
    """The context a server says it serves, and where it said so: vLLM/SGLang's
    ``/v1/models`` ``max_model_len``, else llama-server's ``/props`` ``n_ctx``."""
    n = models_entry.get("max_model_len")
    if _positive(n):
        return n, "server /v1/models max_model_len"
    settings = props.get("default_generation_settings")
    n = settings.get("n_ctx") if isinstance(settings, dict) else None
    n = n if _positive(n) else props.get("n_ctx")
    return (n, "server /props n_ctx") if _positive(n) else (None, "guess")


def slot_count(props: dict[str, Any]) -> int | None:
    """How many sessions a server decodes at once, where it says so: llama-server's
    ``/props`` ``total_slots`` (its ``-np``). vLLM and SGLang have no ``/props``."""
    n = props.get("total_slots")
    return n if _positive(n) else None


def _positive(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0


def count_tokens(usage: dict[str, Any], timings: dict[str, Any], pieces: int,
                 prompt_msgs: Sequence[dict[str, Any]], before: int) -> tuple[int, int, int]:
    """(prompt tokens new this turn, completion tokens, context fill), the server's figures
    first: llama-server's ``timings`` count what it evaluated (prompt-cache hits excluded),
    ``usage`` the whole prompt; else estimates (content pieces ~ tokens, chars/4)."""
    t = timings
    completion = int(usage.get("completion_tokens") or t.get("predicted_n") or pieces)
    whole = int(usage.get("prompt_tokens") or 0) or (int(t.get("cache_n", 0)) + int(t["prompt_n"])
                                                     if "prompt_n" in t else estimate_tokens(prompt_msgs))
    prompt = int(t["prompt_n"]) if "prompt_n" in t else max(0, whole - before)
    return prompt, completion, whole + completion
