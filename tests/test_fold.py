"""Context folding in the agent loop (agent/fold.py): the trace says what the model saw instead.

A scripted model (word counts as tokens) against the loopback web: folds
happen when the window fills, the head (system prompt, question, image) is
never touched, the trace rebuilds exactly the conversation the model had,
and resume, rerun, replay --check and the HTML report follow the folds. Over
HTTP, the request after a fold carries the folded messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_vdr
from tests.web import web  # noqa: F401  (fixture)
from tests.web.server import Response, WebServer, article_html
from vdr_cli.agent import digest, prompt
from vdr_cli.agent.fold import FoldPolicy, Folder, apply, parse_fold, rebuild
from vdr_cli.agent.loop import LoopConfig
from vdr_cli.agent.rerun import rerun
from vdr_cli.agent.session import SessionSpec, kept_events, read_trace, resume_session, run_session
from vdr_cli.agent.toolbox import SessionImage, ToolSettings, WebToolbox
from vdr_cli.errors import UsageError
from vdr_cli.models.base import SamplingParams
from vdr_cli.models.scripted import ScriptedSession, words
from vdr_cli.trace.check import check_items
from vdr_cli.trace.schema import validate_lines

WORDS = ("tower iron lattice engineer exhibition Paris structure girder rivet height metres visitors design "
         "company bridge viaduct century monument steel platform").split()


def paragraphs(n: int, count: int = 14) -> list[str]:
    """A page of ~700 words, different for each n (a realistic article body)."""
    return [" ".join(WORDS[(n * 7 + p * 3 + i * i) % len(WORDS)] for i in range(50)) + "." for p in range(count)]


@pytest.fixture
def site(web: WebServer, monkeypatch: pytest.MonkeyPatch) -> WebServer:
    def searxng(req):
        q = req.query.get("q", "")
        return {"query": q, "results": [{"url": web.url(f"/page/{i}"), "title": f"Page {i} on {q}",
                                         "content": "A page about the tower.", "engine": "x"} for i in range(3)]}

    web.add_route("GET", "/searxng/search", searxng)
    web.add_route("GET", "/page/", lambda r: Response(200, article_html(
        title=f"Page {r.path.rsplit('/', 1)[-1]}", paragraphs=paragraphs(int(r.path.rsplit("/", 1)[-1])))), prefix=True)
    monkeypatch.setenv("VDR_SEARCH_PROVIDER", "searxng")
    monkeypatch.setenv("VDR_SEARCH_SEARXNG_URL", web.url("/searxng"))
    return web


def call(name: str, args: dict) -> str:
    return f"<think>I should use {name} now.</think>\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def visits(web: WebServer, n: int) -> list[str]:
    return [call("visit", {"url": [web.url(f"/page/{i}")], "goal": "who built the tower"}) for i in range(n)]


ANSWER = "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"


def image(tmp_path: Path) -> SessionImage:
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return SessionImage(id="image_1", path=path, sha256="x", width=64, height=48)


def toolbox(images: list[SessionImage]) -> WebToolbox:
    return WebToolbox(images, ToolSettings(use_cache=False, allow_private=True))


def config(fold: FoldPolicy | None, **kw) -> LoopConfig:
    return LoopConfig(max_steps=kw.pop("max_steps", 50), sampling=SamplingParams(max_tokens=256), answer_reserve=200,
                      tools=("search", "visit", "crop_and_search"), fold=fold, **kw)


class Recording(ScriptedSession):
    """Keeps the conversation as it stood at each generate call."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.seen: list[list[tuple[str, str]]] = []

    def generate(self, *a, **kw):
        self.seen.append(view(self))
        return super().generate(*a, **kw)


def run(turns: list[str], n_ctx: int, fold: FoldPolicy | None, images: list[SessionImage] = (), **kw):
    model = Recording(turns, n_ctx=n_ctx, **kw)
    spec = SessionSpec(question="Who built this tower?", images=list(images), tools=["search", "visit", "crop_and_search"])
    events: list[dict] = []
    outcome = run_session(spec, model, toolbox(list(images)), events.append, config(fold))
    return model, events, outcome


def _norm(role: str, text: str) -> tuple[str, str]:
    # The scripted backend keeps a played turn without the stop string that ended it.
    return role, text.removesuffix("</tool_call>").removesuffix("</answer>") if role == "assistant" else text


def view(model: ScriptedSession) -> list[tuple[str, str]]:
    return [_norm(t.role, t.text) for t in model.transcript]


