"""`vdr eval` end to end: scripted agents against the loopback web, judges on a loopback
OpenAI-shaped route and on llama-cpp-python's server (real SmolLM2), resume, Parquet, bad input."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import run_vdr  # noqa: E402
from tests.llama_server import LlamaServer, llama, server_available, start_server  # noqa: E402,F401
from tests.web import dead_url, web  # noqa: E402,F401  (fixture)
from tests.web.server import Response  # noqa: E402
from vdr_cli.agent.evaluate import normalize, parse_verdict, prediction_of  # noqa: E402

ANSWER = "<think>enough</think>\n<answer>Gustave Eiffel's company</answer>"
# Ten items: gold answers that do and do not match the scripted answer after normalisation.
TEN = [
    ("q1", "Gustave Eiffel's company", "art", True),
    ("q2", "  GUSTAVE   EIFFEL'S company. ", "art", True),
    ("q3", "\"gustave eiffel's company\"", "art", True),
    ("q4", ["Eiffel et Cie", "Gustave Eiffel's company"], "history", True),
    ("q5", "Maurice Koechlin", "history", False),
    ("q6", "Eiffel", "history", False),  # contained, not equal: exact match says no, a judge may say yes
    ("q7", "Stephen Sauvestre", "geo", False),
    ("q8", "Gustave Eiffel's company!", "geo", True),
    ("q9", "1889", "geo", False),
    ("q10", "Gustave Eiffel company", "art", False),
]


def png_bytes(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def site(web, tmp_path):
    """SearXNG-shaped search answering with article pages on the same server."""
    def searxng(req):
        q = req.query.get("q", "")
        return {"query": q, "results": [
            {"url": web.url("/article/gustave-eiffel"), "title": f"Gustave Eiffel ({q})",
             "content": "Gustave Eiffel's company built the tower.", "engine": "x"}]}

    web.add_route("GET", "/searxng/search", searxng)
    (tmp_path / "photo.png").write_bytes(png_bytes())
    env = {"VDR_SEARCH_PROVIDER": "searxng", "VDR_SEARCH_SEARXNG_URL": web.url("/searxng"),
           "VDR_SEARCH_IMAGE_PROVIDER": "describe", "VDR_NET_ALLOW_PRIVATE": "1"}
    return web, tmp_path, env


def script(tmp: Path, turns: list[str], name: str = "script.jsonl") -> Path:
    path = tmp / name
    lines = [{"type": "session", "v": 1, "id": "s", "ts": "t", "question": "q", "images": [], "model": {}, "vdr": "0"}]
    lines += [{"type": "step", "n": n, "raw": raw} for n, raw in enumerate(turns, 1)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def search_then_answer(tmp: Path) -> Path:
    call = json.dumps({"name": "search", "arguments": {"query": ["Eiffel tower builder"]}})
    return script(tmp, [f"<think>search</think>\n<tool_call>\n{call}\n</tool_call>", ANSWER])


def ten_items(tmp: Path) -> Path:
    """The ten items; two carry the photo (a path relative to the set's folder, and a data: URL)."""
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes((0, 90, 200))).decode()
    rows = []
    for n, (item_id, gold, domain, _) in enumerate(TEN):
        row = {"id": item_id, "question": "Who built this tower?", "answer": gold, "domain": domain,
               "level": "easy" if n % 2 else "hard"}
        if n == 0:
            row["images"] = ["photo.png"]
        if n == 1:
            row["images"] = [data_url]
        rows.append(row)
    path = tmp / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def evaluate(env, bench: Path, model: Path, out: Path, *extra: str, **kw):
    """vdr eval with a scripted agent; exact-match judging unless a --judge is given."""
    judge = [] if "--judge" in extra else ["--judge", "exact"]
    return run_vdr("eval", str(bench), "--model", f"scripted:{model}", "-o", str(out), "--summaries", "extractive",
                   "--no-cache", *judge, *extra, env=env, **kw)


def searches(web) -> int:
    return sum(1 for r in web.requests if r.path == "/searxng/search")


# --- pure functions ----------------------------------------------------------------------

