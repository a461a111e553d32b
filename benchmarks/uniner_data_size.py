"""Teacher data size: zero-shot F1 per CrossNER domain of one student tuned on more or fewer teacher passages.

Each student is chapter 4's frequency-negatives configuration (teacher data only, one epoch, LoRA on every linear
layer) with only the number of recorded teacher passages changed, so the paired difference is what more (and more
varied) teacher data buys at one epoch; a larger set also means proportionally more updates. Training and answers
are cached under ``$NERLIB_CACHE_DIR/uniner`` (an interrupted run resumes where it stopped; the profile's own
passage count is the student chapter 4 and the other UniversalNER benchmarks already trained). Choose on the
validation passages first. Writes ``benchmarks/results/<name>.{json,md}`` (default ``uniner_data_size``).

    python benchmarks/uniner_data_size.py --split validation --name uniner_data_size_validation
    python benchmarks/uniner_data_size.py --max-passages 448 0 --split test
    python benchmarks/uniner_data_size.py --max-passages 4 8 --steps 2 --passages 1 --domains ai --name tiny
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
    parser.add_argument("--max-passages", type=int, nargs="+", default=None,
                        help="teacher passages per student (0: every training passage, 682 in the local sample, whose "
                             "last 200 are held out; default: the profile's count, then all); the first is the "
                             "reference")
    crossner_arguments(parser, split="validation")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--name", default="uniner_data_size")
    args = parser.parse_args()
    if args.max_passages is not None and any(n < 0 for n in args.max_passages):
        parser.error(f"--max-passages must be 0 (all) or more, got {args.max_passages}")
    profile, limit = crossner_setup(args)

    from nerlib.uniner.pipeline import build_training_examples

    counts = args.max_passages or [profile.uniner.max_passages or 0, 0]
    variants = {}
    for count in counts:
        u = dataclasses.replace(profile.uniner, max_passages=count or None, negative_sampling="frequency",
                                supervised_datasets=(), max_steps=args.steps if args.steps is not None else -1,
                                eval_domains=tuple(args.domains))
        examples = build_training_examples(u, seed=profile.seed, progress=False)
        label = f"{len(examples)} passages"
        if label in variants:
            parser.error(f"--max-passages {counts}: two of them give the same {len(examples)} passages")
        variants[label] = {"settings": u, "examples": examples}
    result = compare_students(profile, variants, limit, args.split, "teacher data")
    rows, train, tables, differences = (result[k] for k in ("rows", "train", "tables", "differences"))
    record_out = {"provenance": provenance(profile.name, split=args.split, passages_per_domain=limit,
                                           train_steps=args.steps, negative_sampling="frequency",
                                           student=profile.uniner.student),
                  "rows": rows, "train": train, "differences": differences}
    md = scores_markdown(rows, ["teacher data", "domain"]) + (
        f"\n\nFirst {limit or 'all'} passages per domain ({args.split} split); student `{profile.uniner.student}` "
        f"tuned with LoRA (r={profile.uniner.lora_r}) for one epoch over each set of recorded teacher passages with "
        "frequency negatives (chapter 4's configuration): "
        + ", ".join(f"{t['global_step']} steps ({s})" for s, t in train.items() if "global_step" in t)
        + ". " + SCORE_NOTE)
    md += differences_section(differences, "against the first student (same passages, 95% paired bootstrap "
                              "interval over passages; one training seed each)")
    if len(args.domains) > 1:
        md += domain_figure(tables, args.name, f"Strict F1 per domain and amount of teacher data, {args.split} "
                            "passages", paper_rows=(), title=f"Zero-shot strict F1 by teacher data, {args.split} "
                            "passages (95% bootstrap interval over passages)")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
