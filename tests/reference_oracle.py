"""What the reference eval sends a model server, rebuilt from its code, for conformance tests.

The reference: github.com/Osilly/Vision-DeepResearch, rllm/eval/ at commit
67af60f077ef012a0aa34e8e8ae678073719cee1 (the newest). `deepresearch_agent.py` is cited
as "L<n>" (its line numbers at that commit); `eval_runner.py` and `tools.py` by function.
This is an independent reading of that code, written for the tests: nothing here is
imported from vdr, so a change in vdr cannot move the expectation with it.

`reference_requests` plays the reference's `MultiTurnReactAgent._run` (L296-603) for one
task: the same question, images and model outputs (as the server returns them), and the
results of the tools it calls, and returns the request bodies it would POST to
/v1/chat/completions, in order.
"""

from __future__ import annotations

import base64
import datetime as _dt
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import json5

# L18-19
MAX_LLM_CALL_PER_RUN = 50
MAX_REPEAT_TURN = 3

# L21-54 DEEPRESEARCH_SYSTEM_PROMPT_TEXT and L56-90 DEEPRESEARCH_SYSTEM_PROMPT, written out
# here piece by piece: they differ only in the crop_and_search line.
INTRO = (
    "You are a deep research assistant. Your core function is to conduct thorough, multi-source investigations into "
    "any topic. You must handle both broad, open-domain inquiries and queries within specialized academic fields. For "
    "every request, synthesize information from credible, diverse sources to deliver a comprehensive, accurate, and "
    "objective response. When you have gathered sufficient information and are ready to provide the definitive "
    "response, you must enclose the entire final answer within <answer></answer> tags."
)
TOOLS_OPEN = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
SEARCH_LINE = (  # L27 / L62
    '{"type": "function", "function": {"name": "search", "description": "Perform Google web searches then returns a '
    'string of the top search results. Accepts multiple queries.", "parameters": {"type": "object", "properties": '
    '{"query": {"type": "array", "items": {"type": "string", "description": "The search query."}, "minItems": 1, '
    '"description": "The list of search queries."}}, "required": ["query"]}}}'
)
CROP_LINE = (  # L63, only in DEEPRESEARCH_SYSTEM_PROMPT
    '{"type": "function", "function": {"name": "crop_and_search", "description": "Crop some important local regions '
    'from an image and perform reverse image / visual search to identify objects, text, organizations, or other visual '
    'elements.", "parameters": {"type": "object", "properties": {"image_id": {"type": "string", "description": "The '
    'path or unique identifier of the image to analyze."}, "bbox": {"type": "array", "items": {"type": "array", '
    '"items": {"type": "number"}, "description": "Bounding box coordinates [x1, y1, x2, y2]."}, "minItems": 1, '
    '"description": "One or more important local regions to be cropped from the image."}, "goal": {"type": "string", '
    '"description": "The specific purpose of the visual search."}}, "required": ["image_id", "bbox", "goal"]}}}'
)
VISIT_LINE = (  # L28 / L64
    '{"type": "function", "function": {"name": "visit", "description": "Visit webpage(s) and return the summary of the '
    'content.", "parameters": {"type": "object", "properties": {"url": {"type": "array", "items": {"type": "string"}, '
    '"description": "The URL(s) of the webpage(s) to visit. Can be a single URL or an array of URLs."}, "goal": '
    '{"type": "string", "description": "The specific information goal for visiting webpage(s)."}}, "required": '
    '["url", "goal"]}}}'
)
PYTHON_LINE = (  # L29-45 / L65-81: raw newlines inside the description
    '{"type": "function", "function": {"name": "PythonInterpreter", "description": "Executes Python code in a '
    "sandboxed environment. To use this tool, you must follow this format:\n1. The 'arguments' JSON object must be "
    "empty: {}.\n2. The Python code to be executed must be placed immediately after the JSON block, enclosed within "
    "<code> and </code> tags.\n\nIMPORTANT: Any output you want to see MUST be printed to standard output using the "
    'print() function.\n\nExample of a correct call:\n<tool_call>\n{"name": "PythonInterpreter", "arguments": {}}\n'
    '<code>\nimport numpy as np\n# Your code here\nprint(f"The result is: {np.mean([1,2,3])}")\n</code>\n'
    '</tool_call>", "parameters": {"type": "object", "properties": {}, "required": []}}}'
)
TOOLS_CLOSE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\nCurrent date: '
)
SYSTEM_PROMPT_TEXT = INTRO + TOOLS_OPEN + "\n".join([SEARCH_LINE, VISIT_LINE, PYTHON_LINE]) + TOOLS_CLOSE
SYSTEM_PROMPT = INTRO + TOOLS_OPEN + "\n".join([SEARCH_LINE, CROP_LINE, VISIT_LINE, PYTHON_LINE]) + TOOLS_CLOSE