def test_verdicts_normalisation_and_predictions():
    assert parse_verdict("correct: yes\nreasoning: it says so") is True
    assert parse_verdict("Reasoning first.\nCorrect: No, it names someone else") is False
    assert parse_verdict("**correct:** [yes]") is True
    assert parse_verdict("I think the report is right.") is None and parse_verdict("") is None
    assert normalize('  "Gustave  EIFFEL\'s company." ') == "gustave eiffel's company"
    assert prediction_of("<think>hmm</think><answer> Paris </answer>") == "Paris"
    assert prediction_of("<think>unfinished") == "" and prediction_of("plain") == "plain"
    assert prediction_of("so it is \\boxed{1889}.") == "1889"  # eval_runner.py _extract_final_answer


# --- scripted agents, exact-match judging ----------------------------------------------------

def test_exact_match_judging_and_per_domain_metrics(site):
    web, tmp, env = site
    out = tmp / "run"
    r = evaluate(env, ten_items(tmp), search_then_answer(tmp), out, "--judge", "none", "-P", "3", "--group-by", "level")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    recs = results(out)
    assert [x["id"] for x in recs] == [t[0] for t in TEN]  # set order, one line each
    assert {x["id"]: x["correct"] for x in recs} == {t[0]: t[3] for t in TEN}
    assert all(x["judge"] == "exact" and x["judge_text"] is None and x["reason"] == "answer" for x in recs)
    assert all(x["steps"] == 2 and x["calls"] == 1 and x["prediction"] == "Gustave Eiffel's company" for x in recs)
    assert all(Path(x["trace"]).parent == out / "traces" and Path(x["trace"]).is_file() for x in recs)
    assert recs[0]["tags"] == {"domain": "art", "level": "hard"} and recs[3]["answer"][0] == "Eiffel et Cie"
    # the data: URL became a file named by its content, and the session saw it
    decoded = list((out / "images").glob("*.png"))
    assert len(decoded) == 1 and re.fullmatch(r"[0-9a-f]{64}\.png", decoded[0].name)
    header = json.loads(Path(recs[1]["trace"]).read_text().splitlines()[0])
    assert header["images"][0]["path"] == str(decoded[0].resolve())
    assert json.loads(Path(recs[0]["trace"]).read_text().splitlines()[0])["images"][0]["path"] == str((tmp / "photo.png").resolve())
    # piped: the same lines on stdout; the table on stderr, plain text
    assert sorted(json.loads(line)["id"] for line in r.stdout.decode().splitlines()) == sorted(x["id"] for x in recs)
    assert "accuracy" in err and "5/10  50.0%" in err and "domain=art" in err and "\x1b[" not in err
    assert "exact match is not the paper's metric" in err
    m = json.loads((out / "metrics.json").read_text())
    assert (m["items"], m["ran"], m["correct"], m["accuracy"], m["pending"]) == (10, 10, 5, 0.5, 0)
    assert m["groups"]["domain"] == {"art": {"n": 4, "correct": 3, "accuracy": 0.75},
                                     "geo": {"n": 3, "correct": 1, "accuracy": 1 / 3},
                                     "history": {"n": 3, "correct": 1, "accuracy": 1 / 3}}
    assert set(m["groups"]["level"]) == {"easy", "hard"}
    assert m["endings"] == {"answer": 10, "max_steps": 0, "context_full": 0, "error": 0, "interrupted": 0}
    assert (m["mean_steps"], m["mean_calls"], m["judges"]) == (2.0, 1.0, {"exact": 10})
    assert searches(web) == 10


def test_errored_items_exit_3_and_run_again(site):
    web, tmp, env = site
    bench = tmp / "b.jsonl"
    rows = [{"id": "ok", "question": "q?", "answer": "Gustave Eiffel's company"},
            {"id": "bad", "question": "q?", "answer": "x", "images": ["missing.png"]}]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, model = tmp / "run", search_then_answer(tmp)
    r = evaluate(env, bench, model, out)
    assert r.returncode == 3, r.stderr.decode()
    bad = results(out)[1]
    assert (bad["reason"], bad["judge"], bad["correct"]) == ("error", None, False) and "missing.png" in bad["error"]
    (tmp / "missing.png").write_bytes(png_bytes())  # fixed: only the errored item runs again
    before = searches(web)
    r = evaluate(env, bench, model, out)
    assert r.returncode == 0, r.stderr.decode()
    assert searches(web) == before + 1 and [x["reason"] for x in results(out)] == ["answer", "answer"]
    # nothing could run at all: 1
    bench.write_text(json.dumps({"id": "a", "question": "q?", "answer": "x", "images": ["nope.png"]}) + "\n")
    assert evaluate(env, bench, model, tmp / "run2").returncode == 1


