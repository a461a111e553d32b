"""The UniversalNER paper's own numbers (Zhou et al., ICLR 2024), to put beside ours.

Table 3 of the paper, zero-shot block: strict entity-level micro-F1 (%) on the five CrossNER domains, one question
per entity type. The paper's own averages also include MIT Movie and MIT Restaurant, which we do not use, so
:func:`paper_average` averages the five domains here. (The review in ``shared/papers`` describes the benchmark but
prints no per-domain numbers; these are quoted from the paper, as on the results page.)
"""

from __future__ import annotations

import statistics

#: Row -> CrossNER domain -> strict F1 (%), from the paper's Table 3.
TABLE3: dict[str, dict[str, float]] = {
    "ChatGPT (teacher)": {"ai": 52.4, "literature": 39.8, "music": 66.6, "politics": 68.5, "science": 67.0},
    "Vicuna-7B": {"ai": 12.8, "literature": 16.1, "music": 17.0, "politics": 20.5, "science": 13.0},
    "UniNER-7B": {"ai": 53.5, "literature": 59.4, "music": 65.0, "politics": 60.8, "science": 61.1},
    "UniNER-13B": {"ai": 54.2, "literature": 60.9, "music": 64.5, "politics": 61.4, "science": 63.5},
    "UniNER-7B + supervised": {"ai": 62.9, "literature": 64.9, "music": 70.6, "politics": 66.9, "science": 70.8},
}


def paper_average(row: str, domains: tuple[str, ...] = ("ai", "literature", "music", "politics", "science")) -> float:
    """The mean of ``row`` over ``domains`` (default the five CrossNER domains), rounded to one decimal."""
    return round(statistics.fmean(TABLE3[row][d] for d in domains), 1)
