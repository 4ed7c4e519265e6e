"""Page summaries (visit pages, crop_and_search hits) as side generations of a model.

The model is the session's own (a side generation never touches the main conversation's
context: the backends guarantee it) or another one chosen with `--summary-model`, the
reference's setup (a separate extractor model, Qwen3-VL-30B-A3B-Instruct). Every request
goes through `side_chat`, the one entry point.

What is sent is the reference's (rllm/eval/tools.py @ 67af60f): for visit,
VisitTool._summarize_with_vllm: system "You are a helpful assistant.", the user turn a
plain string, `max_tokens` 16384 (EXTRACT_MAX_TOKENS); for crop_and_search hits,
CropAndSearchTool._summarize_with_vllm: the crop extractor prompt as the system turn, the
user turn in ordered text/image parts, `max_tokens` 16384. In-process the window bounds
both the answer and the page text (the reference's extractor had a 256k window).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from vdr_cli.agent import tool_text
from vdr_cli.models.base import ImageInput, SamplingParams, Turn
from vdr_cli.models.errors import ModelError

SUMMARY_TOKENS = 16384  # the reference's EXTRACT_MAX_TOKENS default
_IMAGE_TOKENS_GUESS = 512  # room kept per image when fitting a page into an in-process window
_CHARS_PER_TOKEN = 3

SideChat = Callable[[str, "str | Sequence[dict[str, Any]]"], str]


def side_chat(model: Any, max_tokens: int = SUMMARY_TOKENS) -> SideChat:
    """`chat(system, user) -> text` on `model.side_generate`. `user` is a string, or parts
    {"type": "text", "text"} / {"type": "image", "image": ImageInput} sent one part each.
    In-process, the longest text part is cut when the request would not fit the window
    (a string is sent whole: cut the page before, see `text_room`). Raises ModelError."""

    def chat(system: str, user: str | Sequence[dict[str, Any]]) -> str:
        if isinstance(user, str):
            turn = Turn("user", user)
            room = text_room(model, max_tokens, system + user)
        else:
            parts: list[str | ImageInput] = [p["image"] if p["type"] == "image" else p["text"] for p in user]
            n_images = sum(isinstance(p, ImageInput) for p in parts)
            texts = [i for i, p in enumerate(parts) if isinstance(p, str)]
            total = sum(len(parts[i]) for i in texts)  # type: ignore[arg-type]
            room = text_room(model, max_tokens, system, n_images)
            if room.chars is not None and texts and total > room.chars:
                longest = max(texts, key=lambda i: len(parts[i]))  # type: ignore[arg-type]
                keep = max(0, len(parts[longest]) - (total - room.chars))  # type: ignore[arg-type]
                parts[longest] = parts[longest][:keep]  # type: ignore[index]
            turn = Turn.from_parts("user", parts)
        # Greedy; the reference leaves sampling to its server's defaults.
        result = model.side_generate([Turn("system", system), turn],
                                     SamplingParams(temperature=0.0, max_tokens=room.answer))
        return result.text

    return chat


class Room(NamedTuple):
    answer: int  # max_tokens of the request
    chars: int | None  # page text that fits (None: no bound known here)


def text_room(model: Any, max_tokens: int, fixed_text: str = "", n_images: int = 0) -> Room:
    """The answer's token cap and the characters of page text that fit beside `fixed_text`
    and `n_images` images. Over HTTP: the cap as asked, any text (the server says if not).
    In-process: the KV cells the main session leaves free bound both."""
    if getattr(model.info, "backend", "") != "llama.cpp":
        return Room(max_tokens, None)
    free = model.n_ctx - model.n_tokens
    answer = min(max_tokens, max(64, free // 4))
    tokens = free - answer - 256 - n_images * _IMAGE_TOKENS_GUESS - len(fixed_text) // _CHARS_PER_TOKEN
    return Room(answer, max(1000, tokens * _CHARS_PER_TOKEN))


def model_summariser(model: Any, max_tokens: int = SUMMARY_TOKENS):
    """A `summarise(page_text, goal) -> str` for browse (visit pages)."""
    chat = side_chat(model, max_tokens)

    def summarise(text: str, goal: str) -> str:
        room = text_room(model, max_tokens, tool_text.EXTRACTOR_SYSTEM + tool_text.extractor_prompt("", goal))
        if room.chars is not None:
            text = text[:room.chars]
        try:
            return chat(tool_text.EXTRACTOR_SYSTEM, tool_text.extractor_prompt(text, goal))
        except ModelError:
            return ""  # browse falls back to the reference's "could not be read" text

    summarise.cache_key = f"model:{getattr(model.info, 'name', 'model')}"  # type: ignore[attr-defined]
    return summarise
