"""Cross-validation of the extractor's tuned choices over the development pages.

The choices are the module constants that were set by looking at pages
(extract.LENIENT_BELOW, extract.LINK_SHARE_MAX, extract.LISTING_MIN — which can switch the
related-articles rule off —, extract_score.SIBLING_SHARE, extract_score.NEAR_BEST). Every combination of a small grid around them is run once on
every page; then, for each of K folds (pages dealt by key order, so the split is fixed),
the combination with the best F1 on the other folds is scored on that fold. The pooled
held-out scores are the estimate.

What this does not cover: the rules and word lists themselves (Readability's, plus what was
added while reading these pages) were written with all of them in view. The estimate is
therefore still optimistic; only pages kept apart (the other half of the benchmark) measure
that.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from extraction_score import page_counts, precision, recall

from vdr_cli.tools import extract as extract_mod
from vdr_cli.tools import extract_score as score_mod

GRID = {
    (extract_mod, "LENIENT_BELOW"): [250, 500],
    (extract_mod, "LINK_SHARE_MAX"): [0.25, 0.33, 0.5],
    (extract_mod, "LISTING_MIN"): [0, 2, 3],  # 0: no "list of other articles" rule
    (score_mod, "SIBLING_SHARE"): [0.1, 0.2, 0.3],
    (score_mod, "NEAR_BEST"): [0.75, 0.9],
}


@contextmanager
def choices(values: tuple) -> Iterator[None]:
    saved = [getattr(mod, name) for mod, name in GRID]
    try:
        for (mod, name), value in zip(GRID, values):
            setattr(mod, name, value)
        yield
    finally:
        for (mod, name), value in zip(GRID, saved):
            setattr(mod, name, value)


def _f1(rows: list[tuple[float, float]]) -> tuple[float, float, float]:
    p = sum(r[0] for r in rows) / len(rows)
    r = sum(r[1] for r in rows) / len(rows)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cross_validate(pages: list, folds: int) -> dict:
    """Pooled held-out precision, recall, F1, and the choice each fold made."""
    combos = list(itertools.product(*GRID.values()))
    per_page: dict[tuple, list[tuple[float, float]]] = {}
    for combo in combos:
        with choices(combo):
            rows = []
            for _, url, raw, truth in pages:
                c = page_counts(truth, extract_mod.extract(raw, url=url).text)
                rows.append((precision(*c), recall(*c)))
        per_page[combo] = rows
    held_out: list[tuple[float, float]] = []
    chosen = []
    for k in range(folds):
        test = [i for i in range(len(pages)) if i % folds == k]
        train = [i for i in range(len(pages)) if i % folds != k]
        best = max(combos, key=lambda c: (_f1([per_page[c][i] for i in train])[2], c == tuple(getattr(m, n) for m, n in GRID)))
        chosen.append(best)
        held_out += [per_page[best][i] for i in test]
    p, r, f = _f1(held_out)
    shipped = tuple(getattr(m, n) for m, n in GRID)
    return {"precision": p, "recall": r, "f1": f, "chosen": chosen, "shipped": shipped, "names": [n for _, n in GRID],
            "shipped_f1": _f1(per_page[shipped])[2], "best_dev_f1": max(_f1(v)[2] for v in per_page.values())}
