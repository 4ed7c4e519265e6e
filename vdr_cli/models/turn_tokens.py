"""A turn's tokens for the in-process engine: framing may be control tokens, content never.

Only the chat template's own text (`<|im_start|>user\\n`, `<|im_end|>\\n`, ...) is
tokenized with special-token parsing on. Content (pages, search results, files,
the question) is tokenized with it off, so `<|im_end|>\\n<|im_start|>system` in a
page stays text, as it is when an HTTP server gets it as message content.
Each image is tokenized on its own marker by libmtmd, which adds the model's
image wrapper tokens (`<|vision_start|>`, ...) itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from . import llama_mtmd as glue
from .base import ImageInput
from .chat_template import Parts
from .errors import ModelError


@contextlib.contextmanager
def turn_chunks(vocab: Any, proj: Any, marker: str, parts: Parts,
                images: Sequence[ImageInput]) -> Iterator[glue.ChunkList]:
    """Text and image chunks of `parts` (text, is_framing) with one `marker` per image."""
    out: list[glue.Chunk] = []
    lists: list[glue.ChunkList] = []
    queue = list(images) if proj is not None else []
    try:
        for text, framing in parts:
            pieces = text.split(marker) if queue else [text]
            for k, piece in enumerate(pieces):
                if k:
                    if queue:
                        listed = proj.tokenize(marker, [queue.pop(0)])
                        lists.append(listed)
                        out.extend(listed.chunks)
                    else:  # more markers than images: the extra ones are text
                        piece = marker + piece
                if piece:
                    out.append(glue.Chunk(False, 0, 0, vocab.tokenize(piece, special=framing)))
        if queue:
            raise ModelError(f"turn has {len(images)} image(s) but fewer image markers")
        yield glue.ChunkList(None, out)
    finally:
        for listed in lists:
            listed.close()
