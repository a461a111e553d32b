"""The MSD ablation table on the selected profile (default small: me5-small, CoNLL English -> Spanish, Dutch).

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/msd_ablation.py [--seeds 42] \
        [--experiment conll|wikiann|wikiann-hub] [--targets conll2002_es conll2002_nl] [--rows MSD "w/o all" ...] [--max-cells N]

Resumable: finished cells are logged in ``benchmarks/results/msd_ablation_cells/results.jsonl`` (committed, so the
grid accumulates across machines whose caches do not survive; ``--log-dir`` to change) and trained models are cached,
so run it again to continue. Writes ``benchmarks/results/msd_ablation.{json,md}`` with every cell of the
full grid finished so far for these settings, by this run or an earlier one (blank cells did not run) and the paper's numbers beside ours (Table 1 of Ma et al., 2022, from ``nerlib.msd.paper``; blank where the paper has no
such column).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import torch

from common import RESULTS, ROOT, provenance, teacher_budget, write

matplotlib.use("Agg")  # files only
from nerlib.config import MSDSettings, get_profile
from nerlib.msd.ablation import (CONTROLS, EXPERIMENTS, ROWS, ablation_markdown, ablation_records, ablation_table,
                                 cell_stats, cell_stats_markdown, complete_seeds, experiment, mean_interval, msd_gain,
                                 paired_gains, part_gains, per_seed_table, plot_ablation, run_ablation, with_settings)
from nerlib.msd.paper import paper_gain

# Budget overrides (a reduced grid when the profile's budget does not fit the time available); None = profile's.
OVERRIDES = {"teacher_steps": int, "student_steps": int, "train_sentences": int, "unlabeled_sentences": int,
             "eval_sentences": int, "eval_every": int, "student_lr": float}


# The finished cells, kept with the results rather than in $NERLIB_CACHE_DIR: a new machine starts with an empty
# cache, and a grid of several seeds takes longer than one session.
LOG_DIR = RESULTS / "msd_ablation_cells"


def log_name(log_dir: str) -> str:
    """The cell log as the results file names it: relative to the repository when it lives there (no machine path)."""
    path = Path(log_dir).resolve() / "results.jsonl"
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "results.jsonl in --log-dir"


def teachers_on_record(s: MSDSettings, seeds: list[int]) -> list[dict]:
    """The grid's teachers as ``benchmarks/msd_teacher.py`` scored them (same budget, these seeds): the quality of
    the models every student of the grid learns from. Empty when that benchmark has not run at this budget."""
    path = RESULTS / "msd_teacher.json"
    if not path.is_file():
        return []
    budget = teacher_budget(s)
    keep = ("seed", "multi_exit", "source_f1", "target_f1")
    return [{k: e[k] for k in keep} for e in json.loads(path.read_text())["teachers"]
            if e["budget"] == budget and e["seed"] in seeds]


def header_markdown(s: MSDSettings, log_dir: str, complete: list[int]) -> str:
    """The results file's title and the settings of its grid, up to the main table."""
    return ("# MSD ablation (seqeval F1 on the target test sets)\n\n"
            f"Encoder `{s.encoder}`, source `{s.source}`, first {s.eval_sentences} test sentences per target, "
            f"{s.train_sentences} labelled / {s.unlabeled_sentences} unlabelled sentences, "
            f"teacher {s.teacher_steps} steps, student {s.student_steps} steps (lr {s.student_lr:g}), batch {s.batch_size}. "
            "Blank = not run (ours) or not in the paper. Paper = Table 1 of Ma et al. (2022), mBERT; 'direct transfer' = "
            "single-head teacher applied to the target language (the paper's BS row). Cells accumulate in "
            f"`{log_name(log_dir)}` over runs with "
            "these settings (a grid run in parts); the line below names the last part's command. "
            + (f"The table averages seed{'s' if len(complete) > 1 else ''} {', '.join(map(str, complete))}, "
               "whose whole grid ran." if complete else "No seed has the whole grid yet.") + "\n\n")


def teachers_markdown(teachers: list[dict], targets: tuple[str, ...] | list[str]) -> str:
    """The teachers on record (:func:`teachers_on_record`) as a table, or a line saying there is none."""
    if not teachers:
        return "\n\nNo teacher of this budget is on record in `msd_teacher.json` (run `benchmarks/msd_teacher.py`)."
    return ("\n\nThe teachers of these seeds as `benchmarks/msd_teacher.py` trained and scored them (first test "
            "sentences as above). A teacher retrained with the same seed for the grid on another machine (other CPU kernels "
            "or thread count) can differ by about a point (`reproducibility_750_steps.md`; compare its 'direct "
            "transfer' cells).\n\n"
            "| seed | teacher | source F1 | " + " | ".join(targets) + " |\n|---|---|---|" + "---|" * len(targets)
            + "".join(f"\n| {t['seed']} | {'multi-exit' if t['multi_exit'] else 'single exit'} | {t['source_f1']} | "
                      + " | ".join(str(t["target_f1"].get(x, "")) for x in targets) + " |" for t in teachers))


def per_seed_markdown(by_seed, gains: dict, interval) -> str:
    """The per-seed table and MSD minus w/o all per seed, with the mean and its t-interval when there is one."""
    return ("\n\nPer seed (each seed trains its own teachers and students):\n\n"
            + ablation_markdown(by_seed.reset_index().set_index("variant"))
            + "\n\nMSD minus w/o all per seed (paired by seed: same data order, teachers trained with that seed): "
            + (", ".join(f"seed {k}: {v:+.2f}" for k, v in gains.items()) or "no seed has both rows on every target")
            + (f"; mean {interval[0]:+.2f} over {len(gains)} seeds, 95% t-interval [{interval[1]:+.2f}, "
               f"{interval[2]:+.2f}]" if interval else "")
            + ".")


