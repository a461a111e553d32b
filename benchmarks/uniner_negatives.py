"""Negative-sampling ablation: none, uniform and frequency-based negative types (paper, Table 4), zero-shot F1.

Each strategy trains its own student on the same teacher passages (no supervised data) with the same budget;
models and predictions are cached under ``$NERLIB_CACHE_DIR/uniner``. Writes
``benchmarks/results/<name>.{json,md}`` (default ``uniner_negatives``).

    python benchmarks/uniner_negatives.py
    python benchmarks/uniner_negatives.py --steps 1 --passages 1 --domains ai --name uniner_negatives_tiny
    python benchmarks/uniner_negatives.py --strategies frequency frequency+definitions --name uniner_definitions

A strategy ``X+definitions`` trains on the definition-based variant of the same data (the paper's
Pile-NER-definition; :func:`nerlib.uniner.pile.with_definitions`, definitions from the ``TrueDef`` file): every
question names its type by the type's definition.
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, compare_students, crossner_arguments, crossner_setup, differences_section,
                    domain_figure, provenance, scores_markdown, write)

matplotlib.use("Agg")  # files only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    crossner_arguments(parser, split="test")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--strategies", nargs="+", default=["none", "uniform", "frequency"],
                        help="none, uniform, frequency, each optionally with +definitions")
    parser.add_argument("--name", default="uniner_negatives")
    args = parser.parse_args()
    if len(set(args.strategies)) != len(args.strategies):
        parser.error(f"--strategies names a strategy twice: {args.strategies}")
    profile, limit = crossner_setup(args)

    from nerlib.uniner.pile import load_type_definitions, with_definitions
    from nerlib.uniner.pipeline import build_training_examples, student_name

    variants = {}
    for strategy in args.strategies:
        sampling, _, data = strategy.partition("+")
        if sampling not in ("none", "uniform", "frequency") or data not in ("", "definitions"):
            raise SystemExit(f"--strategies: {strategy!r} is not none, uniform or frequency (optionally "
                             f"+definitions)")
        u = dataclasses.replace(profile.uniner, negative_sampling=sampling, supervised_datasets=(),
                                max_steps=args.steps if args.steps is not None else -1,
                                eval_domains=tuple(args.domains))
        variants[strategy] = {"settings": u}  # chapter 4's students
        if data == "definitions":
            variants[strategy].update(
                name=student_name(u) + "+definitions",
                examples=with_definitions(build_training_examples(u, seed=profile.seed, progress=False),
                                          load_type_definitions()))
    # paired differences: every strategy against the ones before it, on the same passages
    result = compare_students(profile, variants, limit, args.split, "strategy", against="each")
    rows, train, tables, differences = (result[k] for k in ("rows", "train", "tables", "differences"))
    record_out = {"provenance": provenance(profile.name, split=args.split, passages_per_domain=limit,
                                           train_steps=args.steps),
                  "rows": rows, "train": train, "differences": differences}
    md = scores_markdown(rows, ["strategy", "domain"]) + (
        f"\n\nFirst {limit or 'all'} passages per domain ({args.split} split); "
        f"student `{profile.uniner.student}`. " + SCORE_NOTE)
    md += differences_section(differences, "(same passages, 95% paired bootstrap interval over passages; one "
                              "training seed, so seed-to-seed variation is not in the interval)")
    if len(args.domains) > 1:
        md += domain_figure({s.replace("+", " negatives, ") if "+" in s else f"{s} negatives": t
                             for s, t in tables.items()}, args.name,
                            "Strict F1 per domain and negative-sampling strategy", paper_rows=(),
                            title="Zero-shot strict F1 by negative sampling (95% bootstrap interval over passages)")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
