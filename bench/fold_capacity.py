"""Context folding: how many tool calls a session completes before it must end (a script, not a test).

A 200-call session (search and visit alternating) runs through the real agent
loop against the loopback web, whose article pages are of realistic size
(1,000–3,500 words of body text, in the usual page furniture). The model turns
are scripted and teacher-forced into the in-process engine (SmolLM2-135M), so
every token count is llama.cpp's own: the tool responses the loop appends,
the assistant turns, and under `summarise` the summaries, which the engine
really generates (`--engine eval`). `--engine count` (the default: on a
crowded 2-core machine `eval` runs at ~25 tokens/s) counts the same tokens
without decoding them: each turn is rendered with the model's own template and
tokenized by llama.cpp with SmolLM2's vocabulary, as LlamaSession does; a
summary is then a fixed text of about 300 tokens, since nothing is generated.
Prints, per window and fold strategy:

- calls completed and why the session ended (goal: 200/200 at 8k with folding);
- folds, tokens evaluated, final context, and re-evaluation overhead: tokens
  evaluated ÷ tokens of the conversation as first appended (goal ≤ 1.5;
  1.00 means every token was evaluated once). Evaluated ÷ final context is
  printed too: with folding it mostly counts how much research went through
  the window.

    python bench/fold_capacity.py [--calls 200] [--ctx 8192 32768] [--fold off keep-last:3 summarise]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import zlib
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loopback import smollm2, start_site  # noqa: E402

from vdr_cli.agent import prompt  # noqa: E402
from vdr_cli.agent.fold import parse_fold  # noqa: E402
from vdr_cli.agent.loop import LoopConfig  # noqa: E402
from vdr_cli.agent.session import SessionSpec, run_session  # noqa: E402
from vdr_cli.agent.toolbox import ToolSettings, WebToolbox  # noqa: E402
from vdr_cli.models.base import GenerationResult, SamplingParams, Turn  # noqa: E402

VOCAB = ("the tower was built for the exhibition of 1889 by the company of Gustave Eiffel whose engineers "
         "Maurice Koechlin and Emile Nouguier drew the first design while the architect Stephen Sauvestre "
         "added the arches and the glass pavilion on the first platform the iron lattice weighs about seven "
         "thousand tonnes and is held by two and a half million rivets it was the tallest structure in the "
         "world until the Chrysler Building in New York was finished in 1930 critics called it useless and "
         "monstrous but millions of visitors climb it every year and radio transmitters at the top saved it "
         "from demolition in 1909").split()


def page_text(n: int) -> list[str]:
    """A deterministic article body: 1,000-3,500 words in paragraphs of 60-140 words."""
    rng = random.Random(n)
    paras, total, target = [], 0, rng.randint(1000, 3500)
    while total < target:
        k = rng.randint(60, 140)
        words = [rng.choice(VOCAB) for _ in range(k)]
        paras.append(" ".join(words).capitalize() + ".")
        total += k
    return paras


def add_pages(web: Any) -> None:
    from web.server import Response, article_html

    def page(req):
        n = int(req.path.rsplit("/", 1)[-1])
        return Response(200, article_html(title=f"Eiffel Tower history part {n}", paragraphs=page_text(n)))

    web.add_route("GET", "/wiki/", page, prefix=True)

    def searxng(req):
        q = req.query.get("q", "")
        base = zlib.crc32(q.encode()) % 10_000  # stable across runs (hash() is salted)
        return {"query": q, "results": [
            {"url": web.url(f"/wiki/{base + i}"), "title": f"{q} — source {i}",
             "content": " ".join(random.Random(base + i).choice(VOCAB) for _ in range(30)), "engine": "x"}
            for i in range(10)]}

    web.add_route("GET", "/searxng/search", searxng)


def scripted_turns(web: Any, calls: int) -> list[str]:
    """Alternating search and visit turns with a few sentences of reasoning each."""
    rng = random.Random(7)
    turns = []
    for i in range(calls):
        think = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(30, 90)))
        if i % 2 == 0:
            call = {"name": "search", "arguments": {"query": [f"eiffel tower fact {i}", f"tower engineer {i}"]}}
        else:
            call = {"name": "visit", "arguments": {"url": [web.url(f"/wiki/{i}")], "goal": f"detail {i} of the tower"}}
        turns.append(f"<think>{think}</think>\n<tool_call>\n{json.dumps(call)}\n</tool_call>")
    turns.append("<think>I have enough.</think>\n<answer>Gustave Eiffel's company</answer>")
    return turns


class TeacherForced:
    """A LlamaSession whose assistant turns are scripted: each is evaluated as if generated.

    Only a summary request (`--fold summarise`) is answered by real generation.
    """

    def __init__(self, inner: Any, turns: Sequence[str]) -> None:
        self.inner = inner
        self.turns = list(turns)
        self.last_user = ""
        self.mark = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def n_tokens(self) -> int:
        return self.inner.n_tokens

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx

    def append(self, turn: Turn) -> None:
        self.inner.append(turn)
        self.last_user = turn.text

    def generate(self, params: SamplingParams, stop: Sequence[str] = (), grammar: str | None = None,
                 on_token: Any = None, cancel: threading.Event | None = None) -> GenerationResult:
        if self.last_user == prompt.SUMMARY_REQUEST:
            return self.inner.generate(params, stop=stop)
        t0 = time.perf_counter()
        before = self.inner.stats.tokens_evaluated
        text = self.turns.pop(0)
        self.inner.append(Turn("assistant", text))
        self.last_user = ""
        hit = next((s for s in stop if s in text), None)
        shown = text[:text.index(hit)] if hit else text
        evaluated = self.inner.stats.tokens_evaluated - before
        return GenerationResult(shown, (), "stop", evaluated, 0, (time.perf_counter() - t0) * 1000, stop=hit)


class Counted:
    """LlamaSession's token accounting without decoding: turns are templated and tokenized
    by the loaded model's own template and vocabulary, and the KV window is enforced."""

    def __init__(self, llama: Any, turns: Sequence[str]) -> None:
        from vdr_cli.models.base import SessionStats

        self.llama = llama  # used for its template and vocabulary only
        self.turns = list(turns)
        self.starts: list[int] = []
        self.n = 0
        self.stats = SessionStats()
        self.last_user = ""
        self.info = llama.info

    @property
    def n_tokens(self) -> int:
        return self.n

    @property
    def n_ctx(self) -> int:
        return self.llama.n_ctx

    def _add(self, text: str) -> int:
        from vdr_cli.models.errors import ContextFullError

        k = len(self.llama._vocab.tokenize(text))  # noqa: SLF001 - the session's own tokenizer
        if self.n + k + 8 > self.n_ctx:  # LlamaSession keeps 8 cells for the next assistant header
            raise ContextFullError(f"context full: the turn needs {k} tokens, {self.n_ctx - self.n - 8} are free")
        self.starts.append(self.n)
        self.n += k
        self.stats.tokens_evaluated += k
        return k

    def start(self, system: str, user: Turn) -> None:
        from vdr_cli.models.chat_template import turn_content

        self._add(self.llama._template.first(system, turn_content(user, self.llama.media_marker)))  # noqa: SLF001

    def append(self, turn: Turn) -> None:
        from vdr_cli.models.chat_template import turn_content

        self._add(self.llama._template.turn(turn.role, turn_content(turn, self.llama.media_marker)))  # noqa: SLF001
        self.last_user = turn.text

    def rewind(self, n_turns: int) -> None:
        if n_turns < len(self.starts):
            self.n = self.starts[n_turns]
            del self.starts[n_turns:]

    def generate(self, params: SamplingParams, stop: Sequence[str] = (), grammar: str | None = None,
                 on_token: Any = None, cancel: threading.Event | None = None) -> GenerationResult:
        if self.last_user == prompt.SUMMARY_REQUEST:
            text = ("The question asks who designed and built the tower. Established: " +
                    " ".join(VOCAB[:40]) + " Sources: " + " ".join(f"http://127.0.0.1/wiki/{i}" for i in range(12)))
            k = self._add(self.llama._template.turn("assistant", text))  # noqa: SLF001
            return GenerationResult(text, (), "stop", 0, k, 0.0, stop=stop[0] if stop else None)
        text = self.turns.pop(0)
        k = self._add(self.llama._template.turn("assistant", text))  # noqa: SLF001
        self.last_user = ""
        hit = next((s for s in stop if s in text), None)
        return GenerationResult(text[:text.index(hit)] if hit else text, (), "stop", k, 0, 0.0, stop=hit)

    def side_generate(self, *a: Any, **kw: Any) -> GenerationResult:
        raise NotImplementedError("visit uses extractive summaries in this bench")

    def close(self) -> None:
        pass