# --- an LLM judge on a loopback OpenAI-shaped route ----------------------------------------

def sse(text: str) -> Response:
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    return Response(200, content_type="text/event-stream",
                    chunks=[f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"])


def verdict_for(prompt: str) -> Response:
    """A judge's reply: yes when the gold answer appears in the report; garbled for '1889'."""
    gold = prompt.split("[Correct Answer]\n", 1)[1].split("\n\n[Deep Research Report]", 1)[0]
    report = prompt.split("[Deep Research Report]\n", 1)[1].split("\n\nTask:", 1)[0]
    if gold == "1889":
        return sse("The report is about a tower.")
    verdict = "yes" if any(g.lower() in report.lower() for g in gold.split(" / ")) else "no"
    return sse(f"correct: {verdict}\nreasoning: checked")


def fake_judge(web) -> list[dict]:
    bodies: list[dict] = []

    def judge(req):
        body = json.loads(req.body)
        bodies.append(body)
        return verdict_for(body["messages"][-1]["content"])

    web.add_route("POST", "/judge/v1/chat/completions", judge)
    return bodies


def test_llm_judge_verdicts_fallback_and_resume(site):
    web, tmp, env = site
    bodies = fake_judge(web)
    out, bench, model = tmp / "run", ten_items(tmp), search_then_answer(tmp)
    judge = ["--judge", f"openai:judge-model@{web.url('/judge/v1')}"]
    r = evaluate(env, bench, model, out, *judge)
    assert r.returncode == 0, r.stderr.decode()
    recs = {x["id"]: x for x in results(out)}
    assert len(bodies) == 10
    first = bodies[0]
    assert first["model"] == "judge-model" and first["temperature"] == 0 and first["max_tokens"] == 1024
    assert first["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert first["messages"][1]["content"].startswith("You are a impartial judge evaluating whether a deep research report")
    assert "[Deep Research Report]\nGustave Eiffel's company\n" in first["messages"][1]["content"]
    assert (recs["q6"]["judge"], recs["q6"]["correct"]) == ("llm", True)  # the judge, not exact match, decided
    assert recs["q6"]["judge_text"] == "correct: yes\nreasoning: checked"
    assert (recs["q5"]["judge"], recs["q5"]["correct"]) == ("llm", False)
    assert (recs["q9"]["judge"], recs["q9"]["correct"], recs["q9"]["judge_text"]) == \
        ("exact-fallback", False, "The report is about a tower.")
    m = json.loads((out / "metrics.json").read_text())
    assert m["judges"] == {"llm": 9, "exact-fallback": 1} and m["correct"] == 3  # q1, q4, q6: literal containment
    # resume: three results lost; only they are judged again, and no session runs again
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:7]) + "\n")
    before = searches(web)
    r = evaluate(env, bench, model, out, *judge)
    assert r.returncode == 0, r.stderr.decode()
    assert len(bodies) == 13 and searches(web) == before
    assert "7 of 10 items already judged" in r.stderr.decode() and len(results(out)) == 10
    assert [x["id"] for x in results(out)] == [t[0] for t in TEN]
    r = evaluate(env, bench, model, out, *judge)
    assert r.returncode == 0 and len(bodies) == 13 and r.stdout == b""


def test_unreachable_judge_falls_back_to_exact_match(site):
    web, tmp, env = site
    out = tmp / "run"
    r = evaluate(env, ten_items(tmp), search_then_answer(tmp), out, "--judge", f"openai:j@{dead_url()}/v1", "--limit", "2")
    assert r.returncode == 0, r.stderr.decode()
    recs = results(out)
    assert [x["judge"] for x in recs] == ["exact-fallback"] * 2 and [x["correct"] for x in recs] == [True, True]
    assert all(x["judge_text"].startswith("judge_error: ") for x in recs)


