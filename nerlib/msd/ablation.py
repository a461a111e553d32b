"""The ablation grid of MSD (Ma et al., EMNLP 2022, Table 1 and the ablation study) in one call.

:func:`run_ablation` trains (or loads from the cache) one student per (target language, variant, seed), scores
each on the target test set with seqeval, and returns a table shaped like the paper's: one row per variant, one
column per target language plus the average, our mean over seeds beside the paper's number. Every finished cell is
appended to ``results.jsonl`` in ``out_dir`` so an interrupted grid resumes where it stopped; trained models are
cached by :mod:`nerlib.msd.runs`, so re-running a grid only evaluates what is missing.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from nerlib.config import Profile, cache_dir
from nerlib.msd import paper
from nerlib.models import load_tokenizer
from nerlib.msd.checks import check_msd
from nerlib.msd.predict import evaluate
from nerlib.msd.runs import _load, cached_student, cached_teacher
from nerlib.msd.variants import CONTROLS, ROWS
from nerlib.runs import AppendLog, run_key

LANGUAGE = {"conll2002_es": "es", "conll2002_nl": "nl", "wikiann_nl": "nl (WikiAnn)", "wikiann_de": "de (WikiAnn)",
            "wikiann_ar": "ar", "wikiann_hi": "hi", "wikiann_zh": "zh"}

# The paper's experiments as (source, targets). "local" ones run offline from NERLIB_DATA_DIR; the others need the
# Hugging Face hub (Colab). German CoNLL-2003 (the paper's "de" column) is not available at all: it is licensed
# separately and neither stored here nor on the hub, so no experiment uses it.
EXPERIMENTS: dict[str, dict] = {
    "conll": {"source": "conll2003_en", "targets": ("conll2002_es", "conll2002_nl"), "local": True},
    "wikiann": {"source": "wikiann_en", "targets": ("wikiann_nl",), "local": True},
    "wikiann-hub": {"source": "wikiann_en", "targets": ("wikiann_nl", "wikiann_de", "wikiann_ar", "wikiann_hi",
                                                         "wikiann_zh"), "local": False},
}


def experiment(profile: Profile, name: str) -> Profile:
    """``profile`` with the source and targets of one of :data:`EXPERIMENTS` (e.g. ``"wikiann"``)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    spec = EXPERIMENTS[name]
    return profile.replace(msd=replace(profile.msd, source=spec["source"], targets=tuple(spec["targets"])))

# The paper's F1 (mBERT-base) per row and language, from its Table 1 (CoNLL; nerlib.msd.paper quotes and checks
# them). WikiAnn Dutch is not in the paper (Table 2 has ar, hi, zh), so that column stays blank.
PAPER_F1: dict[str, dict[str, float | None]] = {row: dict(paper.TABLES["Table 1 (CoNLL)"][row]) for row in ROWS}


def _lang(target: str) -> str:
    return LANGUAGE.get(target, target)


def _cell_key(profile: Profile, target: str, row: str, seed: int) -> str:
    """The log key of one cell: the MSD settings, target, row and seed (the values of the logs on disk)."""
    return run_key(settings=repr(profile.msd), target=target, row=row, seed=seed)


def _check_record(record: object, where: str) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise ValueError(f"{where}: not an ablation record (no string field 'key')")


def _results_log(path: Path) -> AppendLog:
    """The grid's ``results.jsonl``: one record per finished cell; a cut-off last line is skipped (that cell
    runs again)."""
    return AppendLog(path, check=_check_record)


def _done(path: Path) -> dict[str, dict]:
    """The finished cells of the log at ``path`` by key (a later record of the same key wins)."""
    return {record["key"]: record for record in _results_log(path)}


