"""Context folding on the real engine: KV cells after the fold point removed, only the suffix evaluated.

After a rewind and the folded turns appended, the logits equal a fresh
evaluation of the folded conversation (as the incremental == one-shot test in
test_llama_session.py), M-RoPE positions after the first turn's image included.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from test_fold import site  # noqa: E402,F401  (fixture)
from test_llama_session import GREEDY, KINDS, SYSTEM, image, make, max_diff, paths  # noqa: E402,F401
from tests.web import web  # noqa: E402,F401  (fixture)

from vdr_cli.models.base import SamplingParams, Turn  # noqa: E402
from vdr_cli.models.errors import ModelError  # noqa: E402

PAGE = "<tool_response>\nThe useful information in http://a.test/p for user goal tower as follows: \n\n" \
       "Evidence in page: \n" + "The tower was built by Eiffel's company in 1889. " * 12 + "\n\nSummary: \nBuilt 1889.\n\n\n</tool_response>"
DIGEST = "<tool_response>\n[Folded to save context: the visit result of step 1 (700 characters). Gist: Built 1889.]\n</tool_response>"


@pytest.mark.parametrize("kind", KINDS)
def test_logits_after_a_fold_equal_a_fresh_evaluation(make, kind) -> None:
    first = Turn("user", "image_id: image_1. Who built this?", [image("red")])
    s = make(kind)
    s.start(SYSTEM, first)
    head_tokens, head_pos = s.n_tokens, s.n_pos
    s.generate(GREEDY)  # a real generated turn: its tokens and pending close are in the cells
    s.append(Turn("user", PAGE))
    s.append(Turn("assistant", "<think>more</think>\n<tool_call>\n{\"name\": \"search\"}\n</tool_call>"))
    s.append(Turn("user", PAGE.replace("1889", "1887")))
    assert s.turn_starts[0] == 0 and len(s.turn_starts) == 5
    evaluated = s.stats.tokens_evaluated
    # Fold: keep the head and the first assistant turn, replace everything after.
    kept_turn = Turn("assistant", "<think>look</think>\n<tool_call>\n{\"name\": \"visit\"}\n</tool_call>")
    s.rewind(1)
    assert (s.n_tokens, s.n_pos) == (head_tokens, head_pos)  # M-RoPE: the position after the image, not the cell count
    folded = [kept_turn, Turn("user", DIGEST), Turn("user", "Continue.")]
    for t in folded:
        s.append(t)
    suffix = s.stats.tokens_evaluated - evaluated
    fresh = make(kind)
    fresh.start(SYSTEM, first)
    for t in folded:
        fresh.append(t)
    assert max_diff(s.next_logits(), fresh.next_logits()) < 1e-4
    assert (s.n_tokens, s.n_pos) == (fresh.n_tokens, fresh.n_pos)
    assert suffix == fresh.n_tokens - head_tokens  # only the new suffix was evaluated
    assert s.stats.images_encoded == 1  # the first turn's image was not encoded again
    assert s.generate(GREEDY).text == fresh.generate(GREEDY).text


def test_truncate_only_at_turn_boundaries_and_pending_tokens(make) -> None:
    s = make("text")
    s.start(SYSTEM, Turn("user", "Hello"))
    s.generate(SamplingParams(temperature=0, max_tokens=4))
    after_gen = s.n_tokens
    s.append(Turn("user", "Next"))
    before = s.next_logits()
    with pytest.raises(ModelError, match="not a turn boundary"):
        s.truncate(after_gen - 1)
    s.truncate(after_gen)  # the generated turn's closing tokens were evaluated with "Next"
    assert s.n_tokens == after_gen and len(s.turn_starts) == 2
    s.append(Turn("user", "Next"))
    assert max_diff(s.next_logits(), before) < 1e-4
    with pytest.raises(ModelError, match="cannot rewind"):
        s.rewind(9)


@pytest.mark.parametrize("kv_type", ["f16", "q8_0", "q4_0"])
def test_kv_cache_types_and_their_bytes_per_token_agree_with_the_header(paths, kv_type) -> None:
    from vdr_cli.models import llama_mtmd as glue
    from vdr_cli.models.gguf_header import read_metadata
    from vdr_cli.models.llama_session import LlamaSession
    from vdr_cli.models.memory import kv_bytes_per_token

    with LlamaSession(paths["smollm2"], n_ctx=1024, n_threads=2, kv_type=kv_type) as s:
        s.start(SYSTEM, Turn("user", "hello " * 20))
        s.next_logits()
        a = (s.n_tokens, glue.llama().llama_state_seq_get_size(s._ctx, 0))
        s.append(Turn("user", "world " * 200))
        s.next_logits()
        b = (s.n_tokens, glue.llama().llama_state_seq_get_size(s._ctx, 0))
        assert s.generate(GREEDY).completion_tokens > 0
    measured = (b[1] - a[1]) / (b[0] - a[0])
    # llama.cpp's saved state adds a few bytes of cell metadata (position, sequence) per token
    assert 0 <= measured - kv_bytes_per_token(read_metadata(paths["smollm2"]), kv_type) <= 16


class Forced:
    """The real engine with scripted assistant turns evaluated as if generated (teacher forcing)."""

    def __init__(self, inner, turns) -> None:
        self.inner, self.turns = inner, list(turns)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def n_tokens(self) -> int:
        return self.inner.n_tokens

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx

    def generate(self, params, stop=(), grammar=None, on_token=None, cancel=None):
        from vdr_cli.models.base import GenerationResult

        text = self.turns.pop(0)
        hit = next((s for s in stop if s in text), None)
        return GenerationResult(text[:text.index(hit)] if hit else text, (), "stop", 0, 0, 0.0, stop=hit)

    def amend_last(self, text, exact=True):
        # The loop keeps each turn as the reference keeps it (cut, stripped or dropped):
        # the forced turn enters the context in that form, as a generated one is amended to.
        if text is not None:
            self.inner.append(Turn("assistant", text))


def test_a_folded_session_on_the_engine_equals_a_fresh_evaluation_of_its_trace(paths, site, tmp_path) -> None:
    """Qwen3-VL (M-RoPE) with an image in the first turn, 6 visits of real pages through a
    3072-token window: folds happen, the image is encoded once, and the context after the
    session has the logits of a fresh evaluation of what the trace says the model saw."""
    from test_fold import ANSWER, image as session_image, toolbox, visits

    from vdr_cli.agent.fold import FoldPolicy, rebuild
    from vdr_cli.agent.loop import LoopConfig
    from vdr_cli.agent.session import SessionSpec, read_trace, run_session
    from vdr_cli.models.llama_session import LlamaSession

    img = session_image(tmp_path)
    spec = SessionSpec(question="Who built this tower?", images=[img], tools=["search", "visit", "crop_and_search"])
    cfg = LoopConfig(max_steps=20, sampling=SamplingParams(max_tokens=128), answer_reserve=128,
                     tools=("search", "visit", "crop_and_search"), fold=FoldPolicy("keep-last", keep=1))
    events: list[dict] = []
    with LlamaSession(paths["qwen3vl"], paths["qwen3vl_mmproj"], n_ctx=3072, n_threads=2) as inner:
        outcome = run_session(spec, Forced(inner, visits(site, 6) + [ANSWER]), toolbox([img]), events.append, cfg)
        assert outcome.reason == "answer" and outcome.stats["calls"] == 6
        assert outcome.stats["folds"] >= 1 and inner.stats.images_encoded == 1
        live = inner.next_logits()
        live_pos = (inner.n_tokens, inner.n_pos)
    rec = read_trace(events)
    with LlamaSession(paths["qwen3vl"], paths["qwen3vl_mmproj"], n_ctx=3072, n_threads=2) as fresh:
        fresh.start(spec.system_prompt(), spec.first_turn())
        for entry in rebuild(rec.steps, rec.folds):
            fresh.append(entry.turn())
        assert (fresh.n_tokens, fresh.n_pos) == live_pos
        assert max_diff(fresh.next_logits(), live) < 1e-4