# tools.py DEEPRESEARCH_TOOLS / get_all_tools(): the registry's key order.
REGISTRY = ["search", "visit", "PythonInterpreter", "crop_and_search"]

FORMAT_ERROR = ("Error: Invalid content format. Content must contain <tool_call> or <answer> tags. "
                "Let's try again.")  # L525
REPETITION_ERROR = ("Error: Content repetition detected. Invalid content format. Content must contain "
                    "<tool_call> or <answer> tags. Let's try again.")  # L514
REPEAT_FINAL = ("Based on all the information above, please provide your best answer now in the format: "
                "<think>your final thinking</think>\n<answer>your answer</answer>")  # L486
JSON_ERROR = "[Json Parse Error]: Tool call is not a valid JSON."  # L451
PYTHON_FORMAT_ERROR = "[Python Interpreter Error]: Python code formatting error."  # L438
PYTHON_NOT_AVAILABLE = "PythonInterpreter tool not available"  # L647


def round_limit_final(max_calls: int) -> str:  # L540
    return (f"You have reached the maximum number of reasoning rounds ({max_calls}). Based on all the information "
            "gathered so far, please provide your best final answer now in the format: <think>your final thinking"
            "</think>\n<answer>your answer</answer>")


def today_date() -> str:  # L92-94
    return _dt.datetime.now().date().strftime("%Y-%m-%d")


def image_data_url(data: bytes, fmt: str) -> str:
    """eval_runner.py load_image_as_base64_url: the file's own bytes, MIME from PIL's format name."""
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode('utf-8')}"


def analyze_repetition_ngram(text: str, n: int = 30, threshold: float = 0.5) -> bool:  # L97-137
    if not text or len(text) < n:
        return False
    ngrams = [text[i: i + n] for i in range(len(text) - n + 1)]
    if not ngrams:
        return False
    return len(Counter(ngrams)) / len(ngrams) < threshold