def evaluate_cell(profile: Profile, target: str, row: str, seed: int, progress: bool = True) -> dict:
    """Train or load the model of one cell and score it on the first ``eval_sentences`` target test sentences."""
    s = profile.msd
    if row == "direct transfer":
        model, run = cached_teacher(s, multi_exit=False, seed=seed, target=target, progress=progress)
    else:
        model, run = cached_student(s, target, row, seed=seed, progress=progress)
    tokenizer = load_tokenizer(s.encoder)
    test = _load(target, "test", s.eval_sentences)
    scores = evaluate(model, tokenizer, test, s.eval_max_length, s.eval_batch_size, progress=progress)
    return {"target": target, "row": row, "seed": seed, "f1": scores["f1"], "precision": scores["precision"],
            "recall": scores["recall"], "per_type": scores.get("per_type", {}),
            "train_seconds": run.get("log", {}).get("seconds"), "best_step": run.get("log", {}).get("best_step"),
            "trained_on": run.get("machine")}


def run_ablation(
    profile: Profile,
    targets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    rows: Sequence[str] = ROWS,
    out_dir: str | Path | None = None,
    progress: bool = True,
    max_cells: int | None = None,
) -> pd.DataFrame:
    """Run (or resume) the grid and return the table: index = variant, columns ``<lang>``, ``avg``,
    ``<lang> (paper)``, ``avg (paper)``, ``seeds``. Scores are seqeval F1 x100, mean over the seeds that ran.
    ``max_cells`` stops after that many *new* cells (a time budget); the table then holds what exists."""
    targets = list(targets or profile.msd.targets)
    seeds = list(seeds or profile.msd.seeds or (profile.seed,))
    unknown = [r for r in rows if r not in ROWS + CONTROLS]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; choose from {list(ROWS + CONTROLS)}")
    if max_cells is not None and max_cells < 0:
        raise ValueError(f"max_cells must be >= 0, got {max_cells}")
    check_msd(profile.msd, targets)  # unknown targets, missing data, bad budgets: fail before any training
    out = Path(out_dir) if out_dir is not None else cache_dir() / "msd" / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    log = _results_log(out / "results.jsonl")
    done = _done(log.path)
    new = 0
    for seed in seeds:
        for target in targets:
            for row in rows:
                key = _cell_key(profile, target, row, seed)
                if key in done:
                    continue
                if max_cells is not None and new >= max_cells:
                    break
                record = {"key": key, **evaluate_cell(profile, target, row, seed, progress)}
                log.append(record)
                done[key] = record
                new += 1
    return ablation_table(_wanted(done, profile, targets, seeds, rows), targets, rows)


def _wanted(done: dict[str, dict], profile: Profile, targets: Sequence[str], seeds: Sequence[int],
            rows: Sequence[str]) -> list[dict]:
    keys = [_cell_key(profile, t, r, s) for s in seeds for t in targets for r in rows]
    return [done[k] for k in keys if k in done]


def ablation_records(profile: Profile, targets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                     rows: Sequence[str] = ROWS, out_dir: str | Path | None = None) -> list[dict]:
    """The finished cells of a grid (one record per target, row and seed), read from the log; trains nothing."""
    targets = list(targets or profile.msd.targets)
    seeds = list(seeds or profile.msd.seeds or (profile.seed,))
    out = Path(out_dir) if out_dir is not None else cache_dir() / "msd" / "ablation"
    return _wanted(_done(out / "results.jsonl"), profile, targets, seeds, rows)


def per_seed_table(records: Sequence[dict], targets: Sequence[str], rows: Sequence[str] = ROWS) -> pd.DataFrame:
    """One line per (variant, seed) that has a score: F1 per target and their average (where every target ran).
    Beside :func:`ablation_table`'s means, this shows how far single seeds scatter."""
    f1 = {(r["row"], r["target"], r["seed"]): r["f1"] for r in records}
    lines = []
    for row in rows:
        for seed in sorted({r["seed"] for r in records if r["row"] == row}):
            scores = [f1.get((row, target, seed)) for target in targets]
            lines.append({"variant": row, "seed": seed,
                          **{_lang(t): None if v is None else round(v, 2) for t, v in zip(targets, scores)},
                          "avg": round(statistics.fmean(scores), 2) if scores and None not in scores else None})
    columns = ["variant", "seed", *[_lang(t) for t in targets], "avg"]
    return pd.DataFrame(lines, columns=columns).set_index(["variant", "seed"])


