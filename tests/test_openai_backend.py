"""OpenAISession against real servers: llama-cpp-python's OpenAI server running the real
SmolLM2-135M (and the tiny random LLaVA projector for an image turn), and the project's
loopback WebServer for what a healthy model server cannot show (429/5xx, auth, context
errors, silent servers, broken streams). No mocked httpx: every request crosses a socket.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.llama_server import LlamaServer, llama, server_available, start_server  # noqa: E402,F401
from tests.web import web  # noqa: E402,F401  (the shared loopback server fixture)
from tests.web.server import Response, WebServer  # noqa: E402
from vdr_cli.models.base import IMAGE_MARKER, ImageInput, ModelSession, SamplingParams, Turn  # noqa: E402
from vdr_cli.models.errors import ContextFullError, ModelError, NoVisionError  # noqa: E402
from vdr_cli.models.openai_http import OpenAIConnectError, OpenAIHTTPError, OpenAISession  # noqa: E402
from vdr_cli.models.openai_wire import normalize_base_url  # noqa: E402
from vdr_cli.net.client import RetryPolicy  # noqa: E402

def capped(**kw) -> SamplingParams:
    """Sampling with max_tokens sent (the session sends it only when the user set it)."""
    return SamplingParams(explicit=frozenset({"max_tokens"}), **kw)


GREEDY = capped(temperature=0.0, max_tokens=24, seed=1)
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
KEY = "sk-test-SECRET-4242abcd"


def jpeg(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, "JPEG")
    return buf.getvalue()


# -- the real server ----------------------------------------------------------------------



def session(server: LlamaServer, model: str = "smollm2", **kw) -> OpenAISession:
    return OpenAISession(model, server.url, n_ctx=2048, **kw)


def test_multi_turn_streaming(llama: LlamaServer) -> None:
    s = session(llama)
    assert isinstance(s, ModelSession)
    assert s.info.backend == "openai" and s.info.name == "smollm2" and s.n_ctx == 2048
    s.start("You are a helpful assistant.", Turn("user", "What is the capital of France?"))
    pieces: list[str] = []
    r1 = s.generate(GREEDY, on_token=pieces.append)
    assert r1.text and "".join(pieces) == r1.text and len(pieces) > 1
    assert r1.finish_reason in ("stop", "length") and r1.completion_tokens > 0
    s.append(Turn("user", "And of Italy?"))
    r2 = s.generate(GREEDY)
    assert r2.text
    assert [m["role"] for m in s.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert s.messages[2]["content"] == r1.text and s.messages[4]["content"] == r2.text
    assert s.n_tokens > r1.completion_tokens and s.stats.generate_calls == 2
    s.close()


def test_seed_determinism(llama: LlamaServer) -> None:
    outs = []
    for params in (GREEDY, GREEDY, capped(temperature=1.0, seed=7, max_tokens=16),
                   capped(temperature=1.0, seed=7, max_tokens=16)):
        with session(llama) as s:
            s.start("", Turn("user", "Write one sentence about cats."))
            outs.append(s.generate(params).text)
    assert outs[0] == outs[1] and outs[2] == outs[3]


def test_stop_strings_and_max_tokens(llama: LlamaServer) -> None:
    prompt = Turn("user", "List three fruits.")
    with session(llama) as s:
        s.start("", prompt)
        full = s.generate(capped(temperature=0.0, max_tokens=40)).text
    word = full.split()[2]
    with session(llama) as s:
        s.start("", prompt)
        pieces: list[str] = []
        r = s.generate(capped(temperature=0.0, max_tokens=40), stop=[word],
                       on_token=pieces.append)
    assert r.finish_reason == "stop" and r.text == full[: full.find(word)]
    assert word not in "".join(pieces)
    with session(llama) as s:
        s.start("", prompt)
        r = s.generate(capped(temperature=0.0, max_tokens=3))
    assert r.finish_reason == "length" and 1 <= r.completion_tokens <= 3


def test_grammar(llama: LlamaServer) -> None:
    with session(llama) as s:
        s.start("", Turn("user", "Is the sky blue? Answer yes or no."))
        r = s.generate(capped(temperature=0.0, max_tokens=8), grammar='root ::= "yes" | "no"')
    assert r.text in ("yes", "no")


def test_side_generate_leaves_conversation(llama: LlamaServer) -> None:
    with session(llama) as s:
        s.start("Be brief.", Turn("user", "Name a colour."))
        s.generate(GREEDY)
        before, n_before = s.messages, s.n_tokens
        side = s.side_generate([Turn("user", "Summarise: the tower is 330 metres tall.")], GREEDY)
        assert side.text and s.messages == before and s.n_tokens == n_before
        assert s.stats.side_calls == 1 and s.stats.generate_calls == 1


def test_cancel_mid_stream_then_continue(llama: LlamaServer) -> None:
    with session(llama) as s:
        s.start("", Turn("user", "Count from 1 to 100, separated by commas."))
        cancel = threading.Event()
        pieces: list[str] = []

        def on_token(piece: str) -> None:
            pieces.append(piece)
            if len(pieces) == 3:
                cancel.set()

        r = s.generate(capped(temperature=0.0, max_tokens=300), on_token=on_token, cancel=cancel)
        assert r.finish_reason == "cancelled" and r.text and r.text == "".join(pieces)
        assert s.messages[-1] == {"role": "assistant", "content": r.text}
        s.append(Turn("user", "Thanks."))
        again = s.generate(capped(temperature=0.0, max_tokens=8))
        assert again.finish_reason in ("stop", "length") and again.text


def test_context_full(llama: LlamaServer) -> None:
    # llama-cpp-python answers an over-long *streamed* prompt with an empty 200 stream;
    # the session asks again unstreamed and maps the server's 400 to ContextFullError.
    with session(llama) as s:
        s.start("", Turn("user", "word " * 3000))
        with pytest.raises(ContextFullError, match="maximum context length"):
            s.generate(GREEDY)


def test_image_turn_real_projector(llama: LlamaServer) -> None:
    # The server's llava-1-5 handler runs the tiny random projector: meaningless text, but the
    # data URL is decoded and encoded by libmtmd, so different pixels give different output.
    texts = []
    for color in ((255, 0, 0), (0, 0, 255)):
        with session(llama, "smollm2-llava") as s:
            s.start("", Turn("user", "What colour is this?", [ImageInput("image_1", data=jpeg(color))]))
            r = s.generate(capped(temperature=0.0, max_tokens=8))
            assert r.completion_tokens > 0 and s.stats.images_encoded == 1
            texts.append(r.text)
    assert texts[0] != texts[1]
    with session(llama, has_vision=False) as s, pytest.raises(NoVisionError):
        s.start("", Turn("user", "x", [ImageInput("image_1", data=jpeg((0, 0, 0)))]))


# -- the loopback server --------------------------------------------------------------------

def sse(*pieces: str, finish: str = "stop", usage: dict | None = None) -> list[bytes]:
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        chunks.append({"choices": [], "usage": usage})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def stream(*pieces: str, **kw) -> Response:
    return Response(200, content_type="text/event-stream", chunks=sse(*pieces, **kw))


def fake(web: WebServer, **kw) -> OpenAISession:
    kw.setdefault("retry", FAST_RETRY)
    return OpenAISession("m", web.base, **kw)


def body_of(web: WebServer, i: int = -1) -> dict:
    return json.loads([r for r in web.requests if r.path == "/v1/chat/completions"][i].body)


def test_retries_429_then_500_then_streams(web: WebServer) -> None:
    answers = iter([Response(429, "slow down", headers={"Retry-After": "0"}), Response(500, "oops"),
                    stream("Hel", "lo")])
    web.add_route("POST", "/v1/chat/completions", lambda req: next(answers))
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        r = s.generate(GREEDY)
    assert r.text == "Hello" and r.finish_reason == "stop"
    assert web.count("/v1/chat/completions") == 3


def test_always_500_is_one_line_error_without_key(web: WebServer) -> None:
    web.add_route("POST", "/v1/chat/completions", lambda req: Response(500, f"broken\nkey was {KEY}"))
    with fake(web, api_key=KEY) as s:
        s.start("", Turn("user", "hi"))
        with pytest.raises(OpenAIHTTPError) as info:
            s.generate(GREEDY)
    msg = str(info.value)
    assert f"{web.base}/v1/chat/completions" in msg and "HTTP 500" in msg
    assert "\n" not in msg and KEY not in msg and KEY not in repr(s)
    assert web.count("/v1/chat/completions") == FAST_RETRY.attempts


def test_api_key_is_bearer_and_never_shown(web: WebServer) -> None:
    web.add_route("POST", "/v1/chat/completions", lambda req: stream("ok"))
    s = fake(web, api_key=KEY)
    s.start("", Turn("user", "hi"))
    r = s.generate(GREEDY)
    assert web.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(s) and "***" in repr(s) and KEY not in repr(r) and KEY not in repr(s.info)
    web.add_route("POST", "/v1/chat/completions", lambda req: Response(
        401, json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}), "application/json"))
    with pytest.raises(OpenAIHTTPError) as info:
        s.generate(GREEDY)
    assert KEY not in str(info.value) and "HTTP 401" in str(info.value) and "VDR_OPENAI_KEY" in str(info.value)
    s.close()


def test_400_context_length_is_context_full(web: WebServer) -> None:
    msg = {"error": {"message": "This model's maximum context length is 4096 tokens.", "code": 400}}
    web.add_route("POST", "/v1/chat/completions", lambda req: Response(400, json.dumps(msg), "application/json"))
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        with pytest.raises(ContextFullError, match="127.0.0.1"):
            s.generate(GREEDY)
    assert web.count("/v1/chat/completions") == 1  # a 400 is not retried


def test_request_body(web: WebServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    web.add_route("POST", "/v1/chat/completions", lambda req: stream("x"))
    with fake(web, grammar_field="guided_grammar") as s:
        s.start("sys", Turn("user", f"a{IMAGE_MARKER}b", [ImageInput("image_1", data=png)]))
        s.append(Turn("tool", "<tool_response>\nr\n</tool_response>"))
        s.append(Turn("user", "two", [ImageInput("image_2", data=jpeg((1, 2, 3)))]))
        s.generate(SamplingParams(temperature=0.0, top_k=5, min_p=0.1, seed=3, max_tokens=9,
                                  explicit=frozenset({"top_k", "min_p", "max_tokens"})),  # set by the user
                   stop=["</answer>"], grammar="root ::= \"x\"")
    body = body_of(web)
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "sys"}
    assert [p["type"] for p in msgs[1]["content"]] == ["text", "image_url", "text"]
    assert msgs[1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert msgs[2] == {"role": "user", "content": "<tool_response>\nr\n</tool_response>"}
    assert msgs[3]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert msgs[3]["content"][1] == {"type": "text", "text": "two"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["seed"], body["top_k"], body["min_p"], body["max_tokens"]) == ("m", 3, 5, 0.1, 9)
    assert body["stop"] == ["</answer>"] and body["guided_grammar"] == 'root ::= "x"'
    assert "repeat_penalty" not in body and "cache_prompt" not in body  # only what was set (the reference sends neither)
    with fake(web, llama_params=False, grammar_field=None) as s:
        s.start("", Turn("user", "hi"))
        s.generate(GREEDY, grammar="root ::= \"x\"")
    assert not {"top_k", "min_p", "cache_prompt", "grammar", "guided_grammar"} & set(body_of(web))


def test_client_side_stop_and_usage(web: WebServer) -> None:
    # A server that ignores `stop`: the session cuts the text itself and never shows the stop.
    web.add_route("POST", "/v1/chat/completions", lambda req: stream(
        "<think>a</think><tool", "_call>{}</tool_", "call>after", usage={"prompt_tokens": 50, "completion_tokens": 7}))
    pieces: list[str] = []
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        r = s.generate(GREEDY, stop=["</tool_call>"], on_token=pieces.append)
    assert r.text == "<think>a</think><tool_call>{}" and r.stop == "</tool_call>" and r.finish_reason == "stop"
    assert "".join(pieces) == r.text


def test_usage_and_probe(web: WebServer) -> None:
    web.json_route("/v1/models", {"data": [{"id": "served-model", "max_model_len": 8192}]})
    web.add_route("POST", "/v1/chat/completions", lambda req: stream(
        "a", "b", usage={"prompt_tokens": 50, "completion_tokens": 2}))
    with OpenAISession("", web.base + "/v1/", retry=FAST_RETRY) as s:
        assert s.info.name == "served-model" and s.n_ctx == 8192
        s.start("", Turn("user", "hi"))
        r = s.generate(GREEDY)
        assert (r.prompt_tokens, r.completion_tokens, s.n_tokens) == (50, 2, 52)
        s.append(Turn("user", "x" * 400))
        assert 52 + 100 <= s.n_tokens <= 52 + 110  # ~4 characters a token until the server says
    assert body_of(web)["model"] == "served-model"
    assert normalize_base_url("http://h:8000/v1/chat/completions") == "http://h:8000/v1"
    assert normalize_base_url("http://h:11434") == "http://h:11434/v1"


def test_cancel_while_server_is_silent(web: WebServer) -> None:
    # The worker thread is blocked on a read; cancel still returns at once.
    web.add_route("POST", "/v1/chat/completions", lambda req: Response(
        200, content_type="text/event-stream", chunks=sse("late"), chunk_delay=3.0))
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        t0 = time.monotonic()
        r = s.generate(GREEDY, cancel=cancel)
        assert r.finish_reason == "cancelled" and r.text == "" and time.monotonic() - t0 < 1.5
        web.add_route("POST", "/v1/chat/completions", lambda req: stream("fine"))
        assert s.generate(GREEDY).text == "fine"


def test_broken_stream_is_not_retried(web: WebServer) -> None:
    partial = b"".join(sse("half"))[:-40]
    web.add_route("POST", "/v1/chat/completions", lambda req: Response(
        200, partial, "text/event-stream", content_length=len(partial) + 500, reset_after_bytes=len(partial)))
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        with pytest.raises(OpenAIConnectError, match="broken off"):
            s.generate(GREEDY)
        assert [m["role"] for m in s.messages] == ["user"]  # nothing half-made was kept
    assert web.count("/v1/chat/completions") == 1


def test_unstreamed_answer_and_unreachable_server(web: WebServer) -> None:
    web.add_route("POST", "/v1/chat/completions", lambda req: {
        "choices": [{"message": {"role": "assistant", "content": "whole"}, "finish_reason": "length"}]})
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        got: list[str] = []
        r = s.generate(GREEDY, on_token=got.append)
        assert (r.text, r.finish_reason, got) == ("whole", "length", ["whole"])
    port = web.port
    web.stop()
    with OpenAISession("m", f"http://user:pw@127.0.0.1:{port}", retry=FAST_RETRY) as s:
        s.start("", Turn("user", "hi"))
        with pytest.raises(OpenAIConnectError) as info:
            s.generate(GREEDY)
    assert str(info.value).startswith(f"http://127.0.0.1:{port}/v1/chat/completions: connection failed")
    assert "pw" not in str(info.value) and isinstance(info.value, ModelError)


def test_side_generate_sends_only_its_messages(web: WebServer) -> None:
    web.add_route("POST", "/v1/chat/completions", lambda req: stream("y"))
    with fake(web) as s:
        s.start("", Turn("user", "hi"))
        assert s.side_generate([Turn("user", "side")], GREEDY).text == "y"
        assert s.messages == [{"role": "user", "content": "hi"}] and s.stats.side_calls == 1
    assert body_of(web)["messages"] == [{"role": "user", "content": "side"}]
