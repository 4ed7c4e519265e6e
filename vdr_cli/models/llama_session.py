"""In-process llama.cpp chat session (GGUF + optional mmproj) that evaluates each token once.

The session owns its KV cache. A new turn is tokenized on its own (with its
images, through libmtmd) and evaluated at the current *position*; generated
tokens stay as generated. Positions are tracked here because with M-RoPE
(Qwen-VL) an image takes fewer positions than tokens (KV cells).

Turn text is ChatML: ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; generation
starts after ``<|im_start|>assistant\\n``. Tokens that close a turn are kept
pending and evaluated together with the next turn, saving a decode per turn.
"""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import llama_mtmd as glue
from .llama_engine import LOADS, LlamaEngine, Work
from .llama_sampling import Sampler
from .base import (IMAGE_MARKER, find_stop, held_back, GenerationResult, ImageInput, ModelInfo, SamplingParams,
                   SessionStats, TokenCallback, Turn)
from .chat_template import Parts, turn_content
from .errors import ModelError
from .llama_eval import Seq, SequenceEval


@dataclass
class _Gen:
    text: str
    ids: list[int]
    finish: str
    stop: str | None
    eval_ms: float
    sample_ms: float


class LlamaSession(SequenceEval):
    """A ModelSession on llama-cpp-python's low-level API: one sequence of a LlamaEngine.

    From a model path it loads a private engine; ``engine.session()`` gives one on a
    shared engine.  Side generations run as a second sequence (``side_n_ctx>0``: in a
    dedicated context of that size, created on first use).
    """

    grammar_first = False  # True: the grammar filters the whole vocabulary before every token (tests, bench)

    def __init__(self, model_path: str | Path, mmproj_path: str | Path | None = None, *,
                 n_ctx: int = 4096, n_batch: int = 512, n_threads: int | None = None,
                 n_gpu_layers: int = -1, flash_attn: bool | None = None, side_n_ctx: int = 0,
                 include_stop: bool = False, verbose: bool = False, chat_template: str | None = None,
                 kv_type: str = "f16") -> None:
        engine = LlamaEngine(model_path, mmproj_path, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads,
                             n_gpu_layers=n_gpu_layers, flash_attn=flash_attn, side_n_ctx=side_n_ctx,
                             verbose=verbose, chat_template=chat_template, kv_type=kv_type)
        self._attach(engine, 0, 0 if side_n_ctx else 1, include_stop, owns=True)

    @classmethod
    def on_engine(cls, engine: LlamaEngine, main: int, side: int, include_stop: bool = False) -> "LlamaSession":
        self = cls.__new__(cls)
        self._attach(engine, main, side, include_stop, owns=False)
        return self

    def _attach(self, engine: LlamaEngine, main: int, side: int, include_stop: bool, owns: bool) -> None:
        self._engine, self._owns = engine, owns
        self._model = engine.model  # the llama_model (tests, diagnostics)
        self.model_path = engine.model_path
        self.include_stop = include_stop
        self._n_batch = engine.n_batch
        self._side_n_ctx = engine.side_n_ctx
        self._turns: list[tuple[int, int]] = []  # (n_tokens, n_pos) where each main turn starts
        self._lock = threading.RLock()
        self._stats = SessionStats(model_loads=LOADS[0])
        self._ctx: Any = engine.ctx
        self._vocab = engine.vocab
        self._proj: glue.Projector | None = engine.proj
        self._prompt_tokens = 0  # evaluated since the last generate(), reported by it
        self._prompt_ms = 0.0
        self._logits_ok = False  # the context's last logits belong to the main sequence
        self._last_turn: tuple[tuple[int, int], int, int] | None = None  # amend_last: turn mark, after-header pos/cells
        self._last_ids: list[int] = []
        self._n_ctx = engine.window
        self._main = Seq(self._ctx, main)
        self._side_id = side
        self._template = engine.template
        self._header = self._vocab.tokenize(self._template.header)
        self._close = self._vocab.tokenize(self._template.close)
        end = self._template.close.strip()
        self._im_end = self._vocab.single_token(end) if end else None
        self._info = ModelInfo(name=engine.name, backend="llama.cpp", n_ctx=self._n_ctx,
                               has_vision=self._proj is not None,
                               extra={"template": engine.template_source or self._template.kind})

    # -- properties ---------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_tokens(self) -> int:
        return self._main.cells + len(self._main.pending)

    @property
    def n_pos(self) -> int:
        """Next position of the main sequence (differs from n_tokens after M-RoPE images)."""
        return self._main.pos + len(self._main.pending)

    @property
    def stats(self) -> SessionStats:
        return self._stats

    @property
    def media_marker(self) -> str:
        return self._proj.marker if self._proj else IMAGE_MARKER

    def engine_tokens_decoded(self) -> int:
        """What llama.cpp counts as decoded in the main context (side sequence 1 included)."""
        return glue.engine_decoded(self._ctx)

    # -- conversation ---------------------------------------------------------------
    def start(self, system: str, user: Turn) -> None:
        with self._lock:
            if self.n_tokens:
                raise ModelError("session already started")
            parts = self._template.first_parts(system, turn_content(user, self.media_marker))
            # ChatML's system turn is the same in every session: the engine may share its cells.
            shared = self._template.turn_parts("system", system) if self._template.kind == "chatml" and system else []
            self._eval(self._main, parts, user.images, prefix=shared if parts[:len(shared)] == shared else [])
            self._turns.append((0, 0))

    def append(self, turn: Turn) -> None:
        with self._lock:
            mark = (self.n_tokens, self.n_pos)
            self._eval(self._main, self._template.turn_parts(turn.role, turn_content(turn, self.media_marker)), turn.images)
            self._turns.append(mark)

    def append_raw(self, text: str, images: Sequence[ImageInput] = ()) -> None:
        """Evaluate already templated text; ``media_marker`` once per image."""
        with self._lock:
            self._eval(self._main, text, images)

    def next_logits(self) -> list[float]:
        """Logits for the token after the context (tests, diagnostics)."""
        with self._lock:
            if self._main.pending and not self._owns:  # a shared context: logits of this round only
                self._main.pending, todo = [], self._main.pending
                return self._engine.submit(Work(self._ctx, self._main.seq_id, todo, self._main.pos, "logits"))
            if self._main.pending:
                self._eval(self._main, "", ())
            if not self._logits_ok:
                raise ModelError("no logits: the context does not end with evaluated text")
            return glue.last_logits(self._ctx, self._vocab.n_vocab)

    def generate(self, params: SamplingParams, stop: Sequence[str] = (),
                 grammar: str | None = None, on_token: TokenCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """Generate the assistant turn. Tokens after a stop string stay in the context
        (the model produced them); the returned text ends before the stop string
        (at its end with ``include_stop``)."""
        with self._lock:
            t0 = time.perf_counter()
            seq = self._main
            self._last_turn = None
            if self._free(seq) < len(self._header) + len(self._close) + 1:
                return self._result(_Gen("", [], "context_full", None, 0.0, 0.0), t0)
            mark = (self.n_tokens, self.n_pos)

            def prompt(smp: Sampler) -> None:
                self._eval(seq, "", (), extra=self._header, sampler=smp)
                self._turns.append(mark)
                self._last_turn = (mark, seq.pos, seq.cells)

            gen = self._run(seq, params, stop, grammar, on_token, cancel, prompt)
            self._last_ids = list(gen.ids)
            self._stats.generate_calls += 1
            self._stats.tokens_generated += len(gen.ids)
            return self._result(gen, t0)

    def amend_last(self, text: str | None, exact: bool = True) -> None:
        """Re-evaluate the last assistant turn as ``text`` (None: drop it with its header)
        unless ``text`` tokenizes to what was generated: the context then holds what the
        chat template gives for the amended conversation. ``exact=False`` also keeps
        generated tokens that spell ``text`` in another tokenization."""
        with self._lock:
            if self._last_turn is None:
                raise ModelError("no assistant turn to amend")
            mark, pos1, cells1 = self._last_turn
            self._last_turn, self._logits_ok = None, False
            if text is None:
                self.truncate(mark[0])
                return
            ids = self._vocab.tokenize(text, special=False)  # content, as a server reads it
            if ids == self._last_ids:
                return
            if not exact and b"".join(self._vocab.piece(t) for t in self._last_ids).decode("utf-8", "replace") == text:
                return  # the same text in the model's own tokens (grammar mode keeps them)
            # The generated tokens leave the KV cache; the new text is evaluated with the
            # next turn, as a generated turn's end is.
            seq = self._main
            self._engine.remove(seq.ctx, seq.seq_id, pos1)
            seq.pos, seq.cells, seq.pending = pos1, cells1, ids + list(self._close)

    def side_generate(self, messages: Sequence[Turn], params: SamplingParams,
                      grammar: str | None = None, stop: Sequence[str] = ()) -> GenerationResult:
        """A one-off generation on its own sequence; the main KV cells are not touched."""
        with self._lock:
            t0 = time.perf_counter()
            seq = Seq(self._engine.side_context() if self._side_n_ctx else self._ctx, self._side_id)
            text = self._render_messages(messages)
            images = [img for m in messages for img in m.images]
            self._logits_ok = False
            counted = [0]

            def prompt_eval(smp: Sampler) -> None:
                counted[0] = self._eval(seq, text, images, extra=self._header, sampler=smp)

            try:
                gen = self._run(seq, params, stop, grammar, None, None, prompt_eval)
                prompt = counted[0]
            finally:
                self._engine.remove(seq.ctx, seq.seq_id)
            self._stats.side_calls += 1
            ms = (time.perf_counter() - t0) * 1000
            return GenerationResult(gen.text, tuple(gen.ids), gen.finish, prompt, len(gen.ids),  # type: ignore[arg-type]
                                    ms, 0.0, gen.eval_ms, gen.sample_ms, gen.stop)

    @property
    def turn_starts(self) -> list[int]:
        """The n_tokens at which each turn of the conversation starts (start() is turn 0)."""
        return [n for n, _ in self._turns]

    def rewind(self, n_turns: int) -> None:
        """Keep the first ``n_turns`` turns; the KV cells of later ones are freed."""
        with self._lock:
            if not 0 <= n_turns <= len(self._turns):
                raise ModelError(f"cannot rewind to turn {n_turns}: the conversation has {len(self._turns)}")
            if n_turns < len(self._turns):
                self.truncate(self._turns[n_turns][0])

    def truncate(self, n_tokens: int) -> None:
        """Drop the main sequence's KV cells from ``n_tokens`` on (a turn boundary).

        Turns evaluated after it again continue at the right *position*: with
        M-RoPE an image takes fewer positions than cells, so the position of
        each boundary is the one recorded when the turn started.
        """
        with self._lock:
            if n_tokens == self.n_tokens:
                return
            marks = dict(self._turns)
            if n_tokens not in marks or n_tokens > self.n_tokens:
                raise ModelError(f"cannot truncate the context at {n_tokens} tokens: not a turn boundary")
            seq = self._main
            if n_tokens >= seq.cells:  # the cut falls in tokens not evaluated yet
                del seq.pending[n_tokens - seq.cells:]
            else:
                self._engine.remove(seq.ctx, seq.seq_id, marks[n_tokens])
                seq.cells, seq.pos, seq.pending = n_tokens, marks[n_tokens], []
            self._turns = [t for t in self._turns if t[0] < n_tokens]
            self._logits_ok = False

    # -- internals ------------------------------------------------------------------
    def _render_messages(self, messages: Sequence[Turn]) -> Parts:
        """A whole one-off conversation in the model's template."""
        msgs = list(messages)
        system = msgs.pop(0).text if msgs and msgs[0].role == "system" else ""
        if not msgs:
            raise ModelError("a side generation needs a user message")
        parts = self._template.first_parts(system, turn_content(msgs[0], self.media_marker))
        for m in msgs[1:]:
            parts += self._template.turn_parts(m.role, turn_content(m, self.media_marker))
        return parts

    def _run(self, seq: Seq, params: SamplingParams, stops: Sequence[str],
             grammar: str | None, on_token: TokenCallback | None,
             cancel: threading.Event | None, prompt: Callable[[Sampler], Any]) -> _Gen:
        """Evaluate the prompt (``prompt(sampler)``), then sample up to max_tokens; the last
        sampled token and the turn end are left pending.  Each token is sampled in the
        engine's round that decoded the one before it (other sequences decode in the same batch)."""
        sampler = Sampler(self._vocab, params, grammar, full=self.grammar_first)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text, ids, emitted = "", [], 0
        finish, hit, eval_ms = "length", None, 0.0
        close = list(self._close)
        engine = self._engine
        try:
            prompt(sampler)
            engine.generating(seq.seq_id, True)
            for n in range(params.max_tokens):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                if self._free(seq) < 1 + len(close):
                    finish = "context_full"
                    break
                tok = seq.sampled
                if self._vocab.is_eog(tok):
                    finish = "stop"
                    if tok == self._im_end:  # keep the model's own end token
                        close[0] = tok
                    break
                ids.append(tok)
                piece = decoder.decode(self._vocab.piece(tok))
                start = max(0, len(text) - max((len(s) for s in stops), default=0))
                text += piece
                hit = find_stop(text, stops, start)
                if hit is not None or n + 1 == params.max_tokens:
                    seq.pending.append(tok)  # evaluated with the next turn
                    if hit is not None:
                        finish = "stop"
                    break
                eval_ms += self._decode(seq, [tok], logits=True, sampler=sampler)
                if on_token is not None:
                    safe = len(text) - held_back(text, stops)
                    if safe > emitted:
                        on_token(text[emitted:safe])
                        emitted = safe
        finally:
            engine.generating(seq.seq_id, False)
            sample_ms = sampler.ms
            self._stats.grammar_rejects += sampler.rejected
            sampler.free()
            seq.pending += close  # also on errors/interrupts: the turn stays well-formed
        text += decoder.decode(b"", final=True)
        stop_str = None
        if hit is not None:
            idx, stop_str = hit
            text = text[:idx + len(stop_str)] if self.include_stop else text[:idx]
        if on_token is not None and len(text) > emitted:
            on_token(text[emitted:])
        self._stats.sample_ms += sample_ms
        if seq is self._main:
            self._logits_ok = False  # the pending tokens are not evaluated yet
        return _Gen(text, ids, finish, stop_str, eval_ms, sample_ms)

    def _result(self, gen: _Gen, t0: float) -> GenerationResult:
        result = GenerationResult(
            text=gen.text, token_ids=tuple(gen.ids), finish_reason=gen.finish,  # type: ignore[arg-type]
            prompt_tokens=self._prompt_tokens, completion_tokens=len(gen.ids),
            ms=(time.perf_counter() - t0) * 1000, prompt_ms=self._prompt_ms,
            eval_ms=gen.eval_ms, sample_ms=gen.sample_ms, stop=gen.stop)
        self._prompt_tokens, self._prompt_ms = 0, 0.0
        return result

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """End the session: its sequences go back to the engine (a private engine is freed). Idempotent."""
        with self._lock:
            if self._engine is None:
                return
            engine, self._engine = self._engine, None
            if self._owns:
                engine.close()
            else:
                engine.release(self._main.seq_id, self._side_id)

    def __enter__(self) -> "LlamaSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