def expected_view(events: list[dict]) -> list[tuple[str, str]]:
    rec = read_trace(events)
    return [_norm(t.role, t.text) for t in (e.turn() for e in rebuild(rec.steps, rec.folds))]


def test_keep_last_folds_old_results_and_the_trace_rebuilds_what_the_model_saw(site, tmp_path) -> None:
    img = image(tmp_path)
    model, events, outcome = run(visits(site, 12) + [ANSWER], 5000, FoldPolicy("keep-last", keep=2), [img])
    assert outcome.reason == "answer" and outcome.stats["calls"] == 12
    folds = [e for e in events if e["type"] == "fold"]
    assert folds and outcome.stats["folds"] == len(folds)
    for f in folds:
        assert f["tokens"]["after"] < f["tokens"]["before"] and f["strategy"] == "keep-last:2"
        assert f["tokens"]["after"] <= 0.75 * 5000
    # the head: system prompt and the question with its image, untouched
    head = model.transcript[:2]
    assert head[1].images and head[1].images[0].id == "image_1" and "Who built this tower?" in head[1].text
    # the last two tool responses are whole; the oldest lost its evidence or became a stub
    results = [t.text for t in model.transcript if t.text.startswith(prompt.TOOL_RESPONSE_START)]
    recorded = [e["content"] for e in events if e["type"] == "result"]
    assert results[-2:] == [prompt.tool_response(c) for c in recorded[-2:]]
    texts = [t.text for t in model.transcript]
    assert prompt.tool_response(recorded[0]) not in texts  # the oldest went first (digest, stub or index)
    assert any("folded to save context" in t for t in texts)
    assert not any("truncated: context window full" in t.text for t in model.transcript)  # room made before appending
    # the trace alone gives the conversation the model had after the head
    assert view(model)[2:] == expected_view(events)[:len(view(model)) - 2]
    lines = [json.dumps(e) for e in events]
    assert list(validate_lines(lines)) == []
    report = check_items((i, json.loads(line), line) for i, line in enumerate(lines, 1))
    assert report.ok and report.complete, [p.message for p in report.problems]


def test_nothing_changes_when_the_window_is_large_enough(site) -> None:
    turns = visits(site, 4) + [ANSWER]
    folded_model, folded, _ = run(turns, 200_000, FoldPolicy("keep-last", keep=1))
    plain_model, plain, _ = run(turns, 200_000, None)
    assert not [e for e in folded if e["type"] == "fold"]
    assert view(folded_model) == view(plain_model)  # the reference's conversation, turn for turn


def test_off_ends_with_the_final_answer_request_where_folding_goes_on(site) -> None:
    _, events, outcome = run(visits(site, 12) + [ANSWER], 3000, None)
    assert outcome.stats["calls"] < 12 and outcome.reason == "context_full"
    _, events, outcome = run(visits(site, 12) + [ANSWER], 3000, FoldPolicy("keep-last", keep=3))
    assert outcome.stats["calls"] == 12 and outcome.reason == "answer"


def test_resume_after_a_fold_sees_the_folded_conversation(site, tmp_path) -> None:
    img = image(tmp_path)
    turns = visits(site, 10) + [ANSWER]
    live, events, _ = run(turns, 3000, FoldPolicy("keep-last", keep=2), [img])
    fold_at = [e for e in events if e["type"] == "fold"][0]["step"]
    cut = fold_at + 2  # interrupted two steps after the first fold
    prefix = kept_events(events, cut)
    assert any(e["type"] == "fold" for e in prefix)
    recorded = read_trace(prefix)
    again = Recording(turns[cut:], n_ctx=3000)
    resumed: list[dict] = []
    outcome = resume_session(recorded, again, toolbox([img]), resumed.append, config(FoldPolicy("keep-last", keep=2)))
    assert outcome.reason == "answer"
    # the resumed model generates step cut+1 from exactly what the live model had then
    assert again.seen[0] == live.seen[cut]
    assert any("folded to save context" in text for _, text in again.seen[0])
    assert again.transcript[1].images  # the image of the first turn survives folds and resume
    assert [e["n"] for e in resumed if e["type"] == "step"][0] == cut + 1


def test_rerun_of_a_folded_trace_replays_its_folds(site) -> None:
    _, events, _ = run(visits(site, 10) + [ANSWER], 3000, FoldPolicy("keep-last", keep=2))
    rows, summary = rerun(events, toolbox, config(None))
    assert summary["reason"] == "answer" and summary["calls"] == 10 and summary["changed"] == 0


