"""Zero-shot F1 of one cached UniversalNER student at several answer budgets (max_new_tokens), same passages.

An answer cut at the token budget is not a closed JSON list, so the official parser scores it as empty (a parse
failure): a budget too small for the long lists of music or politics passages costs recall the student has. This
scores one student (default: chapter 3's frequency-negatives student, trained once and cached) at every
``--budgets`` value on the same passages and writes ``benchmarks/results/<name>.{json,md}`` with the paired
difference of each budget against the first. Choose the budget on ``--split validation``; the test split reports.

    python benchmarks/uniner_answer_budget.py --split validation --budgets 32 128
    python benchmarks/uniner_answer_budget.py --supervised --split validation --name uniner_answer_budget_supervised
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, crossner_arguments, crossner_setup, differences_section, domain_figure, domain_rows,
                    provenance, scores_markdown, train_summary, write)

matplotlib.use("Agg")  # files only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", nargs="+", type=int, default=[32, 128], help="max_new_tokens values to score")
    crossner_arguments(parser, split="validation")
    parser.add_argument("--strategy", choices=["none", "uniform", "frequency"], default="frequency",
                        help="the student's negative sampling (chapter 4's students)")
    parser.add_argument("--supervised", action="store_true", help="the teacher + supervised student (chapter 5)")
    parser.add_argument("--name", default="uniner_answer_budget")
    args = parser.parse_args()
    if any(b < 1 for b in args.budgets):
        parser.error(f"--budgets must be positive, got {args.budgets}")
    profile, limit = crossner_setup(args)

    from nerlib.uniner.evaluate import f1_difference
    from nerlib.uniner.pipeline import student_name, train_and_evaluate

    u = dataclasses.replace(profile.uniner, negative_sampling=args.strategy, max_steps=-1,
                            supervised_datasets=profile.uniner.supervised_datasets if args.supervised else (),
                            eval_domains=tuple(args.domains))
    tables, rows, record = {}, [], None
    for budget in args.budgets:  # max_new_tokens is not in the training key: one model, one folder of answers each
        table, record = train_and_evaluate(profile, dataclasses.replace(u, max_new_tokens=budget), limit=limit,
                                           split=args.split)
        tables[budget] = table
        rows += domain_rows(table, budget=budget)
    first = args.budgets[0]
    differences = [{"budget": b, "against": first, **f1_difference(tables[b], tables[first])}
                   for b in args.budgets[1:]]
    student = student_name(u)
    record_out = {"provenance": provenance(profile.name, split=args.split, passages_per_domain=limit,
                                           student=student),
                  "rows": rows, "differences": differences, "train": train_summary(record)}
    md = scores_markdown(rows, ["budget", "domain"], ["max_new_tokens", "domain"]) + (
        f"\n\nStudent `{student}` (cached); first {limit or 'all'} passages per domain "
        f"({args.split} split), greedy answers. " + SCORE_NOTE)
    md += differences_section(differences, "against the first budget (same passages, 95% paired bootstrap interval "
                              "over passages)", "budget", lambda d: f"{d['budget']} - {d['against']}")
    if len(args.domains) > 1:
        md += domain_figure({f"{b} new tokens": t for b, t in tables.items()}, args.name,
                            "Strict F1 per domain and answer budget", paper_rows=(),
                            title="Zero-shot strict F1 by answer budget (95% bootstrap interval over passages)")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
