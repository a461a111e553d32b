"""Student size: zero-shot F1 per CrossNER domain of students of different sizes tuned on the same teacher data.

Each student is chapter 4's frequency-negatives configuration (teacher data only, one epoch, LoRA on every linear
layer) with only the base model changed, so the paired difference is the model's size and pretraining, not the
data. Training and answers are cached under ``$NERLIB_CACHE_DIR/uniner`` (an interrupted run resumes where it
stopped; ``smollm2-135m`` is the student chapter 4 and the other UniversalNER benchmarks already trained). Choose on
the validation passages first. Writes ``benchmarks/results/<name>.{json,md}`` (default ``uniner_student_size``).

    python benchmarks/uniner_student_size.py --split validation --name uniner_student_size_validation
    python benchmarks/uniner_student_size.py --students smollm2-135m gemma-3-270m --split test
    python benchmarks/uniner_student_size.py --students gemma-3-270m --steps 2 --passages 1 --domains ai --name tiny
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
    parser.add_argument("--students", nargs="+", default=["smollm2-135m", "gemma-3-270m"],
                        help="base models (offline short name, hub name or folder); the first is the reference")
    crossner_arguments(parser, split="validation")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--name", default="uniner_student_size")
    args = parser.parse_args()
    if len(set(args.students)) != len(args.students):
        parser.error(f"--students names a model twice: {args.students}")
    profile, limit = crossner_setup(args)
    variants = {student: {"settings": dataclasses.replace(
        profile.uniner, student=student, negative_sampling="frequency", supervised_datasets=(),
        max_steps=args.steps if args.steps is not None else -1, eval_domains=tuple(args.domains))}
        for student in args.students}
    result = compare_students(profile, variants, limit, args.split, "student")
    rows, train, tables, differences = (result[k] for k in ("rows", "train", "tables", "differences"))
    record_out = {"provenance": provenance(profile.name, split=args.split, passages_per_domain=limit,
                                           train_steps=args.steps, negative_sampling="frequency"),
                  "rows": rows, "train": train, "differences": differences}
    md = scores_markdown(rows, ["student", "domain"]) + (
        f"\n\nFirst {limit or 'all'} passages per domain ({args.split} split); each student tuned with LoRA "
        f"(r={profile.uniner.lora_r}) on the same teacher data with frequency negatives (chapter 4's configuration), "
        "for " + ", ".join(f"{t['global_step']} steps ({s})" for s, t in train.items() if "global_step" in t)
        + ". " + SCORE_NOTE)
    md += differences_section(differences, "against the first student (same passages, 95% paired bootstrap "
                              "interval over passages; one training seed each)")
    if len(args.domains) > 1:
        md += domain_figure(tables, args.name, f"Strict F1 per domain and student, {args.split} passages",
                            paper_rows=(), title=f"Zero-shot strict F1 by student, {args.split} passages "
                            "(95% bootstrap interval over passages)")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