def test_replay_check_and_html_show_folds(site, tmp_path) -> None:
    _, events, _ = run(visits(site, 10) + [ANSWER], 3000, FoldPolicy("keep-last", keep=2))
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    r = run_vdr("replay", "--check", str(trace))
    assert r.returncode == 0, r.stderr.decode()
    html = tmp_path / "r.html"
    r = run_vdr("replay", str(trace), "--html", str(html))
    assert r.returncode == 0, r.stderr.decode()
    assert "folded" in html.read_text().lower()
    # a fold naming a step that never happened is caught, with its line
    bad = [dict(e) for e in events]
    i = next(i for i, e in enumerate(bad) if e["type"] == "fold")
    bad[i]["edits"] = bad[i]["edits"] + [{"step": 99, "part": "result", "text": "x"}]
    trace.write_text("".join(json.dumps(e) + "\n" for e in bad))
    r = run_vdr("replay", "--check", str(trace))
    assert r.returncode != 0 and f":{i + 1}:" in r.stderr.decode() and "step 99" in r.stderr.decode()


def test_summarise_replaces_old_steps_with_the_models_summary(site) -> None:
    turns = visits(site, 3)
    model = ScriptedSession(turns + ["<summary>Pages 0-2 say Eiffel's company built it.</summary>", ANSWER], n_ctx=2600)
    spec = SessionSpec(question="Who built this tower?", images=[], tools=["search", "visit"])
    events: list[dict] = []
    outcome = run_session(spec, model, toolbox([]), events.append, config(FoldPolicy("summarise", at=0.5, to=0.3)))
    assert outcome.reason == "answer"
    [fold] = [e for e in events if e["type"] == "fold"]
    assert fold["summary"]["upto"] == fold["step"] - 1
    assert "Eiffel's company built it." in fold["summary"]["text"]
    texts = [t.text for t in model.transcript]
    assert texts[2] == fold["summary"]["text"]  # right after the head
    assert prompt.SUMMARY_REQUEST not in texts  # the request and the summary turn itself are gone
    assert view(model)[2:] == expected_view(events)[:len(model.transcript) - 2]


def test_http_request_after_a_fold_carries_the_folded_messages(site, web) -> None:
    from tests.test_openai_backend import stream
    from vdr_cli.models.openai_http import OpenAISession

    turns = iter(visits(site, 8) + [ANSWER])
    web.add_route("POST", "/v1/chat/completions", lambda req: stream(next(turns)))
    model = OpenAISession("m", web.base + "/v1", n_ctx=4000)
    spec = SessionSpec(question="Who built this tower?", images=[], tools=["search", "visit"])
    events: list[dict] = []
    run_session(spec, model, toolbox([]), events.append, config(FoldPolicy("keep-last", keep=1)))
    fold = next(e for e in events if e["type"] == "fold")
    bodies = [json.loads(r.body) for r in web.requests if r.path == "/v1/chat/completions"]
    after = bodies[fold["step"]]["messages"]  # the request for step fold.step + 1
    sent = [m["content"] for m in after]
    for edit in fold["edits"]:
        if edit["part"] == "result":
            assert prompt.tool_response(edit["text"]) in sent
    assert sent[:2] == [m["content"] for m in bodies[0]["messages"][:2]]  # the head is the same


def test_digest_levels_and_policy_parsing() -> None:
    page = ("The useful information in http://x.test/a for user goal g as follows: \n\nEvidence in page: \n"
            + "long evidence " * 50 + "\n\nSummary: \nThe company built it.\n\n")
    brief = digest.brief(page)
    assert prompt.FOLDED_EVIDENCE in brief and "The company built it." in brief and len(brief) < len(page) / 3
    stub = digest.stub(page, 4, "visit")
    assert stub.startswith("[Folded") and "http://x.test/a" in stub and "The company built it." in stub
    assert digest.drop_thought(call("search", {"query": ["q"]})).startswith(f"<think>{prompt.FOLDED_THOUGHT}</think>")
    assert parse_fold("keep-last:5").keep == 5 and parse_fold("summarise").strategy == "summarise"
    assert parse_fold("off") is None and parse_fold("keep-last:2", at=0.6).at == 0.6
    for bad in ("keep-last", "keep-last:x", "fold-everything"):
        with pytest.raises(UsageError):
            parse_fold(bad)
    with pytest.raises(UsageError):
        parse_fold("summarise", at=1.5)
