"""One loaded GGUF model serving many sessions as sequences of one llama.cpp context.

The engine owns the model, its vocabulary, chat template, vision projector and
one context with a KV stream of ``window`` cells for each of ``n_parallel``
sessions, one for each session's page summaries (side sequences) and one for
the system-prompt prefix they share (copied, not re-evaluated).  Sessions (``LlamaSession``) run in their own
threads; whatever they want decoded goes through ``submit``, which batches the
work of every waiting sequence into one ``llama_decode`` (continuous batching:
a session busy with a tool is simply not in the batch) and samples each
sequence's next token right after it, while its logits are still there.

No thread of its own: the first waiting caller decodes a round for everyone,
so a single session pays no hand-over between threads.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import llama_mtmd as glue
from .chat_template import from_source
from .errors import ContextFullError, ModelError

LOADS = [0]  # model loads in this process (the batch's stats show there is one)
_MAX_WAIT_S = 0.02  # longest a round waits for a generating sequence to come back with its next token
PREFIX_CELLS = 4096  # longest shared system-prompt prefix


@dataclass
class Work:
    """Tokens for one sequence at ``pos``; ``want`` "sample" (a Sampler) or "logits" after the last."""

    ctx: Any
    seq_id: int
    tokens: list[int]
    pos: int
    want: str | None = None  # "sample", "logits", "keep" (logits computed, left in the context)
    sampler: Any = None
    fn: Callable[[], Any] | None = None  # exclusive work instead (image chunks through libmtmd)
    done: bool = False
    offset: int = 0
    result: Any = None
    error: BaseException | None = None
    ms: float = 0.0
    queued: float = field(default_factory=time.perf_counter)
    finished: threading.Event = field(default_factory=threading.Event)  # set with ``done`` (shared engines)


class LlamaEngine:
    """A model and one multi-sequence context; ``session()`` opens a LlamaSession on it."""

    def __init__(self, model_path: str | Path, mmproj_path: str | Path | None = None, *,
                 n_ctx: int = 4096, n_parallel: int = 1, n_batch: int = 512, n_threads: int | None = None,
                 n_gpu_layers: int = -1, flash_attn: bool | None = None, side_n_ctx: int = 0,
                 share_prefix: bool = False, verbose: bool = False, chat_template: str | None = None,
                 kv_type: str = "f16") -> None:
        glue.init_backend(verbose)
        if n_parallel < 0:
            raise ModelError("n_parallel must be at least 1 (0: as many as memory allows)")
        self.model_path = Path(model_path)
        self.n_batch = n_batch
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.flash_attn = flash_attn
        self.side_n_ctx = side_n_ctx
        self.share_prefix = share_prefix
        self.kv_type = kv_type
        self.model: Any = None
        self.ctx: Any = None
        self.side_ctx: Any = None
        self.proj: glue.Projector | None = None
        self._batch: Any = None
        self._cond = threading.Condition()
        self._prefix_lock = threading.Lock()
        self._queue: list[Work] = []
        self._busy = False
        self._decoder: threading.Thread | None = None  # the decoding thread of a shared engine
        self._closing = False
        self._generating: set[int] = set()
        self._prefixes: dict[tuple[int, ...], int] = {}  # prefix tokens -> the sequence holding them
        self._prefix_cells = 0
        self.rounds = 0  # llama_decode calls made by the scheduler
        self.batched_tokens = 0
        try:
            self.model = glue.load_model(self.model_path, n_gpu_layers)
            LOADS[0] += 1
            self.vocab = glue.Vocab(self.model)
            # 0: as many sessions as half the available memory holds streams for
            self.n_parallel = n_parallel or max(1, min(16, (available_memory() // 2 // max(
                1, kv_bytes_per_cell(self.model) * n_ctx) - 1) // 2))
            self.window = n_ctx  # cells per session (and per side sequence)
            shared = self.n_parallel > 1  # one session alone keeps the single pool (and its memory)
            self.share_prefix = share_prefix and shared
            # Shared: sequence 0 holds the prefix, then a conversation and a side
            # sequence per session, each in a stream of its own (kv_unified off):
            # a session's tokens are then the ones it produces alone.
            # Conversations take ids 1..N and side sequences N+1..2N: a batch of
            # conversations then spans N neighbouring streams (a decode works over
            # the range of streams from its lowest id to its highest: 1, 3, 5, 7
            # cost 7 streams, 1.5x the time of 1..4).
            n = self.n_parallel
            self._free_main = list(range(1, n + 1)) if shared else [0]
            self._free_side = list(range(n + 1, 2 * n + 1)) if shared else [1]
            n_seq = 2 * self.n_parallel + 1 if shared else (1 if side_n_ctx else 2)
            total = n_ctx * n_seq if shared else n_ctx
            self.ctx = glue.new_context(self.model, n_ctx=total, n_batch=n_batch, n_threads=self.n_threads,
                                        flash_attn=flash_attn, n_seq_max=n_seq, kv_unified=not shared,
                                        kv_type=kv_type)
            self._batch = glue.llama().llama_batch_init(n_batch, 0, 1)
            if mmproj_path is not None:
                self.proj = glue.Projector(Path(mmproj_path), self.model, n_threads=self.n_threads,
                                           use_gpu=n_gpu_layers != 0, flash_attn=flash_attn)
        except BaseException:
            self.close()
            raise
        self.n_ctx_total = glue.llama().llama_n_ctx(self.ctx)
        self.window = self.n_ctx_total // n_seq if shared else self.n_ctx_total
        template = glue.model_meta(self.model, "tokenizer.chat_template") or ""
        self.template_source = "chatml (fallback)" if not (template or chat_template) else None
        # The GGUF's own template (or the registry's override); ChatML when absent.
        self.template = from_source(chat_template or template or None,
                                    bos=self.vocab.special_text(self.vocab.bos) if self.vocab.add_bos else "",
                                    eos=self.vocab.special_text(self.vocab.eos))
        self.name = glue.model_meta(self.model, "general.name") or self.model_path.stem

    # -- sessions -----------------------------------------------------------------------
    def session(self, include_stop: bool = False) -> Any:
        """A new session on two free sequences (conversation, side work)."""
        from .llama_session import LlamaSession

        with self._cond:
            if not self._free_main or not self._free_side:
                raise ModelError(f"all {self.n_parallel} session slots of the model are in use")
            main, side = self._free_main.pop(0), self._free_side.pop(0)
        return LlamaSession.on_engine(self, main, side, include_stop=include_stop)

    def release(self, main: int, side: int) -> None:
        """A session ended: its cells go back to the pool, its sequence ids to the free lists."""
        for seq_id in (main, side):
            self.remove(self.ctx, seq_id)
        with self._cond:
            self._free_main = sorted(self._free_main + [main])
            self._free_side = sorted(self._free_side + [side])

    def remove(self, ctx: Any, seq_id: int, from_pos: int = -1) -> None:
        """Drop a sequence's cells at positions >= from_pos (all with -1), between rounds."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            if ctx is not None:
                glue.seq_remove(ctx, seq_id, from_pos)

    def kv_bytes_per_cell(self) -> int:
        return kv_bytes_per_cell(self.model)

    # -- the shared prefix -----------------------------------------------------------------
    def copy_prefix(self, seq_id: int, tokens: list[int]) -> int:
        """Give ``seq_id`` (empty) the cells of ``tokens``, evaluated once for all sessions; return how many.

        Returns 0 when prefixes are not shared or the prefix does not fit its room.
        """
        if not self.share_prefix or not tokens:
            return 0
        key = tuple(tokens)
        lc = glue.llama()
        with self._prefix_lock:  # the first session evaluates it; the others wait for its cells
            owner = self._prefixes.get(key)
            if owner is None:
                if self._prefix_cells or len(tokens) > min(PREFIX_CELLS, self.window):
                    return 0  # one prefix (the system prompt of a batch) is what is shared
                owner = 0
                self.submit(Work(self.ctx, owner, list(tokens), 0))
                self._prefixes[key] = owner
                self._prefix_cells = len(tokens)
        mem = lc.llama_get_memory(self.ctx)
        with self._cond:  # between rounds: the copy must not race a decode
            while self._busy:
                self._cond.wait()
            lc.llama_memory_seq_cp(mem, owner, seq_id, -1, -1)
        return len(tokens)

    # -- decoding ------------------------------------------------------------------------
    def generating(self, seq_id: int, on: bool) -> None:
        """Mark a sequence as in a token loop: rounds wait (briefly) for its next token."""
        with self._cond:
            (self._generating.add if on else self._generating.discard)(seq_id)
            self._cond.notify_all()

    def submit(self, work: Work) -> Any:
        """Decode ``work`` together with what other sequences wait for; return its result.

        One session alone decodes in its own thread.  Several hand their work to
        one decoder thread: llama.cpp's OpenMP runtime keeps a team of worker
        threads per calling thread, and rounds started from whichever session
        thread came first ran at half speed (teams of idle callers compete).
        """
        with self._cond:
            self._queue.append(work)
            self._cond.notify_all()
            if self.n_parallel > 1:
                self._start_decoder()
            else:
                while not work.done:
                    if self._busy:
                        self._cond.wait()  # the round's end notifies
                        continue
                    self._one_round()
        if self.n_parallel > 1:
            # Each waits on its own event: a shared condition would wake every waiting
            # session at each submit, and those wake-ups preempt the compute threads.
            work.finished.wait()
        if work.error is not None:
            raise work.error
        return work.result

    def _start_decoder(self) -> None:
        if self._decoder is None:
            self._decoder = threading.Thread(target=self._decode_loop, name="vdr-decoder", daemon=True)
            self._decoder.start()

    def _decode_loop(self) -> None:
        with self._cond:
            while not self._closing:
                if not self._queue:  # (rounds run only here: never busy at this point)
                    self._cond.wait()
                elif not self._ready():  # a new item in the queue notifies: the wait ends early
                    self._cond.wait(max(0.0005, self._queue[0].queued + _MAX_WAIT_S - time.perf_counter()))
                else:
                    self._one_round()
            for w in self._queue:  # closed under waiting sessions: they fail, they do not hang
                w.error, w.done = ModelError("the model was closed"), True
                w.finished.set()
            self._queue.clear()

    def _one_round(self) -> None:
        """Take a round's work and decode it, the lock released meanwhile (called holding it)."""
        todo = self._take()
        self._busy = True
        self._cond.release()
        try:
            self._round(todo)
        except BaseException as exc:  # noqa: BLE001 - never leave a waiting session hanging
            for w in todo:
                if not w.done:
                    w.error, w.done = exc, True
        finally:
            self._cond.acquire()
            self._busy = False
            self._queue[:0] = [w for w in todo if not w.done]
            for w in todo:
                if w.done:
                    w.finished.set()
            self._cond.notify_all()

    def _ready(self) -> bool:
        """Whether a round can start (the queue is not empty): every generating sequence has
        queued its next token, or the oldest work has waited long enough."""
        if time.perf_counter() - self._queue[0].queued > _MAX_WAIT_S:
            return True
        return self._generating <= {w.seq_id for w in self._queue}

    def _take(self) -> list[Work]:
        """This round's work: an exclusive item alone, else next tokens first, then prompt pieces."""
        head = self._queue[0]
        if head.fn is not None or head.ctx is not self.ctx:
            return [self._queue.pop(0)]
        take, room = [], self.n_batch
        for w in sorted((w for w in self._queue if w.fn is None and w.ctx is self.ctx),
                        key=lambda w: len(w.tokens) - w.offset > 1):
            if room <= 0:
                break
            take.append(w)
            room -= len(w.tokens) - w.offset
        for w in take:
            self._queue.remove(w)
        # In sequence order: llama.cpp splits a batch whose sequences come out of order
        # into more micro-batches (4 next tokens in arrival order: 28-30 ms a round
        # instead of 21-22 ms).
        return sorted(take, key=lambda w: w.seq_id)

    def _round(self, todo: list[Work]) -> None:
        if todo[0].fn is not None:
            w = todo[0]
            try:
                w.result = w.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting session
                w.error = exc
            w.done = True
            return
        lc = glue.llama()
        b = self._batch
        n, outs = 0, []
        for w in todo:
            left = len(w.tokens) - w.offset
            part = min(left, self.n_batch - n)
            for i in range(part):
                b.token[n] = w.tokens[w.offset + i]
                b.pos[n] = w.pos + w.offset + i
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = w.seq_id
                b.logits[n] = 0
                n += 1
            w.offset += part
            if w.offset == len(w.tokens):
                if w.want is not None:
                    b.logits[n - 1] = 1
                outs.append((w, n - 1))
        b.n_tokens = n
        t0 = time.perf_counter()
        rc = lc.llama_decode(todo[0].ctx, b) if n else 0
        ms = (time.perf_counter() - t0) * 1000
        self.rounds += 1
        self.batched_tokens += n
        if rc != 0:
            error = (ContextFullError("no free KV cells left in the context") if rc == 1
                     else ModelError(f"llama_decode failed (code {rc})"))
            for w in todo:
                w.error, w.done = error, True
            return
        for w in todo:
            w.ms += ms
        for w, idx in outs:
            try:
                if w.want == "sample":
                    w.result = w.sampler.sample(w.ctx, idx)
                elif w.want == "logits":
                    w.result = list(lc.llama_get_logits_ith(w.ctx, idx)[:self.vocab.n_vocab])
            except BaseException as exc:  # noqa: BLE001 - one sequence's sampler fails alone
                w.error = exc
            w.done = True

    def side_context(self) -> Any:
        """The dedicated context for side work when ``side_n_ctx`` is set (single-session engines)."""
        if self.side_ctx is None:
            self.side_ctx = glue.new_context(self.model, n_ctx=self.side_n_ctx, n_batch=self.n_batch,
                                             n_threads=self.n_threads, flash_attn=self.flash_attn, n_seq_max=1,
                                             kv_type=self.kv_type)
        return self.side_ctx

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Free the projector, contexts and model (idempotent)."""
        lc = glue.llama()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._busy:
                self._cond.wait()
        if self._decoder is not None:
            self._decoder.join()
            self._decoder = None
        with self._cond:
            if self.proj is not None:
                self.proj.free()
                self.proj = None
            if self._batch is not None:
                lc.llama_batch_free(self._batch)
                self._batch = None
            for attr in ("side_ctx", "ctx"):
                if getattr(self, attr) is not None:
                    lc.llama_free(getattr(self, attr))
                    setattr(self, attr, None)
            if self.model is not None:
                lc.llama_model_free(self.model)
                self.model = None

    def __enter__(self) -> "LlamaEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kv_bytes_per_cell(model: Any) -> int:
    """Bytes one KV cell takes (f16 keys and values over every layer)."""
    lc = glue.llama()
    n_head = max(1, lc.llama_model_n_head(model))
    head_dim = lc.llama_model_n_embd(model) // n_head
    return 2 * 2 * lc.llama_model_n_layer(model) * lc.llama_model_n_head_kv(model) * head_dim


def available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
