"""Training throughput (sentences per second) of the MSD trainer against what a user would write, in one run.

    NERLIB_DATA_DIR=... HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/msd_throughput.py [--quick] [--legacy]

Same encoder (the profile's, ``me5-small``), batch size and maximum length (the profile's: 16 sentences, 64
subwords), embeddings and the bottom layers frozen in every variant, one torch thread:

* ``hf_en`` / ``hf_es``: ``AutoModelForTokenClassification`` + ``DataCollatorForTokenClassification`` over random
  batches + AdamW, linear schedule and gradient clipping (what ``Trainer`` does by default), on the English
  (teacher) and the Spanish (student) sentences;
* ``teacher``: ``nerlib.msd.train``'s teacher step (all exits, Eq. 2) on the English sentences;
* ``student``: its MSD student step with every part on (all exits imitating cached teacher probabilities, MMD^M
  and MMD^L) on the Spanish sentences, English sentences as the MMD source;
* ``legacy_teacher`` / ``legacy_student``: the code path before this benchmark existed (random batches, per-tensor
  AdamW, a full head pass for MMD^M), kept below as a copy so the speed-up is a ratio from the same run;
* ``teacher_bf16`` and ``student_bf16`` (not with ``--quick``): the library's steps under bf16 autocast.

Each variant draws its batches as training would (random batches for the Hugging Face and legacy paths,
length-grouped ones for ours) over the same ``--sentences`` sentences per language, and is timed on ``--batches``
of its first epoch taken at evenly spaced quantiles of padded width (a representative sample of an epoch). The
variants take turns every ``--chunk`` batches (a, b, c, ..., a, b, c, ...) so a change of load on this shared
machine hits them alike. Teacher probabilities are computed before timing for both student variants (once per
dataset, as the trainer caches them). Throughput = sentences / summed step seconds. ``--legacy`` times only the
Hugging Face and legacy paths. The last line printed is one JSON object with ``teacher_vs_hf`` and
``student_vs_hf`` (our throughput over the Hugging Face step's on the same sentences) and ``teacher_s_per_step``
(mean seconds of a teacher step over the sample). Wall-time ratios are the headline; ratios by the process's CPU
time are printed beside them (one thread: CPU time is compute time, less disturbed by other jobs on the machine).
Writes ``benchmarks/results/msd_throughput.{json,md}`` (``msd_throughput_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import time

import torch

from common import provenance, write
from nerlib.config import get_profile, set_seed
from nerlib.data import load
from nerlib.device import cpu_supports_bf16
from nerlib.data import tags
from nerlib.models import load_tokenizer
from nerlib.msd import features as F
from nerlib.msd import train as T
from nerlib.msd import variants as V
from nerlib.msd.losses import IGNORE, mmd2, msd_student_objective, student_loss, teacher_loss
from nerlib.msd.model import MultiExitTokenClassifier, resolve_encoder


# ---------------------------------------------------------------------------------------------------------------
# The code path before the fast trainer (copied from nerlib/msd/train.py at commit 9bf6be7; its batch order is
# nerlib.msd.features.endless_batches, which the fast trainer still uses)
# ---------------------------------------------------------------------------------------------------------------


def legacy_optimizer(model, lr, steps, warmup_ratio, weight_decay):
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    return opt, get_linear_schedule_with_warmup(opt, int(warmup_ratio * steps), steps)


def legacy_step(model, loss, opt, sched):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    sched.step()


def legacy_teacher_loss(model, features, pad, s, idx):
    batch = F.collate([features[i] for i in idx], pad)
    out = model(batch["input_ids"], batch["attention_mask"])
    return teacher_loss(out.logits, batch["labels"], out.aux_weights, s.alpha)


def legacy_student_loss(student, tgt, probs, src, teacher_cls, pad, s, idx, sidx):
    batch = F.collate([tgt[i] for i in idx], pad)
    out = student(batch["input_ids"], batch["attention_mask"])
    t_probs = T.pad_probs([probs[i] for i in idx], batch["input_ids"].shape[1])
    mask = batch["labels"] != IGNORE
    loss = student_loss(out.logits, list(t_probs), mask, out.aux_weights, s.beta, s.temperature)
    anchor = teacher_cls[sidx]
    mmd_l = mmd2(anchor, out.cls, s.kernel_mul, s.kernel_num)
    sbatch = F.collate([src[i] for i in sidx], pad)
    s_cls = student(sbatch["input_ids"], sbatch["attention_mask"], exits="last").cls
    mmd_m = mmd2(anchor, s_cls, s.kernel_mul, s.kernel_num)
    return msd_student_objective(loss, mmd_m, mmd_l, s.alpha_mmd, s.beta_mmd, s.mmd_scale)


# ---------------------------------------------------------------------------------------------------------------
# Variants: each has a model, an optimiser, and one step over a given batch of indices
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Variant:
    name: str
    step: object  # callable(batch indices) -> None
    batches: list  # one epoch of batches (indices into the variant's sentences)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the process's CPU time: less sensitive than wall time to other jobs on the machine
    sentences: int = 0


def freeze(encoder, n_layers: int) -> None:
    for module in [encoder.embeddings, *encoder.encoder.layer[:n_layers]]:
        for p in module.parameters():
            p.requires_grad_(False)


def hf_variant(name, hf_model, tok, features, s, steps, seed):
    """What a user would write: the HF model and collator, AdamW, linear schedule, clipping (Trainer's default)."""
    from transformers import DataCollatorForTokenClassification, get_linear_schedule_with_warmup

    model = copy.deepcopy(hf_model)
    freeze(model.base_model, s.freeze_layers)
    collator = DataCollatorForTokenClassification(tok)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.teacher_lr, weight_decay=s.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(s.warmup_ratio * steps), steps)

    def step(idx):
        model.train()
        batch = collator([features[i] for i in idx])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()

    return Variant(name, step, epoch(F.endless_batches(len(features), s.batch_size, seed), features, s))


