"""Training throughput of the UniversalNER student on the CPU: ours against a plain Trainer + peft step, one run.

Trains the profile's student for ``--steps`` optimizer steps on recorded teacher data (Pile-NER-type sample, the
profile's negatives), once per mode, each from the same freshly loaded weights on the same examples in the same
order, and writes ``benchmarks/results/uniner_train_throughput.{json,md}``:

* ``plain Trainer fp32``: what a user would write: ``transformers.Trainer`` with a ``peft`` LoRA model, the model's
  own loss (the output layer at every position), fp32 (the code path of this course before the change);
* ``answer-only fp32``: :func:`nerlib.uniner.train.answer_loss`, the output layer only where labels are;
* ``answer-only bf16``: the same under CPU bf16 autocast (``NERLIB_CPU_BF16=1``; fp32 master weights), only on a
  CPU with native bf16.

    python benchmarks/uniner_train_throughput.py --steps 3 --grad-accum 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

import torch

from common import markdown_table, provenance, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
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
    rows = []
    for name, answer_only, bf16 in modes:
        os.environ["NERLIB_CPU_BF16"] = "1" if bf16 else "0"
        set_seed(profile.seed)  # the same initial LoRA weights in every mode
        model, tok = load_student(u.student, u.lora, u.lora_r, gradient_checkpointing=u.gradient_checkpointing)
        with tempfile.TemporaryDirectory() as out:
            result = fit(model, tok, examples, out, u, seed=profile.seed, progress=False,
                         answer_logits_only=answer_only)
        rows.append({"mode": name, "student": u.student,
                     "method": "LoRA r=%d" % u.lora_r if u.lora else "full fine-tuning",
                     "precision": result.precision, "steps": result.global_step, "passages": passages,
                     "seconds": result.seconds, "tokens_seen": result.tokens_seen,
                     "tokens_per_second": result.tokens_per_second, "seconds_per_passage": result.seconds / passages,
                     "train_loss": result.train_loss})
        print(rows[-1], flush=True)
        del model
    base = rows[0]["tokens_per_second"]
    for r in rows:
        r["speedup_vs_plain"] = r["tokens_per_second"] / base
    record = {"provenance": provenance(profile.name, threads=args.threads), "rows": rows,
              "max_length": u.max_length, "batch_size": u.batch_size}
    md = markdown_table(rows, ["mode", "precision", "passages", "seconds", "tokens_per_second", "speedup_vs_plain",
                               "train_loss"])
    md += (f"\n\n{u.student}, {rows[0]['method']}, {passages} Pile-NER-type passages (teacher queries + "
           f"{u.negatives_per_passage} {u.negative_sampling} negatives each), batch {u.batch_size}, "
           f"{args.steps} steps of {args.grad_accum} accumulated batches, {args.threads} thread(s); tokens are "
           "non-padding input tokens (forward + backward). Every mode starts from the same weights and sees the same "
           "examples in the same order, so equal train_loss in fp32 shows the answer-only loss is the same loss."
           + ("" if cpu_supports_bf16() else " This CPU has no native bf16, so the bf16 mode did not run."))
    write("uniner_train_throughput", record, md)
    print(md)


if __name__ == "__main__":
    main()
