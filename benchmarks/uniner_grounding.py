"""Grounded answers: zero-shot F1 of a student's answers as written and with only the mentions found in the passage.

The paper's metric scores every string in a student's answer. A small student also writes names that occur nowhere
in the passage (inventions such as *Demonthropist Party*, garbled or generic words): on CrossNER's validation
passages about a fifth of the frequency student's mentions. nerlib's :class:`~nerlib.uniner.extract.Extractor`
keeps only the strings it can find in the text, so this benchmark scores the same cached answers both ways
(``ground_mentions``, :func:`nerlib.uniner.extract.ground_answer`): the paired difference is what that step
adds. It is not part of the paper's method; it needs no gold and no threshold. Students and answers are chapter 4's
(cached under ``$NERLIB_CACHE_DIR/uniner``; missing ones are trained first). Writes
``benchmarks/results/<name>.{json,md}`` (default ``uniner_grounding``).

    python benchmarks/uniner_grounding.py --strategies frequency --split validation --name uniner_grounding_validation
    python benchmarks/uniner_grounding.py
    python benchmarks/uniner_grounding.py --strategies frequency --steps 1 --passages 1 --domains ai --name tiny
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, compare_students, crossner_arguments, crossner_setup, differences_section,
                    domain_figure, provenance, scores_markdown, write)

matplotlib.use("Agg")  # files only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["none", "uniform", "frequency"],
                        choices=["none", "uniform", "frequency"], help="the negative-sampling students to score")
    crossner_arguments(parser, split="test")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--name", default="uniner_grounding")
    args = parser.parse_args()
    if len(set(args.strategies)) != len(args.strategies):
        parser.error(f"--strategies names a strategy twice: {args.strategies}")
    profile, limit = crossner_setup(args)

    variants, pairs = {}, []
    for strategy in args.strategies:
        u = dataclasses.replace(profile.uniner, negative_sampling=strategy, supervised_datasets=(),
                                max_steps=args.steps if args.steps is not None else -1,
                                eval_domains=tuple(args.domains))
        variants[strategy] = {"settings": u}
        variants[f"{strategy}, grounded"] = {"settings": u, "ground_mentions": True}
        pairs.append((f"{strategy}, grounded", strategy))
    result = compare_students(profile, variants, limit, args.split, "answers", against=pairs)
    rows, train, tables, differences = (result[k] for k in ("rows", "train", "tables", "differences"))
    record_out = {"provenance": provenance(profile.name, split=args.split, passages_per_domain=limit,
                                           train_steps=args.steps, student=profile.uniner.student),
                  "rows": rows, "train": {s: train[s] for s in args.strategies}, "differences": differences}
    md = scores_markdown(rows, ["answers", "domain"], ["student (negatives), answers", "domain"]) + (
        f"\n\nFirst {limit or 'all'} passages per domain ({args.split} split); student `{profile.uniner.student}`, "
        "the negative-sampling students of chapter 4. 'grounded': the same answers keeping only the mentions found "
        "in the passage (word-bounded, exact, then with flexible spacing, then ignoring case), as nerlib's "
        "extractor returns them. " + SCORE_NOTE)
    md += differences_section(differences, "between the answers grounded and as written (grounded minus as written; "
                              "same answers and passages, 95% paired bootstrap interval over passages)", "student",
                              lambda d: d["b"])
    if len(args.domains) > 1:
        md += domain_figure(tables, args.name, f"Strict F1 per domain, answers as written and grounded, {args.split} "
                            "passages", paper_rows=(), title=f"Zero-shot strict F1, answers as written and grounded, "
                            f"{args.split} passages (95% bootstrap interval over passages)")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
