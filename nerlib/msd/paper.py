"""The MSD paper's own numbers (Ma et al., EMNLP 2022), to put beside ours.

Quoted from the authors' slides (``shared/papers/msd_slides.md``), which reproduce the paper's Tables 1 to 3:
entity-level F1 (%) on the test sets, multilingual BERT-base trained on English. ``tests/msd/test_msd_paper.py``
checks every number here against that file when it is present, so a typo cannot pass as the paper's.

The paper's "BS" row (the basic system: mBERT fine-tuned on English and applied to the target as it is) is what
our ablation calls ``direct transfer``.
"""

from __future__ import annotations

# Table -> row -> language -> F1. Rows use the names of nerlib.msd.ablation.ROWS.
TABLES: dict[str, dict[str, dict[str, float]]] = {
    "Table 1 (CoNLL)": {
        "MSD": {"de": 77.56, "es": 81.92, "nl": 85.11},
        "w/o distillers": {"de": 75.31, "es": 79.34, "nl": 83.16},
        "w/o MMD^L": {"de": 76.68, "es": 80.27, "nl": 84.07},
        "w/o MMD^M": {"de": 77.12, "es": 79.81, "nl": 84.36},
        "w/o all": {"de": 74.17, "es": 77.82, "nl": 81.31},
        "direct transfer": {"de": 69.59, "es": 74.96, "nl": 77.57},
    },
    "Table 2 (WikiAnn)": {
        "MSD": {"ar": 62.88, "hi": 73.43, "zh": 57.06},
        "w/o distillers": {"ar": 54.52, "hi": 70.22, "zh": 52.46},
        "w/o MMD^L": {"ar": 56.93, "hi": 71.50, "zh": 56.68},
        "w/o MMD^M": {"ar": 58.65, "hi": 72.11, "zh": 56.53},
        "w/o all": {"ar": 43.17, "hi": 68.07, "zh": 49.25},
        "direct transfer": {"ar": 42.30, "hi": 67.60, "zh": 52.90},
    },
    "Table 3 (mLOWNER)": {
        "MSD": {"ko": 61.67, "ru": 58.06, "tr": 67.80},
        "w/o distillers": {"ko": 57.23, "ru": 56.81, "tr": 65.14},
        "w/o MMD^L": {"ko": 57.88, "ru": 57.24, "tr": 67.83},
        "w/o MMD^M": {"ko": 59.12, "ru": 58.08, "tr": 67.41},
        "w/o all": {"ko": 54.37, "ru": 54.03, "tr": 61.55},
        "direct transfer": {"ko": 51.78, "ru": 52.33, "tr": 58.85},
    },
}

# The names the slides give our rows (for the check against the source file).
SOURCE_ROW_NAMES = {
    "MSD": "MSD",
    "w/o distillers": "MSD w/o. distillers",
    "w/o MMD^L": "MSD w/o. $\\mathcal{L}_{\\text{MMD}}^L$",
    "w/o MMD^M": "MSD w/o. $\\mathcal{L}_{\\text{MMD}}^M$",
    "w/o all": "MSD w/o. all",
    "direct transfer": "BS",
}

# Our CoNLL targets are the paper's es and nl columns (German CoNLL-2003 is not available to us).
CONLL_LANGUAGES = ("es", "nl")


def paper_f1(row: str, language: str, table: str = "Table 1 (CoNLL)") -> float | None:
    """The paper's F1 for ``row`` on ``language`` in ``table``, or ``None`` where the paper has no such cell."""
    return TABLES.get(table, {}).get(row, {}).get(language)


def paper_gain(languages: tuple[str, ...] = CONLL_LANGUAGES, table: str = "Table 1 (CoNLL)",
               worse: str = "w/o all") -> float:
    """The paper's MSD minus ``worse``, averaged over ``languages`` (w/o all on es and nl: +3.95 F1; with de as well:
    +3.77)."""
    rows = TABLES[table]
    return sum(rows["MSD"][lang] - rows[worse][lang] for lang in languages) / len(languages)


def paper_table(table: str = "Table 1 (CoNLL)", languages: tuple[str, ...] | None = None):
    """One of :data:`TABLES` as a pandas DataFrame (rows in our order, an ``avg`` column over ``languages``)."""
    import pandas as pd

    rows = TABLES[table]
    langs = list(languages or next(iter(rows.values())))
    frame = pd.DataFrame({row: {lang: values[lang] for lang in langs} for row, values in rows.items()}).T
    frame["avg"] = frame[langs].mean(axis=1).round(2)
    frame.index.name = "variant"
    return frame
