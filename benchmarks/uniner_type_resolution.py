"""One type per mention: zero-shot F1 of a student's answers before and after resolving its type confusions.

The frequency-negatives student's answers as they are, and after ``nerlib.uniner.resolve`` keeps each mention under
one type, on the same passages: strict F1 per CrossNER domain with paired differences.

The student is chapter 4's frequency student (teacher data only, one epoch), loaded with its answers from the
cache (``$NERLIB_CACHE_DIR/uniner``). Resolution has no setting to choose; it is measured on the validation
passages first and then on the test passages. Also reports, from the unresolved answers, how many false positives
are gold mentions of another type (what resolution can remove). Writes ``benchmarks/results/<name>.{json,md}``
(default ``uniner_type_resolution``).

    python benchmarks/uniner_type_resolution.py --splits validation test
    python benchmarks/uniner_type_resolution.py --passages 1 --domains ai --splits validation --name tiny
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

from common import (SCORE_NOTE, crossner_arguments, crossner_setup, differences_table, domain_figure, domain_rows,
                    markdown_table, provenance, scores_markdown, train_summary, write)

matplotlib.use("Agg")  # files only

ROWS = {False: "answers as written", True: "one type per mention"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    crossner_arguments(parser, split=None)
    parser.add_argument("--splits", nargs="+", choices=["validation", "test"], default=["validation", "test"])
    parser.add_argument("--name", default="uniner_type_resolution")
    args = parser.parse_args()
    profile, limit = crossner_setup(args)

    from nerlib.uniner.evaluate import domain_confusions, f1_difference
    from nerlib.uniner.pipeline import train_and_evaluate

    u = dataclasses.replace(profile.uniner, negative_sampling="frequency", supervised_datasets=(), max_steps=-1,
                            eval_domains=tuple(args.domains))
    rows, differences, confusions, figures, train = [], [], [], "", {}
    for split in args.splits:
        tables = {}
        for resolve in (False, True):
            table, record = train_and_evaluate(profile, u, limit=limit, split=split, resolve_types=resolve)
            tables[ROWS[resolve]] = table
            train = train_summary(record)
            rows += domain_rows(table, split=split, answers=ROWS[resolve])
            confusions.append({"split": split, "answers": ROWS[resolve],
                               **domain_confusions(table).sum().astype(int).to_dict()})
        differences.append({"split": split, **f1_difference(tables[ROWS[True]], tables[ROWS[False]])})
        if len(args.domains) > 1:
            figures += domain_figure(tables, f"{args.name}_{split}", f"Strict F1 per domain, {split} passages",
                                     paper_rows=(), title=f"Zero-shot strict F1, {split} passages "
                                     "(95% bootstrap interval over passages)")
    record_out = {"provenance": provenance(profile.name, passages_per_domain=limit, student=u.student,
                                           negative_sampling="frequency"),
                  "rows": rows, "differences": differences, "confusions": confusions, "train": train}
    md = scores_markdown(rows, ["split", "answers", "domain"]) + (
        f"\n\nFirst {limit or 'all'} passages per domain; student `{u.student}` with frequency negatives (chapter 4). "
        "'One type per mention' keeps a mention that the student named under several types only under the type "
        "whose answer gave its tokens the highest mean log-probability (`nerlib.uniner.resolve`). " + SCORE_NOTE)
    md += ("\n\nPaired difference of average strict F1, one type per mention minus answers as written (same "
           "answers, same passages; 95% paired bootstrap interval over passages):\n\n")
    md += differences_table(differences, "split", lambda d: d["split"])
    md += ("\n\nWhere the false positives come from (all domains; mention and type pairs, normalised as the metric "
           "compares them): 'gold under another type' counts false positives whose mention is a gold mention of "
           "another type in the same passage, what resolution can remove.\n\n")
    shown = [{"split": c["split"], "answers": c["answers"], "predicted": c["predicted"],
              "false positives": c["false_positives"], "gold under another type": c["other_type"],
              "share": f"{100 * c['other_type'] / max(c['false_positives'], 1):.0f}%",
              "mentions under several types": c["multi_type_mentions"]} for c in confusions]
    md += markdown_table(shown, list(shown[0]))
    write(args.name, record_out, md + figures)
    print(md)


if __name__ == "__main__":
    main()
