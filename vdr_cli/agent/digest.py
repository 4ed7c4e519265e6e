"""Compact stand-ins for old tool responses and turns, for context folding.

Three levels for a tool response: whole (0); brief (1): the evidence of each
page is dropped, its summary kept, search snippets dropped; stub (2): one line
naming the call, its sources and its gist.  An assistant turn has two: whole
(0), and thought dropped (1) with its tool call or answer kept.  Everything
works on the text the model was shown, so a digest can be made again from a
trace alone.
"""

from __future__ import annotations

import re

from vdr_cli.agent import prompt

BRIEF, STUB = 1, 2
_EVIDENCE = re.compile(r"(Evidence in page: ?\n)(.*?)(\n\nSummary: ?\n)", re.S)
_SUMMARY = re.compile(r"Summary: ?\n(.*?)(?:\n\n|$)", re.S)
_SNIPPET = re.compile(r"^   (?!Date published:).*\n?", re.M)
_URL = re.compile(r"https?://[^\s)\]>\"']+")
_THINK = re.compile(r"<think>.*?</think>", re.S)
SUMMARY_CHARS = 600  # a brief result keeps this much of each summary
GIST_CHARS = 160
MAX_URLS = 5


def brief(text: str) -> str:
    """Evidence dropped, summaries kept (shortened), search snippets dropped."""
    out = _EVIDENCE.sub(lambda m: m.group(1) + prompt.FOLDED_EVIDENCE + m.group(3), text)
    out = _SUMMARY.sub(lambda m: "Summary: \n" + _cut(m.group(1), SUMMARY_CHARS) + "\n\n", out)
    return _SNIPPET.sub("", out)


def urls_in(text: str) -> list[str]:
    """The URLs a text names, in order, once each."""
    return list(dict.fromkeys(url.rstrip(".,;:") for url in _URL.findall(text)))


def stub(text: str, step: int, tool: str) -> str:
    """One line: which call, how big it was, the URLs it named, its first summary."""
    urls = urls_in(text)
    summary = _SUMMARY.search(text)
    gist = summary.group(1) if summary else text
    return prompt.folded_result(step, tool or "tool", len(text), urls[:MAX_URLS], _cut(" ".join(gist.split()), GIST_CHARS))


def result_text(text: str, level: int, step: int, tool: str) -> str:
    """A tool response at a digest level (0 is the text itself)."""
    if level >= STUB:
        return stub(text, step, tool)
    return brief(text) if level == BRIEF else text


def drop_thought(raw: str) -> str:
    """An assistant turn without its reasoning: the call or the answer stays as written."""
    return _THINK.sub("<think>" + prompt.FOLDED_THOUGHT + "</think>", raw, count=1)


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…"
