"""Zero-shot strict and partial F1 per CrossNER domain: the untuned student against the instruction-tuned one.

The tuned student is chapter 5's: teacher passages plus the profile's supervised sentences. Where the profile has
supervised data, the student tuned on the teacher passages alone (chapter 4's frequency student) is scored too, with
the paired difference between them.

Training and predictions are cached under ``$NERLIB_CACHE_DIR/uniner`` (an interrupted run resumes where it
stopped). Writes ``benchmarks/results/<name>.{json,md}`` (default name ``uniner_zero_shot``).

    python benchmarks/uniner_zero_shot.py                            # the profile's settings, all 5 domains
    python benchmarks/uniner_zero_shot.py --skip-base                # without the untuned model (slow on a CPU)
    python benchmarks/uniner_zero_shot.py --steps 1 --passages 1 --name uniner_zero_shot_tiny   # plumbing check
    python benchmarks/uniner_zero_shot.py --student gemma-3-270m --name uniner_zero_shot_gemma --skip-base  # larger
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, compare_students, crossner_arguments, crossner_setup, differences_section,
                    domain_figure, domain_scores, provenance, scores_markdown, write)

matplotlib.use("Agg")  # files only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    crossner_arguments(parser, split="test")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--max-passages", type=int, default=None, help="teacher passages (default: profile)")
    parser.add_argument("--student", default=None, help="student model (short name, hub name or folder; "
                        "default: the profile's)")
    parser.add_argument("--name", default="uniner_zero_shot")
    parser.add_argument("--skip-base", action="store_true",
                        help="do not score the untuned student (it answers in prose: slow on a CPU)")
    parser.add_argument("--skip-teacher-only", action="store_true",
                        help="do not score the student tuned on the teacher data alone (chapter 4's frequency "
                             "student), the reference of the supervised data's paired difference")
    args = parser.parse_args()
    profile, limit = crossner_setup(args)

    from nerlib.uniner.pipeline import evaluate_base

    u = profile.uniner
    u = dataclasses.replace(u, student=args.student or u.student,
                            max_steps=args.steps if args.steps is not None else -1,
                            max_passages=args.max_passages or u.max_passages, eval_domains=tuple(args.domains))
    # the tuned student first (the model chapter 5 loads: same settings, so the same cache key), then what the
    # supervised mixture adds on the same passages; on a CPU the untuned model (which answers in prose until the token
    # budget) takes as long
    variants = {"tuned": {"settings": u}}
    if u.supervised_datasets and not args.skip_teacher_only:
        variants["teacher only"] = {"settings": dataclasses.replace(u, supervised_datasets=())}
    pairs = [("tuned", "teacher only")] if len(variants) > 1 else []
    result = compare_students(profile, variants, limit, args.split, "model", against=pairs)
    scored, differences, record = result["tables"], result["differences"], result["train"]["tuned"]
    if not args.skip_base:
        scored = {"base": evaluate_base(profile, args.domains, limit, split=args.split, model=u.student), **scored}
    rows = []
    for domain in list(args.domains) + (["average"] if len(args.domains) > 1 else []):
        for label, table in scored.items():
            rows.append({"domain": domain, "model": label, **domain_scores(table.loc[domain])})
    size = {"passages_per_domain": limit, "train_steps": record["global_step"], "train_passages": record["examples"],
            "student": u.student, "train_seconds": record["seconds"]}
    record_out = {"provenance": provenance(profile.name, split=args.split, **size), "rows": rows,
                  "train": record, "differences": differences}
    md = scores_markdown(rows, ["domain", "model"]) + (
        f"\n\nStudent `{u.student}` ({'LoRA r=%d' % u.lora_r if u.lora else 'full'}), "
        f"{record['examples']} training passages, {record['global_step']} steps; first "
        f"{limit or 'all'} passages per domain ({args.split} split). {SCORE_NOTE}")
    if u.supervised_datasets:
        md += (f" 'tuned' learns from the teacher passages and the supervised sentences of "
               f"{', '.join(u.supervised_datasets)} (dataset-specific template, chapter 5)"
               + (", 'teacher only' from the teacher passages alone (chapter 4's frequency student)."
                  if differences else "."))
    md += differences_section(differences, "that the supervised sentences add (same passages, 95% paired bootstrap "
                              "interval over passages; one training seed each)")
    if len(args.domains) > 1:
        md += domain_figure({f"{u.student} {'untuned' if label == 'base' else label}": table
                             for label, table in reversed(scored.items())}, args.name,
                            "Strict F1 per domain, ours with intervals beside the paper's Table 3")
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
