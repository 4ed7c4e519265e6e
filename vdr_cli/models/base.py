"""The one protocol every model backend implements: a stateful chat session.

A session owns its context. Turns are appended once and stay; the assistant's
generated tokens stay as generated. Backends that can keep a KV cache
(in-process llama.cpp) evaluate each token of the conversation exactly once.

Importing this module is cheap: no llama.cpp, no numpy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Protocol, Sequence, runtime_checkable

FinishReason = Literal["stop", "length", "context_full", "cancelled"]

# Where an image goes inside Turn.text. Images without a marker of their own
# are placed before the text, the way Qwen-VL's chat template places them.
IMAGE_MARKER = "<__media__>"


@dataclass(frozen=True)
class ImageInput:
    """An image by file path or encoded bytes (JPEG, PNG, ...), with the id the prompt uses."""

    id: str
    path: Path | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError(f"image {self.id!r}: give exactly one of path or data")

    def read_bytes(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()  # type: ignore[arg-type]


@dataclass(frozen=True)
class Turn:
    """One chat message. ``role`` is "system", "user", "tool" or "assistant"."""

    role: str
    text: str
    images: Sequence[ImageInput] = ()
    # The content parts as given (str or ImageInput), when a caller must control them:
    # the OpenAI wire sends them one part each; text and images hold the same content.
    parts: Sequence["str | ImageInput"] = ()

    @classmethod
    def from_parts(cls, role: str, parts: Sequence["str | ImageInput"]) -> "Turn":
        """A turn from ordered text and image parts (images at markers in ``text``)."""
        text = "".join(IMAGE_MARKER if isinstance(p, ImageInput) else p for p in parts)
        return cls(role, text, tuple(p for p in parts if isinstance(p, ImageInput)), tuple(parts))


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; ``temperature <= 0`` means greedy, ``seed=None`` a random seed."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None
    max_tokens: int = 2048
    # Fields the user set. An HTTP request sends temperature and top_p (as the reference
    # eval does) and, of the others, only these; in-process every field applies.
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GenerationResult:
    """One assistant turn (or side generation) and what it cost.

    ``prompt_tokens`` counts the tokens (and image embeddings) evaluated for
    this turn since the previous generation; ``prompt_ms`` is their eval time.
    ``ms`` is the wall time of the generate call; ``eval_ms`` and
    ``sample_ms`` split the time llama.cpp spent decoding and sampling.
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ms: float
    prompt_ms: float = 0.0
    eval_ms: float = 0.0
    sample_ms: float = 0.0
    stop: str | None = None  # the stop string that ended the turn, if any


@dataclass
class SessionStats:
    """Running totals over a session's life (the main conversation and side work)."""

    tokens_evaluated: int = 0  # text tokens + image embeddings decoded, main sequence
    images_encoded: int = 0
    image_tokens: int = 0
    tokens_generated: int = 0
    generate_calls: int = 0
    side_calls: int = 0
    side_tokens_evaluated: int = 0
    eval_ms: float = 0.0  # llama_decode time (prompts and generation)
    sample_ms: float = 0.0
    encode_ms: float = 0.0  # image encode + image-embedding decode
    grammar_rejects: int = 0  # sampled tokens the grammar refused (then resampled over the allowed ones)
    model_loads: int = 0  # model loads in this process when the session began (a batch loads once)

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelInfo:
    """What a caller may want to know about the loaded model."""

    name: str
    backend: str
    n_ctx: int
    has_vision: bool
    extra: dict[str, str] = field(default_factory=dict)


TokenCallback = Callable[[str], None]


@runtime_checkable
class ModelSession(Protocol):
    """A multi-turn conversation with one model.

    ``start`` begins the conversation (system prompt + first user turn),
    ``append`` adds user/tool turns, ``generate`` produces the assistant turn,
    which then stays part of the context, until ``rewind`` drops it. ``side_generate`` is one-off work
    (e.g. a page summary) that must leave the conversation untouched.
    Errors: ``vdr_cli.models.errors`` (NoVisionError, ContextFullError, ...).
    """

    @property
    def info(self) -> ModelInfo: ...

    @property
    def n_ctx(self) -> int: ...

    @property
    def n_tokens(self) -> int:
        """Context fill in tokens (KV cells), pending ones included."""
        ...

    @property
    def stats(self) -> SessionStats: ...

    def start(self, system: str, user: Turn) -> None: ...

    def append(self, turn: Turn) -> None: ...

    def generate(
        self,
        params: SamplingParams,
        stop: Sequence[str] = (),
        grammar: str | None = None,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult: ...

    def amend_last(self, text: str | None, exact: bool = True) -> None:
        """Make the last assistant turn read ``text`` in the context (None: remove the turn);
        ``exact=False`` lets a backend keep generated tokens that spell the same text.

        The reference keeps each turn cut at a hallucinated ``<tool_response>`` and
        stripped, and leaves a third repetitive turn out; the next request must hold
        exactly that (a no-op when ``text`` is what was generated)."""
        ...

    def side_generate(
        self,
        messages: Sequence[Turn],
        params: SamplingParams,
        grammar: str | None = None,
    ) -> GenerationResult: ...

    def rewind(self, n_turns: int) -> None:
        """Keep the first ``n_turns`` turns (``start`` is turn 0; each append and
        generate one more): context folding drops what follows and appends anew."""
        ...

    def close(self) -> None: ...


def held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string.

    Streamed text is shown to callers only up to that point, so a stop string
    split across tokens never leaks out half-printed.
    """
    held = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), held, -1):
            if text.endswith(s[:k]):
                held = k
                break
    return held


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[int, str] | None:
    """The earliest stop string in ``text[start:]`` and where it begins, or None."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s, start)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return best
