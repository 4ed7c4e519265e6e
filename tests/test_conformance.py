"""Conformance: `vdr ask` sends a model server exactly what the reference eval sends.

Each scenario drives a real `vdr ask --model openai:...` process against a loopback
OpenAI-compatible server (tests/openai_recorder.py) that plays scripted model outputs
and records every request body. The expected bodies come from tests/reference_oracle.py,
an independent reading of the reference's code (Osilly/Vision-DeepResearch rllm/eval/ at
commit 67af60f077ef, lines cited there and below). Compared: every field of every request
(model, messages in order, each message's role and content, content parts in order,
sampling fields), except the two the model cannot see and vdr sends differently on
purpose (docs/reference-format.md): `stream`/`stream_options` (vdr streams) and the
reference's bookkeeping key `step_error` on assistant messages.

Tool results: search results are rebuilt here in the reference's format from the hits
the loopback search engine returned (tools.py SearchTool._zhipu_search); visit and
crop_and_search bodies are taken from vdr's own trace (their texts are checked in
test_prompt_format.py), after checking the reference's framing of each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openai_recorder import RecordingModel
from reference_oracle import (PYTHON_LINE, REGISTRY, image_data_url, reference_requests)
from tests.conftest import run_vdr
from vdr_cli.tools.sandbox import availability
from test_agent import site  # noqa: F401  (fixture)
from web import web  # noqa: F401  (fixture)

QUESTION = "Who designed the tower in this photo, and when was it finished?"
TRANSPORT = ("stream", "stream_options")  # vdr streams; the reference does not (same prompt)
# PythonInterpreter is in the default prompt wherever tools/sandbox.py can jail the code; where
# it cannot, vdr leaves the tool out by design (docs/reference-format.md) and says so.
PYTHON_PENDING = not availability().ok


# --- the rig ------------------------------------------------------------------------------

def hits_for(web, q: str) -> list[dict[str, str]]:
    return [{"url": web.url("/article/gustave-eiffel"), "title": f"Gustave Eiffel ({q})",
             "content": "Gustave Eiffel's company built the tower."},
            {"url": web.url("/article/maurice-koechlin"), "title": "Maurice Koechlin",
             "content": "Koechlin drew the first design."}]


@pytest.fixture
def rig(site):
    """test_agent's loopback site: SearXNG-shaped search (hits_for) and article pages."""
    return site


def reference_search_text(web, queries: list[str]) -> str:
    """tools.py SearchTool._zhipu_search: per query "Search for '{q}' returned {n} results:\\n\\n"
    + "{i}. [{title}]({url})" + "\\n   {snippet}", entries joined by "\\n\\n", queries by "\\n=======\\n"."""
    blocks = []
    for q in queries:
        entries = [f"{i}. [{h['title']}]({h['url']})\n   {h['content']}" for i, h in enumerate(hits_for(web, q), 1)]
        blocks.append(f"Search for '{q}' returned {len(entries)} results:\n\n" + "\n\n".join(entries))
    return "\n=======\n".join(blocks)


def call(name: str, args: dict[str, Any], think: str = "I should look this up.") -> str:
    return f"<think>\n{think}\n</think>\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def answer(text: str = "Gustave Eiffel's company, 1889.", think: str = "I have enough.") -> str:
    return f"<think>\n{think}\n</think>\n<answer>{text}</answer>"


def run_case(rig, outputs: list[str], *, image: bool = True, question: str = QUESTION, args: tuple[str, ...] = (),
             served: str | None = None):
    web, tmp, env = rig
    model = RecordingModel(web, outputs, **({"model": served} if served else {}))
    trace = tmp / "trace.jsonl"
    cmd = ["ask", *([str(tmp / "photo.png")] if image else []), question, "--model", model.spec(),
           "--summaries", "extractive", "-o", str(trace), *args]
    r = run_vdr(*cmd, env=env, timeout=300)
    events = [json.loads(l) for l in trace.read_text().splitlines() if l.strip()] if trace.exists() else []
    return r, model, events


