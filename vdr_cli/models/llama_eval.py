"""How a session's text and images reach its sequence of the engine's context.

A mixin of LlamaSession: a turn's chunks (text tokens, image embeddings through
libmtmd) are evaluated at the sequence's position, the shared system-prompt
prefix copied from the engine instead where it can be, and a half-evaluated
turn undone on failure so that the context stays consistent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from . import llama_mtmd as glue
from .base import ImageInput
from .chat_template import Parts
from .errors import ContextFullError, NoVisionError
from .llama_engine import Work
from .llama_sampling import Sampler
from .turn_tokens import turn_chunks

GEN_RESERVE = 8  # room kept by append() so that an assistant turn can still start


@dataclass
class Seq:
    """One sequence of a llama_context: where its next token goes and what it holds."""

    ctx: Any
    seq_id: int
    pos: int = 0  # next position (M-RoPE: an image adds n_pos, not n_tokens)
    cells: int = 0  # KV cells in use = tokens + image embeddings evaluated
    pending: list[int] = field(default_factory=list)  # decided, not yet evaluated
    sampled: int = -1  # the token sampled right after its last decode


class SequenceEval:
    """Evaluation on the session's sequences (``_main``, the side one); LlamaSession holds the state."""

    _main: "Seq"
    _ctx: Any
    _engine: Any

    def _ctx_size(self, seq: Seq) -> int:
        return self._n_ctx if seq.ctx is self._ctx else self._side_n_ctx

    def _free(self, seq: Seq) -> int:
        """KV cells still free for ``seq`` (main and side share one pool unless split)."""
        used = seq.cells + len(seq.pending)
        if seq is not self._main and seq.ctx is self._ctx:
            used += self._main.cells + len(self._main.pending)
        return self._ctx_size(seq) - used

    def _eval(self, seq: Seq, text: str | Parts, images: Sequence[ImageInput],
              extra: Sequence[int] = (), sampler: Sampler | None = None, prefix: Parts = ()) -> int:
        """Evaluate pending tokens + ``text`` (with images) + ``extra`` at seq.pos; return the count.

        With ``sampler``, the token after the last one is sampled (``seq.sampled``).
        ``prefix``: the leading parts of ``text`` that the engine may share between sessions.
        """
        if images and self._proj is None:
            raise NoVisionError(f"model {self.model_path.name} has no vision projector "
                                "(give an mmproj file to use images)")
        lead = [self._vocab.bos] if seq.pos == 0 and not seq.pending and self._vocab.add_bos else []
        with turn_chunks(self._vocab, self._proj, self.media_marker,
                         [(text, True)] if isinstance(text, str) else text, images) as chunks:
            parts = chunks.chunks
            needed = len(lead) + sum(c.n_tokens if c.is_image else len(c.tokens) for c in parts)
            needed += len(extra)
            reserve = GEN_RESERVE if seq is self._main and not extra else 0
            if needed + reserve > self._free(seq):
                raise ContextFullError(
                    f"context full: the turn needs {needed} tokens, "
                    f"{max(self._free(seq) - reserve, 0)} of {self._ctx_size(seq)} are free")
            t0 = time.perf_counter()
            saved = (seq.pos, seq.cells, list(seq.pending))
            todo = seq.pending + lead  # text waiting for the next decode
            n_pending, seq.pending = len(seq.pending), []
            try:
                if prefix and seq.pos == 0 and parts and not parts[0].is_image:
                    parts = _join_text(parts)  # framing and content chunks: the prefix spans several
                    needed -= self._copy_prefix(seq, todo, parts[0], prefix)
                self._eval_parts(seq, parts, todo, extra, sampler)
            except BaseException:
                # Undo a half-evaluated turn so that the context stays consistent.
                self._engine.remove(seq.ctx, seq.seq_id, saved[0])
                seq.pos, seq.cells, seq.pending = saved
                raise
            if seq is self._main:
                self._prompt_tokens += needed + n_pending
                self._prompt_ms += (time.perf_counter() - t0) * 1000
            return needed + n_pending

    def _copy_prefix(self, seq: Seq, todo: list[int], first: glue.Chunk, prefix: Parts) -> int:
        """Take the shared prefix's cells from the engine instead of evaluating them; return how many."""
        shared = todo + [t for text, framing in prefix for t in self._vocab.tokenize(text, special=framing)]
        full = todo + first.tokens
        if full[:len(shared)] != shared or len(full) == len(shared):
            return 0  # the prefix tokenizes differently inside the whole text: evaluate it all
        n = self._engine.copy_prefix(seq.seq_id, shared)
        if n:
            del todo[:]
            first.tokens = full[n:]
            seq.pos = seq.cells = n
        return n

    def _eval_parts(self, seq: Seq, parts: list[glue.Chunk], todo: list[int],
                    extra: Sequence[int], sampler: Sampler | None = None) -> None:
        for chunk in parts:
            if not chunk.is_image:
                todo += chunk.tokens
                continue
            self._decode(seq, todo, logits=False)
            todo = []
            t1 = time.perf_counter()
            proj, at = self._proj, seq.pos
            seq.pos = self._engine.submit(Work(seq.ctx, seq.seq_id, [], at, fn=lambda: proj.eval_image(  # type: ignore[union-attr]
                seq.ctx, chunk, at, seq.seq_id, self._n_batch)))
            self._count(seq, chunk.n_tokens, logits=False)
            self._stats.encode_ms += (time.perf_counter() - t1) * 1000
            self._stats.images_encoded += 1
            self._stats.image_tokens += chunk.n_tokens
        self._decode(seq, todo + list(extra), logits=True, sampler=sampler)

    def _decode(self, seq: Seq, tokens: list[int], logits: bool, sampler: Sampler | None = None) -> float:
        """Decode text tokens at seq.pos (sampling the next one with ``sampler``); return the decode time (ms)."""
        if not tokens:
            return 0.0
        work = Work(seq.ctx, seq.seq_id, list(tokens), seq.pos,
                    "sample" if sampler is not None else "keep" if logits else None, sampler)
        result = self._engine.submit(work)
        if sampler is not None:
            seq.sampled = result
        ms = work.ms
        seq.pos += len(tokens)
        self._count(seq, len(tokens), logits)
        self._stats.eval_ms += ms
        return ms

    def _count(self, seq: Seq, n: int, logits: bool) -> None:
        seq.cells += n
        if seq is self._main:
            self._stats.tokens_evaluated += n
            self._logits_ok = logits
        else:
            self._stats.side_tokens_evaluated += n
            if seq.ctx is self._ctx:
                self._logits_ok = False


def _join_text(chunks: list[glue.Chunk]) -> list[glue.Chunk]:
    """Consecutive text chunks as one (they are decoded together anyway)."""
    out: list[glue.Chunk] = []
    for chunk in chunks:
        if out and not chunk.is_image and not out[-1].is_image:
            out[-1] = glue.Chunk(False, 0, 0, out[-1].tokens + chunk.tokens)
        else:
            out.append(chunk)
    return out
