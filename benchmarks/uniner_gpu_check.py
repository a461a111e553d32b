"""The gpu profile's UniversalNER code paths on a GPU, with a tiny model that travels with the code (no download).

For each precision the GPU offers (fp16 with the Trainer's loss scaler, as on a T4; bf16 where native), with mixed
precision allowed as in the gpu profile and gradient checkpointing on: ``train_or_load`` is interrupted after a
few steps and called again (it must resume from the newest checkpoint and end at the planned step count), the
cached model is loaded again, questions are answered (shared prefix, batched) and scored; then the MSD t-SNE
features of a tiny encoder on the same device. Every model must sit on the GPU. Writes
``benchmarks/results/uniner_gpu_check.{json,md}``; nothing in the test suite depends on it.

    python benchmarks/uniner_gpu_check.py                   # on a CUDA machine
    python benchmarks/uniner_gpu_check.py --device cpu      # the same steps on the CPU (fp32 only): a dry run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Disconnect(Exception):
    """Raised by a callback to cut a training run short, as a lost runtime would."""


def _on(model, device_type: str) -> bool:
    return all(p.device.type == device_type.split(":")[0] for p in model.parameters())


def check(precision: str, device: str, workdir: Path) -> dict:
    """One precision: interrupted training, resume, cached load, answers and scores; returns what happened."""
    import torch
    from transformers import TrainerCallback
    from uniner_tiny_lm import tiny_model, tiny_tokenizer

    from nerlib.config import UniNERSettings, get_profile
    from nerlib.uniner import evaluate as E
    from nerlib.uniner import pipeline as P
    from nerlib.uniner import train as T
    from nerlib.uniner.eval_data import eval_record
    from nerlib.uniner.records import InstructionExample, Query

    os.environ["NERLIB_CACHE_DIR"] = str(workdir / f"cache-{precision}")
    folder = workdir / "tiny"
    if not folder.exists():
        tiny_model(0).save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
    real_precision = T.precision_for
    if device != "cpu":  # choose the precision under test, whatever the GPU generation would pick
        T.precision_for = lambda dev=None: precision
    examples = [
        InstructionExample("Barack Obama visited Paris .", [Query("person", ["Barack Obama"]), Query("city", ["Paris"])]),
        InstructionExample("Apple sells phones in Spain .", [Query("company", ["Apple"]), Query("person", [])]),
        InstructionExample("Berlin and Paris .", [Query("city", ["Berlin", "Paris"])]),
        InstructionExample("Obama met Apple .", [Query("person", ["Obama"]), Query("company", ["Apple"])]),
    ]
    settings = UniNERSettings(student=str(folder), max_length=256, batch_size=2, grad_accum=1, learning_rate=5e-3,
                              max_steps=6, lora_r=4, bf16=True, gradient_checkpointing=True)
    steps: list[int] = []

    class Cut(TrainerCallback):
        def __init__(self, after):
            self.after = after

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            steps.append(state.global_step)
            if self.after is not None and state.global_step >= self.after:
                raise Disconnect

    real_fit = P.fit
    out: dict = {"precision": precision}
    try:
        start = time.perf_counter()
        P.fit = lambda *a, **k: real_fit(*a, callbacks=[Cut(3)], **k)
        try:
            P.train_or_load(get_profile("smoke"), examples, name="gpu-check", settings=settings, progress=False,
                            save_steps=2)
        except Disconnect:
            out["interrupted_after_step"] = steps[-1]
        P.fit = lambda *a, **k: real_fit(*a, callbacks=[Cut(None)], **k)
        steps.clear()
        model, tok, record = P.train_or_load(get_profile("smoke"), examples, name="gpu-check", settings=settings,
                                             progress=False, save_steps=2)
        out.update(resumed_from=record["resumed_from"], steps_after_resume=list(steps),
                   global_step=record["global_step"], trainer_precision=record["precision"],
                   train_loss=record["train_loss"], trained_on=str(next(model.parameters()).device),
                   trained_model_on_device=_on(model, device), inference_dtype=str(next(model.parameters()).dtype))
        cached, tok, again = P.train_or_load(get_profile("smoke"), examples, name="gpu-check", settings=settings,
                                             progress=False)
        out.update(cached=again["cached"], cached_model_on_device=_on(cached, device))
        records = [eval_record(f"check_{i}", ex.passage, q.entity_type, q.answers)
                   for i, (ex, q) in enumerate((ex, q) for ex in examples for q in ex.queries)]
        path = workdir / f"eval-{precision}.jsonl"
        import json

        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        passages = E.read_eval_file(path)
        predictions = E.predict(cached, tok, passages, max_new_tokens=8, progress=False)
        scores = E.score(passages, predictions)
        out.update(queries=scores["queries"], f1=scores["f1"], parse_failures=scores["parse_failures"],
                   seconds=round(time.perf_counter() - start, 1))
        if device != "cpu":
            with torch.no_grad():
                ids = torch.tensor([[5, 6, 7, 8]], device=device)
                out["logits_finite"] = bool(torch.isfinite(cached(ids).logits).all())
    finally:
        P.fit = real_fit
        T.precision_for = real_precision
    return out


def tsne_check(device: str) -> dict:
    """[CLS] features of a tiny MSD encoder on ``device``, back on the CPU as NumPy."""
    from nerlib.msd import tsne as S
    from nerlib.msd.model import MultiExitTokenClassifier
    from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

    tok = tiny_tokenizer(["hello", "world", "hola", "mundo"])
    model = MultiExitTokenClassifier.from_encoder(tiny_encoder(len(tok)), ["O", "B-X", "I-X"], 4).to(device)
    feats = S.cls_features(model, tok, [["hello", "world"], ["hola"], ["mundo", "world"]], batch_size=2)
    return {"model_device": str(next(model.parameters()).device), "features_shape": list(feats.shape),
            "features_type": type(feats).__name__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--no-write", action="store_true", help="print the results without writing them")
    args = parser.parse_args()
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "uniner"))  # the tiny tokenizer and LLaMA of the tests
    os.environ["NERLIB_DEVICE"] = args.device
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu":
        precisions = ["fp32"]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: run with --device cpu for a dry run")
        precisions = ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [check(p, args.device, Path(tmp)) for p in precisions]
    tsne = tsne_check(args.device)
    from common import markdown_table, provenance, write

    gpu = torch.cuda.get_device_name(0) if args.device != "cpu" else "none (CPU dry run)"
    record = {"device": args.device, "gpu": gpu, "torch": torch.__version__, "checks": rows, "tsne": tsne,
              "provenance": provenance("tiny", device=args.device)}
    import json

    print(json.dumps(record, indent=1))
    if not args.no_write:
        table = markdown_table(rows, ["precision", "interrupted_after_step", "resumed_from", "global_step",
                                      "trainer_precision", "trained_model_on_device", "cached_model_on_device",
                                      "inference_dtype", "queries", "parse_failures"])
        write("uniner_gpu_check", record, f"GPU: {gpu}\n\n{table}")
    failed = [f"{r['precision']}: {what}" for r in rows for what, ok in (
        ("did not resume from checkpoint-2", r.get("resumed_from") == "checkpoint-2"),
        ("did not end at step 6", r.get("global_step") == 6),
        ("trained in another precision", r.get("trainer_precision") == r["precision"]),
        ("trained model off the device", r.get("trained_model_on_device")),
        ("cached model not reused or off the device", r.get("cached") and r.get("cached_model_on_device")),
        ("non-finite logits", r.get("logits_finite", True)),
    ) if not ok]
    if tsne["model_device"].split(":")[0] != args.device.split(":")[0] or tsne["features_type"] != "ndarray":
        failed.append("t-SNE features")
    if failed:
        raise SystemExit("FAILED: " + "; ".join(failed))
    print("all checks passed")


if __name__ == "__main__":
    main()