def part_gains_markdown(parts, targets, paper: bool) -> str:
    """:func:`nerlib.msd.ablation.part_gains` as a table (mean, then each seed's difference), with the paper's
    differences on the es/nl average when ``paper`` (the CoNLL experiment)."""
    columns = list(per_seed_table([], targets).columns)
    cells = {(p.variant, p.column): f"{p.mean:+.2f} ({'; '.join(f'{k}: {v:+.2f}' for k, v in p.per_seed.items())})"
             for p in parts.itertuples()}
    return ("\n\nWhat each part adds: MSD minus the row, paired by seed (same seed, same target; the mean over the "
            "seeds where both cells ran, then in brackets seed: difference)."
            + (" The paper's Table 1 on the es/nl average: "
               + ", ".join(f"MSD minus {row} {paper_gain(worse=row):+.2f}" for row in ROWS[1:5]) + "."
               if paper else "")
            + "\n\n| variant | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns)
            + "".join(f"\n| {row} | " + " | ".join(cells.get((row, c), "") for c in columns) + " |"
                      for row in dict.fromkeys(parts["variant"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="conll", choices=sorted(EXPERIMENTS))
    parser.add_argument("--targets", nargs="*")
    parser.add_argument("--seeds", nargs="*", type=int)
    parser.add_argument("--rows", nargs="*", default=list(ROWS))
    parser.add_argument("--max-cells", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-dir", default=str(LOG_DIR),
                        help="folder of the grid's results.jsonl (default: the committed one)")
    for name, kind in OVERRIDES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=f"override the profile's {name}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = experiment(get_profile(), args.experiment)
    changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    if changes:
        profile = with_settings(profile, **changes)
    run_ablation(profile, args.targets, args.seeds, args.rows, out_dir=args.log_dir, max_cells=args.max_cells)
    # The results file shows every cell of the full grid that exists for these settings (this run's and earlier
    # runs'), so running the grid in parts (one target or a few rows at a time) accumulates one table.
    s = profile.msd
    records = ablation_records(profile, None, args.seeds, ROWS, out_dir=args.log_dir)
    # The main table averages only the seeds whose whole grid ran, so that its rows rest on the same seeds and
    # compare; seeds with a partial grid (e.g. only MSD and w/o all) appear in the per-seed table below it.
    complete = complete_seeds(records, s.targets, ROWS)
    table = ablation_table([r for r in records if r["seed"] in complete] if complete else records, s.targets, ROWS)
    gain = msd_gain(table)
    by_seed = per_seed_table(records, s.targets, ROWS)
    gains = paired_gains(records, s.targets)
    stats = cell_stats(records, s.targets, ROWS)
    interval = mean_interval(list(gains.values())) if len(gains) > 1 else None
    seeds = sorted({r["seed"] for r in records})
    teachers = teachers_on_record(s, seeds)
    record = {"provenance": provenance(profile.name), "table_seeds": complete, "settings": json.loads(json.dumps(s.__dict__, default=list)),
              "overrides": changes, "table": json.loads(table.reset_index().to_json(orient="records")), "msd_minus_wo_all_avg": gain,
              "cells": json.loads(stats.reset_index().to_json(orient="records")),
              "teachers": teachers,
              "per_seed": json.loads(by_seed.reset_index().to_json(orient="records")),
              "msd_minus_wo_all_per_seed": {str(k): v for k, v in gains.items()},
              "msd_minus_wo_all_interval95": None if interval is None else [round(v, 2) for v in interval]}
    name = "msd_ablation" if args.experiment == "conll" else f"msd_ablation_{args.experiment}"
    md = header_markdown(s, args.log_dir, complete) + ablation_markdown(table) + (
        f"\n\nMSD minus w/o all (average): {gain if gain is not None else 'not available (cells missing)'}.")
    md += ("\n\nEvery cell over all the seeds that ran it, mean ± sample standard deviation (seeds):\n\n"
           + cell_stats_markdown(stats))
    if records:
        fig_ax = plot_ablation(stats, s.targets)
        fig_ax.figure.tight_layout()
        fig_ax.figure.savefig(RESULTS / f"{name}.png", dpi=120)
        md += f"\n\n![The grid with error bars, the paper's numbers as black marks]({name}.png)"
    md += teachers_markdown(teachers, s.targets)
    if by_seed.index.get_level_values("seed").nunique() > 1:
        md += per_seed_markdown(by_seed, gains, interval)
    parts = part_gains(records, s.targets)
    record["msd_minus_row"] = json.loads(parts.to_json(orient="records"))
    if not parts.empty:
        md += part_gains_markdown(parts, s.targets, paper=args.experiment == "conll")
    control = ablation_records(profile, None, args.seeds, CONTROLS, out_dir=args.log_dir)
    if control:
        rows = ("MSD", *CONTROLS, "w/o all")
        ctl = per_seed_table(records + control, s.targets, rows).reset_index().set_index("variant")
        record["control"] = json.loads(ctl.reset_index().to_json(orient="records"))
        md += ("\n\nControl, not in the paper: plain distillation (no distillers, no MMD) from MSD's own multi-exit "
               "teacher, per seed. MSD minus this row is what the method adds with the teacher held fixed; 'w/o all' "
               "learns from the single-head teacher instead.\n\n" + ablation_markdown(ctl))
    for path in write(name, record, md):
        print("wrote", path)
    print(md)


if __name__ == "__main__":
    main()