def count_words(text: str) -> int:  # L140-145
    return len(re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*").findall(text))


Tool = Callable[[str, Any], str]  # (name, args) -> the tool's result text; raise to make the reference's error


def reference_requests(question: str, outputs: Sequence[str], tool: Tool, *, images: Sequence[str] = (),
                       python: Callable[[str], str] | None = None, tools: Sequence[str] = REGISTRY,
                       model: str = "Vision-DeepResearch-8B", sampling: dict[str, Any] | None = None, date: str | None = None,
                       max_llm_calls: int = MAX_LLM_CALL_PER_RUN) -> list[dict[str, Any]]:
    """The request bodies the reference sends, in order (see the module docstring).

    `outputs`: the model's replies in order (`response.choices[0].message.content`).
    `tool(name, args)`: a registered tool's result (an exception is formatted as the
    reference formats it). `python(code)`: the interpreter, or None where the registry
    has none. `sampling`: eval_runner.py run_task's sampling_params (temperature, top_p,
    and max_tokens only when given)."""
    sampling = {"temperature": 0.6, "top_p": 0.95} if sampling is None else sampling  # eval_runner.py parse_args
    date = date or today_date()
    question = question.strip()  # eval_runner.py load_tasks
    if images:  # L321-329: text first, then one image_url part per image
        parts: list[dict[str, Any]] = [{"type": "text", "text": question}]
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT + date},
                                          {"role": "user", "content": parts}]  # L341-345
    else:
        messages = [{"role": "system", "content": SYSTEM_PROMPT_TEXT + date},
                    {"role": "user", "content": question}]  # L333-340
    sent: list[dict[str, Any]] = []
    replies = iter(outputs)

    def call_server() -> str:  # L238-253 (model=, messages=, **sampling_params), L229-235
        sent.append({"model": model, "messages": [dict(m) for m in messages], **sampling})
        return next(replies)

    def custom_call_tool(name: Any, args: Any) -> str:  # L613-629
        if name in tools:
            try:
                return str(tool(name, args))
            except Exception as e:  # noqa: BLE001 - as the reference
                return f"Error calling tool {name}: {e}"
        return f"Tool {name} not found. Available tools: {list(tools)}"

    def execute_python(code: str) -> str:  # L631-647
        if python is None:
            return PYTHON_NOT_AVAILABLE
        try:
            return str(python(code))
        except Exception as e:  # noqa: BLE001
            return f"Python execution error: {e}"

    calls_left = max_llm_calls
    repetition_count = 0
    while calls_left > 0:  # L353
        calls_left -= 1
        content = call_server()
        if "<tool_response>" in content:  # L397-400
            content = content[: content.find("<tool_response>")]
        if "<tool_call>" in content and "</tool_call>" in content:  # L403
            assistant = {"role": "assistant", "content": content.strip(), "step_error": False}  # L405-409
            messages.append(assistant)
            error = False
            call_text = content.split("<tool_call>")[1].split("</tool_call>")[0]  # L413-415
            if "python" in call_text.lower():  # L417
                try:
                    code = call_text.split("<code>")[1].split("</code>")[0].strip()  # L420-426
                    result = execute_python(code)
                    error = result.startswith(("Python execution error:", PYTHON_NOT_AVAILABLE,
                                               "PythonInterpreter tool is not callable"))  # L428-435
                except Exception:  # noqa: BLE001
                    result, error = PYTHON_FORMAT_ERROR, True  # L436-440
            else:
                try:
                    data = json5.loads(call_text)  # L444
                    name = data.get("name", "")
                    args = data.get("arguments", {})
                    if name == "crop_and_search":
                        args["image_id"] = "<image_path>"  # L447-448: always the task's first image
                    result = custom_call_tool(name, args)
                except Exception:  # noqa: BLE001
                    result, error = JSON_ERROR, True  # L450-452
            if error:
                assistant["step_error"] = True  # L454-455
            messages.append({"role": "user", "content": f"<tool_response>\n{result}\n</tool_response>"})  # L458-459
        elif "<answer>" in content and "</answer>" in content:  # L462
            messages.append({"role": "assistant", "content": content.strip(), "step_error": False})
            break
        else:
            if analyze_repetition_ngram(content) and count_words(content) > 2500:  # L477-479
                repetition_count += 1
                if repetition_count >= MAX_REPEAT_TURN:  # L483-503: this turn is not kept
                    messages.append({"role": "user", "content": REPEAT_FINAL})
                    final = call_server()
                    messages.append({"role": "assistant", "content": final.strip()})
                    break
                messages.append({"role": "assistant", "content": content.strip(), "step_error": True})
                messages.append({"role": "user", "content": REPETITION_ERROR})  # L512-523
            else:
                messages.append({"role": "assistant", "content": content.strip(), "step_error": True})
                messages.append({"role": "user", "content": FORMAT_ERROR})  # L524-532
        if calls_left <= 0 and "<answer>" not in content:  # L536
            messages.append({"role": "user", "content": round_limit_final(max_llm_calls)})  # L538-542
            final = call_server()
            messages.append({"role": "assistant", "content": final.strip()})
            break
    return sent