def teacher_variant(name, base, tok, features, s, steps, seed, precision="fp32"):
    model = copy.deepcopy(base)
    model.freeze_bottom(s.freeze_layers)
    opt, sched = T.make_optimizer(model, s.teacher_lr, steps, s.warmup_ratio, s.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    current: list = []
    loss_fn = T.teacher_step_loss(model, features, tok.pad_token_id, s, iter(lambda: current[0], None), precision)

    def step(idx):
        model.train()
        current[:] = [idx]
        T.optimisation_step(loss_fn(0), opt, sched, trainable)

    return Variant(name, step, epoch(F.batch_order(features, s.batch_size, seed, s.length_pool), features, s))


def legacy_teacher_variant(name, base, tok, features, s, steps, seed):
    model = copy.deepcopy(base)
    model.freeze_bottom(s.freeze_layers)
    opt, sched = legacy_optimizer(model, s.teacher_lr, steps, s.warmup_ratio, s.weight_decay)

    def step(idx):
        model.train()
        legacy_step(model, legacy_teacher_loss(model, features, tok.pad_token_id, s, idx), opt, sched)

    return Variant(name, step, epoch(F.endless_batches(len(features), s.batch_size, seed), features, s))


def student_variant(name, base, tok, tgt, probs, src, teacher_cls, s, steps, seed, precision="fp32"):
    model = copy.deepcopy(base)
    model.freeze_bottom(s.freeze_layers)
    opt, sched = T.make_optimizer(model, s.student_lr, steps, s.warmup_ratio, s.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    current: list = []
    src_order = F.endless_batches(len(src), s.mmd_batch_size, seed + 1)
    loss_fn = T.student_step_loss(model, tgt, probs, src, teacher_cls, tok.pad_token_id, s, V.Variant(),
                                  iter(lambda: current[0], None), src_order, precision)

    def step(idx):
        model.train()
        current[:] = [idx]
        T.optimisation_step(loss_fn(0), opt, sched, trainable)

    return Variant(name, step, epoch(F.batch_order(tgt, s.batch_size, seed, s.length_pool), tgt, s))


def legacy_student_variant(name, base, tok, tgt, probs, src, teacher_cls, s, steps, seed):
    model = copy.deepcopy(base)
    model.freeze_bottom(s.freeze_layers)
    opt, sched = legacy_optimizer(model, s.student_lr, steps, s.warmup_ratio, s.weight_decay)
    src_order = F.endless_batches(len(src), s.mmd_batch_size, seed + 1)

    def step(idx):
        model.train()
        loss = legacy_student_loss(model, tgt, probs, src, teacher_cls, tok.pad_token_id, s, idx, next(src_order))
        legacy_step(model, loss, opt, sched)

    return Variant(name, step, epoch(F.endless_batches(len(tgt), s.batch_size, seed), tgt, s))


def epoch(order, features, s) -> list:
    """The first epoch of a batch order."""
    return [next(order) for _ in range(len(features) // s.batch_size)]


def width(batch, features) -> int:
    return max(len(features[i]["input_ids"]) for i in batch)


def quantile_batches(batches, features, k: int, ranks: list[int]) -> list:
    """``k`` batches of an epoch at evenly spaced quantiles of padded width, in the order ``ranks`` (the same
    permutation of quantiles for every variant, so at each turn the variants run batches of alike rank)."""
    by_width = sorted(batches, key=lambda b: width(b, features))
    picked = [by_width[min(len(by_width) - 1, int((j + 0.5) * len(by_width) / k))] for j in range(k)]
    return [picked[r] for r in ranks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 batches per variant, bf16 student skipped (< 3 min)")
    parser.add_argument("--batches", type=int, help="timed batches per variant (default 6 quick, 24 otherwise)")
    parser.add_argument("--sentences", type=int, default=4000, help="sentences per language the epochs are cut from")
    parser.add_argument("--mmd-source", type=int, default=256, help="English sentences the MMD batches come from")
    parser.add_argument("--chunk", type=int, default=2, help="batches a variant runs before the next takes its turn")
    parser.add_argument("--legacy", action="store_true", help="time only the Hugging Face and legacy code paths")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--target", default="conll2002_es")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = args.batches or (6 if args.quick else 24)
    n = args.sentences
    profile = get_profile()
    s = profile.msd
    seed = profile.seed
    steps = n // s.batch_size  # schedule length: one epoch (only the learning rate's shape depends on it)
    tok = load_tokenizer(s.encoder)
    labels = tags.tag_names(("LOC", "MISC", "ORG", "PER"))
    label2id = {t: i for i, t in enumerate(labels)}
    en, es = load(s.source, "train", n), load(args.target, "train", n)
    en_feats = F.encode(en["tokens"], tok, s.max_length, en["ner_tags"], label2id, where=s.source)
    es_feats = F.encode(es["tokens"], tok, s.max_length, es["ner_tags"], label2id, where=args.target)
    tgt = F.encode(es["tokens"], tok, s.max_length, where=args.target)  # the student never reads target tags
    src = en_feats[: args.mmd_source]

    from transformers import AutoModelForTokenClassification

    set_seed(seed)
    t_load = time.perf_counter()
    base = MultiExitTokenClassifier.from_encoder(s.encoder, labels, s.first_exit_layer, True)
    hf = AutoModelForTokenClassification.from_pretrained(resolve_encoder(s.encoder), num_labels=len(labels))
    # Each variant's batches: k batches of its first epoch over the n sentences, at evenly spaced quantiles of
    # padded width (a representative sample of the epoch), taken in the same order of quantiles by every variant.
    ranks = list(range(k))
    random.Random(seed).shuffle(ranks)
    variants = [hf_variant("hf_en", hf, tok, en_feats, s, steps, seed)]
    if not args.legacy:
        variants.append(teacher_variant("teacher", base, tok, en_feats, s, steps, seed))
    variants.append(legacy_teacher_variant("legacy_teacher", base, tok, en_feats, s, steps, seed))
    if not args.legacy and not args.quick:
        variants.append(teacher_variant("teacher_bf16", base, tok, en_feats, s, steps, seed, "bf16"))
    english = len(variants)
    variants.append(hf_variant("hf_es", hf, tok, es_feats, s, steps, seed))
    # Teacher outputs once, before timing, for the target sentences the student variants will see (an untrained
    # teacher: the step's time does not depend on its quality) and the MMD source sentences.
    probs: list = [None] * len(tgt)
    student_specs = [] if args.legacy else [("student", "fp32")]
    if not args.legacy and not args.quick:
        student_specs.append(("student_bf16", "bf16"))
    orders = {"legacy_student": epoch(F.endless_batches(len(tgt), s.batch_size, seed), tgt, s)}
    orders.update({name: epoch(F.batch_order(tgt, s.batch_size, seed, s.length_pool), tgt, s)
                   for name, _ in student_specs})
    needed = sorted({i for b in orders.values() for b2 in [quantile_batches(b, tgt, k, ranks)] for x in b2 for i in x}
                    | {i for b in orders.values() for i in b[0]})
    teacher = copy.deepcopy(base).eval()
    got, _ = T.teacher_outputs(teacher, [tgt[i] for i in needed], tok.pad_token_id, s.eval_batch_size)
    for i, p in zip(needed, got):
        probs[i] = p
    _, teacher_cls = T.teacher_outputs(teacher, src, tok.pad_token_id, s.eval_batch_size)
    del teacher
    for name, precision in student_specs[:1]:
        variants.append(student_variant(name, base, tok, tgt, probs, src, teacher_cls, s, steps, seed, precision))
    variants.append(legacy_student_variant("legacy_student", base, tok, tgt, probs, src, teacher_cls, s, steps,
                                           seed))
    for name, precision in student_specs[1:]:
        variants.append(student_variant(name, base, tok, tgt, probs, src, teacher_cls, s, steps, seed, precision))
    del base, hf
    feats_of = {v.name: (en_feats if j < english else tgt) for j, v in enumerate(variants)}
    epoch_width = {v.name: sum(width(b, feats_of[v.name]) for b in v.batches) / len(v.batches) for v in variants}
    for v in variants:
        v.batches = [v.batches[0]] + quantile_batches(v.batches, feats_of[v.name], k, ranks)
    print(f"loaded and prepared in {time.perf_counter() - t_load:.0f} s; {k} batches per variant from epochs over "
          f"{n} sentences per language; variants {[v.name for v in variants]}", flush=True)
    for v in variants:  # warm-up step (allocations, lazy initialisation), not timed
        v.step(v.batches[0])
    for start in range(1, k + 1, args.chunk):
        for v in variants:
            for idx in v.batches[start : start + args.chunk]:
                tick, cpu = time.perf_counter(), time.process_time()
                v.step(idx)
                v.seconds += time.perf_counter() - tick
                v.cpu_seconds += time.process_time() - cpu
                v.sentences += len(idx)
        print(f"{min(k, start + args.chunk - 1)}/{k}: " + ", ".join(f"{v.name} {v.sentences / v.seconds:.2f}/s"
                                                               for v in variants), flush=True)
    rate = {v.name: v.sentences / v.seconds for v in variants}
    cpu_rate = {v.name: v.sentences / v.cpu_seconds for v in variants}
    width_timed = {v.name: round(sum(width(b, feats_of[v.name]) for b in v.batches[1:]) / k, 1) for v in variants}
    summary = {}

    cpu_summary = {}

    def ratio(key, num, den):
        if num in rate and den in rate:
            summary[key] = round(rate[num] / rate[den], 3)
            cpu_summary[key] = round(cpu_rate[num] / cpu_rate[den], 3)

    ratio("teacher_vs_hf", "teacher", "hf_en")
    ratio("student_vs_hf", "student", "hf_es")
    ratio("legacy_teacher_vs_hf", "legacy_teacher", "hf_en")
    ratio("legacy_student_vs_hf", "legacy_student", "hf_es")
    ratio("teacher_speedup_vs_legacy", "teacher", "legacy_teacher")
    ratio("student_speedup_vs_legacy", "student", "legacy_student")
    ratio("teacher_bf16_vs_fp32", "teacher_bf16", "teacher")
    ratio("student_bf16_vs_fp32", "student_bf16", "student")
    record = {"provenance": provenance(profile.name), "encoder": s.encoder, "batch_size": s.batch_size,
              "max_length": s.max_length, "frozen_layers": s.freeze_layers, "mmd_batch_size": s.mmd_batch_size,
              "length_pool": s.length_pool, "threads": args.threads, "sentences_per_language": n,
              "mmd_source_sentences": len(src), "timed_batches_per_variant": k, "chunk": args.chunk, "cpu_native_bf16": cpu_supports_bf16(),
              "sentences_per_second": {k: round(v, 3) for k, v in rate.items()},
              "seconds": {v.name: round(v.seconds, 2) for v in variants},
              "cpu_seconds": {v.name: round(v.cpu_seconds, 2) for v in variants},
              "sentences_per_cpu_second": {k: round(v, 3) for k, v in cpu_rate.items()},
              "ratios_by_cpu_time": cpu_summary,
              "teacher_cpu_s_per_step": round(s.batch_size / cpu_rate["teacher"], 3) if "teacher" in rate else None,
              "mean_padded_width_timed": width_timed,
              "mean_padded_width_epoch": {name: round(w, 1) for name, w in epoch_width.items()},
              "teacher_s_per_step": round(s.batch_size / rate["teacher"], 3) if "teacher" in rate else None,
              **summary, "targets": {"teacher_vs_hf": 3.0, "student_vs_hf": 1.5}}
    rows = "\n".join(f"| `{v.name}` | {rate[v.name]:.2f} | {cpu_rate[v.name]:.2f} | {width_timed[v.name]} "
                     f"({epoch_width[v.name]:.1f}) | {v.seconds:.1f} |" for v in variants)
    ratios = "\n".join(f"| {k} | {v:.2f} | {cpu_summary[k]:.2f} |" for k, v in summary.items())
    md = (f"# MSD training throughput against a plain Hugging Face step\n\n"
          f"| variant | sentences/s | sentences/CPU s | mean padded width, timed (epoch) | seconds |\n"
          f"|---|---|---|---|---|\n{rows}\n\n"
          f"| ratio | by wall time | by CPU time |\n|---|---|---|\n{ratios}\n\n"
          f"Targets: teacher_vs_hf >= 3.0, student_vs_hf >= 1.5. Encoder `{s.encoder}`, batch {s.batch_size} at most "
          f"{s.max_length} subwords, embeddings and {s.freeze_layers} layers frozen in every variant, {args.threads} "
          f"thread(s). Each variant: {k} batches of its first epoch over {n} sentences ({s.source} for hf_en and the "
          f"teacher, {args.target} for hf_es and the student; MMD source: {len(src)} English sentences), taken at "
          f"evenly spaced quantiles of padded width; variants interleaved every {args.chunk} batches so the load of "
          f"this shared machine hits them alike; one untimed warm-up step each. CPU native bf16: {record['cpu_native_bf16']}.")
    if "teacher_bf16_vs_fp32" in summary:
        faster = summary["teacher_bf16_vs_fp32"] > 1
        md += (f" bf16 autocast runs at {summary['teacher_bf16_vs_fp32']:.2f}x the fp32 teacher step here, so "
               f"{'bf16 pays off on this CPU (enable it with NERLIB_CPU_BF16=1)' if faster else 'the trainer keeps fp32 on this CPU (nerlib.device.precision_for: bf16 only with NERLIB_CPU_BF16=1 on a CPU with native bf16)'}.")
    for path in write("msd_throughput_quick" if args.quick else "msd_throughput", record, md):
        print("wrote", path)
    print(md)
    print(json.dumps({k: record[k] for k in ("sentences_per_second", "teacher_s_per_step", "teacher_cpu_s_per_step",
                                             "ratios_by_cpu_time", *summary)}))


if __name__ == "__main__":
    main()
