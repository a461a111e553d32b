"""Training throughput of the UniversalNER student on the CPU: ours against a plain Trainer + peft step, one run.

Trains the profile's student for ``--steps`` optimizer steps on recorded teacher data (Pile-NER-type sample, the
profile's negatives), once per mode, each from the same freshly loaded weights on the same examples in the same
order, and writes ``benchmarks/results/uniner_train_throughput.{json,md}``:

* ``plain Trainer fp32``: what a user would write: ``transformers.Trainer`` with a ``peft`` LoRA model, the model's
  own loss (the output layer at every position), fp32 (the code path of this course before the change);
* ``answer-only fp32``: :func:`nerlib.uniner.train.answer_loss`, the output layer only where labels are;
* ``answer-only bf16``: the same under CPU bf16 autocast (``NERLIB_CPU_BF16=1``; fp32 master weights), only on a
  CPU with native bf16.

    python benchmarks/uniner_train_throughput.py --steps 3 --grad-accum 4 --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile

import torch

from common import markdown_table, provenance, write


CATEGORIES = (  # profiler op name prefixes, first match wins
    ("matrix multiplies", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("dropout masks (random numbers)", ("aten::bernoulli", "aten::uniform", "aten::rand")),
    ("attention kernel", ("aten::_scaled_dot_product", "aten::scaled_dot_product")),
    ("softmax and loss", ("aten::_log_softmax", "aten::log_softmax", "aten::_softmax", "aten::softmax",
                          "aten::nll_loss", "aten::cross_entropy")),
)


def time_breakdown(model, tokenizer, examples, settings, answer_only: bool = True, repeats: int = 2) -> dict:
    """Where one training step's CPU time goes: the self time of every profiled operator of ``repeats`` forward and
    backward passes over the first example, grouped by :data:`CATEGORIES` (the rest is "other"), and the rate of
    the matrix multiplies in GFLOP/s (the profiler's FLOP count over their time)."""
    from torch.profiler import ProfilerActivity, profile

    from nerlib.uniner.conversations import ConversationDataset
    from nerlib.uniner.train import answer_loss, make_collator

    batch = make_collator(tokenizer)([ConversationDataset(examples[:1], tokenizer, settings.max_length)[0]])
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
    model.train()

    def step():
        loss = answer_loss(model, batch) if answer_only else model(**batch).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(repeats):
            step()
    totals, flops, mm_time = {}, 0.0, 0.0
    for event in prof.key_averages():
        name = event.key
        category = next((c for c, prefixes in CATEGORIES if name.startswith(prefixes)), "other")
        totals[category] = totals.get(category, 0.0) + event.self_cpu_time_total
        if category == "matrix multiplies":
            flops += event.flops or 0
            mm_time += event.self_cpu_time_total
    whole = sum(totals.values())
    shares = {c: round(100 * totals.get(c, 0.0) / whole, 1) for c, _ in (*CATEGORIES, ("other", ()))}
    return {"tokens": int(batch["input_ids"].numel()), "shares_percent": shares,
            "matmul_gflop_per_step": flops / repeats / 1e9,  # unrounded: a tiny model's rate is far below 0.1
            "matmul_gflops": flops / (mm_time / 1e6) / 1e9 if mm_time else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--rounds", type=int, default=2, help="times each mode runs, alternating (median kept)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import set_seed

    from nerlib.config import get_profile
    from nerlib.course import quiet_libraries
    from nerlib.device import cpu_supports_bf16
    from nerlib.uniner.pile import load_pile_ner_type
    from nerlib.uniner.supervised import instruction_mixture
    from nerlib.uniner.train import fit, load_student

    quiet_libraries()
    profile = get_profile()
    u = dataclasses.replace(profile.uniner, max_steps=args.steps, grad_accum=args.grad_accum, lora=not args.full,
                            supervised_datasets=())
    passages = args.steps * args.grad_accum * u.batch_size
    examples = instruction_mixture(load_pile_ner_type(limit=2 * passages), u, seed=profile.seed, progress=False)
    if len(examples) < passages:
        raise SystemExit(f"only {len(examples)} teacher passages available, {passages} needed")
    examples = examples[:passages]  # exactly one epoch of steps x grad_accum x batch passages
    modes = [("plain Trainer fp32", False, False), ("answer-only fp32", True, False)]
    if cpu_supports_bf16():
        modes.append(("answer-only bf16", True, True))
    runs: dict[str, list] = {name: [] for name, _, _ in modes}
    breakdown = None
    for round_ in range(args.rounds):  # modes alternate, so a change in this shared machine's load hits them alike
        for name, answer_only, bf16 in modes:
            os.environ["NERLIB_CPU_BF16"] = "1" if bf16 else "0"
            set_seed(profile.seed)  # the same initial LoRA weights in every mode
            model, tok = load_student(u.student, u.lora, u.lora_r, gradient_checkpointing=u.gradient_checkpointing)
            with tempfile.TemporaryDirectory() as out:
                result = fit(model, tok, examples, out, u, seed=profile.seed, progress=False,
                             answer_logits_only=answer_only)
            runs[name].append(result)
            print(name, f"round {round_ + 1}: {result.seconds:.1f} s, {result.tokens_per_second:.1f} tokens/s",
                  flush=True)
            if name == "answer-only fp32" and breakdown is None:
                breakdown = time_breakdown(model, tok, examples, u)
                print(breakdown, flush=True)
            del model
    rows = []
    for name, results in runs.items():
        seconds = statistics.median(r.seconds for r in results)
        first = results[0]
        rows.append({"mode": name, "student": u.student,
                     "method": "LoRA r=%d" % u.lora_r if u.lora else "full fine-tuning",
                     "precision": first.precision, "steps": first.global_step, "passages": passages,
                     "seconds": seconds, "seconds_per_round": [round(r.seconds, 2) for r in results],
                     "tokens_seen": first.tokens_seen, "tokens_per_second": first.tokens_seen / seconds,
                     "seconds_per_passage": seconds / passages, "train_loss": first.train_loss})
    base = rows[0]["tokens_per_second"]
    for r in rows:
        r["speedup_vs_plain"] = r["tokens_per_second"] / base
    record = {"provenance": provenance(profile.name, threads=args.threads), "rows": rows,
              "max_length": u.max_length, "batch_size": u.batch_size, "answer_only_fp32_breakdown": breakdown}
    md = markdown_table(rows, ["mode", "precision", "passages", "seconds", "seconds_per_round", "tokens_per_second",
                               "speedup_vs_plain",
                               "train_loss"])
    md += (f"\n\n{u.student}, {rows[0]['method']}, {passages} Pile-NER-type passages (teacher queries + "
           f"{u.negatives_per_passage} {u.negative_sampling} negatives each), batch {u.batch_size}, "
           f"{args.steps} steps of {args.grad_accum} accumulated batches, {args.threads} thread(s); each mode ran "
           f"{args.rounds} times, alternating with the others, and the median time is kept; tokens are "
           "non-padding input tokens (forward + backward). Every mode starts from the same weights and sees the same "
           "examples in the same order, so equal train_loss in fp32 shows the answer-only loss is the same loss."
           + ("" if cpu_supports_bf16() else " This CPU has no native bf16, so the bf16 mode did not run."))
    md += (f"\n\nWhere the time of an answer-only fp32 step goes (torch profiler, self CPU time of two forward and "
           f"backward passes over one {breakdown['tokens']}-token conversation):\n\n| part | share of the step |\n"
           "|---|---|\n" + "\n".join(f"| {c} | {v:.1f}% |" for c, v in breakdown["shares_percent"].items())
           + f"\n\nThe matrix multiplies do {breakdown['matmul_gflop_per_step']:.1f} GFLOP per step at "
           f"{breakdown['matmul_gflops']:.1f} GFLOP/s. Without native bf16 the step's arithmetic is fixed by the model "
           "and the data: the levers left are skipping work (the output layer where no label is: the answer-only "
           "mode) and overhead. The dropout masks are LoRA's dropout (p = 0.05 on the input of every adapted layer) "
           "drawn by torch's CPU random-number generator; they are part of what is learnt, so they stay.")
    write("uniner_train_throughput", record, md)
    print(md)


if __name__ == "__main__":
    main()
