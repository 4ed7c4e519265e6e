"""More than one machine: `--shard I/N` for `vdr eval` and `vdr ask --batch`, `vdr eval --merge`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import run_vdr  # noqa: E402
from tests.test_eval import TEN, evaluate, results, search_then_answer, site, ten_items  # noqa: E402,F401
from tests.web import web  # noqa: E402,F401  (fixture)
from vdr_cli.agent.shard import Shard, parse_shard  # noqa: E402
from vdr_cli.errors import UsageError  # noqa: E402


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 13])
def test_shards_partition_any_set(n):
    items = list(range(10))
    slices = [Shard(i, n).take(items) for i in range(1, n + 1)]
    flat = sorted(x for s in slices for x in s)
    assert flat == items  # every item exactly once
    assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1-3", "-1/3", "3"])
def test_bad_shards_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_shard(text)


def test_eval_shards_cover_every_item_once_and_merge_is_idempotent(site):
    web, tmp, env = site
    bench, model = ten_items(tmp), search_then_answer(tmp)
    shard_dirs = []
    for i in (1, 2, 3):
        out = tmp / f"s{i}"
        r = evaluate(env, bench, model, out, "--shard", f"{i}/3")
        assert r.returncode == 0, r.stderr.decode()
        shard_dirs.append(out)
        assert json.loads((out / "metrics.json").read_text())["shard"] == f"{i}/3"
    ids = [rec["id"] for d in shard_dirs for rec in results(d)]
    assert sorted(ids) == sorted(t[0] for t in TEN) and len(ids) == len(set(ids))
    assert [rec["id"] for rec in results(shard_dirs[0])] == ["q1", "q4", "q7", "q10"]  # every 3rd, from the 1st

    merged = tmp / "all"
    r = run_vdr("eval", "--merge", *map(str, shard_dirs), "-o", str(merged), env=env)
    assert r.returncode == 0, r.stderr.decode()
    metrics = json.loads((merged / "metrics.json").read_text())
    assert metrics["items"] == 10 and metrics["correct"] == sum(t[3] for t in TEN)
    assert metrics["merged"]["shards"] == ["1/3", "2/3", "3/3"]
    first = (merged / "results.jsonl").read_bytes(), metrics
    # again, and with the merged folder itself among the inputs: the same files
    for inputs in (shard_dirs, [merged, *shard_dirs]):
        r = run_vdr("eval", "--merge", *map(str, inputs), "-o", str(merged), env=env)
        assert r.returncode == 0, r.stderr.decode()
        again = json.loads((merged / "metrics.json").read_text())
        assert (merged / "results.jsonl").read_bytes() == first[0]
        assert {k: v for k, v in again.items() if k != "merged"} == {k: v for k, v in first[1].items() if k != "merged"}

    # the same set in one run gives the same score
    whole = tmp / "whole"
    assert evaluate(env, bench, model, whole).returncode == 0
    one = json.loads((whole / "metrics.json").read_text())
    assert (one["correct"], one["accuracy"], one["paper"]) == (metrics["correct"], metrics["accuracy"], metrics["paper"])


def test_merge_of_a_folder_without_results_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_vdr("eval", "--merge", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    err = r.stderr.decode()
    assert r.returncode == 1 and "no results.jsonl" in err and "Traceback" not in err


def test_bad_shard_flag_is_a_usage_error(site):
    web, tmp, env = site
    r = evaluate(env, ten_items(tmp), search_then_answer(tmp), tmp / "x", "--shard", "0/3")
    assert r.returncode == 2 and "vdr eval: error: --shard" in r.stderr.decode()


def test_batch_shards_run_only_their_slice(site):
    web, tmp, env = site
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Who built landmark {i}?"}) + "\n" for i in range(7)))
    seen = []
    for i in (1, 2):
        out = tmp / f"b{i}"
        r = run_vdr("ask", "--batch", str(items), "--shard", f"{i}/2", "--model", f"scripted:{search_then_answer(tmp)}",
                    "-o", str(out), "--summaries", "extractive", "--no-cache", "--json", env=env)
        assert r.returncode == 0, r.stderr.decode()
        ends = [json.loads(line) for line in r.stdout.decode().splitlines()]
        seen += [e["id"] for e in ends if e["type"] == "end"]
    assert sorted(seen) == sorted(f"q{i}" for i in range(7)) and len(seen) == 7
