"""Golden tests: vdr speaks Vision-DeepResearch's trained format byte for byte.

The oracle strings below are the reference's literals (Osilly/Vision-DeepResearch,
rllm/eval/deepresearch_agent.py and rllm/eval/tools.py at commit 67af60f077ef, lines
cited beside each; the whole conversations are checked in test_conformance.py), kept here independently of
vdr_cli/agent/prompt.py so that a change there cannot silently change what the model
reads. The golden files in tests/golden/ were generated from prompt.py and are checked
against both. Regenerate them only on purpose: `python tests/test_prompt_format.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_oracle import CROP_LINE, INTRO, PYTHON_LINE, SEARCH_LINE, TOOLS_OPEN, VISIT_LINE
from vdr_cli.agent import prompt as p
from vdr_cli.agent import tool_text as t

GOLDEN = Path(__file__).parent / "golden"
DATE = "2026-01-15"
QUESTION = "Who designed the building in this photo, and in what year was it completed?"

# --- the reference's literals (the oracle) -------------------------------------

# The reference's own lines, written once for all tests (tests/reference_oracle.py, lines cited there).
REF_INTRO, REF_SEARCH, REF_CROP, REF_VISIT, REF_PYTHON = INTRO, SEARCH_LINE, CROP_LINE, VISIT_LINE, PYTHON_LINE
REF_HEADER = TOOLS_OPEN
REF_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
)
REF_DATE = "Current date: "

# DEEPRESEARCH_SYSTEM_PROMPT (lines 56-90) / _TEXT (lines 21-54) + today_date() (lines 92-94).
REF_SYSTEM_IMAGES = REF_INTRO + REF_HEADER + "\n".join([REF_SEARCH, REF_CROP, REF_VISIT, REF_PYTHON]) + REF_FOOTER + REF_DATE + DATE
REF_SYSTEM_TEXT = REF_INTRO + REF_HEADER + "\n".join([REF_SEARCH, REF_VISIT, REF_PYTHON]) + REF_FOOTER + REF_DATE + DATE
TRAINED = ["search", "crop_and_search", "visit", "PythonInterpreter"]

REF_FORMAT_ERROR = "Error: Invalid content format. Content must contain <tool_call> or <answer> tags. Let's try again."
REF_REPETITION_ERROR = ("Error: Content repetition detected. Invalid content format. Content must contain "
                        "<tool_call> or <answer> tags. Let's try again.")
REF_JSON_ERROR = "[Json Parse Error]: Tool call is not a valid JSON."
REF_FINAL_MAX = ("You have reached the maximum number of reasoning rounds (50). Based on all the information gathered "
                 "so far, please provide your best final answer now in the format: <think>your final thinking</think>"
                 "\n<answer>your answer</answer>")
REF_FINAL_REPEAT = ("Based on all the information above, please provide your best answer now in the format: "
                    "<think>your final thinking</think>\n<answer>your answer</answer>")


def _golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def _write_goldens() -> None:
    (GOLDEN / "system_prompt_images.txt").write_text(p.system_prompt(TRAINED, DATE, True),
                                                     encoding="utf-8", newline="")
    (GOLDEN / "system_prompt_text.txt").write_text(p.system_prompt(TRAINED, DATE, False),
                                                   encoding="utf-8", newline="")
    system = p.system_prompt(TRAINED, DATE, True)
    (GOLDEN / "first_turn.txt").write_text(p.chatml_prefix(system, p.first_user_text(QUESTION, ["image_1"]), 1),
                                           encoding="utf-8", newline="")


# --- system prompt ----------------------------------------------------------------


def test_system_prompt_with_images_matches_reference_and_golden():
    got = p.system_prompt(TRAINED, DATE, with_images=True)
    assert got == REF_SYSTEM_IMAGES
    assert _golden("system_prompt_images.txt") == REF_SYSTEM_IMAGES
    assert p.system_prompt(TRAINED[:3], DATE, with_images=True) == REF_SYSTEM_IMAGES.replace("\n" + REF_PYTHON, "")


def test_system_prompt_text_variant_has_no_crop_and_search():
    got = p.system_prompt(TRAINED, DATE, with_images=False)
    assert got == REF_SYSTEM_TEXT
    assert _golden("system_prompt_text.txt") == REF_SYSTEM_TEXT
    assert "crop_and_search" not in got
    assert p.system_prompt(TRAINED[:3], DATE, with_images=False) == REF_SYSTEM_TEXT.replace("\n" + REF_PYTHON, "")


def test_system_prompt_pieces():
    got = p.system_prompt(TRAINED, DATE, with_images=True)
    assert got.startswith(REF_INTRO + "\n\n# Tools\n\n")
    assert got.endswith("</tool_call>\n\nCurrent date: 2026-01-15")
    assert got.split("<tools>\n")[1].split("\n</tools>")[0] == "\n".join([REF_SEARCH, REF_CROP, REF_VISIT, REF_PYTHON])
    for line in (REF_SEARCH, REF_CROP, REF_VISIT):
        json.loads(line)  # one JSON object a line (PythonInterpreter's spans lines, as the reference's)
    without = p.system_prompt(["search", "crop_and_search", "visit"], DATE, with_images=True)
    assert "PythonInterpreter" not in without  # --no-python: the line goes, nothing else changes
    assert without == REF_SYSTEM_IMAGES.replace("\n" + REF_PYTHON, "")


def test_tool_specs_serialise_to_reference_lines():
    assert p.tool_line("search") == REF_SEARCH
    assert p.tool_line("crop_and_search") == REF_CROP
    assert p.tool_line("visit") == REF_VISIT
    assert p.tool_line("PythonInterpreter") == REF_PYTHON
    assert set(p.TOOL_SPECS) == {"search", "crop_and_search", "visit", "PythonInterpreter", "zoom"}


def test_tool_order_and_selection():
    # The reference's order whatever order the caller gives; extras after; unknown names refused.
    got = p.system_prompt(["PythonInterpreter", "visit", "zoom", "search"], DATE, with_images=True)
    body = got.split("<tools>\n")[1].split("\n</tools>")[0]
    assert body == "\n".join([REF_SEARCH, REF_VISIT, REF_PYTHON, p.tool_line("zoom")])
    assert "zoom" not in p.system_prompt(["search", "zoom"], DATE, with_images=False)
    with pytest.raises(ValueError):
        p.system_prompt(["search", "python"], DATE, with_images=True)
    # "Available tools: [...]" lists tools in the registry's order (tools.py DEEPRESEARCH_TOOLS).
    assert p.registry_order(["crop_and_search", "zoom", "PythonInterpreter", "visit", "search"]) == \
        ["search", "visit", "PythonInterpreter", "crop_and_search", "zoom"]


def test_zoom_spec_is_opt_in_and_1000_based():
    assert "zoom" not in p.DEFAULT_TOOLS
    spec = p.TOOL_SPECS["zoom"]["function"]
    assert spec["parameters"]["required"] == ["image_id", "bbox"]
    assert "1000" in spec["parameters"]["properties"]["bbox"]["items"]["description"]


# --- first user turn ----------------------------------------------------------------


def test_first_turn_golden():
    # Lines 322-330: [{"type": "text", "text": question}, {"type": "image_url", ...}]; Qwen3-VL's
    # chat template writes the parts in that order with nothing between them.
    text = p.first_user_text(QUESTION, ["image_1"])
    assert text == QUESTION  # the bare question: no image id line (eval_runner.py load_tasks)
    expected = ("<|im_start|>system\n" + REF_SYSTEM_IMAGES + "<|im_end|>\n<|im_start|>user\n" + text
                + "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n")
    assert p.chatml_prefix(REF_SYSTEM_IMAGES, text, 1) == expected
    assert _golden("first_turn.txt") == expected


def test_first_user_text_variants():
    assert p.IMAGES_FIRST is False
    assert p.first_user_text("  q?  ", []) == "q?"  # stripped, as eval_runner.py load_tasks strips it
    assert p.first_user_text("q?", ["image_1", "image_2"]) == "q?"
    assert p.image_ids(2) == ["image_1", "image_2"]
    parts = p.first_user_content("q?", ["image_1"])
    assert parts == [{"type": "text", "text": "q?"}, {"type": "image", "image_id": "image_1"}]


# --- corrective and final messages ------------------------------------------------------


def test_corrective_and_final_messages():
    assert p.FORMAT_ERROR == REF_FORMAT_ERROR
    assert p.REPETITION_ERROR == REF_REPETITION_ERROR
    assert p.JSON_PARSE_ERROR == REF_JSON_ERROR
    assert p.final_answer_request("max_steps", 50) == REF_FINAL_MAX
    assert p.final_answer_request("repetition", 50) == REF_FINAL_REPEAT
    assert p.final_answer_request("context", 50) == REF_FINAL_REPEAT
    with pytest.raises(ValueError):
        p.final_answer_request("bored", 50)  # type: ignore[arg-type]
    assert p.tool_response("x\ny") == "<tool_response>\nx\ny\n</tool_response>"
    assert p.tool_response("x") == p.TOOL_RESPONSE_START + "\nx" + p.TOOL_RESPONSE_END
    assert p.tool_not_found("foo", ["search", "visit"]) == "Tool foo not found. Available tools: ['search', 'visit']"
    assert p.tool_error("visit", "boom") == "Error calling tool visit: boom"  # line 626
    assert p.PYTHON_FORMAT_ERROR == "[Python Interpreter Error]: Python code formatting error."  # line 438
    assert p.PYTHON_NOT_AVAILABLE == "PythonInterpreter tool not available"  # line 647
    assert (p.MAX_LLM_CALLS, p.MAX_REPEAT_TURN, p.REPETITION_NGRAM, p.REPETITION_MIN_WORDS) == (50, 3, 30, 2500)


# --- search ------------------------------------------------------------------------------


def test_format_search_one_query():
    hits = [
        {"title": "Eiffel Tower", "url": "https://a.example/eiffel", "snippet": "  Wrought-iron tower.  ", "date": "2024-05-01"},
        {"title": "", "url": "https://b.example/", "snippet": ""},
    ]
    assert t.format_search([("eiffel tower", hits)]) == (
        "Search for 'eiffel tower' returned 2 results:\n\n"
        "1. [Eiffel Tower](https://a.example/eiffel)\n   Date published: 2024-05-01\n   Wrought-iron tower.\n\n"
        "2. [Untitled](https://b.example/)"
    )


def test_format_search_many_queries_empty_and_error():
    many = [{"title": f"t{i}", "url": f"https://x.example/{i}", "snippet": "s"} for i in range(12)]
    text = t.format_search([("a", many), ("b", []), ("c", t.search_error("c", "timeout"))])
    blocks = text.split("\n=======\n")
    assert len(blocks) == 3
    assert blocks[0].startswith("Search for 'a' returned 10 results:\n\n1. [t0](https://x.example/0)\n   s")
    assert "11. " not in blocks[0]
    assert blocks[1] == "No search results found for 'b'"
    assert blocks[2] == "Search request failed for 'c': timeout"
    assert t.format_search([("only", [])]) == "No search results found for 'only'"


# --- visit -------------------------------------------------------------------------------


def test_format_visit_success_failure_and_join():
    ok = {"url": "https://a.example/", "goal": "architect", "evidence": "Gustave Eiffel's company.", "summary": "Eiffel."}
    bad = {"url": "https://b.example/", "goal": "architect", "error": "Unable to fetch webpage content: 404"}
    text = t.format_visit([ok, bad])
    assert text == (
        "The useful information in https://a.example/ for user goal architect as follows: \n\n"
        "Evidence in page: \nGustave Eiffel's company.\n\n"
        "Summary: \nEiffel.\n\n"
        "\n\n=======\n\n"
        "The useful information in https://b.example/ for user goal architect as follows: \n\n"
        "Evidence in page: \nUnable to fetch webpage content: 404\n\n"
        "Summary: \nUnable to retrieve webpage content. Please check the link or try again later.\n\n"
    )


def test_format_visit_fallbacks():
    no_summary = t.format_visit([{"url": "u", "evidence": "e", "summary": ""}], goal=None)
    assert no_summary.startswith("The useful information in u for user goal N/A as follows: \n\n")
    assert no_summary.endswith("Summary: \nNo summary generated\n\n")
    raw = t.format_visit([{"url": "u", "goal": "g", "text": "page text"}])
    assert "Evidence in page: \npage text\n\n" in raw and t.VISIT_RAW_SUMMARY in raw
    assert t.format_visit([]) == "[Visit] No valid URL provided"
    six = [{"url": f"u{i}", "evidence": "e", "summary": "s"} for i in range(6)]
    assert t.format_visit(six).count("=======") == 4  # at most 5 URLs
    assert t.normalize_url("example.com/x") == "https://example.com/x"
    assert t.normalize_url("http://example.com") == "http://example.com"
    assert t.truncate_content("abc", 2) == "ab\n[Content truncated...]"


# --- crop_and_search -----------------------------------------------------------------------


def test_format_crop_and_search():
    region = {
        "bbox": [100, 200, 300.5, 400],  # printed as Python prints the parsed list (tools.py @ 67af60f)
        "hits": [
            {"title": "Tower", "url": "https://a.example/", "image_url": "https://a.example/i.jpg"},
            {"title": "Other", "url": "https://b.example/", "image_url": "https://b.example/i.jpg"},
            {"title": "Gone", "url": "https://c.example/", "image_url": "https://c.example/i.jpg"},
            {"title": "Fourth", "url": "https://d.example/", "image_url": "https://d.example/i.jpg"},
        ],
        "pages": [
            {"url": "https://a.example/", "text": "t", "evidence": "ev", "summary": "sum"},
            {"url": "https://b.example/", "text": "x" * 2100, "evidence": "", "summary": ""},
        ],
    }
    failed = {"bbox": [1, 2, 3, 4], "hits": [], "error": "no visual matches"}
    text = t.format_crop_and_search([region, failed])
    first, second = text.split("\n\n=======\n\nBbox ")
    assert first.startswith("The search results for bbox [100, 200, 300.5, 400] are as follows:\n"
                            "[1] The useful information in [Tower](https://a.example/) are:\n\n"
                            "Evidence in page:\nev\n\nSummary:\nsum\n\n"
                            "\n\n=======\n\n"
                            "[2] The useful information in [Other](https://b.example/) are:\n\n"
                            "Evidence in page:\n" + "x" * 2000 + "...\n\nSummary:\nSummary unavailable.\n\n")
    assert first.endswith("\n\n=======\n\n[3] [Error] Failed to fetch content from https://c.example/")
    assert "Fourth" not in first  # top 3 hits only
    assert "Bbox " + second == "Bbox [1, 2, 3, 4]: Image search failed"
    assert t.format_region({"bbox": [1, 2, 3, 4], "error": "crop failed: box outside image"}) == \
        "Bbox [1, 2, 3, 4]: Image cropping failed"
    assert t.format_crop_and_search([]) == "[CropAndSearch] Invalid bbox format"


def test_extractor_prompts():
    text = t.extractor_prompt("PAGE", "who built it")
    assert text.startswith("Please process the following webpage content and user goal to extract relevant "
                           "information:\n\n## **Webpage Content** \nPAGE\n\n## **User Goal**\nwho built it\n\n")
    assert text.endswith('{"rational": "Explain why the information is relevant to the goal.", "evidence": "Quote or '
                         'paraphrase the key supporting content from the webpage.", "summary": "Provide a concise '
                         'summary that connects the evidence back to the goal."}\n')
    assert "User Goal**\nN/A" in t.extractor_prompt("x", None)
    parts = t.crop_extractor_content("identify", "body", title="T", source="S", query_image="crop.jpg",
                                     main_image="m.jpg", page_images=[("alt", "p1.jpg"), ("", "p2.jpg")])
    assert parts == [
        {"type": "text", "text": "User's query image (the image the user is searching for):"},
        {"type": "image", "image": "crop.jpg"},
        {"type": "text", "text": "User's goal:\nidentify"},
        {"type": "text", "text": "Search result metadata:\nWebsite source: S\nPage title: T"},
        {"type": "text", "text": "Search result Main image:"},
        {"type": "image", "image": "m.jpg"},
        {"type": "text", "text": "Webpage content:\n\nbody"},
        {"type": "text", "text": "Images from webpage:"},
        {"type": "text", "text": "Image 'alt':"},
        {"type": "image", "image": "p1.jpg"},
        {"type": "image", "image": "p2.jpg"},
    ]
    # Sent without .format() by the reference (tools.py @ 67af60f, CropAndSearchTool._summarize_with_vllm):
    # its example object really reads {{...}}.
    assert t.CROP_EXTRACTOR_PROMPT.endswith('Example:\n{{"rational": "Explain why the information is relevant to the '
                                            'goal.", "evidence": "Quote or paraphrase the key supporting content from '
                                            'the webpage.", "summary": "Provide a concise summary that connects the '
                                            'evidence back to the goal."}}\n')


# --- parse_summary ----------------------------------------------------------------------------


def test_parse_summary_good_json():
    raw = '{"rational": "r", "evidence": "e", "summary": "s"}'
    assert t.parse_summary(raw) == {"rational": "r", "evidence": "e", "summary": "s"}


def test_parse_summary_fenced_and_noisy_json():
    raw = '<think>hmm</think>\nHere you go:\n```json\n{"rational": "r", "evidence": "line1\nline2", "summary": "s"}\n```\nDone.'
    assert t.parse_summary(raw) == {"rational": "r", "evidence": "line1\nline2", "summary": "s"}
    partial = t.parse_summary('Result: {"summary": "only", "evidence": ["a", "b"]} trailing')
    assert partial == {"rational": "", "evidence": "a\nb", "summary": "only"}


def test_parse_summary_garbage_falls_back_to_raw_text():
    assert t.parse_summary("  The page says Eiffel built it.  ") == {
        "rational": "", "evidence": "The page says Eiffel built it.", "summary": "The page says Eiffel built it."}
    assert t.parse_summary('{"foo": 1} not ours') == {
        "rational": "", "evidence": '{"foo": 1} not ours', "summary": '{"foo": 1} not ours'}
    assert t.parse_summary("") == {"rational": "", "evidence": "", "summary": ""}


if __name__ == "__main__":
    _write_goldens()
    print(f"wrote {GOLDEN}")
