"""Inference speed: one query per type (the official way) against shared-prefix answering, in one run.

For the first ``--passages`` passages of a CrossNER evaluation file with at least ``--types`` entity types, ask
``--types`` questions per passage both ways, time each, and check that the answers are identical. Writes
``benchmarks/results/uniner_inference.{json,md}``.

    python benchmarks/uniner_inference.py                   # untuned student of the profile
    python benchmarks/uniner_inference.py --model FOLDER    # a trained adapter or model folder
"""

from __future__ import annotations

import argparse
import time

import torch

from common import markdown_table, provenance, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domain", default="ai")
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--types", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--model", default=None, help="trained folder; default: the profile's untuned student")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nerlib.course import quiet_libraries
    from nerlib.config import get_profile
    from nerlib.uniner import evaluate as E
    from nerlib.uniner import infer
    from nerlib.uniner.train import load_student, load_trained

    quiet_libraries()
    profile = get_profile()
    if args.model:
        model, tok = load_trained(args.model, profile.uniner.student)
    else:
        model, tok = load_student(profile.uniner.student, lora=False)
        model.config.use_cache = True
        model.eval()
    passages = [p for p in E.read_eval_file(E.eval_file(args.domain)) if len(p.queries) >= args.types]
    passages = passages[: args.passages]
    if len(passages) < args.passages:
        raise SystemExit(f"only {len(passages)} passages of {args.domain} have {args.types} types")
    kw = dict(max_new_tokens=args.max_new_tokens)
    # warm-up (first calls allocate)
    infer.answer_shared_prefix(model, tok, passages[0].passage, ["person"], **kw)
    rows, identical, times = [], 0, {"per_query": 0.0, "shared_prefix": 0.0, "shared_prefix_sequential": 0.0}
    for i, p in enumerate(passages):
        types = [q.entity_type for q in p.queries[: args.types]]
        t0 = time.perf_counter()
        slow = infer.answer_per_query(model, tok, p.passage, types, **kw)
        t1 = time.perf_counter()
        fast = infer.answer_shared_prefix(model, tok, p.passage, types, **kw)
        t2 = time.perf_counter()
        seq = infer.answer_shared_prefix(model, tok, p.passage, types, batch_queries=False, **kw)
        t3 = time.perf_counter()
        times["per_query"] += t1 - t0
        times["shared_prefix"] += t2 - t1
        times["shared_prefix_sequential"] += t3 - t2
        same = slow == fast == seq
        identical += same
        prefix_tokens = len(infer.encode_prompts(tok, p.passage, types).prefix)
        rows.append({"passage": i, "prefix_tokens": prefix_tokens, "per_query_s": t1 - t0,
                     "shared_prefix_s": t2 - t1, "sequential_s": t3 - t2, "identical": same,
                     "answers": fast})
        print(f"passage {i}: {t1 - t0:.2f}s vs {t2 - t1:.2f}s (sequential {t3 - t2:.2f}s), identical={same}")
    n_queries = args.types * len(passages)
    summary = {
        "passages": len(passages),
        "types_per_passage": args.types,
        "queries": n_queries,
        "max_new_tokens": args.max_new_tokens,
        "model": args.model or profile.uniner.student,
        "per_query_seconds": times["per_query"],
        "shared_prefix_seconds": times["shared_prefix"],
        "shared_prefix_sequential_seconds": times["shared_prefix_sequential"],
        "speedup_batched": times["per_query"] / times["shared_prefix"],
        "speedup_sequential": times["per_query"] / times["shared_prefix_sequential"],
        "identical_passages": identical,
        "all_identical": identical == len(passages),
    }
    record = {"provenance": provenance(profile.name), "summary": summary, "passages": rows}
    table = markdown_table(
        [
            {"method": "one query per type (official)", "seconds": summary["per_query_seconds"],
             "s/query": summary["per_query_seconds"] / n_queries, "speed-up": 1.0},
            {"method": "shared prefix, questions one by one", "seconds": summary["shared_prefix_sequential_seconds"],
             "s/query": summary["shared_prefix_sequential_seconds"] / n_queries,
             "speed-up": summary["speedup_sequential"]},
            {"method": "shared prefix, questions batched", "seconds": summary["shared_prefix_seconds"],
             "s/query": summary["shared_prefix_seconds"] / n_queries, "speed-up": summary["speedup_batched"]},
        ],
        ["method", "seconds", "s/query", "speed-up"],
    )
    md = (f"{table}\n\n{len(passages)} CrossNER {args.domain} passages x {args.types} types, greedy, at most "
          f"{args.max_new_tokens} new tokens, model `{summary['model']}`. Answers identical on "
          f"{identical} of {len(passages)} passages.")
    write("uniner_inference", record, md)
    print(md)


if __name__ == "__main__":
    main()
