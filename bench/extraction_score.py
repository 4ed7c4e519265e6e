"""Shingle-based scoring for article-body extraction.

Implements the scoring described in the dataset README (the Zyte article extraction
benchmark): word 4-gram multisets, per-page tp/fp/fn normalised by their sum, precision and
recall averaged over pages, F1 as the harmonic mean of the two averages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_TOKEN_RE = re.compile(r"\w+")
NGRAM = 4


def shingles(text: str | None, n: int = NGRAM) -> Counter[str]:
    tokens = _TOKEN_RE.findall(text or "")
    # A text shorter than n tokens still yields one shingle, as in the reference scorer.
    return Counter(" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens)


def page_counts(true: str | None, pred: str | None) -> tuple[float, float, float]:
    """Return (tp, fp, fn) for one page, normalised so they sum to 1 (or all 0)."""
    t, p = shingles(true), shingles(pred)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    s = tp + fp + fn
    if s:
        return tp / s, fp / s, fn / s
    return 0.0, 0.0, 0.0


def precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fp == 0:
        return 0.0
    return tp / (tp + fp)


def recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fn == 0:
        return 0.0
    return tp / (tp + fn)


def page_scores(true: str | None, pred: str | None) -> tuple[float, float, float]:
    """Return (precision, recall, f1) for a single page."""
    c = page_counts(true, pred)
    p, r = precision(*c), recall(*c)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def aggregate(pairs: Iterable[tuple[str | None, str | None]]) -> dict[str, float]:
    """Average precision and recall over pages; F1 is the harmonic mean of the averages."""
    ps, rs = [], []
    for true, pred in pairs:
        c = page_counts(true, pred)
        ps.append(precision(*c))
        rs.append(recall(*c))
    if not ps:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "pages": 0}
    p, r = sum(ps) / len(ps), sum(rs) / len(rs)
    return {"precision": p, "recall": r, "f1": (2 * p * r / (p + r) if p + r else 0.0), "pages": len(ps)}
