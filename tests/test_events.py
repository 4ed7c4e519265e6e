"""The event contract: writer, reader, shipped schemas and their validator."""

from __future__ import annotations

import io
import json

import pytest

from vdr_cli.errors import InputError
from vdr_cli.trace import schema
from vdr_cli.trace.events import EVENT_TYPES, event
from vdr_cli.trace.jsonl import JsonlWriter, LineError, PipeClosed, iter_lines, read_records

# One valid example of every event type, with the fields DESIGN.md lists.
EXAMPLES = {
    "session": event("session", v=1, id="s1", ts="2026-11-25T10:00:00.000Z", question="who built this? ☃",
                     images=[{"id": "image_1", "path": "p.jpg", "sha256": "ab" * 32, "width": 640, "height": 480}],
                     model={"name": "vdr-8b", "backend": "llama", "ctx": 32768, "sampling": {"temperature": 0.6}},
                     tools=["search", "crop_and_search", "visit"], vdr="0.1.0"),
    "step": event("step", n=1, think="look at the sign", raw="<think>look</think>", tokens={"prompt_eval": 900, "completion": 40}, ms=812.5),
    "call": event("call", id="c1", step=1, tool="search", args={"query": ["Eiffel", "Koechlin"]}),
    "result": event("result", id="c1", tool="search", ok=True, content="1. [Eiffel](https://e.org)", ms=301.2, cached=False, error=None,
                    data=[event("hit", query="Eiffel", rank=1, title="Eiffel", url="https://e.org", snippet="…", provider="duckduckgo")]),
    "fold": event("fold", step=9, strategy="keep-last:3", tokens={"before": 7400, "after": 3900, "evaluated": 2100},
                  edits=[{"step": 2, "part": "result", "level": 1, "text": "Evidence in page: \n[evidence folded to save context]"}],
                  turn=4, ms=120.0),
    "crop": event("crop", source="p.jpg", box=[10, 20, 110, 220], box_1000=[16, 42, 172, 458], scale=1.5, path="/c/x.png", width=100, height=200),
    "hit": event("hit", query="q", rank=2, title="t", url="https://x.org/a", snippet="s", provider="serper",
                 image_url="https://x.org/i.jpg", thumbnail_url=None),
    "page": event("page", url="https://x.org", final_url="https://x.org/a", status=200, title="T", text="body", links=[], images=[],
                  goal="architect", summary={"rational": "r", "evidence": "e", "summary": "s"}, truncated=False),
    "answer": event("answer", text="Gustave Eiffel's company", step=7),
    "end": event("end", reason="answer", stats={"steps": 7, "calls": 9}),
    "error": event("error", message="p.jpg: not an image", where="p.jpg"),
    "python": event("python", exit=0, timed_out=False, truncated=False, signal=None, ms=71.5, sandbox="linux namespaces"),
}


def test_every_type_has_an_example_and_a_schema():
    assert set(EXAMPLES) == set(EVENT_TYPES)
    for type_ in EVENT_TYPES:
        assert schema.load_schema(type_)["properties"]["type"] == {"const": type_}


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_round_trip(type_):
    buf = io.StringIO()
    JsonlWriter(buf).write(EXAMPLES[type_])
    text = buf.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    [back] = list(read_records(io.StringIO(text)))
    assert back == EXAMPLES[type_]
    assert list(back)[0] == "type"  # type first, for people reading with head
    assert schema.validate_event(back) == []


def test_writer_keeps_unicode_and_flushes_each_line():
    class Counting(io.StringIO):
        flushes = 0

        def flush(self):
            Counting.flushes += 1

    stream = Counting()
    writer = JsonlWriter(stream)
    writer.write({"type": "answer", "text": "Tour Eiffel – 1889 ☃"})
    writer.write({"type": "answer", "text": "x"})
    assert "☃" in stream.getvalue() and "\\u" not in stream.getvalue()
    assert Counting.flushes == 2


def test_writer_turns_broken_pipe_into_pipe_closed():
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

    with pytest.raises(PipeClosed):
        JsonlWriter(Closed()).write({"type": "answer", "text": "x"})


def test_reader_skips_blanks_passes_unknown_types_and_names_bad_lines():
    text = '\n{"type":"future_thing","x":1}\n  \nnot json\n[1,2]\n{"no_type":true}\n'
    items = list(iter_lines(io.StringIO(text), "t.jsonl"))
    assert items[0] == {"type": "future_thing", "x": 1}
    assert isinstance(items[1], LineError) and items[1].lineno == 4 and str(items[1]).startswith("t.jsonl:4: not valid JSON")
    assert isinstance(items[2], LineError) and "expected a JSON object, got list" in items[2].message
    assert items[3] == {"no_type": True}
    with pytest.raises(InputError, match=r"t.jsonl:4"):
        list(read_records(io.StringIO(text), "t.jsonl"))


def test_unknown_types_validate_and_unknown_fields_are_allowed():
    assert schema.validate_event({"type": "from_the_future", "anything": 1}) == []
    assert schema.validate_event({**EXAMPLES["hit"], "new_field": [1]}) == []


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({"type": "hit", "query": "q", "rank": 1, "provider": "p"}, "url: required field missing"),
        ({"type": "hit", "query": "q", "rank": 0, "url": "u", "provider": "p"}, "rank: must be >= 1"),
        ({"type": "hit", "query": "q", "rank": True, "url": "u", "provider": "p"}, "rank: expected integer, got boolean"),
        ({"type": "end", "reason": "bored"}, "reason: must be one of"),
        ({"type": "crop", "source": "s", "box": [1, 2, 3], "path": "p", "width": 1, "height": 1}, "box: needs at least 4 items"),
        ({"type": "step", "n": 1, "raw": "x", "tokens": {"prompt_eval": "many"}}, "tokens.prompt_eval: expected integer"),
        ({"type": "result", "id": "c", "tool": "t", "ok": True, "content": "", "data": [{"type": "hit", "rank": 1}]}, "data[0].query: required"),
        ({"no": "type"}, "type: required"),
    ],
)
def test_validator_reports_problems(record, fragment):
    problems = schema.validate_event(record)
    assert any(fragment in p for p in problems), problems


def test_validate_lines_gives_line_numbers():
    lines = [json.dumps(EXAMPLES["session"]), "", "{oops", json.dumps({"type": "end", "reason": "nope"}), json.dumps(EXAMPLES["end"])]
    problems = list(schema.validate_lines(io.StringIO("\n".join(lines) + "\n")))
    assert [p.lineno for p in problems] == [3, 4]
    assert str(problems[1]).startswith("line 4: end: reason")


def test_event_rejects_unknown_type():
    with pytest.raises(ValueError):
        event("nonsense")
