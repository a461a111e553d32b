"""Training throughput of the UniversalNER student: tokens per second and seconds per passage (LoRA or full).

Trains the profile's student for ``--steps`` optimizer steps on recorded teacher data (Pile-NER-type sample, the
profile's negatives) and writes ``benchmarks/results/uniner_train_throughput.{json,md}``.

    python benchmarks/uniner_train_throughput.py --steps 3 --grad-accum 4
"""

from __future__ import annotations

import argparse
import dataclasses
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

    from nerlib.config import get_profile
    from nerlib.course import quiet_libraries
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
    model, tok = load_student(u.student, u.lora, u.lora_r, gradient_checkpointing=u.gradient_checkpointing)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as out:
        result = fit(model, tok, examples, out, u, seed=profile.seed, progress=False)
    summary = {
        "student": u.student, "method": "LoRA r=%d" % u.lora_r if u.lora else "full fine-tuning",
        "trainable_parameters": trainable, "steps": result.global_step, "passages": passages,
        "seconds": result.seconds, "tokens_seen": result.tokens_seen,
        "tokens_per_second": result.tokens_per_second, "seconds_per_passage": result.seconds / passages,
        "train_loss": result.train_loss, "max_length": u.max_length,
    }
    record = {"provenance": provenance(profile.name), "summary": summary}
    md = markdown_table([summary], ["student", "method", "passages", "seconds", "tokens_per_second",
                                    "seconds_per_passage"])
    md += (f"\n\n{passages} Pile-NER-type passages (teacher queries + {u.negatives_per_passage} "
           f"{u.negative_sampling} negatives each), batch {u.batch_size}, fp32 on CPU; tokens are non-padding "
           f"input tokens (forward + backward).")
    write("uniner_train_throughput", record, md)
    print(md)


if __name__ == "__main__":
    main()
