"""A GBNF grammar for one assistant turn in the trained format.

`<think>…</think>` then either one `<tool_call>` whose JSON matches a tool's
argument schema, or `<answer>…</answer>`.  With it, even a small model that
never saw the format produces turns that parse.  Lengths are bounded so a
wandering model cannot fill the context inside one string.
"""

from __future__ import annotations

from collections.abc import Sequence

# Models known to follow the format unconstrained (by GGUF name or registry name).
TRAINED_NAMES = ("vision-deepresearch", "vdr-8b", "vdr-30b")

_COMMON = r'''
ws ::= [ ]?
think ::= "<think>" [^<]{1,600} "</think>\n"
str ::= "\"" [^"\\<\n]{1,120} "\""
url ::= "\"http" "s"? "://" [^"\\<\n ]{3,200} "\""
num ::= [0-9]{1,3} ("." [0-9]{1,2})?
box ::= "[" num "," ws num "," ws num "," ws num "]"
answer ::= "<answer>" [^<]{1,400} "</answer>"
'''

_TOOLS = {
    "search": r'''search ::= "{\"name\": \"search\", \"arguments\": {\"query\": [" str ("," ws str){0,4} "]}}"''',
    "visit": r'''visit ::= "{\"name\": \"visit\", \"arguments\": {\"url\": [" url ("," ws url){0,4} "], \"goal\": " str "}}"''',
    "crop_and_search": r'''crop_and_search ::= "{\"name\": \"crop_and_search\", \"arguments\": {\"image_id\": \"image_" [1-9] "\", \"bbox\": [" box ("," ws box){0,3} "], \"goal\": " str "}}"''',
    "zoom": r'''zoom ::= "{\"name\": \"zoom\", \"arguments\": {\"image_id\": \"image_" [1-9] "\", \"bbox\": [" box ("," ws box){0,3} "]}}"''',
}


def turn_grammar(tools: Sequence[str], allow_answer: bool = True) -> str:
    """GBNF for a turn that may call any of `tools` (or answer)."""
    names = [t for t in tools if t in _TOOLS]
    if not names and not allow_answer:
        raise ValueError("a turn grammar needs at least one tool or the answer")
    choices = []
    if names:
        choices.append('"<tool_call>\\n" (' + " | ".join(names) + ') "\\n</tool_call>"')
    if allow_answer:
        choices.append("answer")
    rules = [f"root ::= think ({' | '.join(choices)})", _COMMON.strip()]
    rules += [_TOOLS[name] for name in names]
    return "\n".join(rules) + "\n"


def answer_grammar() -> str:
    """GBNF for the final-answer turn: think, then answer."""
    return turn_grammar([], allow_answer=True)


def wants_grammar(mode: str, model_name: str) -> bool:
    """`auto`: constrain models not known to follow the trained format."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    name = model_name.lower()
    return not any(t in name for t in TRAINED_NAMES)