def expected(rig, outputs: list[str], events: list[dict], *, image: bool = True, question: str = QUESTION,
             python=None) -> list[dict[str, Any]]:
    """The reference's requests for these outputs; registered tools answer as vdr's did."""
    web, tmp, _ = rig
    results = iter([e for e in events if e["type"] == "result" and e["tool"] in ("search", "visit", "crop_and_search")])

    def tool(name: str, args: Any) -> str:
        got = next(results)
        assert got["tool"] == name, f"vdr ran {got['tool']}, the reference runs {name}"
        if name == "search":
            text = reference_search_text(web, list(args["query"]))
            assert got["content"] == text
            return text
        if name == "visit":
            assert got["content"].startswith(f"The useful information in {args['url'][0]} for user goal {args['goal']} as follows: \n\n")
        if name == "crop_and_search":
            assert args["image_id"] == "<image_path>"  # L447-448: the task's image, whatever the model wrote
            assert got["content"].startswith("The search results for bbox ")
        return got["content"]

    images = [image_data_url((tmp / "photo.png").read_bytes(), "PNG")] if image else []
    return reference_requests(question, outputs, tool, images=images, python=python)


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A request without the fields the model never sees and vdr sends on purpose otherwise."""
    out = {k: v for k, v in body.items() if k not in TRANSPORT}
    out["messages"] = [{k: v for k, v in m.items() if k != "step_error"} for m in body["messages"]]
    return out


def pending_gaps(body: dict[str, Any]) -> dict[str, Any]:
    """Where no sandbox can be built: the reference's request as vdr sends it without an
    interpreter (no PythonInterpreter line; "Available tools" without it). Nothing else."""
    if not PYTHON_PENDING:
        return body
    out = json.loads(json.dumps(body))
    system = out["messages"][0]
    system["content"] = system["content"].replace("\n" + PYTHON_LINE, "")
    full, short = str(REGISTRY), str([t for t in REGISTRY if t != "PythonInterpreter"])
    for m in out["messages"]:
        if isinstance(m["content"], str):
            m["content"] = m["content"].replace(f"Available tools: {full}", f"Available tools: {short}")
    return out


def assert_conforms(model: RecordingModel, want: list[dict[str, Any]], gaps: bool = True) -> None:
    got = [comparable(b) for b in model.requests]
    want = [pending_gaps(comparable(b)) if gaps else comparable(b) for b in want]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            keys = sorted(set(g) | set(w))
            fields = [k for k in keys if g.get(k) != w.get(k)]
            detail = ""
            if "messages" in fields:
                gm, wm = g["messages"], w["messages"]
                j = next((j for j in range(min(len(gm), len(wm))) if gm[j] != wm[j]), min(len(gm), len(wm)))
                detail = f"; first differing message {j}: vdr {gm[j] if j < len(gm) else None!r:.600} " \
                         f"!= reference {wm[j] if j < len(wm) else None!r:.600}"
            pytest.fail(f"request {i + 1} differs in {fields}{detail}")
    assert len(got) == len(want), f"vdr sent {len(got)} requests, the reference sends {len(want)}"


# --- scenarios ------------------------------------------------------------------------------

def test_image_path_crop_search_slip_bad_json_visit_answer(rig):
    web, _, _ = rig
    outputs = [
        call("crop_and_search", {"image_id": "photo.png", "bbox": [[100, 100, 600, 700]], "goal": "identify the tower"}),
        call("search", {"query": ["Eiffel tower architect", "Eiffel tower completion year"]}),
        "<think>\nThe tower is the Eiffel Tower; I will say so.\n</think>\nIt is the Eiffel Tower.",  # a format slip
        "<think>\nvisit it\n</think>\n<tool_call>\n{\"name\": \"visit\", \"arguments\": {\"url\": [\"x\"], }\n</tool_call>",
        call("visit", {"url": [web.url("/article/gustave-eiffel")], "goal": "who designed it and when it was finished"}),
        answer(),
    ]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    # the bad JSON got the reference's tool response, not the format error (L444-458)
    assert model.requests[4]["messages"][-1]["content"] == "<tool_response>\n[Json Parse Error]: Tool call is not a valid JSON.\n</tool_response>"
    # text first, then the image (L322-329); the question as given, no image id line
    assert [p["type"] for p in model.requests[0]["messages"][1]["content"]] == ["text", "image_url"]
    assert model.requests[0]["messages"][1]["content"][0]["text"] == QUESTION


def test_text_only(rig):
    outputs = [call("search", {"query": ["Eiffel tower architect"]}), answer()]
    r, model, events = run_case(rig, outputs, image=False, question="  Who designed the Eiffel Tower?  ")
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events, image=False, question="  Who designed the Eiffel Tower?  "))
    assert "crop_and_search" not in model.requests[0]["messages"][0]["content"]  # L333-340: _TEXT prompt
    assert model.requests[0]["messages"][1] == {"role": "user", "content": "Who designed the Eiffel Tower?"}


def test_query_with_the_word_python_goes_to_the_interpreter(rig):
    # L417: any <tool_call> whose text contains "python" is a PythonInterpreter call; no <code>: L436-440.
    outputs = [call("search", {"query": ["Python programming language creator"]}), answer("Guido van Rossum")]
    r, model, events = run_case(rig, outputs, image=False, question="Who created Python?")
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events, image=False, question="Who created Python?"))
    assert model.requests[1]["messages"][-1]["content"] == \
        "<tool_response>\n[Python Interpreter Error]: Python code formatting error.\n</tool_response>"
    assert not [e for e in events if e["type"] == "result" and e["tool"] == "search"]  # no search ran


@pytest.mark.skipif(PYTHON_PENDING, reason="no sandbox on this platform: PythonInterpreter is left out")
def test_python_interpreter_call_in_its_trained_form(rig):
    code_call = ('<think>\nCompute it.\n</think>\n<tool_call>\n{"name": "PythonInterpreter", "arguments": {}}\n'
                 "<code>\nprint(1889 - 1887)\n</code>\n</tool_call>")
    outputs = [code_call, answer("2 years")]
    r, model, events = run_case(rig, outputs, image=False, question="How many years from 1887 to 1889?")
    assert r.returncode == 0, r.stderr.decode()
    # tools.py PythonInterpreterTool.call: stdout, right-stripped, after "[Output]\n".
    want = expected(rig, outputs, events, image=False, question="How many years from 1887 to 1889?",
                    python=lambda code: "[Output]\n2")
    assert_conforms(model, want, gaps=False)


def test_answer_followed_by_a_call_runs_the_call(rig):
    # L403 before L462: a turn with both a complete call and an answer is a call.
    outputs = ["<think>\nmaybe\n</think>\n<answer>Eiffel</answer>\n" + call("search", {"query": ["Eiffel tower"]}, "check"),
               answer()]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    assert "<answer>Eiffel</answer>" in model.requests[1]["messages"][2]["content"]  # the turn is kept whole


def test_two_calls_in_one_turn_run_the_first_and_keep_both(rig):
    outputs = [call("search", {"query": ["Eiffel tower"]}) + "\n" + call("search", {"query": ["Koechlin"]}, "and"),
               answer()]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    assert [e["args"] for e in events if e["type"] == "call"] == [{"query": ["Eiffel tower"]}]


def test_three_repetitive_turns_the_third_dropped(rig):
    loop = "<think>\n" + "the tower the tower is tall and " * 700 + "\n</think>"  # > 2500 words, distinct 30-grams < 0.5
    outputs = [loop, loop, loop, answer()]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    last = model.requests[-1]["messages"]
    assert last[-1]["content"].startswith("Based on all the information above")  # L486
    assert last[-2]["content"].startswith("Error: Content repetition detected.")  # the second's error, then the request


def test_budget_ends_in_a_slip_both_turns_sent(rig):
    # 49 rounds of calls to an unknown tool, then a format slip in round 50: the format
    # error stays and the round-limit request follows it (L524-542).
    outputs = [call("lookup", {"q": str(i)}) for i in range(49)] + ["no tags at all", answer()]
    r, model, events = run_case(rig, outputs, image=False, question="q?")
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events, image=False, question="q?"))
    assert len(model.requests) == 51
    tail = [m["content"] for m in model.requests[-1]["messages"][-2:]]
    assert tail[0].startswith("Error: Invalid content format.") and tail[1].startswith("You have reached the maximum number of reasoning rounds (50).")


def test_budget_ends_in_a_call(rig):
    outputs = [call("lookup", {"q": str(i)}) for i in range(49)] + [call("search", {"query": ["Eiffel"]}), answer()]
    r, model, events = run_case(rig, outputs, image=False, question="q?")
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events, image=False, question="q?"))
    tail = [m["content"] for m in model.requests[-1]["messages"][-2:]]
    assert tail[0].startswith("<tool_response>\nSearch for 'Eiffel'") and tail[1].startswith("You have reached")


def test_unknown_tool(rig):
    outputs = [call("teleport", {"to": "Paris"}), answer()]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    assert model.requests[1]["messages"][-1]["content"].startswith("<tool_response>\nTool teleport not found. Available tools: ['search', 'visit', ")


@pytest.mark.skipif(PYTHON_PENDING, reason="no sandbox on this platform: PythonInterpreter is left out")
def test_unknown_tool_lists_the_reference_registry(rig):
    outputs = [call("teleport", {"to": "Paris"}), answer()]
    r, model, events = run_case(rig, outputs)
    assert_conforms(model, expected(rig, outputs, events), gaps=False)


def test_hallucinated_tool_response_is_cut(rig):
    outputs = [call("search", {"query": ["Eiffel tower"]}) + "\n<tool_response>\nThe tower was built by me.\n</tool_response>\n"
               "<answer>me</answer>", answer()]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    assert "built by me" not in json.dumps(model.requests[1])


def test_answer_with_no_think(rig):
    outputs = ["<answer>Gustave Eiffel's company</answer>"]
    r, model, events = run_case(rig, outputs)
    assert r.returncode == 0, r.stderr.decode()
    assert_conforms(model, expected(rig, outputs, events))
    assert [e["text"] for e in events if e["type"] == "answer"] == ["Gustave Eiffel's company"]


@pytest.mark.skipif(PYTHON_PENDING, reason="no sandbox on this platform: PythonInterpreter is left out")
def test_default_system_prompt_is_the_references(rig):
    outputs = [answer()]
    r, model, events = run_case(rig, outputs)
    assert_conforms(model, expected(rig, outputs, events), gaps=False)


def test_request_fields_are_the_references_unless_set(rig):
    outputs = [answer()]
    r, model, _ = run_case(rig, outputs)
    assert set(model.requests[0]) - set(TRANSPORT) == {"model", "messages", "temperature", "top_p"}
    r, model, _ = run_case(rig, [answer()], args=("--max-tokens", "512", "--seed", "7", "--temperature", "0.3"))
    body = model.requests[0]
    assert (body["max_tokens"], body["seed"], body["temperature"]) == (512, 7, 0.3)
    assert not {"top_k", "min_p", "repeat_penalty", "stop", "cache_prompt"} & set(body)


@pytest.mark.parametrize("served", ["Qwen3-VL-30B-A3B-Instruct", "policy"])
def test_the_released_model_served_under_any_name_gets_the_references_requests(rig, served):
    # The reference serves its policy as "Qwen3-VL-30B-A3B-Instruct" (rllm/eval/deploy/
    # run_inference_server.sh@67af60f, MODEL_NAME): a served name says nothing about the
    # weights, so --grammar auto adds no grammar or stop strings over HTTP.
    outputs = [call("search", {"query": ["Eiffel Tower designer"]}), answer()]
    r, model, events = run_case(rig, outputs, served=served)
    assert r.returncode == 0, r.stderr.decode()
    assert not {"grammar", "guided_grammar", "stop", "max_tokens"} & set(model.requests[0])
    want = [{**body, "model": served} for body in expected(rig, outputs, events)]
    assert_conforms(model, want)


# --- the server's real context ------------------------------------------------------------

@pytest.mark.parametrize("server, args, ctx, source", [
    ({"max_model_len": 163840}, (), 163840, "server /v1/models max_model_len"),  # vLLM
    ({"max_model_len": None, "props_n_ctx": 65536}, (), 65536, "server /props n_ctx"),  # llama-server
    ({"max_model_len": 163840}, ("--ctx", "8192"), 8192, "--ctx"),
    ({"max_model_len": None}, (), 32768, "guess"),
])
def test_context_budget_comes_from_the_server(rig, server, args, ctx, source):
    web, tmp, env = rig
    model = RecordingModel(web, [answer()], **server)
    trace = tmp / "ctx.jsonl"
    r = run_vdr("ask", "q?", "--model", model.spec(), "-o", str(trace), *args, env=env)
    assert r.returncode == 0, r.stderr.decode()
    header = json.loads(trace.read_text().splitlines()[0])
    assert (header["model"]["ctx"], header["model"]["ctx_source"]) == (ctx, source)
    warned = "does not say its context size; assuming 32768 tokens" in r.stderr.decode()
    assert warned is (source == "guess")  # a guess is never silent
