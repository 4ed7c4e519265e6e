"""The reliability report (issue 10): faults injected, sessions survived, inputs fuzzed,
defects found and fixed.

    python bench/reliability.py [--sessions 20] [--fuzz 300] [--rounds 1]

Everything runs on loopback (tests/web) with the scripted backend, in real processes;
the workloads are those of tests/test_reliability.py (tests/reliability.py). The defect
list is the record of what this work found and fixed, each with the test that fails
without the fix.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tests import reliability  # noqa: E402
from tests.web.server import WebServer  # noqa: E402

# (issue item, what was wrong, the test in tests/ that fails without the fix)
DEFECTS = [
    ("1", "-o replaced FIFOs, devices and symlinks by a regular file", "test_hardening.py::test_output_to_a_fifo_writes_through"),
    ("1", "-o to a folder / under a file: internal error", "test_hardening.py::test_output_that_cannot_be_a_trace_is_refused"),
    ("2", "page text became real control tokens in-process", "test_hardening.py::test_page_text_yields_no_control_tokens_on_the_real_engine"),
    ("3", "escape sequences reached the terminal (answer, live view, browse)", "test_hardening.py::test_ask_answer_and_live_view_drop_escape_sequences"),
    ("3", "a model-chosen tool name with '[/]' crashed the live view (rich markup)", "test_hardening.py::test_ask_answer_and_live_view_drop_escape_sequences"),
    ("4", "192.0.0.0/24 and other IANA special-purpose ranges allowed", "test_hardening.py::test_every_special_purpose_range_is_blocked_for_the_model"),
    ("4", "168.63.129.16 (Azure WireServer) allowed", "test_hardening.py::test_the_reported_edges_are_blocked"),
    ("4", "person-typed redirects into metadata space followed", "test_hardening.py::test_person_typed_redirect_into_metadata_space_is_refused"),
    ("4", "a cached page that ended in private space served to the model", "test_hardening.py::test_a_cached_page_that_ended_in_private_space_never_reaches_the_model"),
    ("5", "api_key query kept in the trace header", "test_hardening.py::test_trace_header_keeps_no_api_key"),
    ("6", "deeply nested HTML: parse time quadratic, on the event loop", "test_hardening.py::test_browse_of_a_nested_page_finishes_and_the_session_goes_on"),
    ("7", "search had no cap on queries per call", "test_hardening.py::test_search_runs_at_most_the_capped_number_of_queries_and_says_so"),
    ("8", "agent visit ignored browse.max_chars", "test_hardening.py::test_visit_keeps_browse_max_chars"),
    ("9", "a stalled provider cost every retry's timeout", "test_hardening.py::test_a_stalled_provider_costs_one_deadline_not_one_per_try"),
    ("10", "ICNS (and every Pillow format) decoded; 6.3 GB for 240 KB", "test_hardening.py::test_crop_refuses_icns_with_a_clear_error"),
    ("10", "crop --min-side 60000: MemoryError", "test_hardening.py::test_crop_output_size_is_capped"),
    ("11", "exit status = HTTP status % 256 (OpenAIHTTPError.status shadowed it)", "test_hardening.py::test_http_errors_exit_1_and_end_the_trace"),
    ("11", "no end event after HTTP errors, broken pipe, model load failure", "test_hardening.py::test_model_load_failure_leaves_a_trace_that_ends"),
    ("12", "resume of malformed traces: KeyError/NaN/RecursionError", "test_hardening.py::test_resume_of_a_malformed_trace_is_one_line"),
    ("12", "deeply nested JSON / 4,300-digit integers in the JSONL reader", "test_hardening.py::test_deeply_nested_json_is_a_line_error"),
    ("12", "replay with a malformed header's images: internal error", "test_hardening.py::test_replay_with_images_not_a_list_is_one_line"),
    ("12", "<tool_call>{[1]: 2}</tool_call>, deep or huge JSON in a call: TypeError/RecursionError ended the session", "test_reliability.py::test_fuzzing_lets_only_documented_exceptions_escape"),
    ("12", "a corrupt cache database broke `vdr cache stats` and `vdr cache clear`", "test_hardening.py::test_a_corrupt_cache_database_is_reported_and_cleared"),
    ("12", "model add --chat-template @missing: internal error", "test_hardening.py::test_model_add_with_a_missing_template_file_is_one_line"),
    ("13", "nonsense flags, variables and config values accepted", "test_hardening.py::test_ask_refuses_nonsense_flags"),
    ("14", "replay --check --allow-incomplete rejected a torn last line", "test_hardening.py::test_replay_check_allows_a_torn_last_line"),
    ("fuzz", "UrlPolicy.check('http://0.0.0.0:x/'): ValueError escaped (found by fuzzing)", "test_reliability.py::test_fuzzing_lets_only_documented_exceptions_escape"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20, help="sessions killed with kill -9 and resumed")
    ap.add_argument("--fuzz", type=int, default=300, help="hypothesis examples per fuzzed target")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of web-fault sessions")
    args = ap.parse_args()
    t0 = time.perf_counter()
    web = WebServer().start()
    faults = sessions = survived = 0
    problems: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, run in (("web faults", lambda: reliability.web_fault_sessions(web, folder, args.rounds)),
                              ("model-server faults", lambda: reliability.model_fault_sessions(web, folder)),
                              ("kill -9 + resume", lambda: reliability.kill_and_resume(web, folder, args.sessions)),
                              ("hostile pages and images", lambda: reliability.hostile_inputs(web, folder))):
                t = time.perf_counter()
                tally = run()
                print(f"{name:26s} faults {tally.faults:4d}  sessions {tally.sessions:3d}  survived {tally.survived:3d}"
                      f"  ({time.perf_counter() - t:.1f} s)")
                faults += tally.faults
                sessions += tally.sessions
                survived += tally.survived
                problems += tally.problems
            t = time.perf_counter()
            fuzzed, failures = reliability.fuzz_all(args.fuzz)
            print(f"{'fuzzing (4 targets)':26s} inputs {fuzzed:5d}  failures {len(failures)}  ({time.perf_counter() - t:.1f} s)")
            problems += failures
    finally:
        web.stop()
    print()
    print(f"faults injected:        {faults}")
    print(f"sessions survived:      {survived} of {sessions}")
    print(f"inputs fuzzed:          {fuzzed}")
    print(f"defects found and fixed: {len(DEFECTS)} (issue 10 items 1-14, plus what the suite found)")
    for item, what, test in DEFECTS:
        print(f"  [{item:>4}] {what}  -- tests/{test}")
    for p in problems:
        print(f"PROBLEM: {p}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