def one_run(web: Any, calls: int, n_ctx: int, fold_text: str, threads: int, engine: str,
            to: float | None = None) -> dict[str, Any]:
    import dataclasses

    from vdr_cli.models.llama_session import LlamaSession

    inner = LlamaSession(smollm2(), n_ctx=n_ctx if engine == "eval" else 256, n_threads=threads)
    if engine == "eval":
        model: Any = TeacherForced(inner, scripted_turns(web, calls))
    else:
        model = Counted(inner, scripted_turns(web, calls))
        model.llama._n_ctx = n_ctx  # noqa: SLF001 - the window being measured (no KV is allocated)
    spec = SessionSpec(question="Who designed and built the Eiffel Tower, and when?", images=[],
                       tools=["search", "visit"], date="2026-12-01")
    events: list[dict[str, Any]] = []
    cfg = LoopConfig(max_steps=calls + 1, sampling=SamplingParams(temperature=0, max_tokens=1024),
                     tools=("search", "visit"), answer_reserve=1024, fold=parse_fold(fold_text))
    if to is not None and cfg.fold is not None:
        cfg.fold = dataclasses.replace(cfg.fold, to=to)
    toolbox = WebToolbox([], ToolSettings(use_cache=False, allow_private=True))
    t0 = time.perf_counter()
    try:
        outcome = run_session(spec, model, toolbox, events.append, cfg)
    finally:
        stats = model.stats
        final = model.n_tokens
        inner.close()
    folds = [e for e in events if e["type"] == "fold"]
    refolded = sum(f["tokens"].get("evaluated", 0) for f in folds)
    summaries = sum(f["tokens"].get("summary", 0) for f in folds)
    evaluated = stats.tokens_evaluated
    first_time = evaluated - refolded - summaries
    return {"ctx": n_ctx, "fold": fold_text, "calls": outcome.stats["calls"], "reason": outcome.reason,
            "folds": len(folds), "evaluated": evaluated, "final_context": final, "first_time": first_time,
            "overhead": evaluated / max(1, first_time), "per_final": evaluated / max(1, final),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--ctx", type=int, nargs="+", default=[8192, 32768])
    ap.add_argument("--fold", nargs="+", default=["off", "keep-last:3", "summarise"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", choices=("count", "eval"), default="count")
    ap.add_argument("--to", type=float, default=None, help="fold down to this fraction of the window (default: the policy's)")
    args = ap.parse_args()
    web, env = start_site()
    import os

    os.environ.update(env)
    add_pages(web)
    print(f"engine: {args.engine}; {args.calls} scripted calls (search/visit), SmolLM2-135M tokens", flush=True)
    print(f"{'ctx':>6} {'fold':<12} {'calls':>9} {'ended by':<13} {'folds':>5} {'evaluated':>10} {'final ctx':>9} "
          f"{'overhead':>8} {'eval/final':>10} {'s':>6}", flush=True)
    try:
        for n_ctx in args.ctx:
            for fold in args.fold:
                r = one_run(web, args.calls, n_ctx, fold, args.threads, args.engine, args.to)
                print(f"{r['ctx']:>6} {r['fold']:<12} {r['calls']:>4}/{args.calls:<4} {r['reason']:<13} {r['folds']:>5} "
                      f"{r['evaluated']:>10} {r['final_context']:>9} {r['overhead']:>8.2f} {r['per_final']:>10.1f} "
                      f"{r['seconds']:>6.0f}", flush=True)
    finally:
        web.stop()


if __name__ == "__main__":
    main()
