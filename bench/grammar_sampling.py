#!/usr/bin/env python3
"""Grammar-constrained sampling time per token on SmolLM2-135M's 49k vocabulary.

The turn grammar of `vdr ask --grammar on`, greedy, a few turns: the grammar
applied to the whole vocabulary before every token (the old path) against
sampling first and checking the one token (models/llama_sampling.py).  Prints
milliseconds of sampling per generated token and whether the tokens agree.

    python bench/grammar_sampling.py [--tokens 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import ROOT, smollm2  # noqa: E402

sys.path.insert(0, str(ROOT))


def run(gguf: Path, grammar_first: bool, tokens: int, threads: int) -> tuple[list, float, int]:
    from vdr_cli.agent.grammar import answer_grammar, turn_grammar
    from vdr_cli.models.base import SamplingParams, Turn
    from vdr_cli.models.llama_engine import LlamaEngine

    grammars = [turn_grammar(("search", "visit"), urls=["http://127.0.0.1:9/a"], max_think=600)] * 2
    grammars.append(answer_grammar(600))
    with LlamaEngine(gguf, n_ctx=4096, n_threads=threads) as engine:
        s = engine.session()
        s.grammar_first = grammar_first
        s.start("You are a research assistant.", Turn("user", "Who built the Eiffel tower? Search the web."))
        ids, sample_ms, n = [], 0.0, 0
        for g in grammars:
            r = s.generate(SamplingParams(temperature=0, max_tokens=tokens), grammar=g)
            ids.append(r.token_ids)
            sample_ms += r.sample_ms
            n += max(1, r.completion_tokens + (r.finish_reason == "stop"))  # the end token is sampled too
            s.append(Turn("user", "Go on."))
        rejects = s.stats.grammar_rejects
        s.close()
    return ids, sample_ms / n, rejects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    gguf = smollm2()
    full_ids, full_ms, _ = run(gguf, True, args.tokens, args.threads)
    fast_ids, fast_ms, rejects = run(gguf, False, args.tokens, args.threads)
    n = sum(len(t) for t in fast_ids)
    print(f"grammar sampling, SmolLM2-135M (49152-token vocabulary), greedy, {n} tokens over 3 turns:")
    print(f"  grammar over the whole vocabulary every token: {full_ms:6.3f} ms/token")
    print(f"  sample first, check the token:                 {fast_ms:6.3f} ms/token "
          f"({rejects} tokens refused and resampled)")
    print(f"  same tokens: {fast_ids == full_ids}")


if __name__ == "__main__":
    main()
