"""The reliability suite (issue 10): faults during real sessions, kill -9 and resume,
fuzzing, hostile pages and images. `python bench/reliability.py` prints the counts."""

from __future__ import annotations

import pytest

from tests import reliability
from tests.web import web  # noqa: F401  (the shared loopback server fixture)


def test_web_faults_during_sessions_cost_a_tool_call_not_the_session(web, tmp_path):
    tally = reliability.web_fault_sessions(web, tmp_path)
    assert tally.faults == 2 * len(reliability.WEB_FAULTS)
    assert tally.survived == tally.sessions == len(reliability.WEB_FAULTS), tally.problems


def test_model_server_faults_retry_or_end_with_one_line_and_an_end_event(web, tmp_path):
    tally = reliability.model_fault_sessions(web, tmp_path)
    assert tally.survived == tally.sessions == len(reliability.MODEL_FAULTS), tally.problems


def test_kill_9_at_random_points_of_20_sessions_each_resumed(web, tmp_path):
    tally = reliability.kill_and_resume(web, tmp_path, sessions=20)
    assert tally.sessions == 20 and tally.survived == 20, tally.problems


def test_fuzzing_lets_only_documented_exceptions_escape():
    pytest.importorskip("hypothesis")
    tried, failures = reliability.fuzz_all(max_examples=150)
    assert not failures, failures
    assert tried >= 4 * 150


def test_hostile_pages_and_images_fail_in_one_line(web, tmp_path):
    tally = reliability.hostile_inputs(web, tmp_path)
    assert tally.survived == tally.sessions, tally.problems