# --- Parquet ---------------------------------------------------------------------------------

def fake_policy(web, answer: str = "Gustave Eiffel's company") -> list[dict]:
    """An OpenAI-shaped model on loopback: answers every research turn at once, and judges
    (the reference's judge request: system "You are a helpful assistant.") as verdict_for."""
    bodies: list[dict] = []

    def chat(req):
        body = json.loads(req.body)
        bodies.append(body)
        if body["messages"][0]["content"] == "You are a helpful assistant.":
            return verdict_for(body["messages"][-1]["content"])
        return sse(f"<think>looked it up</think>\n<answer>{answer}</answer>")

    web.add_route("POST", "/policy/v1/chat/completions", chat)
    return bodies


def eval_http(env, web, bench: Path, out: Path, *extra: str):
    return run_vdr("eval", str(bench), "--model", f"openai:vdr-8b@{web.url('/policy/v1')}", "-o", str(out),
                   "--summaries", "extractive", "--no-cache", *extra, env=env)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def packed(*entries: tuple[str, bytes | None]) -> str:
    """The reference's image_packed cell: a JSON list of {"filename", "data": base64 or null}."""
    return json.dumps([{"filename": name, "data": None if data is None else b64(data)} for name, data in entries])


def test_reference_packed_parquet_is_unpacked_as_unpack_parquet_does(site):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    web, tmp, env = site
    bodies = fake_policy(web)
    blue, green, red = png_bytes((0, 0, 255)), png_bytes((0, 255, 0)), png_bytes((255, 0, 0))
    questions = ["image_id: tower.png\nWho built this tower?", "Which of left.png and right.png is older?"]
    pq.write_table(pa.table({
        "question": questions,
        "answer": ["Gustave Eiffel", "Koechlin"],
        "image_packed": [packed(("tower.png", blue)), packed(("left.png", green), ("gone.png", None), ("right.png", red))],
        "images": [["/not/used.png"], None],  # replaced by the unpacked images, as unpack_parquet.py does
    }), tmp / "fvqa_2.parquet")
    out = tmp / "run"
    r = eval_http(env, web, tmp / "fvqa_2.parquet", out)  # no --judge: the policy model judges
    assert r.returncode == 0, r.stderr.decode()
    # unpack_parquet.py: f"{row_idx}_{i}_{filename}" in the images folder; a null entry writes nothing
    images = out / "images"
    assert sorted(p.name for p in images.iterdir()) == ["0_0_tower.png", "1_0_left.png", "1_2_right.png"]
    assert (images / "0_0_tower.png").read_bytes() == blue and (images / "1_2_right.png").read_bytes() == red
    recs = results(out)
    tower = str((images / "0_0_tower.png").resolve())
    assert recs[0]["question"] == f"image_id: {tower}\nWho built this tower?"  # the question names its image
    assert recs[1]["question"] == (f"Which of {(images / '1_0_left.png').resolve()} and "
                                   f"{(images / '1_2_right.png').resolve()} is older?")
    header = json.loads(Path(recs[1]["trace"]).read_text().splitlines()[0])
    assert [i["path"] for i in header["images"]] == [str((images / n).resolve()) for n in ("1_0_left.png", "1_2_right.png")]
    # the model was shown the unpacked question and images; then it judged (eval_runner.py: JUDGE_MODEL = --model)
    first = next(b for b in bodies if b["messages"][0]["content"] != "You are a helpful assistant.")
    parts = first["messages"][1]["content"]
    # ...exactly: its question already names its image, so no second id is added
    assert [p["type"] for p in parts].count("image_url") == 1 and parts_text(parts) == recs[0]["question"]
    assert [(x["judge"], x["correct"]) for x in recs] == [("llm", True), ("llm", False)]
    m = json.loads((out / "metrics.json").read_text())
    assert m["judge"] == f"openai:vdr-8b@{web.url('/policy/v1')}" and "judge_note" not in m
    assert m["benchmarks"]["fvqa_2"] == {"total": 2, "correct": 1, "accuracy": 0.5, "average_reward": 0.5,
                                         "termination_distribution": {"answer": 2}, "column": "FVQA"}


def parts_text(parts: list[dict]) -> str:
    return "".join(p.get("text", "") for p in parts if p.get("type") == "text")


