"""Page summaries for `visit` as side generations of the session's own model.

A side generation never touches the main conversation's context (the model
backends guarantee it), and one runs at a time: an in-process model has one
set of free KV cells to lend.
"""

from __future__ import annotations

import threading
from typing import Any

from vdr_cli.agent import tool_text
from vdr_cli.models.base import SamplingParams, Turn
from vdr_cli.models.errors import ModelError

SUMMARY_TOKENS = 1024


def model_summariser(model: Any):
    """A `summarise(page_text, goal) -> str` for browse, on `model.side_generate`."""
    lock = threading.Lock()

    def summarise(text: str, goal: str) -> str:
        with lock:
            # Keep the page within the context cells the main session leaves free.
            room_tokens = model.n_ctx - model.n_tokens - SUMMARY_TOKENS - 512
            text = text[: max(1000, room_tokens * 3)]
            try:
                result = model.side_generate([Turn("user", tool_text.extractor_prompt(text, goal))],
                                             SamplingParams(temperature=0.0, max_tokens=SUMMARY_TOKENS))
            except ModelError:
                return ""  # browse falls back to the reference's "could not be read" text
            return result.text

    summarise.cache_key = f"model:{getattr(model.info, 'name', 'model')}"  # type: ignore[attr-defined]
    return summarise
