"""Conformance in-process: the llama.cpp context is the GGUF's chat template applied to the
reference's messages.

vLLM renders the whole message list with the model's chat template on every request;
an in-process session evaluates turn by turn and keeps a KV cache. After the loop's
amendments (a turn cut at `<tool_response>` and stripped, a third repetitive turn dropped),
the context must hold exactly the tokens of the template applied to the messages the
reference would send (tests/reference_oracle.py): checked on the real engine with the
tiny Qwen3-VL fixture, by comparing against a fresh session fed the rendered text in one
go (same token count, same positions, identical next-token logits).

The fresh session is fed the rendering in the same decode groups as the session under
test ran (llama.cpp's CPU kernels round differently for different batch shapes, by up
to ~0.1 in a logit on random weights); that splitting at message boundaries leaves the
tokens unchanged is checked on its own.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from reference_oracle import REPEAT_FINAL, SYSTEM_PROMPT  # noqa: E402
from test_llama_session import image, make, max_diff, paths  # noqa: E402,F401  (fixtures)
from vdr_cli.agent.turns import parse_turn  # noqa: E402
from vdr_cli.models.base import IMAGE_MARKER, SamplingParams, Turn  # noqa: E402

GREEDY = SamplingParams(temperature=0, max_tokens=6)
QUESTION = "Who designed the tower in this photo?"


def gguf_template(path) -> str:
    """The chat template stored in the GGUF (tokenizer.chat_template), read with the gguf package."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def render(path, messages: list[dict[str, str]]) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(gguf_template(path)).render(messages=messages, add_generation_prompt=False)


def test_context_is_the_template_applied_to_the_reference_messages(make, paths) -> None:
    system = SYSTEM_PROMPT + "2026-01-15"
    img = image("red")
    s = make("qwen3vl")
    marker = s.media_marker
    s.start(system, Turn("user", QUESTION + IMAGE_MARKER, [img]))  # text, then the image (L322-329)

    s.generate(GREEDY)  # what the tiny model writes is noise; the loop keeps the turn as the reference does:
    turn1 = parse_turn('  <think>\nlook</think>\n<tool_call>\n{"name": "search", "arguments": {"query": ["tower"]}}\n'
                       '</tool_call>\n<tool_response>\ninvented\n</tool_response>  ')
    s.amend_last(turn1.history)  # cut at <tool_response>, stripped (L397-409)
    s.append(Turn("user", "<tool_response>\nSearch for 'tower' returned 0 results\n</tool_response>"))

    s.generate(GREEDY)
    s.amend_last(None)  # a third repetitive turn: not kept (L483-491)
    s.append(Turn("user", REPEAT_FINAL))

    r = s.generate(GREEDY)
    s.amend_last(r.text.strip())  # an unchanged turn stays as generated, or is re-read as text
    s.append(Turn("user", "Thanks."))

    messages = [{"role": "system", "content": system},
                {"role": "user", "content": QUESTION + marker},
                {"role": "assistant", "content": turn1.history},
                {"role": "user", "content": "<tool_response>\nSearch for 'tower' returned 0 results\n</tool_response>"},
                {"role": "user", "content": REPEAT_FINAL},
                {"role": "assistant", "content": r.text.strip()},
                {"role": "user", "content": "Thanks."}]
    path = paths["qwen3vl"]
    rendered = render(path, messages)
    # The session decoded these message groups: the first turn; an amended turn with the
    # next user turn; after a dropped turn, the next user turn alone; and so on.
    groups, done, texts = [2, 4, 5, 7], 0, []
    for end in groups:
        texts.append(render(path, messages[:end])[len(render(path, messages[:done])) if done else 0:])
        done = end
    assert "".join(texts) == rendered
    pieces = [texts[0].split(marker)[1], *texts[1:]]  # (the text before the image is one group)
    tokenize = s._vocab.tokenize
    assert tokenize(rendered.split(marker)[1]) == [t for piece in pieces for t in tokenize(piece)]
    whole = make("qwen3vl")
    for i, text in enumerate(texts):
        whole.append_raw(text, [img] if i == 0 else [])
    assert (s.n_tokens, s.n_pos) == (whole.n_tokens, whole.n_pos)
    assert max_diff(s.next_logits(), whole.next_logits()) == 0.0


def test_a_turn_is_re_evaluated_only_when_its_tokens_change(make) -> None:
    s = make("qwen3vl")
    s.start("sys", Turn("user", "hello"))
    r = s.generate(GREEDY)
    s.amend_last(r.text)
    s.append(Turn("user", "again"))
    same = s._vocab.tokenize(r.text) == list(r.token_ids)
    # Unchanged: every token in the context was evaluated once. Re-tokenised differently (as a
    # server would read the text back): the generated tokens were replaced, so more were evaluated.
    assert (s.stats.tokens_evaluated == s.n_tokens) is same
    s2 = make("qwen3vl")
    s2.start("sys", Turn("user", "hello"))
    s2.generate(GREEDY)
    s2.amend_last("<answer>x</answer>")
    s2.append(Turn("user", "again"))
    whole = make("qwen3vl")
    whole.append_raw("<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
                     "<|im_start|>assistant\n<answer>x</answer><|im_end|>\n<|im_start|>user\nagain<|im_end|>\n")
    assert s2.n_tokens == whole.n_tokens
    assert max_diff(s2.next_logits(), whole.next_logits()) < 1e-4