def test_reference_ready_parquet_and_dict_images(site):
    """The other shape: what unpack_parquet.py writes (images as absolute paths); and {bytes, path} cells."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    web, tmp, env = site
    pq.write_table(pa.table({
        "question": ["Who built this?", "No image here?"],
        "answer": ["Gustave Eiffel's company", "someone else"],
        "images": [[str((tmp / "photo.png").resolve())], None],
        "domain": ["a", "b"],
    }), tmp / "ready.parquet")
    out = tmp / "run"
    r = evaluate(env, tmp / "ready.parquet", search_then_answer(tmp), out)
    assert r.returncode == 0, r.stderr.decode()
    recs = results(out)
    assert [x["id"] for x in recs] == ["0", "1"] and [x["correct"] for x in recs] == [True, False]
    heads = [json.loads(Path(x["trace"]).read_text().splitlines()[0]) for x in recs]
    assert heads[0]["images"][0]["path"] == str((tmp / "photo.png").resolve()) and heads[1]["images"] == []
    assert heads[0]["question"] == "Who built this?" and recs[0]["benchmark"] == "ready"
    import hashlib

    green = png_bytes((0, 255, 0))
    pq.write_table(pa.table({"question": ["And this?"], "answer": ["x"], "images": [[{"bytes": green, "path": None}]]}),
                   tmp / "dicts.parquet")
    r = evaluate(env, tmp / "dicts.parquet", search_then_answer(tmp), tmp / "run2")
    assert r.returncode == 0, r.stderr.decode()
    head = json.loads(Path(results(tmp / "run2")[0]["trace"]).read_text().splitlines()[0])
    assert head["images"][0]["path"] == str((tmp / "run2" / "images" / f"{hashlib.sha256(green).hexdigest()}.png").resolve())


def test_a_folder_of_benchmarks_gives_the_papers_table(site):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    web, tmp, env = site
    fake_policy(web)
    sets = tmp / "ready"
    sets.mkdir()

    def jsonl(name: str, golds: list[str]) -> None:
        (sets / name).write_text("".join(json.dumps({"question": f"q{n}?", "answer": g}) + "\n" for n, g in enumerate(golds)))

    # The reference's file names (rllm/eval/README.md "Datasets"); the answer is always "Gustave Eiffel's company".
    jsonl("testmini500_v1.jsonl", ["Gustave Eiffel"])                       # VDR 100
    pq.write_table(pa.table({"question": ["image_id: a.png q?", "q?"], "answer": ["Eiffel", "Koechlin"],
                             "image_packed": [packed(("a.png", png_bytes())), "[]"]}), sets / "fvqa_300.parquet")  # 50
    jsonl("MMSearch-Plus_221.jsonl", ["Koechlin"])                          # MMSearch+ 0
    pq.write_table(pa.table({"question": ["q?"], "answer": ["Eiffel's company"], "images": [None]}),
                   sets / "mmsearch_vision_171.parquet")                    # MMSearch 100
    jsonl("livevqa_webwatcher_subset_300.jsonl", ["gustave"])                # LiveVQA 100
    jsonl("bcvl_level1_199.jsonl", ["Eiffel", "Sauvestre", "company"])      # BC-VL: level 1 and 2 pooled, 3/4
    jsonl("bcvl_level2_200.jsonl", ["Eiffel"])
    jsonl("infoseek_300.jsonl", ["Koechlin"])                               # not a column of the paper's table
    (sets / "notes.txt").write_text("not a benchmark")
    out = tmp / "run"
    r = eval_http(env, web, sets, out, "-P", "2")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    recs = results(out)
    assert len(recs) == 11 and recs[0]["id"] == "MMSearch-Plus_221/1" and "fvqa_300/1" in {x["id"] for x in recs}
    assert (out / "images" / "fvqa_300" / "0_0_a.png").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert {k: (v["total"], v["correct"], v["column"]) for k, v in m["benchmarks"].items()} == {
        "MMSearch-Plus_221": (1, 0, "MMSearch+"), "bcvl_level1_199": (3, 2, "BC-VL"), "bcvl_level2_200": (1, 1, "BC-VL"),
        "fvqa_300": (2, 1, "FVQA"), "infoseek_300": (1, 0, None), "livevqa_webwatcher_subset_300": (1, 1, "LiveVQA"),
        "mmsearch_vision_171": (1, 1, "MMSearch"), "testmini500_v1": (1, 1, "VDR")}
    paper = {k: (v["accuracy"] if isinstance(v, dict) else v) for k, v in m["paper"].items()}
    assert paper == {"VDR": 100.0, "FVQA": 50.0, "MMSearch+": 0.0, "MMSearch": 100.0, "LiveVQA": 100.0, "BC-VL": 75.0,
                     "Avg.": 70.8}
    assert m["reference"] == {"total": 11, "correct": 7, "accuracy": 7 / 11, "average_reward": 7 / 11,
                              "termination_distribution": {"answer": 11}}
    lines = err.splitlines()
    row = next(i for i, l in enumerate(lines) if l.startswith("paper table"))
    assert lines[row].split()[2:] == ["VDR", "FVQA", "MMSearch+", "MMSearch", "LiveVQA", "BC-VL", "Avg."]
    assert lines[row + 1].split() == ["100.0", "50.0", "0.0", "100.0", "100.0", "75.0", "70.8"]
    assert "bcvl_level1_199 (BC-VL)" in err and "2/3  66.7%" in err


def test_paper_table_arithmetic_on_a_published_row():
    """GPT-5 direct answer in the reference README's table: 9.8 57.3 19.1 33.3 57.5 47.2, Avg. 37.4."""
    from vdr_cli.agent.eval_metrics import paper_rows, paper_table

    scores = {"testmini500_v1": 98, "fvqa_300": 573, "MMSearch-Plus_221": 191, "mmsearch_vision_171": 333,
              "livevqa_webwatcher_subset_300": 575, "bcvl_level1_199": 472}
    from vdr_cli.agent.eval_metrics import paper_column

    table = paper_table({k: {"total": 1000, "correct": v, "column": paper_column(k)} for k, v in scores.items()})
    assert paper_rows(table)[1] == ["9.8", "57.3", "19.1", "33.3", "57.5", "47.2", "37.4"]
    del scores["bcvl_level1_199"]
    table = paper_table({k: {"total": 1000, "correct": v, "column": paper_column(k)} for k, v in scores.items()})
    assert table["BC-VL"] is None and paper_rows(table)[1][-2:] == ["--", "--"]


