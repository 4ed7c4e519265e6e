"""ScriptedSession: recorded turns played back through the ModelSession protocol."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest

from vdr_cli.errors import InputError
from vdr_cli.models.base import ImageInput, ModelSession, SamplingParams, Turn
from vdr_cli.models.errors import ModelError, NoVisionError
from vdr_cli.models.scripted import ScriptedSession, ScriptExhausted

P = SamplingParams(temperature=0.0, max_tokens=100)
TURN1 = '<think>look</think>\n<tool_call>{"name": "search", "arguments": {"query": ["eiffel"]}}</tool_call>'
TURN2 = "<think>found it</think>\n<answer>Gustave Eiffel</answer>"


def trace_lines() -> list[str]:
    events = [
        {"type": "session", "v": 1, "id": "s1", "question": "who?", "images": [], "model": {"name": "m"}},
        # steps out of file order: playback follows n
        {"type": "step", "n": 2, "think": "found it", "raw": TURN2, "tokens": {"prompt_eval": 9, "completion": 5}},
        {"type": "call", "id": "c1", "step": 1, "tool": "search", "args": {"query": ["eiffel"]}},
        {"type": "result", "id": "c1", "tool": "search", "ok": True, "content": "hits", "data": []},
        {"type": "answer", "text": "Gustave Eiffel", "step": 2},
        {"type": "end", "reason": "answer", "stats": {}},
    ]
    step1 = {"type": "step", "n": 1, "think": "look", "raw": TURN1, "tokens": {"prompt_eval": 20, "completion": 9}}
    lines = [json.dumps(e) + "\n" for e in events]
    return lines[:1] + [json.dumps(step1) + "\n", "\n"] + lines[1:]


def test_plays_turns_in_order_and_records_transcript() -> None:
    s = ScriptedSession([TURN1, TURN2])
    assert isinstance(s, ModelSession) and s.info.backend == "scripted"
    s.start("system prompt", Turn("user", "who built it?", [ImageInput("image_1", data=b"x")]))
    pieces: list[str] = []
    r1 = s.generate(P, on_token=pieces.append)
    assert r1.text == TURN1 and r1.finish_reason == "stop" and r1.stop is None
    assert "".join(pieces) == TURN1 and len(pieces) == len(TURN1.split())
    s.append(Turn("tool", "<tool_response>\nhits\n</tool_response>"))
    r2 = s.generate(P)
    assert r2.text == TURN2 and s.remaining == 0
    assert [t.role for t in s.transcript] == ["system", "user", "assistant", "tool", "assistant"]
    assert s.transcript[3].text == "<tool_response>\nhits\n</tool_response>"
    assert r2.prompt_tokens == 3 and r2.completion_tokens == len(TURN2.split())  # words, approximately
    assert s.n_tokens == sum(len(t.text.split()) for t in s.transcript)
    assert s.stats.generate_calls == 2 and s.stats.images_encoded == 1
    with pytest.raises(ModelError, match="already started"):
        s.start("again", Turn("user", "x"))


def test_exhausted_script_raises() -> None:
    s = ScriptedSession([TURN2])
    s.start("", Turn("user", "q"))
    s.generate(P)
    with pytest.raises(ScriptExhausted, match="all 1 recorded turn"):
        s.generate(P)
    assert isinstance(ScriptExhausted("x"), ModelError)


def test_stop_strings_max_tokens_and_cancel() -> None:
    s = ScriptedSession([TURN1, "one two three four five", "a b c d"])
    s.start("", Turn("user", "q"))
    pieces: list[str] = []
    r = s.generate(P, stop=["</tool_call>", "<answer>"], on_token=pieces.append)
    assert r.text == TURN1[: TURN1.index("</tool_call>")] and r.stop == "</tool_call>" and r.finish_reason == "stop"
    assert "".join(pieces) == r.text
    r = s.generate(SamplingParams(max_tokens=3))
    assert (r.text, r.finish_reason, r.completion_tokens) == ("one two three", "length", 3)
    cancel = threading.Event()
    got: list[str] = []

    def on_token(piece: str) -> None:
        got.append(piece)
        if len(got) == 2:
            cancel.set()

    r = s.generate(P, on_token=on_token, cancel=cancel)
    assert (r.text, r.finish_reason) == ("a b", "cancelled")
    assert s.transcript[-1] == Turn("assistant", "a b")


def test_side_generate_leaves_conversation() -> None:
    s = ScriptedSession([TURN1], side_turns=lambda msgs: f"summary of {msgs[-1].text}")
    s.start("", Turn("user", "q"))
    before = s.transcript
    assert s.side_generate([Turn("user", "page")], P).text == "summary of page"
    assert s.transcript == before and s.remaining == 1 and s.stats.side_calls == 1
    listed = ScriptedSession([], side_turns=["only"])
    assert listed.side_generate([Turn("user", "p")], P).text == "only"
    with pytest.raises(ScriptExhausted):
        listed.side_generate([Turn("user", "p")], P)


def test_no_vision() -> None:
    s = ScriptedSession([TURN1], has_vision=False)
    with pytest.raises(NoVisionError):
        s.start("", Turn("user", "q", [ImageInput("image_1", data=b"x")]))


def test_from_trace_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(trace_lines()), encoding="utf-8")
    for source in (path, str(path), trace_lines(), io.StringIO("".join(trace_lines()))):
        s = ScriptedSession.from_trace(source)
        s.start("", Turn("user", "q"))
        assert [s.generate(P).text, s.generate(P).text] == [TURN1, TURN2]


def test_from_trace_errors_name_file_and_line(tmp_path: Path) -> None:
    lines = trace_lines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines[:3] + ["{not json\n"] + lines[3:]), encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{re.escape(str(bad))}:4: not valid JSON") as info:
        ScriptedSession.from_trace(bad)
    assert "\n" not in str(info.value)
    no_raw = tmp_path / "noraw.jsonl"
    no_raw.write_text("".join(lines[:2]) + json.dumps({"type": "step", "n": 3}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{re.escape(str(no_raw))}:3: step event has no raw text"):
        ScriptedSession.from_trace(no_raw)
    with pytest.raises(InputError, match="missing.jsonl: cannot read trace"):
        ScriptedSession.from_trace(tmp_path / "missing.jsonl")
