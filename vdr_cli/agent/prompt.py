"""The trained format of Vision-DeepResearch: prompts, corrective messages, tool-result text.

Everything the model reads that vdr writes comes from here, so it can be checked
against the reference (Osilly/Vision-DeepResearch, `rllm/eval/deepresearch_agent.py`,
`rllm/eval/tools.py`, and the RL agent `rllm/vision_deepresearch_async_workflow/`).
Strings the model was trained on are kept literally; see docs/reference-format.md for
where each one comes from and where vdr deliberately differs.

Constants and pure functions only: no I/O, no model or network imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

# --- budgets the reference uses ------------------------------------------------

MAX_LLM_CALLS = 50          # MAX_LLM_CALL_PER_RUN
MAX_REPEAT_TURN = 3         # repetitive, over-long turns tolerated before the final-answer request
REPETITION_NGRAM = 30       # analyze_repetition_ngram(n=30, threshold=0.5)
REPETITION_THRESHOLD = 0.5
REPETITION_MIN_WORDS = 2500  # count_words(content) > 2500
MAX_SEARCH_RESULTS = 10     # top 10 hits per query
MAX_VISIT_URLS = 5          # VisitTool.MAX_URLS
MAX_CONTENT_CHARS = 120000  # page text given to the summariser
CONTENT_TRUNCATED = "\n[Content truncated...]"
MAX_IMAGE_HITS = 3          # crop_and_search keeps the top 3 reverse-image hits
CROP_EVIDENCE_CHARS = 2000  # crop_and_search's evidence fallback: first 2000 chars of the page
CROP_EXTRACT_CHARS = 50000  # page text given to the crop summariser
CROP_EXTRACT_IMAGES = 10    # images from the page body given to the crop summariser

# --- tools ---------------------------------------------------------------------
# The JSON specs exactly as the reference system prompt lists them (key order matters:
# `json.dumps` with default separators reproduces the reference lines byte for byte).
# PythonInterpreter's line is not JSON (raw newlines in its description): see PYTHON_LINE.

SEARCH_SPEC: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Perform Google web searches then returns a string of the top search results. Accepts multiple queries.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "array",
                    "items": {"type": "string", "description": "The search query."},
                    "minItems": 1,
                    "description": "The list of search queries.",
                }
            },
            "required": ["query"],
        },
    },
}

CROP_AND_SEARCH_SPEC: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "crop_and_search",
        "description": "Crop some important local regions from an image and perform reverse image / visual search to identify objects, text, organizations, or other visual elements.",
        "parameters": {
            "type": "object",
            "properties": {
                "image_id": {"type": "string", "description": "The path or unique identifier of the image to analyze."},
                "bbox": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {"type": "number"},
                        "description": "Bounding box coordinates [x1, y1, x2, y2].",
                    },
                    "minItems": 1,
                    "description": "One or more important local regions to be cropped from the image.",
                },
                "goal": {"type": "string", "description": "The specific purpose of the visual search."},
            },
            "required": ["image_id", "bbox", "goal"],
        },
    },
}

VISIT_SPEC: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "visit",
        "description": "Visit webpage(s) and return the summary of the content.",
        "parameters": {
            "type": "object",
            "properties": {
                "url": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The URL(s) of the webpage(s) to visit. Can be a single URL or an array of URLs.",
                },
                "goal": {"type": "string", "description": "The specific information goal for visiting webpage(s)."},
            },
            "required": ["url", "goal"],
        },
    },
}

# vdr's own, NOT in the trained tool set: opt-in only (`--tools ...,zoom`). Same
# argument shape as crop_and_search (image_id + 0-1000 boxes) so the model's habits
# carry over; the result is the enlarged crop(s) as image(s) in the tool response.
ZOOM_SPEC: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "zoom",
        "description": "Crop one or more regions from an image and return them enlarged as images, to read small text or inspect fine details.",
        "parameters": {
            "type": "object",
            "properties": {
                "image_id": {"type": "string", "description": "The unique identifier of the image to zoom into."},
                "bbox": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {"type": "number"},
                        "description": "Bounding box coordinates [x1, y1, x2, y2], each from 0 to 1000 relative to the image width and height.",
                    },
                    "minItems": 1,
                    "description": "One or more regions to enlarge.",
                },
            },
            "required": ["image_id", "bbox"],
        },
    },
}

# --- PythonInterpreter (the model's code runs in tools/sandbox.py) -----------------
PYTHON = "PythonInterpreter"
# Literally as the reference lists it (Osilly/Vision-DeepResearch@67af60f
# rllm/eval/deepresearch_agent.py lines 31-45 and 67-81, DEEPRESEARCH_SYSTEM_PROMPT_TEXT
# and DEEPRESEARCH_SYSTEM_PROMPT; the same bytes at bac38dc lines 32-46 and 68-82).
PYTHON_LINE = (
    '{"type": "function", "function": {"name": "PythonInterpreter", "description": "Executes Python code in a '
    "sandboxed environment. To use this tool, you must follow this format:\n"
    "1. The 'arguments' JSON object must be empty: {}.\n"
    "2. The Python code to be executed must be placed immediately after the JSON block, enclosed within <code> "
    "and </code> tags.\n\n"
    "IMPORTANT: Any output you want to see MUST be printed to standard output using the print() function.\n\n"
    "Example of a correct call:\n<tool_call>\n"
    '{"name": "PythonInterpreter", "arguments": {}}\n<code>\nimport numpy as np\n# Your code here\n'
    'print(f"The result is: {np.mean([1,2,3])}")\n</code>\n</tool_call>", '
    '"parameters": {"type": "object", "properties": {}, "required": []}}}'
)
# deepresearch_agent.py@67af60f MultiTurnReactAgent._run / execute_python (bac38dc lines 494-515, 749).
PYTHON_FORMAT_ERROR = "[Python Interpreter Error]: Python code formatting error."

TOOL_SPECS: dict[str, dict[str, Any]] = {
    "search": SEARCH_SPEC,
    "crop_and_search": CROP_AND_SEARCH_SPEC,
    "visit": VISIT_SPEC,
    PYTHON: {"type": "function", "function": {"name": PYTHON}},  # written as PYTHON_LINE
    "zoom": ZOOM_SPEC,
}
# The order of the reference's <tools> lines (DEEPRESEARCH_SYSTEM_PROMPT, lines 56-90).
TRAINED_TOOLS: tuple[str, ...] = ("search", "crop_and_search", "visit", PYTHON)
# The order of the reference's tool registry (tools.py DEEPRESEARCH_TOOLS, get_all_tools()):
# what "Available tools: [...]" lists after a call to an unknown tool.
REGISTRY_ORDER: tuple[str, ...] = ("search", "visit", PYTHON, "crop_and_search")
IMAGE_TOOLS = frozenset({"crop_and_search", "zoom"})  # dropped when the session has no image
# PythonInterpreter joins the defaults where a sandbox can run it (see --python).
DEFAULT_TOOLS: tuple[str, ...] = ("search", "crop_and_search", "visit")


def registry_order(names: Iterable[str]) -> list[str]:
    """Tool names as the reference's registry orders them; vdr's extras after, in the order given."""
    names = list(dict.fromkeys(names))
    return [t for t in REGISTRY_ORDER if t in names] + [t for t in names if t not in REGISTRY_ORDER]

# --- system prompt -------------------------------------------------------------

INTRO = (
    "You are a deep research assistant. Your core function is to conduct thorough, multi-source investigations "
    "into any topic. You must handle both broad, open-domain inquiries and queries within specialized academic "
    "fields. For every request, synthesize information from credible, diverse sources to deliver a comprehensive, "
    "accurate, and objective response. When you have gathered sufficient information and are ready to provide the "
    "definitive response, you must enclose the entire final answer within <answer></answer> tags."
)
TOOLS_HEADER = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>\n\n"
)
DATE_PREFIX = "Current date: "


def tool_line(name: str) -> str:
    """One tool as the reference writes it inside <tools>: one JSON object on one line
    (PythonInterpreter: the reference's literal text, which spans lines)."""
    if name == PYTHON:
        return PYTHON_LINE
    return json.dumps(TOOL_SPECS[name], ensure_ascii=False)


def prompt_tools(tools: Iterable[str], with_images: bool) -> list[str]:
    """The tools a prompt lists: trained ones in the reference's order, then extras in the
    order given; image tools only when the session has an image. Unknown names: ValueError."""
    wanted = list(dict.fromkeys(tools))
    unknown = [t for t in wanted if t not in TOOL_SPECS]
    if unknown:
        raise ValueError(f"unknown tool(s): {', '.join(unknown)}; known: {', '.join(TOOL_SPECS)}")
    ordered = [t for t in TRAINED_TOOLS if t in wanted] + [t for t in wanted if t not in TRAINED_TOOLS]
    return [t for t in ordered if with_images or t not in IMAGE_TOOLS]


def system_prompt(tools: Sequence[str], date: str, with_images: bool) -> str:
    """The system turn. For TRAINED_TOOLS it is the reference's DEEPRESEARCH_SYSTEM_PROMPT
    (with_images) or DEEPRESEARCH_SYSTEM_PROMPT_TEXT (without: no crop_and_search)
    + today_date(): "Current date: YYYY-MM-DD", no trailing newline
    (deepresearch_agent.py@67af60f, lines 21-90 and 317-340)."""
    lines = "\n".join(tool_line(t) for t in prompt_tools(tools, with_images))
    return INTRO + "\n\n" + TOOLS_HEADER + lines + TOOLS_FOOTER + DATE_PREFIX + date


# --- first user turn -----------------------------------------------------------

# The newest reference eval (deepresearch_agent.py@67af60f, lines 322-330) sends the question
# as the first content part and then one image_url part per image: text, then images.
# (The older RL rollout, commit bac38dc, rendered images first; the newest eval wins, see
# docs/reference-format.md.) The question is the dataset's, stripped (eval_runner.py
# load_tasks); it names no image id: crop_and_search always crops the first image.
IMAGES_FIRST = False


def image_ids(n: int) -> list[str]:
    """vdr's ids for a session's images (trace and toolbox only; the model is not told them)."""
    return [f"image_{i}" for i in range(1, n + 1)]


def first_user_text(question: str, image_ids: Sequence[str] = ()) -> str:
    """The text of the first user turn: the question, stripped, as the reference sends it."""
    return question.strip()


def first_user_content(question: str, ids: Sequence[str]) -> list[dict[str, str]]:
    """The first user turn as ordered parts: {"type": "text", "text": ...} then
    {"type": "image", "image_id": id} per image, in the order the model reads them."""
    images = [{"type": "image", "image_id": i} for i in ids]
    text = [{"type": "text", "text": first_user_text(question, ids)}]
    return images + text if IMAGES_FIRST else text + images


# Qwen-VL's image placeholder in ChatML text (the mmproj expands <|image_pad|>).
VISION_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def chatml_prefix(system: str, user_text: str, n_images: int) -> str:
    """System + first user turn + the open assistant turn, in ChatML as Qwen3-VL's chat
    template renders the reference's messages (text part, then the images, no separator)."""
    vision = VISION_PLACEHOLDER * n_images
    user = vision + user_text if IMAGES_FIRST else user_text + vision
    return (f"<|im_start|>system\n{system}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


# --- tool responses, corrections, final answer -----------------------------------

TOOL_RESPONSE_START = "<tool_response>"
TOOL_RESPONSE_END = "\n</tool_response>"


def tool_response(text: str) -> str:
    """A tool result as the user turn the model reads after its <tool_call>."""
    return f"<tool_response>\n{text}\n</tool_response>"


# Sent as plain user turns (NOT wrapped in <tool_response>) after a turn with neither
# a complete <tool_call> nor an <answer>.
FORMAT_ERROR = "Error: Invalid content format. Content must contain <tool_call> or <answer> tags. Let's try again."
REPETITION_ERROR = (
    "Error: Content repetition detected. Invalid content format. "
    "Content must contain <tool_call> or <answer> tags. Let's try again."
)
# Tool results (these ARE wrapped in <tool_response>).
JSON_PARSE_ERROR = "[Json Parse Error]: Tool call is not a valid JSON."  # line 451
# A <tool_call> whose text contains "python" (any case) goes to the interpreter; without a
# <code> block the reference answers PYTHON_FORMAT_ERROR (lines 417-440), whatever tool the JSON names.
PYTHON_NOT_AVAILABLE = "PythonInterpreter tool not available"  # line 647: no interpreter in the registry
VISIT_NO_URL = "[Visit] No valid URL provided"
CROP_INVALID_BBOX = "[CropAndSearch] Invalid bbox format"

FINAL_FORMAT = "<think>your final thinking</think>\n<answer>your answer</answer>"


def tool_not_found(name: str, available: Sequence[str]) -> str:
    """Reference wording for a call to a tool the session does not have (line 629);
    `available` in the registry's order (see registry_order)."""
    return f"Tool {name} not found. Available tools: {list(available)}"


def tool_error(name: str, error: object) -> str:
    """Reference wording for a tool that raised (line 626): the exception's text, no type name."""
    return f"Error calling tool {name}: {error}"


def final_answer_request(reason: Literal["max_steps", "repetition", "context"], max_steps: int = MAX_LLM_CALLS) -> str:
    """The one user turn asking for the best answer now.

    max_steps and repetition are the reference's texts. The reference has no context-full
    request (it just stops); vdr reuses the repetition text there, which names no cause."""
    if reason == "max_steps":
        return (
            f"You have reached the maximum number of reasoning rounds ({max_steps}). Based on all the information "
            f"gathered so far, please provide your best final answer now in the format: {FINAL_FORMAT}"
        )
    if reason in ("repetition", "context"):
        return f"Based on all the information above, please provide your best answer now in the format: {FINAL_FORMAT}"
    raise ValueError(f"unknown final-answer reason {reason!r}")


# --- context folding (vdr's own, never sent to a session that fits its window) --------
# The reference has no folding; these texts are vdr's. A folded tool response stays a
# <tool_response> turn, so the turn structure the model was trained on is unchanged.

FOLDED_EVIDENCE = "[evidence folded to save context]"


def folded_result(step: int, tool: str, chars: int, urls: Sequence[str], gist: str) -> str:
    """The one-line stand-in for a tool response folded away completely."""
    text = f"[Folded to save context: the {tool} result of step {step} ({chars} characters)."
    if urls:
        text += " Sources: " + ", ".join(urls) + "."
    if gist:
        text += f" Gist: {gist}"
    return text + "]"


FOLDED_THOUGHT = "[earlier reasoning folded to save context]"


def folded_index(upto: int, queries: Sequence[str], urls: Sequence[str]) -> str:
    """The user turn that stands for steps 1..upto once even their stubs did not fit."""
    text = f"[Steps 1-{upto} of your research were folded to save context."
    if queries:
        text += " You searched: " + "; ".join(queries) + "."
    if urls:
        text += " You visited: " + ", ".join(urls) + "."
    return text + "]"

SUMMARY_REQUEST = (
    "Your context window is nearly full, so your research so far will be replaced by a summary that you write "
    "now. Write the research state for yourself: the question, what you have established (with the URLs that "
    "support it), what you ruled out, the open leads, and what to do next. Write only the summary, inside "
    "<summary></summary> tags."
)
SUMMARY_STOP = "</summary>"


def summary_turn(summary: str) -> str:
    """The user turn that stands for the folded steps under `--fold summarise`."""
    return (
        "Your earlier research steps were folded to save context. This is your own summary of them:\n"
        f"<summary>\n{summary.strip()}\n</summary>\n"
        "Continue the research from here."
    )