def test_a_packed_entry_without_a_filename_is_one_line(site):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    web, tmp, env = site
    pq.write_table(pa.table({"question": ["q?"], "answer": ["a"], "image_packed": [json.dumps([{"data": "AAAA"}])]}),
                   tmp / "b.parquet")
    r = evaluate(env, tmp / "b.parquet", search_then_answer(tmp), tmp / "run")
    err = r.stderr.decode()
    assert r.returncode == 1 and "b.parquet: row 0: image_packed entry 0 has no filename" in err and len(err.splitlines()) == 1, err


def test_parquet_without_pyarrow_is_one_line(site, tmp_path):
    web, tmp, env = site
    block = tmp_path / "block" / "pyarrow"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    (tmp / "b.parquet").write_bytes(b"PAR1")
    r = evaluate({**env, "PYTHONPATH": f"{tmp_path / 'block'}{os.pathsep}{ROOT}"}, tmp / "b.parquet",
                 search_then_answer(tmp), tmp / "run")
    err = r.stderr.decode()
    assert r.returncode == 1 and "install vdr-cli[parquet]" in err and len(err.splitlines()) == 1, err


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("second, message", [
    ('{"id": "b", "answer": "x"}', "bench.jsonl:2: no question"),
    ('{"id": "b", "question": "q?"}', "bench.jsonl:2: no answer"),
    ('{"id": "b", "question": "q?", "answer": ""}', "bench.jsonl:2: no answer"),
    ('{"id": "b", "question": "q?", "answer": "x"', "bench.jsonl:2: not valid JSON"),
    ('["a list"]', "bench.jsonl:2: expected a JSON object"),
    ('{"id": "a", "question": "q?", "answer": "x"}', "bench.jsonl:2: duplicate id 'a'"),
])
def test_bad_records_are_one_line_naming_file_and_line(site, second, message):
    web, tmp, env = site
    bench = tmp / "bench.jsonl"
    bench.write_text('{"id": "a", "question": "q?", "answer": "x"}\n' + second + "\n")
    r = evaluate(env, bench, search_then_answer(tmp), tmp / "run")
    err = r.stderr.decode()
    assert r.returncode == 1 and message in err and "Traceback" not in err, err
    assert not (tmp / "run" / "traces").exists()