def complete_seeds(records: Sequence[dict], targets: Sequence[str], rows: Sequence[str] = ROWS) -> list[int]:
    """The seeds whose whole grid (every row on every target) has a score: means over these compare across rows."""
    have = {(r["row"], r["target"], r["seed"]) for r in records}
    return sorted(seed for seed in {r["seed"] for r in records}
                  if all((row, t, seed) in have for row in rows for t in targets))


def paired_gains(records: Sequence[dict], targets: Sequence[str], better: str = "MSD",
                 worse: str = "w/o all") -> dict[int, float]:
    """``better`` minus ``worse`` on the target average, per seed where both rows ran on every target. The two
    students of one seed see the same data in the same order, and their teachers (multi-exit for MSD, single-head
    for w/o all) were trained with that seed too, so seed-to-seed swings in teacher quality cancel in the difference."""
    parts = part_gains(records, targets, (worse,), better)
    avg = parts[parts["column"] == "avg"]["per_seed"]
    return dict(sorted(avg.iloc[0].items())) if len(avg) else {}


def part_gains(records: Sequence[dict], targets: Sequence[str], rows: Sequence[str] = ROWS[1:5],
               better: str = "MSD") -> pd.DataFrame:
    """What each part of MSD adds: ``better`` minus each of ``rows``, paired by seed, for every target and for the
    target average, over the seeds where both cells ran (a grid run in parts pairs what it has). One line per
    (variant, column): ``n`` seeds, the ``mean`` difference and each seed's ``per_seed`` difference."""
    by_seed = per_seed_table(records, targets, (better, *rows))
    lines = []
    for row in rows:
        for column in [*[_lang(t) for t in targets], "avg"]:
            diffs = {}
            for (variant, seed), a in by_seed.loc[by_seed.index.get_level_values(0) == better, column].items():
                b = by_seed[column].get((row, seed))
                if pd.notna(a) and b is not None and pd.notna(b):
                    diffs[int(seed)] = round(float(a) - float(b), 2)
            if diffs:
                lines.append({"variant": row, "column": column, "n": len(diffs),
                              "mean": round(statistics.fmean(diffs.values()), 2), "per_seed": diffs})
    return pd.DataFrame(lines, columns=["variant", "column", "n", "mean", "per_seed"])


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its two-sided Student-t confidence interval, as ``(mean, low, high)``.

    With one value the interval is that value (no spread is known). Three seeds give a wide interval (t = 4.30 at
    95%): it says how far the seeds agree, which is what a reader needs to judge a gap between two rows."""
    from scipy import stats

    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def cell_stats(records: Sequence[dict], targets: Sequence[str], rows: Sequence[str] = ROWS) -> pd.DataFrame:
    """Mean, sample standard deviation and number of seeds of every (row, column) cell, where the columns are the
    targets and their average (per seed, over seeds where every target ran). One line per (variant, column)."""
    by_seed = per_seed_table(records, targets, rows)
    lines = []
    for row in rows:
        for column in [*[_lang(t) for t in targets], "avg"]:
            values = by_seed.loc[row, column].dropna().tolist() if row in by_seed.index.get_level_values(0) else []
            lines.append({"variant": row, "column": column, "n": len(values),
                          "mean": round(statistics.fmean(values), 2) if values else None,
                          "std": round(statistics.stdev(values), 2) if len(values) > 1 else None})
    return pd.DataFrame(lines).set_index(["variant", "column"])


def cell_stats_markdown(stats: pd.DataFrame) -> str:
    """:func:`cell_stats` as a Markdown table, one line per variant, cells written ``mean ± sd (n)``."""
    def cell(line: pd.Series) -> str:
        if line["mean"] is None or pd.isna(line["mean"]):
            return ""
        spread = "" if line["std"] is None or pd.isna(line["std"]) else f" ± {line['std']:.2f}"
        return f"{line['mean']:.2f}{spread} ({int(line['n'])})"

    rows = list(dict.fromkeys(stats.index.get_level_values("variant")))
    columns = list(dict.fromkeys(stats.index.get_level_values("column")))
    table = pd.DataFrame([[cell(stats.loc[(r, c)]) for c in columns] for r in rows], index=rows, columns=columns)
    table.index.name = "variant"
    return table.to_markdown()


def plot_ablation(stats: pd.DataFrame, targets: Sequence[str], table: str = "Table 1 (CoNLL)", ax=None):
    """The grid as bars: per column (target, average) one bar per variant, ours as the mean over seeds with one
    standard deviation as error bar (none with a single seed), the paper's number as a black mark above the same
    bar. Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    columns = [*[_lang(t) for t in targets], "avg"]
    rows = list(dict.fromkeys(stats.index.get_level_values("variant")))
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 * len(columns) + 3, 4))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(columns))
    for i, row in enumerate(rows):
        mean = [stats.loc[(row, c), "mean"] for c in columns]
        std = [stats.loc[(row, c), "std"] for c in columns]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, [np.nan if m is None or pd.isna(m) else m for m in mean], width,
               yerr=[np.nan if s is None or pd.isna(s) else s for s in std], capsize=2, label=row, color=f"C{i}")
        languages = [c for c in columns if c != "avg"]
        quoted = [paper.paper_f1(row, c, table) for c in languages]
        theirs = [*quoted, statistics.fmean(quoted) if quoted and None not in quoted else None]
        ax.scatter(pos, [np.nan if v is None else v for v in theirs], marker="_", s=120, color="black",
                   label="paper" if i == 0 else None, zorder=3)
    ax.set_xticks(x, columns)
    ax.set_ylabel("entity F1 (%)")
    ax.set_title(f"MSD ablation: ours (mean ± sd over seeds) and the paper's {table.split(' (')[0]} (black)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def ablation_table(records: Sequence[dict], targets: Sequence[str], rows: Sequence[str] = ROWS) -> pd.DataFrame:
    """Mean F1 over seeds per (row, target), the average over targets (only where every target has a score),
    the paper's numbers beside them, and how many seeds each row averaged."""
    table = []
    for row in rows:
        line: dict[str, object] = {"variant": row}
        means = []
        n_seeds = set()
        for target in targets:
            f1s = [r["f1"] for r in records if r["row"] == row and r["target"] == target]
            n_seeds.add(len(f1s))
            mean = statistics.fmean(f1s) if f1s else None
            line[_lang(target)] = None if mean is None else round(mean, 2)
            means.append(mean)
        line["avg"] = round(statistics.fmean(means), 2) if means and None not in means else None
        paper = PAPER_F1.get(row, {})
        paper_vals = [paper.get(_lang(t)) for t in targets]
        for target, value in zip(targets, paper_vals):
            line[f"{_lang(target)} (paper)"] = value
        line["avg (paper)"] = round(statistics.fmean(paper_vals), 2) if paper_vals and None not in paper_vals else None
        line["seeds"] = max(n_seeds) if n_seeds else 0
        table.append(line)
    return pd.DataFrame(table).set_index("variant")


def ablation_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, with blank cells (not ``nan``) where a cell was not run or a paper number is unknown."""
    return table.astype(object).where(table.notna(), None).to_markdown(missingval="")


def msd_gain(table: pd.DataFrame) -> float | None:
    """MSD minus w/o all on the average column (the headline claim: the parts of MSD add up), or None."""
    try:
        a, b = table.loc["MSD", "avg"], table.loc["w/o all", "avg"]
    except KeyError:
        return None
    return None if a is None or b is None or pd.isna(a) or pd.isna(b) else round(float(a) - float(b), 2)


def with_settings(profile: Profile, **changes) -> Profile:
    """A copy of ``profile`` whose MSD settings are changed (e.g. a shorter budget for a quick grid)."""
    return profile.replace(msd=replace(profile.msd, **changes))
