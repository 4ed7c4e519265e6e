"""A loopback OpenAI-compatible model server that plays scripted outputs and records requests.

Routes on a tests/web WebServer (real sockets, real HTTP):

* ``POST /v1/chat/completions``: records the JSON body, answers with the next scripted
  output, cut at the request's ``stop`` strings the way vLLM cuts (the first match ends
  the text, the stop string itself left out unless ``include_stop_str_in_output``), and
  capped at ``max_tokens`` words when one is sent. Streams (SSE, a few words a chunk,
  then a usage chunk and ``[DONE]``) when asked to, else one JSON completion.
* ``GET /v1/models``: the model, with vLLM's ``max_model_len`` when given.
* ``GET /props``: llama-server's shape (``default_generation_settings.n_ctx``, ``total_slots``)
  when either is given; vLLM and SGLang have none (404).

Concurrency: ``most_in_flight`` is the most agent requests the server held at once. With
``hold=N`` the first N agent requests each wait (up to 10 s) until N have arrived, so N
requests sent at once are seen at once however the threads are scheduled, and fewer show as
fewer: no timing threshold decides anything.

Side requests (a request whose first message is not the agent's system prompt) are
answered from ``side_outputs`` and recorded apart, so the agent's conversation stays clean.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from web import Request, Response, WebServer

AGENT_MARK = "You are a deep research assistant."


class RecordingModel:
    def __init__(self, web: WebServer, outputs: Sequence[str], *, model: str = "Vision-DeepResearch-8B",
                 max_model_len: int | None = 131072, props_n_ctx: int | None = None,
                 side_outputs: Iterable[str] = (), total_slots: int | None = None, hold: int = 0) -> None:
        self.web = web
        self.outputs = list(outputs)
        self.side_outputs = list(side_outputs)
        self.model = model
        self.requests: list[dict[str, Any]] = []  # agent requests, as sent
        self.side_requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.arrived = 0
        self.hold = hold
        self._all_held = threading.Event()
        web.add_route("POST", "/v1/chat/completions", self._complete)
        entry: dict[str, Any] = {"id": model, "object": "model", "owned_by": "vdr-tests"}
        if max_model_len is not None:
            entry["max_model_len"] = max_model_len
        web.json_route("/v1/models", {"object": "list", "data": [entry]})
        if props_n_ctx is not None or total_slots is not None:
            props: dict[str, Any] = {"total_slots": total_slots or 1}
            if props_n_ctx is not None:
                props["default_generation_settings"] = {"n_ctx": props_n_ctx}
            web.json_route("/props", props)

    @property
    def url(self) -> str:
        return self.web.url("/v1")

    def spec(self) -> str:
        return f"openai:{self.model}@{self.url}"

    def _complete(self, req: Request) -> Response:
        body = json.loads(req.body)
        messages = body.get("messages") or []
        first = messages[0].get("content") if messages else ""
        side = not (isinstance(first, str) and first.startswith(AGENT_MARK))
        if side:
            return self._answer(body, messages, side)
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrived += 1
            held = self.arrived <= self.hold
            if self.arrived >= self.hold:
                self._all_held.set()
        try:
            if held:
                self._all_held.wait(10)
            return self._answer(body, messages, side)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, body: dict[str, Any], messages: list[dict[str, Any]], side: bool) -> Response:
        with self._lock:
            (self.side_requests if side else self.requests).append(body)
            queue = self.side_outputs if side else self.outputs
            if not queue:
                return Response(500, json.dumps({"error": {"message": "script exhausted"}}), "application/json")
            text = queue.pop(0)
        text, finish = vllm_cut(text, body.get("stop") or [], body.get("max_tokens"),
                                bool(body.get("include_stop_str_in_output")))
        usage = {"prompt_tokens": 100 * len(messages), "completion_tokens": len(text.split()),
                 "total_tokens": 100 * len(messages) + len(text.split())}
        if not body.get("stream"):
            return Response(200, json.dumps({
                "id": "cmpl-1", "object": "chat.completion", "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage}), "application/json")
        return Response(200, content_type="text/event-stream", chunks=_sse(text, finish, usage, self.model))


def vllm_cut(text: str, stops: Sequence[str], max_tokens: int | None, keep_stop: bool) -> tuple[str, str]:
    """The text a vLLM server returns for a model that would write `text`: cut at the
    earliest stop string (left out unless keep_stop), or at max_tokens (~words here)."""
    hit = min(((i, s) for s in stops if s and (i := text.find(s)) >= 0), default=None)
    if hit is not None:
        return text[: hit[0] + (len(hit[1]) if keep_stop else 0)], "stop"
    if max_tokens is not None:
        words = text.split(" ")
        if len(words) > max_tokens:
            return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def _sse(text: str, finish: str, usage: dict[str, Any], model: str) -> list[bytes]:
    def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> bytes:
        payload = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    words = text.split(" ")
    pieces = [" ".join(words[i:i + 7]) + (" " if i + 7 < len(words) else "") for i in range(0, len(words), 7)]
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": p}) for p in pieces if p]
    out.append(chunk({}, finish))
    out.append(b"data: " + json.dumps({"id": "cmpl-1", "object": "chat.completion.chunk", "model": model,
                                       "choices": [], "usage": usage}).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out