@pytest.mark.parametrize("args, message", [
    (["--judge", "openai:nourl"], "missing @URL"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["-P", "0"], "--parallel must be at least 1"),
])
def test_usage_errors(site, args, message):
    web, tmp, env = site
    r = evaluate(env, ten_items(tmp), search_then_answer(tmp), tmp / "run", *args)
    assert r.returncode == 2 and message in r.stderr.decode(), r.stderr.decode()
    r = run_vdr("eval", str(ten_items(tmp)), env=env)
    assert r.returncode == 2 and "needs -o DIR" in r.stderr.decode()


# --- the real SmolLM2 on llama-cpp-python's server: agent and judge ---------------------------



def test_real_smollm2_agent_and_judge(site, llama):
    """A 135M judge is not accurate: what is checked is that it was asked and its verdict recorded."""
    web, tmp, env = site
    bench = tmp / "bench.jsonl"
    rows = [{"id": f"r{n}", "question": q, "answer": a, "domain": d} for n, (q, a, d) in
            enumerate([("What is the capital of France?", "Paris", "geo"),
                       ("Who designed the Eiffel Tower's company?", "Gustave Eiffel", "history")])]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp / "run"
    r = run_vdr("eval", str(bench), "--model", f"openai:smollm2@{llama.url}", "--judge", f"openai:smollm2@{llama.url}",
                "--grammar", "on", "--max-steps", "2", "--max-tokens", "96", "--ctx", "2048", "--temperature", "0",
                "--judge-max-tokens", "40", "--summaries", "extractive", "-o", str(out), env=env, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    recs = results(out)
    assert [x["id"] for x in recs] == ["r0", "r1"]
    assert all(x["reason"] in ("answer", "max_steps", "context_full") and x["steps"] >= 1 for x in recs)
    asked = [x for x in recs if x["prediction"]]
    assert asked, "the model gave no answer at all"
    for x in asked:  # the judge was called; its text and verdict (or the fallback) are recorded
        assert x["judge"] in ("llm", "exact-fallback") and x["judge_text"] and not x["judge_text"].startswith("judge_error")
        assert x["judge"] != "llm" or x["correct"] == parse_verdict(x["judge_text"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["ran"] == 2 and set(m["groups"]["domain"]) == {"geo", "history"}


# --- Ctrl-C ------------------------------------------------------------------------------------

def test_ctrl_c_keeps_judged_items_and_resumes(site):
    import signal
    import subprocess
    import time

    web, tmp, env = site
    calls = []

    def slow_after_first(req):
        calls.append(req)
        if len(calls) > 1:
            time.sleep(8)
        return {"query": "q", "results": []}

    web.add_route("GET", "/slow/search", slow_after_first)
    env = {**env, "VDR_SEARCH_SEARXNG_URL": web.url("/slow")}
    bench, out, model = ten_items(tmp), tmp / "run", search_then_answer(tmp)
    proc = subprocess.Popen([sys.executable, "-m", "vdr_cli", "eval", str(bench), "--model", f"scripted:{model}", "-o",
                             str(out), "--no-cache", "--summaries", "extractive"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(calls) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode() and "judged items are kept" in err.decode()
    assert [x["id"] for x in results(out)] == ["q1"]
    m = json.loads((out / "metrics.json").read_text())
    assert (m["ran"], m["pending"]) == (1, 9)
    assert json.loads((out / "traces" / "q2.jsonl").read_text().splitlines()[-1])["reason"] == "interrupted"
    web.add_route("GET", "/slow/search", lambda req: {"query": "q", "results": []})
    r = evaluate({**env}, bench, model, out, "--judge", "none")  # "none": exact match, as before
    assert r.returncode == 0, r.stderr.decode()
    assert len(results(out)) == 10 and "1 of 10 items already judged" in r.stderr.decode()
