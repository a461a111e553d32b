"""Same settings, same seed, another processor: how far apart two trainings of the MSD teacher end.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reproducibility.py [--steps 200] \
        [--eval-sentences 500] [--runs reference "generic kernels"] [--name reproducibility]

Trains the small profile's single-exit teacher (its encoder, data, batch size and learning rate, no dev selection)
for ``--steps`` steps, several times, each in a fresh process with the same seed:

- ``reference``: one torch thread, the processor's best kernels;
- ``reference again``: the same, a second time (is one machine bit-reproducible?);
- ``2 threads``: two torch threads (a different split of every sum);
- ``generic kernels``: one thread with the vector kernels held back to SSE4 (``ATEN_CPU_CAPABILITY=default``,
  ``ONEDNN_MAX_CPU_ISA=SSE41``, ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``), as on an older processor. The AVX2 and AVX-512
  machines a reader may use differ the same way: their kernels add in another order;
- ``cold model cache``: one thread, with an empty model cache, so the run first converts the encoder from its
  wheel (what a reader's very first run does). Conversion builds a model and so draws random numbers; it must not
  shift the seeded draws that follow (the heads' initialisation), or a first run would differ from every later one.

For each run it records the loss per step, the trained tensors after steps 1, 10, 100, ... and the last, and the
F1 of the final model on the first ``--eval-sentences`` test sentences of the source and target languages; it
reports against the reference the largest difference of any trained weight at each of those steps, the first step
whose loss differs and the F1 differences. Writes ``benchmarks/results/<name>.{json,md}``. The question for the
results pages: is a model trained again with the same settings and seed the same model, on this processor and on
another?
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import provenance, write

RUNS = {
    "reference": {"threads": 1, "env": {}},
    "reference again": {"threads": 1, "env": {}},
    "2 threads": {"threads": 2, "env": {}},
    "generic kernels": {"threads": 1, "env": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                                              "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}},
    "cold model cache": {"threads": 1, "env": {}, "cold_cache": True},
}


def snapshots(steps: int) -> list[int]:
    """The steps after which the trained weights are compared: 1, 10, 100, ... and the last."""
    return sorted({10 ** i for i in range(len(str(steps))) if 10 ** i < steps} | {steps})


def train_once(steps: int, threads: int, out: Path, eval_sentences: int) -> None:
    """One training in this process: the profile's teacher for ``steps`` steps; writes the trained tensors after
    each of :func:`snapshots`, the losses, and the F1 of the final model on the source and target test sets."""
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    from nerlib.config import get_profile, machine_summary, set_seed
    from nerlib.data import load, registry
    from nerlib.models import load_tokenizer
    from nerlib.msd.model import MultiExitTokenClassifier
    from nerlib.msd.predict import evaluate
    from nerlib.msd.train import train_teacher, trainable_state

    profile = get_profile()
    s = dataclasses.replace(profile.msd, teacher_steps=steps, teacher_epochs=0, eval_every=0, warmup_ratio=0.0)
    set_seed(profile.seed)
    model = MultiExitTokenClassifier.from_encoder(s.encoder, registry.get(s.source).tag_names,
                                                  s.first_exit_layer, False)
    tokenizer = load_tokenizer(s.encoder)
    data = load(s.source, "train", limit=s.batch_size * steps)

    kept = set(snapshots(steps))

    def snapshot(done: int) -> None:
        if done in kept:
            state = {k: v.detach().contiguous() for k, v in trainable_state(model).items()}
            save_file(state, str(out / f"step-{done}.safetensors"))

    log = train_teacher(model, tokenizer, data, s, None, profile.seed, None, progress=False, on_step=snapshot)
    model.eval()
    f1 = {name: evaluate(model, tokenizer, load(name, "test", limit=eval_sentences), s.eval_max_length,
                         s.eval_batch_size, progress=False)["f1"] for name in (s.source, *s.targets)}
    (out / "run.json").write_text(json.dumps({"losses": log.losses, "seconds": log.seconds, "f1": f1,
                                              "machine": machine_summary()}))


def weight_difference(a: dict, b: dict) -> float:
    """Largest absolute difference between two state dicts of the same tensors (empty tensors skipped)."""
    if set(a) != set(b):
        raise ValueError("the two runs trained differently named tensors")
    return max((float((a[k] - b[k]).abs().max()) for k in a if a[k].numel()), default=0.0)


def compare(reference: Path, other: Path, steps: int) -> dict:
    """Against the reference run: the largest trained-weight difference after each snapshot step, whether the
    final weights are bit-equal, the first step whose loss differs, and both runs' F1."""
    from safetensors.torch import load_file

    diffs = {step: weight_difference(load_file(str(reference / f"step-{step}.safetensors")),
                                     load_file(str(other / f"step-{step}.safetensors"))) for step in snapshots(steps)}
    ra, rb = (json.loads((folder / "run.json").read_text()) for folder in (reference, other))
    first = next((i + 1 for i, (x, y) in enumerate(zip(ra["losses"], rb["losses"])) if x != y), None)
    return {"bit_equal": diffs[steps] == 0.0, "max_abs_weight_diff": diffs, "first_loss_differs_at_step": first,
            "final_loss": rb["losses"][-1], "f1": rb["f1"],
            "f1_diff": {k: rb["f1"][k] - ra["f1"][k] for k in rb["f1"]}, "seconds": rb["seconds"],
            "machine": rb["machine"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-sentences", type=int, default=500, help="first N test sentences per language")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--name", default="reproducibility")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: train once into this folder
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        train_once(args.steps, args.threads, Path(args.worker), args.eval_sentences)
        return
    if args.runs[0] != "reference":
        raise SystemExit("--runs: the first run must be 'reference' (the others are compared with it)")
    from nerlib.config import get_profile

    profile = get_profile()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.runs:
            out = Path(tmp) / name.replace(" ", "_")
            out.mkdir()
            spec = RUNS[name]
            env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), **spec["env"]}
            if spec.get("cold_cache"):
                env["NERLIB_CACHE_DIR"] = str(Path(tmp) / "empty_cache")  # nothing converted yet
            print(f"training: {name}", flush=True)
            subprocess.run([sys.executable, __file__, "--worker", str(out), "--steps", str(args.steps),
                            "--threads", str(spec["threads"]), "--eval-sentences", str(args.eval_sentences)],
                           env=env, check=True)
            rows.append({"run": name, **compare(Path(tmp) / "reference", out, args.steps)})
    record = {"provenance": provenance(profile.name, steps=args.steps, encoder=profile.msd.encoder,
                                       batch_size=profile.msd.batch_size, lr=profile.msd.teacher_lr,
                                       eval_sentences=args.eval_sentences),
              "rows": rows}
    languages = list(rows[0]["f1"])
    steps = snapshots(args.steps)
    lines = ["| run | bit-equal | " + " | ".join(f"largest weight difference, step {k}" for k in steps)
             + " | first loss that differs | " + " | ".join(f"F1 {lang}" for lang in languages) + " | machine |",
             "|---|---|" + "---|" * (len(steps) + 1 + len(languages)) + "---|"]
    for r in rows:
        f1 = " | ".join(f"{r['f1'][lang]:.2f} ({r['f1_diff'][lang]:+.2f})" for lang in languages)
        lines.append(f"| {r['run']} | {'yes' if r['bit_equal'] else 'no'} | "
                     + " | ".join(f"{r['max_abs_weight_diff'][k]:.1e}" for k in steps)
                     + f" | {r['first_loss_differs_at_step'] or '-'} | {f1} | {r['machine']} |")
    md = "\n".join(lines) + (
        f"\n\nThe small profile's single-exit MSD teacher ({profile.msd.encoder}, batch {profile.msd.batch_size}, "
        f"learning rate {profile.msd.teacher_lr}, no warm-up, no dev selection) trained for {args.steps} steps from "
        f"the same seed, each run in a fresh process; F1 on the first {args.eval_sentences} test sentences (in "
        "brackets: minus the reference's). Weight differences are the largest over all trained tensors, after the "
        "given step.")
    write(args.name, record, md)
    print(md)


if __name__ == "__main__":
    main()
