"""A ModelSession on any OpenAI-compatible ``/v1/chat/completions`` server
(llama-server, llama-cpp-python's server, vLLM, SGLang, Ollama, hosted APIs).

The server is stateless: the session keeps the conversation as a messages list
and sends all of it each turn (llama-server's ``cache_prompt`` and vLLM's prefix
cache make that cheap there). The SSE stream is read on a worker thread so that
``cancel`` takes effect within ~50 ms even while the server is still reading the
prompt. 429/5xx/connection failures are retried only before any generated text
arrives: half a stream is never replayed. The API key travels only in the
``Authorization`` header; errors name the endpoint (no credentials, no query)
and have the key scrubbed from any server text they quote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Sequence

import httpx

from vdr_cli.net.client import RETRY_STATUSES, USER_AGENT, RetryPolicy, retry_after_seconds
from vdr_cli.net.urls import public_url

from .base import GenerationResult, ModelInfo, SamplingParams, SessionStats, TokenCallback, Turn, held_back
from .errors import ContextFullError, ModelError
from .openai_wire import (OpenAIConnectError, OpenAIHTTPError, estimate_tokens, http_error,  # noqa: F401 (re-exported)
                          normalize_base_url, request_body, to_message, count_tokens)
from .openai_probe import ServerFacts, probe

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 32768  # only when neither --ctx nor the server says (and then a warning)
GrammarField = Literal["grammar", "guided_grammar"]
_FINISH = {"length": "length", "stop": "stop", "eos": "stop"}


@dataclass
class _Gen:
    text: str = ""
    finish: str = "stop"
    stop: str | None = None
    pieces: int = 0  # content deltas: ~ one token each on llama.cpp servers
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] = field(default_factory=dict)


class OpenAISession:
    """A ModelSession over HTTP. See the module docstring.

    ``grammar_field``: where a GBNF grammar goes in the request: ``"grammar"``
    (llama-server, llama-cpp-python), ``"guided_grammar"`` (vLLM's older
    guided decoding; newer vLLM takes ``structured_outputs``: pass it through
    ``extra_body``), or None for servers without grammars (a grammar is then
    dropped with a warning). Requests carry what the reference eval sends
    (model, messages, temperature, top_p) plus only the fields the user set
    (``SamplingParams.explicit``: max_tokens, seed, and llama.cpp's top_k, min_p,
    repeat_penalty unless ``llama_params`` is off, for hosted APIs that reject
    unknown fields). ``timeout`` is the longest wait for the next byte: a long
    prompt on a CPU server can take minutes before the first token.

    The context budget: ``n_ctx`` (``--ctx``) if given, else what the server says
    (vLLM's ``/v1/models`` ``max_model_len``, llama-server's ``/props`` ``n_ctx``),
    else a guess of DEFAULT_N_CTX; ``ctx_source`` says which (a guess is logged).
    ``facts``: what the server already said (models/openai_probe.py), not asked again.
    """

    def __init__(self, model: str, base_url: str, *, api_key: str | None = None,
                 n_ctx: int | None = None, has_vision: bool = True,
                 grammar_field: GrammarField | None = "grammar", llama_params: bool = True,
                 extra_body: dict[str, Any] | None = None, timeout: float = 600.0,
                 connect_timeout: float = 10.0, retry: RetryPolicy | None = None,
                 facts: ServerFacts | None = None) -> None:
        self.model = model
        self.base_url = normalize_base_url(base_url)
        self.endpoint = public_url(self.base_url + "/chat/completions")
        self.grammar_field = grammar_field
        self.llama_params = llama_params
        self.extra_body = dict(extra_body or {})
        self.retry = retry or RetryPolicy()
        self._api_key = api_key or None
        self._vision = has_vision
        self._n_ctx = n_ctx
        self.ctx_source = "--ctx" if n_ctx else "guess"
        self._facts: ServerFacts | None = None  # what the server said (`facts`: a batch's one probe of it)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                    headers={"User-Agent": USER_AGENT})
        self._lock = threading.RLock()  # the conversation
        self._stats_lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._used = 0  # context fill after the last generation (server-reported where possible)
        self._unsent: list[dict[str, Any]] = []  # messages appended since the last generation
        self._turns: list[tuple[int, int]] = []  # (message index, n_tokens) where each turn starts
        self._stats = SessionStats()
        self._warned_grammar = False
        if facts is not None:
            self._use(facts)

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"OpenAISession(model={self.model!r}, base_url={public_url(self.base_url)!r}, api_key={key})"

    # -- protocol properties ----------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        self._probe()
        return ModelInfo(name=self.model or "default", backend="openai", n_ctx=self.n_ctx,
                         has_vision=self._vision, extra={"url": public_url(self.base_url), "ctx_source": self.ctx_source})

    @property
    def n_ctx(self) -> int:
        self._probe()
        return self._n_ctx or DEFAULT_N_CTX

    @property
    def n_tokens(self) -> int:
        """Approximate: the server's last ``usage`` (prompt + completion), plus ~chars/4 for
        turns appended since. Servers that report no usage in streams (llama-cpp-python's)
        get a chars/4 estimate throughout."""
        return self._used + estimate_tokens(self._unsent)

    @property
    def stats(self) -> SessionStats:
        return self._stats

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as sent to the server (a copy)."""
        return list(self._messages)

    # -- conversation -----------------------------------------------------------------
    def start(self, system: str, user: Turn) -> None:
        with self._lock:
            if self._messages:
                raise ModelError("session already started")
            first = [to_message(Turn("system", system))] if system else []
            self._add(first + [to_message(user, self._vision)], len(user.images))

    def append(self, turn: Turn) -> None:
        with self._lock:
            self._add([to_message(turn, self._vision)], len(turn.images))

    def rewind(self, n_turns: int) -> None:
        """Keep the first ``n_turns`` turns (start() is turn 0): the next request sends the
        shorter conversation, and the server's prefix cache keeps its unchanged head."""
        with self._lock:
            if not 0 <= n_turns <= len(self._turns):
                raise ModelError(f"cannot rewind to turn {n_turns}: the conversation has {len(self._turns)}")
            if n_turns < len(self._turns):
                index, self._used = self._turns[n_turns]
                del self._messages[index:], self._turns[n_turns:]
                self._unsent = []

    def _add(self, messages: list[dict[str, Any]], n_images: int) -> None:
        self._turns.append((len(self._messages), self.n_tokens))
        self._messages += messages
        self._unsent += messages
        self._stats.images_encoded += n_images  # sent once; the server may re-encode on each request

    def generate(self, params: SamplingParams, stop: Sequence[str] = (),
                 grammar: str | None = None, on_token: TokenCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """The next assistant turn, streamed; it stays in the conversation (also when cancelled).
        A prompt the server finds too long raises ContextFullError; the turns stay appended."""
        with self._lock:
            t0 = time.perf_counter()
            body = self._body(self._messages, params, stop, grammar)
            mark = (len(self._messages), self.n_tokens)
            gen = self._stream(body, stop, on_token, cancel)
            self._turns.append(mark)
            self._messages.append({"role": "assistant", "content": gen.text})
            prompt, completion, self._used = self._count(gen, self._messages[:-1], self._used)
            self._unsent = []
            with self._stats_lock:
                self._stats.generate_calls += 1
                self._stats.tokens_generated += completion
                self._stats.tokens_evaluated += prompt + completion
            return self._result(gen, prompt, completion, t0)

    def amend_last(self, text: str | None, exact: bool = True) -> None:
        """The next request holds the turn as ``text`` (None: without it). The stream's own
        text stays what ``generate`` returned."""
        with self._lock:
            if not self._messages or self._messages[-1].get("role") != "assistant":
                raise ModelError("no assistant turn to amend")
            if text is None:
                self._messages.pop()
            elif self._messages[-1]["content"] != text:
                self._messages[-1] = {"role": "assistant", "content": text}

    def side_generate(self, messages: Sequence[Turn], params: SamplingParams,
                      grammar: str | None = None, stop: Sequence[str] = ()) -> GenerationResult:
        """An independent request: the conversation is neither sent nor changed.
        Takes no lock, so several side generations can run concurrently on the server."""
        t0 = time.perf_counter()
        msgs = [to_message(m, self._vision) for m in messages]
        gen = self._stream(self._body(msgs, params, stop, grammar, side=True), stop, None, None)
        prompt, completion, _ = self._count(gen, msgs, 0)
        with self._stats_lock:  # side calls may run on several threads at once
            self._stats.side_calls += 1
            self._stats.side_tokens_evaluated += prompt
        return self._result(gen, prompt, completion, t0)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAISession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request building ---------------------------------------------------------------
    def _body(self, messages: Sequence[dict[str, Any]], params: SamplingParams,
              stop: Sequence[str], grammar: str | None, side: bool = False) -> dict[str, Any]:
        if grammar and not self.grammar_field and not self._warned_grammar:
            self._warned_grammar = True
            log.warning("%s: grammar dropped (this backend has grammar_field=None)", self.endpoint)
        return request_body(messages, params, stop, self.model, side=side, llama_params=self.llama_params,
                            grammar=(self.grammar_field, grammar) if grammar and self.grammar_field else None,
                            extra=self.extra_body)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    # -- streaming ----------------------------------------------------------------------
    def _stream(self, body: dict[str, Any], stops: Sequence[str], on_token: TokenCallback | None,
                cancel: threading.Event | None) -> _Gen:
        """Consume the worker's chunks: apply stop strings, feed on_token, honour cancel."""
        q: queue.Queue[tuple[str, Any]] = queue.Queue()
        abandon = threading.Event()
        threading.Thread(target=self._pump, args=(body, q, abandon), daemon=True,
                         name="vdr-openai-stream").start()
        gen, emitted, longest = _Gen(), 0, max((len(s) for s in stops), default=0)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    gen.finish = "cancelled"
                    break
                try:
                    kind, value = q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise value
                if kind == "end":
                    break
                gen.usage = value.get("usage") or gen.usage
                gen.timings = value.get("timings") or gen.timings
                choice = (value.get("choices") or [{}])[0]
                piece = (choice.get("delta") or choice.get("message") or {}).get("content") or ""
                if piece:
                    gen.pieces += 1
                    start = max(0, len(gen.text) - longest)
                    gen.text += piece
                    hit = min(((i, s) for s in stops if (i := gen.text.find(s, start)) >= 0), default=None)
                    if hit is not None:
                        gen.text, gen.stop, gen.finish = gen.text[:hit[0]], hit[1], "stop"
                        break
                    safe = len(gen.text) - held_back(gen.text, stops)
                    if on_token is not None and safe > emitted:
                        on_token(gen.text[emitted:safe])
                        emitted = safe
                if choice.get("finish_reason"):
                    gen.finish = _FINISH.get(choice["finish_reason"], "stop")
        finally:
            abandon.set()  # the worker closes the response at its next line: the server stops
        if on_token is not None and len(gen.text) > emitted:
            on_token(gen.text[emitted:])
        return gen

    def _pump(self, body: dict[str, Any], q: queue.Queue, abandon: threading.Event) -> None:
        """Worker thread: put ("chunk", dict) items, then ("end", None) or ("error", exc)."""
        try:
            with contextlib.closing(self._chunks(body, abandon)) as chunks:  # closing = response closed
                for chunk in chunks:
                    if abandon.is_set():
                        return
                    q.put(("chunk", chunk))
            q.put(("end", None))
        except Exception as exc:  # handed to the caller's thread, which raises it
            q.put(("error", exc))

    def _chunks(self, body: dict[str, Any], abandon: threading.Event) -> Iterator[dict[str, Any]]:
        url = self.base_url + "/chat/completions"
        attempts = max(1, self.retry.attempts)
        for attempt in range(attempts):
            started = answered = False  # after text or a finish reason went out, never retry
            last = attempt + 1 == attempts
            try:
                with self._client.stream("POST", url, json=body, headers=self._headers()) as resp:
                    answered = resp.status_code < 400
                    if resp.status_code >= 400:
                        data = resp.read()
                        if resp.status_code in RETRY_STATUSES and not last:
                            abandon.wait(self.retry.delay(attempt, retry_after_seconds(resp.headers.get("Retry-After"))))
                            continue
                        raise self._http_error(resp.status_code, resp.reason_phrase, data)
                    if "text/event-stream" not in resp.headers.get("content-type", ""):
                        yield self._json(resp.read())  # the server ignored stream: true
                        return
                    for line in resp.iter_lines():
                        if abandon.is_set():
                            return
                        if not line.startswith("data:"):
                            continue  # blank separators, ": ping" comments, "event:" lines
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            return
                        chunk = self._json(payload.encode())
                        if "error" in chunk:
                            raise self._http_error(None, "", payload.encode())
                        choice = (chunk.get("choices") or [{}])[0]
                        started = started or bool((choice.get("delta") or {}).get("content") or choice.get("finish_reason"))
                        yield chunk
                if not started and not abandon.is_set():
                    # llama-cpp-python answers an over-long streamed prompt with an empty
                    # 200 stream; the same request unstreamed returns the real error.
                    yield self._unstreamed(url, body)
                return
            except httpx.TransportError as exc:
                what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"connection failed ({type(exc).__name__})"
                if started:
                    raise OpenAIConnectError(f"{self.endpoint}: stream broken off ({what})") from None
                if answered and not abandon.is_set():  # see above: sometimes the stream is cut instead
                    yield self._unstreamed(url, body)
                    return
                if last or abandon.is_set():
                    raise OpenAIConnectError(f"{self.endpoint}: {what} after {attempt + 1} tries",
                                             refused=isinstance(exc, httpx.ConnectError)) from None
                abandon.wait(self.retry.delay(attempt, None))

    def _unstreamed(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        plain = {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False}
        for attempt in range(max(1, self.retry.attempts)):
            # The first try often meets the connection the failed stream left in the pool,
            # which the server has since closed: try again on a fresh one.
            try:
                resp = self._client.post(url, json=plain, headers=self._headers())
                break
            except httpx.TransportError as exc:
                if attempt + 1 >= self.retry.attempts:
                    raise OpenAIConnectError(f"{self.endpoint}: connection failed ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            raise self._http_error(resp.status_code, resp.reason_phrase, resp.content)
        return self._json(resp.content)

    def _json(self, data: bytes) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except ValueError:
            raise ModelError(f"{self.endpoint}: the server sent something that is not JSON") from None
        if not isinstance(value, dict):
            raise ModelError(f"{self.endpoint}: expected a JSON object from the server")
        return value

    def _http_error(self, status: int | None, reason: str, data: bytes) -> ModelError:
        return http_error(self.endpoint, status, reason, data, self._api_key)

    # -- accounting ---------------------------------------------------------------------
    @staticmethod
    def _count(gen: _Gen, prompt_msgs: Sequence[dict[str, Any]], before: int) -> tuple[int, int, int]:
        return count_tokens(gen.usage or {}, gen.timings, gen.pieces, prompt_msgs, before)

    def _result(self, gen: _Gen, prompt: int, completion: int, t0: float) -> GenerationResult:
        return GenerationResult(
            text=gen.text, token_ids=(), finish_reason=gen.finish,  # type: ignore[arg-type]
            prompt_tokens=prompt, completion_tokens=completion,
            ms=(time.perf_counter() - t0) * 1000, prompt_ms=float(gen.timings.get("prompt_ms", 0) or 0),
            eval_ms=float(gen.timings.get("predicted_ms", 0) or 0), stop=gen.stop)

    # -- server facts (models/openai_probe.py) -------------------------------------------
    def server_facts(self, slots: bool = False) -> ServerFacts:
        """Ask the server what this session does not know yet (the model id, the context
        size; `slots`: also its slot count); the answer is kept and returned."""
        if self._n_ctx is not None and self.model and not slots:
            facts = ServerFacts(model=self.model)  # nothing to ask
        else:
            facts = probe(self._client, self.base_url, self._headers(), self.model, ctx=self._n_ctx is None, slots=slots)
        self._use(facts)
        return facts

    def _use(self, facts: ServerFacts) -> None:
        self._facts = facts
        if not self.model and facts.model:
            self.model = facts.model
        if self._n_ctx is None and facts.n_ctx:
            self._n_ctx, self.ctx_source = facts.n_ctx, facts.ctx_source

    def _probe(self) -> None:
        if self._facts is None:
            self.server_facts()
