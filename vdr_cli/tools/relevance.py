"""Goal-directed extractive summaries without a model: BM25 over a page's paragraphs.

Used to cut a long page down to the passages that bear on the research goal before any
model sees it.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN = re.compile(r"\w+")
# A tiny list: BM25's idf already discounts common words; these are the ones that are
# common in questions ("what is the ...") and would otherwise add noise to short goals.
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have how in is it its of on or that the this to was were "
    "what when where which who why will with".split()
)
_K1 = 1.5
_B = 0.75


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens, punctuation dropped, stopwords removed."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


def paragraphs(text: str) -> list[str]:
    """Split on blank lines; a text without blank lines is split on single newlines."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text or "")]
    parts = [p for p in parts if p]
    if len(parts) <= 1 and text and "\n" in text.strip():
        parts = [p.strip() for p in text.splitlines() if p.strip()]
    return parts


def bm25_scores(docs: list[list[str]], query: list[str]) -> list[float]:
    """Okapi BM25 score of each tokenized doc for the tokenized query."""
    n = len(docs)
    if not n or not query:
        return [0.0] * n
    avgdl = sum(len(d) for d in docs) / n or 1.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    terms = set(query)
    # The "+1" form of idf stays positive for terms found in most paragraphs.
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
    scores = []
    for d in docs:
        tf = Counter(d)
        norm = _K1 * (1 - _B + _B * len(d) / avgdl)
        scores.append(sum(idf[t] * tf[t] * (_K1 + 1) / (tf[t] + norm) for t in terms if tf[t]))
    return scores


def select_passages(text: str, goal: str, k: int = 5, max_chars: int = 2000) -> list[dict]:
    """The k paragraphs of `text` most relevant to `goal`, in document order.

    Returns [{"index": paragraph index, "score": BM25 score, "text": paragraph}], stopping
    before the total text would exceed max_chars (a longer top paragraph is cut to fit).
    Paragraphs that share no term with the goal are never returned.
    """
    paras = paragraphs(text)
    query = tokenize(goal or "")
    if not paras or not query or k <= 0:
        return []
    scores = bm25_scores([tokenize(p) for p in paras], query)
    ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    used = 0
    for i in ranked[:k]:
        if used + len(paras[i]) > max_chars:
            if not picked and max_chars > 0:  # the best paragraph alone is too long: cut it
                paras[i] = paras[i][:max_chars].rstrip()
            else:
                continue
        picked.append(i)
        used += len(paras[i])
    return [{"index": i, "score": round(scores[i], 4), "text": paras[i]} for i in sorted(picked)]


def extractive_summary(text: str, goal: str, k: int = 5, max_chars: int = 2000, sep: str = "\n\n") -> str:
    """The selected passages joined with `sep`; empty when nothing matches the goal."""
    return sep.join(p["text"] for p in select_passages(text, goal, k=k, max_chars=max_chars))
