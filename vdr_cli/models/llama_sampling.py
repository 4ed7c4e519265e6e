"""Per-sequence token sampling with a GBNF grammar checked after sampling.

Applying a grammar to all 49k candidates costs milliseconds a token.  Like
llama.cpp's common sampler, a token is first sampled without the grammar and
only checked against it; when it is refused the chain samples again from
the allowed tokens among the best few hundred (the whole vocabulary when
those cannot give the same choice).  Greedy decoding picks the same tokens
as the grammar-first chain: the best token is either allowed (and then it
is the best allowed one) or the best allowed token is found by the resample.  ``full=True`` keeps the grammar-first chain (tests).
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

from .base import SamplingParams
from .errors import ModelError
from .llama_mtmd import Vocab, last_log_error, llama

_TOP = 256  # best logits a refused token is resampled from before the whole vocabulary is tried


def _chain(vocab: Vocab, params: SamplingParams, grammar: Any) -> Any:
    lc = llama()
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    add = lambda s: lc.llama_sampler_chain_add(chain, s)  # noqa: E731
    if params.repeat_penalty != 1.0:
        add(lc.llama_sampler_init_penalties(vocab.n_vocab, 64, params.repeat_penalty, 0.0, 0.0))
    if grammar is not None:
        add(grammar)  # grammar first: top-k etc. only ever see tokens the grammar allows
    if params.temperature <= 0:
        add(lc.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(lc.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(lc.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(lc.llama_sampler_init_min_p(params.min_p, 1))
    add(lc.llama_sampler_init_temp(params.temperature))
    add(lc.llama_sampler_init_dist(lc.LLAMA_DEFAULT_SEED if params.seed is None else params.seed))
    return chain


def _grammar(vocab: Vocab, text: str) -> Any:
    lc = llama()
    g = lc.llama_sampler_init_grammar(vocab.ptr, text.encode("utf-8"), b"root")
    if not g:
        raise ModelError("invalid GBNF grammar" + (f": {last_log_error()}" if last_log_error() else ""))
    return g


class Sampler:
    """One sequence's sampler: the chain, and the grammar kept beside it (unless ``full``)."""

    def __init__(self, vocab: Vocab, params: SamplingParams, grammar: str | None, full: bool = False) -> None:
        import numpy as np

        self.n_vocab = vocab.n_vocab
        self.grammar = _grammar(vocab, grammar) if grammar is not None else None
        self.full = full or self.grammar is None
        self.chain = _chain(vocab, params, self.grammar if full else None)
        if full:
            self.grammar = None  # owned by the chain now
        self.greedy = params.temperature <= 0
        self.top_k = params.top_k
        self.rejected = 0  # tokens the grammar turned down (resampled over the whole vocabulary)
        self.ms = 0.0  # time spent sampling
        lc = llama()
        self._dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        self._cur = np.zeros(self.n_vocab, dtype=self._dtype)
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._arr = lc.llama_token_data_array(
            data=self._cur.ctypes.data_as(ctypes.POINTER(lc.llama_token_data)), size=self.n_vocab, selected=-1,
            sorted=False)
        self._one = lc.llama_token_data()
        self._one_arr = lc.llama_token_data_array(data=ctypes.pointer(self._one), size=1, selected=-1, sorted=False)

    def _fill(self, ctx: Any, idx: int) -> None:
        import numpy as np

        ptr = llama().llama_get_logits_ith(ctx, idx)
        self._cur["id"] = self._ids
        self._cur["logit"] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        self._cur["p"] = 0.0
        self._arr.size, self._arr.selected, self._arr.sorted = self.n_vocab, -1, False

    def _resample(self, ctx: Any, idx: int) -> int:
        """The chain's choice among allowed tokens: first among the best ``_TOP`` logits, where
        that gives what the whole vocabulary would (greedy: the best allowed token; top-k: at
        least k allowed), else over the whole vocabulary."""
        import numpy as np

        self._fill(ctx, idx)
        logits = self._cur["logit"]
        top = np.argpartition(-logits, _TOP)[:_TOP]
        top = top[np.argsort(-logits[top], kind="stable")]
        part = self._cur[top]  # a copy, best first
        self._cur[:_TOP] = part
        self._arr.size, self._arr.selected, self._arr.sorted = _TOP, -1, False
        llama().llama_sampler_apply(self.grammar, ctypes.byref(self._arr))
        allowed = int(np.count_nonzero(self._cur["logit"][:_TOP] != -np.inf))
        if allowed and (self.greedy or (self.top_k > 0 and allowed >= self.top_k)):
            return self._pick(self.chain)
        self._fill(ctx, idx)
        return self._pick(self.grammar, self.chain)

    def _pick(self, *samplers: Any) -> int:
        lc = llama()
        for s in samplers:
            lc.llama_sampler_apply(s, ctypes.byref(self._arr))
        sel = self._arr.selected
        if sel < 0 or sel >= self._arr.size:
            raise ModelError("the sampler selected no token")
        return int(self._cur["id"][sel])

    def sample(self, ctx: Any, idx: int) -> int:
        """Sample from the logits of batch index ``idx`` and accept the token."""
        t0 = time.perf_counter()
        try:
            return self._sample(ctx, idx)
        finally:
            self.ms += (time.perf_counter() - t0) * 1000

    def _sample(self, ctx: Any, idx: int) -> int:
        lc = llama()
        if self.full:
            return int(lc.llama_sampler_sample(self.chain, ctx, idx))  # accepts the token itself
        self._fill(ctx, idx)
        tok = self._pick(self.chain)
        if self.grammar is not None:
            one = self._one
            one.id, one.logit, one.p = tok, 0.0, 0.0
            self._one_arr.size, self._one_arr.selected, self._one_arr.sorted = 1, -1, False
            lc.llama_sampler_apply(self.grammar, ctypes.byref(self._one_arr))
            if one.logit == float("-inf"):  # rejected: resample from the tokens the grammar allows
                self.rejected += 1
                tok = self._resample(ctx, idx)
            lc.llama_sampler_accept(self.grammar, tok)
        lc.llama_sampler_accept(self.chain, tok)
        return tok

    def free(self) -> None:
        lc = llama()
        if self.chain is not None:
            lc.llama_sampler_free(self.chain)
            self.chain = None
        if self.grammar is not None:
            lc.llama_sampler_free(self.grammar)
            self.grammar = None
