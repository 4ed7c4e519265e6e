"""A ModelSession that plays back recorded assistant turns.

``vdr replay --rerun`` uses it to re-run a session's tool calls with the
model's recorded outputs, and loop tests use it to drive the agent with no
model at all. It behaves like a real backend where a caller can tell:
``on_token`` receives the turn in word-sized pieces, stop strings and
``max_tokens`` truncate the turn, ``cancel`` stops it part-way, and every turn
it was shown is kept in ``transcript``. A grammar is ignored: recorded turns
are played as recorded.

When the script runs out, ``generate`` raises ``ScriptExhausted`` rather than
inventing a turn: a replay that asks for more turns than the trace holds has
diverged, and a loop test that does so has a bug; both should say so.

Token counts are approximate: whitespace-separated words (images count as none).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Sequence

from vdr_cli.errors import InputError
from vdr_cli.trace.jsonl import LineError, iter_lines

from .base import (GenerationResult, ModelInfo, SamplingParams, SessionStats, TokenCallback,
                   Turn)
from .errors import ModelError, NoVisionError

SideScript = Sequence[str] | Callable[[Sequence[Turn]], str]
_PIECE = re.compile(r"\s*\S+|\s+")  # a word with the whitespace before it; pieces join to the text


class ScriptExhausted(ModelError):
    """generate() was called after every recorded turn had been played."""


def words(text: str) -> int:
    """The approximate token count used throughout this backend."""
    return len(text.split())


class ScriptedSession:
    """Plays ``turns`` in order, one per ``generate`` call.

    ``side_turns`` answers ``side_generate``: a list played in order, or a
    function of the messages (e.g. a fake page summariser in tests).
    """

    def __init__(self, turns: Sequence[str], *, side_turns: SideScript = (),
                 name: str = "scripted", n_ctx: int = 32768, has_vision: bool = True) -> None:
        self._turns = list(turns)
        self._side = side_turns if callable(side_turns) else list(side_turns)
        self._next = 0
        self._next_side = 0
        self._transcript: list[Turn] = []
        self._turn_at: list[int] = []  # transcript index where each turn starts (start() is turn 0)
        self._pending_words = 0  # prompt words appended since the last generate
        self._stats = SessionStats()
        self._lock = threading.RLock()
        self._info = ModelInfo(name=name, backend="scripted", n_ctx=n_ctx, has_vision=has_vision)

    @classmethod
    def from_trace(cls, source: str | Path | IO[str] | Iterable[str], **kwargs: object) -> "ScriptedSession":
        """A session that replays the ``raw`` text of a trace's ``step`` events, in order of ``n``.

        ``source`` is a trace file path or an iterable of its lines. A malformed
        line, or a step without its raw text, raises InputError naming file:line.
        """
        if isinstance(source, (str, Path)):
            name = str(source)
            try:
                with open(source, encoding="utf-8") as fh:
                    steps = _read_steps(fh, name)
            except OSError as exc:
                raise InputError(f"{name}: cannot read trace ({exc.strerror or exc})") from None
            except UnicodeDecodeError:
                raise InputError(f"{name}: trace is not UTF-8 text") from None
        else:
            steps = _read_steps(source, getattr(source, "name", "<trace>"))
        return cls(steps, **kwargs)  # type: ignore[arg-type]

    # -- protocol properties ------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def n_ctx(self) -> int:
        return self._info.n_ctx

    @property
    def n_tokens(self) -> int:
        """Approximate: whitespace-separated words of every turn so far."""
        return sum(words(t.text) for t in self._transcript)

    @property
    def stats(self) -> SessionStats:
        return self._stats

    @property
    def transcript(self) -> list[Turn]:
        """Every turn of the conversation so far, the played assistant turns included (a copy)."""
        return list(self._transcript)

    @property
    def remaining(self) -> int:
        """Recorded turns not yet played."""
        return len(self._turns) - self._next

    # -- conversation ----------------------------------------------------------------------
    def start(self, system: str, user: Turn) -> None:
        with self._lock:
            if self._transcript:
                raise ModelError("session already started")
            self._turn_at.append(0)
            if system:
                self._add(Turn("system", system))
            self._add(user)

    def append(self, turn: Turn) -> None:
        with self._lock:
            self._turn_at.append(len(self._transcript))
            self._add(turn)

    def rewind(self, n_turns: int) -> None:
        """Keep the first ``n_turns`` turns of the conversation (start() is turn 0)."""
        with self._lock:
            if not 0 <= n_turns <= len(self._turn_at):
                raise ModelError(f"cannot rewind to turn {n_turns}: the conversation has {len(self._turn_at)}")
            if n_turns < len(self._turn_at):
                del self._transcript[self._turn_at[n_turns]:], self._turn_at[n_turns:]

    def _add(self, turn: Turn) -> None:
        if turn.images and not self._info.has_vision:
            raise NoVisionError(f"model {self._info.name} has no vision (has_vision=False)")
        self._transcript.append(turn)
        self._pending_words += words(turn.text)
        self._stats.images_encoded += len(turn.images)

    def generate(self, params: SamplingParams, stop: Sequence[str] = (),
                 grammar: str | None = None, on_token: TokenCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """The next recorded turn; raises ScriptExhausted when none is left."""
        with self._lock:
            t0 = time.perf_counter()
            if self._next >= len(self._turns):
                raise ScriptExhausted(f"scripted model: all {len(self._turns)} recorded turn(s) "
                                      "were played and another was asked for")
            recorded = self._turns[self._next]
            self._next += 1
            text, finish, hit = _play(recorded, params.max_tokens, stop, on_token, cancel)
            self._turn_at.append(len(self._transcript))
            self._transcript.append(Turn("assistant", text))
            prompt, completion = self._pending_words, words(text)
            self._pending_words = 0
            self._stats.generate_calls += 1
            self._stats.tokens_generated += completion
            self._stats.tokens_evaluated += prompt + completion
            return GenerationResult(text, (), finish, prompt, completion,  # type: ignore[arg-type]
                                    (time.perf_counter() - t0) * 1000, stop=hit)

    def amend_last(self, text: str | None, exact: bool = True) -> None:
        with self._lock:
            if not self._transcript or self._transcript[-1].role != "assistant":
                raise ModelError("no assistant turn to amend")
            if text is None:
                self._transcript.pop()
            else:
                self._transcript[-1] = Turn("assistant", text)

    def side_generate(self, messages: Sequence[Turn], params: SamplingParams,
                      grammar: str | None = None, stop: Sequence[str] = ()) -> GenerationResult:
        """The next side turn (or the side function's answer); the conversation is untouched."""
        with self._lock:
            t0 = time.perf_counter()
            if callable(self._side):
                recorded = self._side(list(messages))
            elif self._next_side < len(self._side):
                recorded = self._side[self._next_side]
                self._next_side += 1
            else:
                raise ScriptExhausted("scripted model: no recorded side generation left")
            text, finish, hit = _play(recorded, params.max_tokens, stop, None, None)
            prompt = sum(words(m.text) for m in messages)
            self._stats.side_calls += 1
            self._stats.side_tokens_evaluated += prompt
            return GenerationResult(text, (), finish, prompt, words(text),  # type: ignore[arg-type]
                                    (time.perf_counter() - t0) * 1000, stop=hit)

    def close(self) -> None:
        """Nothing to free; present for the protocol."""

    def __enter__(self) -> "ScriptedSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _play(recorded: str, max_tokens: int, stops: Sequence[str], on_token: TokenCallback | None,
          cancel: threading.Event | None) -> tuple[str, str, str | None]:
    """Cut the recorded turn the way a model run would: (text, finish_reason, stop string)."""
    finish, hit = "stop", None
    cut = min(((i, s) for s in stops if s and (i := recorded.find(s)) >= 0), default=None)
    if cut is not None:
        recorded, hit = recorded[:cut[0]], cut[1]
    pieces = _PIECE.findall(recorded)
    if sum(1 for p in pieces if p.strip()) > max_tokens:
        kept, n = [], 0
        for p in pieces:
            n += bool(p.strip())
            if n > max_tokens:
                break
            kept.append(p)
        pieces, finish, hit = kept, "length", None
    text = ""
    for piece in pieces:
        if cancel is not None and cancel.is_set():
            return text, "cancelled", None
        text += piece
        if on_token is not None:
            on_token(piece)
    return text, finish, hit


def _read_steps(lines: Iterable[str], source: str) -> list[str]:
    """The raw text of each step event, ordered by ``n`` (file order where n is missing)."""
    counter = _LineCounter(lines)
    steps: list[tuple[float, int, str]] = []
    for item in iter_lines(counter, source):
        if isinstance(item, LineError):
            raise InputError(str(item), hint="each line of a trace must be one JSON object")
        if item.get("type") != "step":
            continue
        raw, n = item.get("raw"), item.get("n")
        if not isinstance(raw, str):
            raise InputError(f"{source}:{counter.lineno}: step event has no raw text")
        order = n if isinstance(n, (int, float)) and not isinstance(n, bool) else float("inf")
        steps.append((order, len(steps), raw))
    return [raw for _, _, raw in sorted(steps)]


class _LineCounter:
    """Counts lines as iter_lines consumes them, so a record can be traced to its line."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self.lineno = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._it:
            self.lineno += 1
            yield line
