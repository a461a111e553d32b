"""Negative-sampling ablation: none, uniform and frequency-based negative types (paper, Table 4), zero-shot F1.

Each strategy trains its own student on the same teacher passages (no supervised data) with the same budget;
models and predictions are cached under ``$NERLIB_CACHE_DIR/uniner``. Writes
``benchmarks/results/<name>.{json,md}`` (default ``uniner_negatives``).

    python benchmarks/uniner_negatives.py
    python benchmarks/uniner_negatives.py --steps 1 --passages 1 --domains ai --name uniner_negatives_tiny
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from common import DOMAINS, SCORE_HEADER, SCORE_NOTE, domain_scores, provenance, score_cells, train_summary, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS))
    parser.add_argument("--passages", type=int, default=None,
                        help="first N passages per domain (0: all; default: the profile's, as chapter 4)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: one epoch)")
    parser.add_argument("--strategies", nargs="+", default=["none", "uniform", "frequency"])
    parser.add_argument("--name", default="uniner_negatives")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nerlib.config import get_profile
    from nerlib.course import quiet_libraries
    from nerlib.uniner.pipeline import train_and_evaluate

    quiet_libraries()
    profile = get_profile()
    limit = profile.uniner.eval_passages_per_domain if args.passages is None else (args.passages or None)
    rows, train = [], {}
    for strategy in args.strategies:
        u = dataclasses.replace(profile.uniner, negative_sampling=strategy, supervised_datasets=(),
                                max_steps=args.steps if args.steps is not None else -1,
                                eval_domains=tuple(args.domains))
        table, record = train_and_evaluate(profile, u, limit=limit)  # the students chapter 4 loads
        train[strategy] = train_summary(record)
        for domain in table.index:
            rows.append({"strategy": strategy, "domain": domain, **domain_scores(table.loc[domain])})
    record_out = {"provenance": provenance(profile.name, passages_per_domain=limit, train_steps=args.steps),
                  "rows": rows, "train": train}
    lines = [f"| strategy | domain | {SCORE_HEADER} |", "|---|---|" + "---|" * 7]
    lines += [f"| {r['strategy']} | {r['domain']} | {score_cells(r)} |" for r in rows]
    md = "\n".join(lines) + (f"\n\nFirst {limit or 'all'} passages per domain; student `{profile.uniner.student}`. "
                             + SCORE_NOTE)
    write(args.name, record_out, md)
    print(md)


if __name__ == "__main__":
    main()
