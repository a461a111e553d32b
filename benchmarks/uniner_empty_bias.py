"""The empty-answer bias: chapter 4's frequency student with the ``[]`` answer made less likely, chosen on validation.

The student misses about four in ten questions whose gold names mentions (it answers ``[]``). A bias subtracted
from the logit of the token that starts the empty answer (:mod:`nerlib.uniner.calibrate`) trades those misses for
invented answers; one pass records each question's margin and forced answer, so the whole curve of biases is
scored from it. The bias is chosen on CrossNER's **validation** passages (highest average strict F1), then the
student is scored with it on the test passages and on the held-out open-type questions, against the plain answers
(paired, same passages). Students and plain answers are chapter 4's (cached under ``$NERLIB_CACHE_DIR/uniner``;
missing ones are made first). Writes ``benchmarks/results/<name>.{json,md,png}`` (default ``uniner_empty_bias``).

    python benchmarks/uniner_empty_bias.py --threads 1
    python benchmarks/uniner_empty_bias.py --fill validation --threads 1   # one split's answers and margins only
    python benchmarks/uniner_empty_bias.py --steps 1 --passages 1 --domains ai --no-open-types --name tiny
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, RESULTS, crossner_arguments, crossner_setup, differences_section, domain_rows,
                    markdown_table, provenance, scores_markdown, train_summary, write)

matplotlib.use("Agg")  # files only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    crossner_arguments(parser, split=None)
    parser.add_argument("--strategy", default="frequency", choices=["none", "uniform", "frequency"],
                        help="chapter 4's student to calibrate")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--biases", type=float, nargs="+", default=[i / 4 for i in range(25)],
                        help="biases to score (logits; default 0 to 6 by 0.25)")
    parser.add_argument("--no-open-types", action="store_true", help="skip the held-out open-type questions")
    parser.add_argument("--fill", choices=["validation", "test", "open"], default=None,
                        help="only make (and cache) one split's answers and margins, print its curve, write nothing")
    parser.add_argument("--name", default="uniner_empty_bias")
    args = parser.parse_args()
    if any(b < 0 for b in args.biases) or 0.0 not in args.biases:
        parser.error("--biases must be >= 0 and include 0 (the plain answers)")
    profile, limit = crossner_setup(args)

    from nerlib.uniner.calibrate import apply_bias, bias_curve, choose_bias, forced_answers, plot_bias_curve
    from nerlib.uniner.evaluate import OPEN_DOMAIN, f1_difference, score_domains
    from nerlib.uniner.extract import ground_answer
    from nerlib.uniner.pipeline import answers_and_margins

    u = dataclasses.replace(profile.uniner, negative_sampling=args.strategy, supervised_datasets=(),
                            max_steps=args.steps if args.steps is not None else -1, eval_domains=tuple(args.domains))
    biases = sorted(set(args.biases))
    max_bias = max(biases)
    sets = {"validation": (args.domains, limit, "validation"), "test": (args.domains, limit, "test")}
    if not args.no_open_types:
        sets["open"] = ([OPEN_DOMAIN], None, "test")  # all its passages, as the open-type results
    if args.fill:
        domains, lim, split = sets[args.fill]
        passages, answers, margins, _ = answers_and_margins(profile, u, domains, lim, split, max_bias)
        print(bias_curve(passages, answers, margins, biases).to_string())
        return

    data = {k: answers_and_margins(profile, u, *v, max_bias) for k, v in sets.items()}
    curves = {k: bias_curve(p, a, m, biases) for k, (p, a, m, _) in data.items()}
    second = {k: forced_answers(p, a, m) for k, (p, a, m, _) in data.items()}
    chosen = choose_bias(curves["validation"])
    rows, differences = [], []
    for k, (passages, answers, margins, _) in data.items():
        text = {q.id: p.passage for ps in passages.values() for p in ps for q in p.queries}
        for grounded in (False, True):  # as written (the paper's metric), and grounded as the extractor returns them
            tables = {}
            for b in sorted({0.0, chosen}):
                biased = {d: apply_bias(answers[d], margins[d], b) for d in passages}
                if grounded:
                    biased = {d: {rid: ground_answer(text[rid], a) if rid in text else a for rid, a in ans.items()}
                              for d, ans in biased.items()}
                tables[b] = score_domains(passages, biased, sets[k][2], sets[k][1])
                label = (f"{args.strategy}, bias {b:g}" if b else args.strategy) + (", grounded" if grounded else "")
                rows += domain_rows(tables[b], set=k, answers=label)
            if chosen != 0:
                suffix = ", grounded" if grounded else ""
                differences.append({"set": k, "a": f"{args.strategy}, bias {chosen:g}{suffix}",
                                    "b": args.strategy + suffix, **f1_difference(tables[chosen], tables[0.0])})
    record = data["validation"][3]
    titles = {"validation": "CrossNER validation", "test": "CrossNER test", "open": "open types (held out)"}
    names = {"validation": f"{titles['validation']}, first {limit or 'all'} passages per domain (the bias is chosen "
                           "here)",
             "test": f"{titles['test']}, first {limit or 'all'} passages per domain",
             "open": f"{titles['open']}, all their passages"}
    record_out = {
        "provenance": provenance(profile.name, passages_per_domain=limit, train_steps=args.steps,
                                 student=profile.uniner.student, strategy=args.strategy, max_bias=max_bias),
        "chosen_bias": chosen, "chosen_on": "validation",
        "curves": {k: c.reset_index().to_dict(orient="records") for k, c in curves.items()},
        "rows": rows, "train": train_summary(record), "differences": differences, "forced_answers": second,
    }
    md = (f"The bias is chosen on the validation passages: **{chosen:g}** (highest average strict F1 among "
          f"{len(biases)} biases from 0 to {max_bias:g}).\n\n")
    md += scores_markdown(rows, ["set", "answers", "domain"]) + (
        f"\n\nStudent `{profile.uniner.student}`, chapter 4's {args.strategy}-negatives student; 'bias b': the same "
        "student decoding greedily with b subtracted from the logit of the token that starts the empty answer "
        "(`nerlib.uniner.calibrate`); 'grounded': the same answers keeping only the mentions found in the passage, "
        "as nerlib's extractor returns them (not the paper's metric). Sets: "
        + "; ".join(f"{k}: {names[k]}" for k in data) + ". " + SCORE_NOTE)
    md += differences_section(differences, "of the biased answers against the plain ones (same student and "
                              "passages, 95% paired bootstrap interval over passages; one training seed)",
                              "set: comparison", lambda d: f"{d['set']}: {d['a']} - {d['b']}")
    md += ("\n\nThe student's second choice where it answered `[]` (the forced answers, which a large enough bias "
           "gives): on the questions it missed (gold mentions), the strict scores of those answers against the gold "
           "and the share naming at least one gold mention; on the gold-empty questions, the share that name "
           "something (inventions):\n\n" + markdown_table(
               [{"set": k, **v} for k, v in second.items()],
               ["set", "missed", "precision", "recall", "f1", "with_a_gold_mention", "empty", "invented"]))
    for k, c in curves.items():
        md += (f"\n\nThe curve on {titles[k]} (averages over the domains; 'changed': the share of answers the bias "
               "changed):\n\n"
               + markdown_table(c.reset_index().to_dict(orient="records"),
                                ["bias", "f1", "empty_pred_share", "missed_share", "invented_share", "changed_share"]))
    axes = plot_bias_curve({titles[k]: c for k, c in curves.items()}, chosen)
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(RESULTS / f"{args.name}.png", dpi=120)
    md += f"\n\n![Strict F1, missed and invented shares against the empty-answer bias]({args.name}.png)"
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
