"""Time per training step: the MSD student against plain token classification, same encoder, same batch.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/msd_step_time.py [--steps 12] [--rounds 2] \
        [--mmd-batch N]

Both runs use the library's own loop (``nerlib.msd.train``): forward, loss, backward, clipping, AdamW and the
schedule. The plain step is a single-head cross-entropy step on the same Spanish batches the student sees. The MSD step is
a student step with every part on: all exits imitating precomputed teacher probabilities of those sentences, plus
MMD^M (an extra forward pass over ``mmd_batch_size`` source sentences) and MMD^L. Runs alternate (plain, MSD,
plain, MSD, ...) so a change in the load of this shared machine hits both; the first two steps of each run are
dropped as warm-up and the medians are compared. Writes ``benchmarks/results/msd_step_time.{json,md}``.

Both runs draw the library's length-grouped batches from the same seed, so they see the same batches. For
sentences per second against a plain Hugging Face step (and against the code path before length grouping), see
``benchmarks/msd_throughput.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from common import provenance, write
from nerlib.config import get_profile, set_seed
from nerlib.data import load, registry
from nerlib.models import load_tokenizer
from nerlib.msd import train as T
from nerlib.msd import variants as V
from nerlib.msd.model import MultiExitTokenClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--target", default="conll2002_es")
    parser.add_argument("--mmd-batch", type=int, help="source sentences per step for MMD (default: the profile's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = get_profile()
    s = dataclasses.replace(profile.msd, teacher_steps=args.steps, student_steps=args.steps, eval_every=0,
                            warmup_ratio=0.0, mmd_batch_size=args.mmd_batch or profile.msd.mmd_batch_size)
    labels = registry.get(s.source).tag_names
    tok = load_tokenizer(s.encoder)
    n = s.batch_size * args.steps
    source = load(s.source, "train", n)
    # The plain step runs on the very target sentences the student sees (their tags only give the cross-entropy
    # something to fit; timing does not depend on them), so both steps process the same batches.
    target_labelled = load(args.target, "train", n)
    target = target_labelled["tokens"]
    set_seed(profile.seed)
    teacher = MultiExitTokenClassifier.from_encoder(s.encoder, labels, s.first_exit_layer, True)
    times: dict[str, list[float]] = {"plain": [], "msd": []}
    for r in range(args.rounds):
        plain = MultiExitTokenClassifier.from_encoder(s.encoder, labels, s.first_exit_layer, False)
        log = T.train_teacher(plain, tok, target_labelled, s, seed=profile.seed + r, progress=False)
        times["plain"] += log.step_seconds[2:]
        del plain
        student = MultiExitTokenClassifier.from_encoder(s.encoder, labels, s.first_exit_layer, True)
        log = T.train_student(student, teacher, tok, target, source["tokens"], s, V.Variant(), seed=profile.seed + r,
                              progress=False)
        times["msd"] += log.step_seconds[2:]
        del student
        print(f"round {r}: plain {statistics.median(times['plain']):.3f} s, msd {statistics.median(times['msd']):.3f} s")
    plain_s, msd_s = statistics.median(times["plain"]), statistics.median(times["msd"])
    ratio = msd_s / plain_s
    record = {"provenance": provenance(profile.name), "encoder": s.encoder, "batch_size": s.batch_size,
              "max_length": s.max_length, "mmd_batch_size": s.mmd_batch_size, "threads": args.threads,
              "exits": teacher.exit_layers, "steps_per_run": args.steps, "rounds": args.rounds,
              "plain_step_s": round(plain_s, 4), "msd_step_s": round(msd_s, 4), "ratio": round(ratio, 3),
              "target_ratio": 1.3, "meets_target": ratio <= 1.3, "raw_seconds": times}
    md = (f"# MSD student step vs plain token-classification step\n\n"
          f"| step | median seconds |\n|---|---|\n| plain (single head, CE) | {plain_s:.3f} |\n"
          f"| MSD student (exits {teacher.exit_layers[0]}-{teacher.exit_layers[-1]}, MSE + MMD^M + MMD^L) | {msd_s:.3f} |\n"
          f"| **ratio** | **{ratio:.2f}x** (target <= 1.3x: {'met' if ratio <= 1.3 else 'not met'}) |\n\n"
          f"Encoder `{s.encoder}`, batch {s.batch_size} sentences at max {s.max_length} subwords, "
          f"MMD source batch {s.mmd_batch_size}, {args.threads} thread(s); medians over {args.rounds} alternating "
          f"rounds of {args.steps} steps (first 2 of each dropped).")
    name = "msd_step_time" if s.mmd_batch_size == profile.msd.mmd_batch_size else f"msd_step_time_mmd{s.mmd_batch_size}"
    for path in write(name, record, md):
        print("wrote", path)
    print(md)


if __name__ == "__main__":
    main()
