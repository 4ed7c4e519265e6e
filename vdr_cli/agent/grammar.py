"""A GBNF grammar for one assistant turn in the trained format.

`<think>…</think>` then either one `<tool_call>` whose JSON matches a tool's
argument schema, or `<answer>…</answer>`.  With it, even a small model that
never saw the format produces turns that parse.  Lengths are bounded so a
small model is made to close its thought and move on (grammar sampling
costs ~5-7 ms a token on a 49k vocabulary with or without the bounds).
"""

from __future__ import annotations

from collections.abc import Sequence

# Models known to follow the format unconstrained (by GGUF name or registry name).
TRAINED_NAMES = ("vision-deepresearch", "vdr-8b", "vdr-30b")

_COMMON = r'''
ws ::= [ ]?
think ::= "<think>" [^<]{1,THINK} "</think>\n"
str ::= "\"" [^"\\<\n]{1,120} "\""
num ::= [0-9]{1,3} ("." [0-9]{1,2})?
box ::= "[" num "," ws num "," ws num "," ws num "]"
answer ::= "<answer>" [^<]{1,400} "</answer>"
'''

_TOOLS = {
    "search": r'''search ::= "{\"name\": \"search\", \"arguments\": {\"query\": [" str ("," ws str){0,4} "]}}"''',
    "visit": r'''visit ::= "{\"name\": \"visit\", \"arguments\": {\"url\": [" url ("," ws url){0,4} "], \"goal\": " str "}}"''',
    "crop_and_search": r'''crop-and-search ::= "{\"name\": \"crop_and_search\", \"arguments\": {\"image_id\": " imageid ", \"bbox\": [" box ("," ws box){0,3} "], \"goal\": " str "}}"''',
    "zoom": r'''zoom ::= "{\"name\": \"zoom\", \"arguments\": {\"image_id\": " imageid ", \"bbox\": [" box ("," ws box){0,3} "]}}"''',
}


def _literal(text: str) -> str:
    """A GBNF string literal for `text` (a JSON string, quotes included)."""
    import json

    inner = json.dumps(text, ensure_ascii=False)  # "..." with JSON escapes
    return '"' + inner.replace("\\", "\\\\").replace('"', '\\"') + '"'


def think_chars(max_tokens: int) -> int:
    """Longest thought the grammar allows: room for the tool call is kept out of
    the turn's token budget (a thought runs ~2-4 characters a token)."""
    return max(60, min(2000, (max_tokens - 120) * 2))


def turn_grammar(tools: Sequence[str], allow_answer: bool = True, urls: Sequence[str] = (),
                 image_ids: Sequence[str] = (), max_think: int = 600) -> str:
    """GBNF for a turn that may call any of `tools` (or answer).

    `urls`: when given, `visit` may only name these (URLs earlier results
    returned: a small model cannot invent hosts); without any, `visit` is
    left out.  `image_ids`: the session's images, the only ones
    crop_and_search and zoom may name.
    """
    names = [t for t in tools if t in _TOOLS and (t != "visit" or urls) and (t not in ("crop_and_search", "zoom") or image_ids)]
    if not names and not allow_answer:
        raise ValueError("a turn grammar needs at least one tool or the answer")
    choices = []
    if names:
        # GBNF rule names allow letters, digits and '-', not '_'.
        choices.append('"<tool_call>\\n" (' + " | ".join(n.replace("_", "-") for n in names) + ') "\\n</tool_call>"')
    if allow_answer:
        choices.append("answer")
    rules = [f"root ::= think ({' | '.join(choices)})", _COMMON.strip().replace("THINK", str(max_think))]
    rules += [_TOOLS[name] for name in names]
    if "visit" in names:
        rules.append("url ::= " + " | ".join(_literal(u) for u in list(dict.fromkeys(urls))[:50]))
    if {"crop_and_search", "zoom"} & set(names):
        rules.append("imageid ::= " + " | ".join(_literal(i) for i in image_ids))
    return "\n".join(rules) + "\n"


def answer_grammar(max_think: int = 600) -> str:
    """GBNF for the final-answer turn: think, then answer."""
    return turn_grammar([], allow_answer=True, max_think=max_think)


def wants_grammar(mode: str, model_name: str, http: bool = False) -> bool:
    """`auto`: constrain in-process models not known to follow the trained format.

    Over HTTP `auto` never constrains: a server is named by whoever runs it (the reference
    serves its policy as "Qwen3-VL-30B-A3B-Instruct"), so the name says nothing about the
    weights, the reference sends no grammar, and `grammar` is a llama.cpp server extension
    that vLLM and SGLang do not take.  `--grammar on` still asks for it."""
    if mode == "on":
        return True
    if mode == "off" or http:
        return False
    name = model_name.lower()
    return not any(t in name for t in TRAINED_NAMES)
