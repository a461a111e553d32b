"""Training MSD: the teacher on labelled source text, the student on unlabelled target text, the shared
optimisation loop with model selection and resumable checkpoints.

The flow (Ma et al., EMNLP 2022, Sections 3.1-3.3):

1. :func:`train_teacher` fine-tunes a :class:`~nerlib.msd.model.MultiExitTokenClassifier` on the source language
   with :func:`~nerlib.msd.losses.teacher_loss` (a single-head model is the plain baseline).
2. :func:`teacher_outputs` runs the frozen teacher once over the unlabelled target sentences (probabilities of every
   exit) and over source sentences ([CLS] vectors for the MMD terms).
3. :func:`train_student` trains a *fresh* encoder on those soft labels with
   :func:`~nerlib.msd.losses.student_loss` plus the two MMD terms. Target tags are never read.

Speed on the CPU without changing the mathematics: batches are grouped by length (:mod:`nerlib.msd.features`);
the frozen embeddings and bottom layers build no autograd graph (none of their inputs or weights needs a
gradient); the teacher's probabilities and [CLS] vectors are computed once per dataset and cached on disk; AdamW
is the fused kernel; losses run in fp32 even when the forward pass runs under bf16/fp16 autocast
(``nerlib.device.precision_for``). Every model and batch goes to ``nerlib.device.get_device()``. ``_loop`` writes a
resumable checkpoint every ``checkpoint_every`` steps (weights, optimiser, schedule, random state; the data order
is replayed from the seed).

Features and batch orders live in :mod:`nerlib.msd.features`, prediction and seqeval scores in
:mod:`nerlib.msd.predict`, the cache of trained models in :mod:`nerlib.msd.runs`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from nerlib.config import MSDSettings, set_seed
from nerlib.device import autocast, get_device, precision_for, to_device
from nerlib.msd.features import batch_order, collate, encode, endless_batches
from nerlib.msd.losses import IGNORE, mmd2, msd_student_objective, student_loss, teacher_loss
from nerlib.msd.model import MultiExitTokenClassifier, model_device
from nerlib.msd.predict import evaluate
from nerlib.msd.variants import Variant

# ---------------------------------------------------------------------------------------------------------------
# Optimisation helpers
# ---------------------------------------------------------------------------------------------------------------


def total_steps(steps: int, epochs: float, n_examples: int, batch_size: int) -> int:
    """``steps`` when positive, else ``epochs`` passes over ``n_examples``."""
    if steps > 0:
        return steps
    return max(1, math.ceil(epochs * n_examples / batch_size))


def make_optimizer(model: torch.nn.Module, lr: float, steps: int, warmup_ratio: float, weight_decay: float):
    """AdamW over trainable parameters (no decay on biases, LayerNorms and omega) with linear warm-up then linear
    decay to zero, as in the paper. The fused AdamW kernel (one pass over all parameters) where torch has it for
    the device: the same update, a fraction of the Python overhead of the per-tensor loop."""
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):  # a device or dtype without the fused kernel
        opt = torch.optim.AdamW(groups, lr=lr)
    sched = get_linear_schedule_with_warmup(opt, int(warmup_ratio * steps), steps)
    return opt, sched


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the parameters that training changes (frozen embeddings and layers are left out: they equal
    the pretrained encoder, which keeps checkpoints small)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


@dataclass
class TrainLog:
    """What a training run records: losses per step, dev scores at each evaluation, the selected step, time."""

    losses: list[float] = field(default_factory=list)
    dev: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    best_f1: float = -1.0
    seconds: float = 0.0
    steps: int = 0
    step_seconds: list[float] = field(default_factory=list)  # wall time of each optimisation step


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state) -> None:
    if isinstance(state, torch.Tensor):  # checkpoints written before the python/cuda states were saved
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _checkpoint(path: Path, model, opt, sched, step: int, log: TrainLog, best: dict | None, scaler=None) -> None:
    """Everything a resumed run needs to continue bit for bit: trainable weights, optimiser and schedule state,
    the random states, the log and the best state so far (the data order is replayed from the seed). Written to
    a temporary file and renamed, so a kill mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    state = {"model": {k: v.cpu() for k, v in trainable_state(model).items()}, "opt": opt.state_dict(),
             "sched": sched.state_dict(), "step": step, "log": asdict(log), "best": best, "rng": _rng_state()}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    torch.save(state, tmp)
    tmp.replace(path)


def _resume(path: Path | None, model, opt, sched, scaler=None) -> tuple[int, TrainLog, dict | None]:
    if path is None or not path.is_file():
        return 0, TrainLog(), None
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"], strict=False)
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    log = TrainLog(**state["log"])
    log.dev = [tuple(x) for x in log.dev]
    return state["step"], log, state["best"]


def training_precision(device: torch.device, precision: str | None = None) -> str:
    """``precision`` when given, else the library's rule for ``device`` (:func:`nerlib.device.precision_for`: on
    the CPU fp32 unless ``$NERLIB_CPU_BF16=1`` and the CPU has native bf16)."""
    value = precision or precision_for(device)
    if value not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {value!r}")
    return value


def optimisation_step(loss: torch.Tensor, opt, sched, trainable: Sequence[torch.nn.Parameter], scaler=None) -> None:
    """Backward, clip the gradient norm at 1, AdamW step, schedule step (with a loss scaler for fp16)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
    sched.step()


def _loop(model, step_loss, n_steps: int, settings: MSDSettings, lr: float, dev_eval, checkpoint: Path | None,
          desc: str, progress: bool, precision: str = "fp32", on_step: Callable[[int], None] | None = None) -> TrainLog:
    """The shared optimisation loop: step, clip, schedule, evaluate every ``eval_every`` steps keeping the best
    state (by ``dev_eval``), checkpoint every ``checkpoint_every`` steps (and at every dev evaluation) for resume,
    restore the best state at the end. ``step_loss(step)`` runs the forward pass (under autocast for bf16/fp16) and
    returns an fp32 loss; ``on_step(done)`` is called after each step and its checkpoint (progress hooks, tests)."""
    opt, sched = make_optimizer(model, lr, n_steps, settings.warmup_ratio, settings.weight_decay)
    scaler = torch.amp.GradScaler(model_device(model).type) if precision == "fp16" else None
    start, log, best = _resume(checkpoint, model, opt, sched, scaler)
    t0 = time.perf_counter() - log.seconds
    trainable = [p for p in model.parameters() if p.requires_grad]
    every = max(0, int(getattr(settings, "checkpoint_every", 0)))
    bar = tqdm(range(start, n_steps), desc=desc, disable=not progress, initial=start, total=n_steps)
    for step in bar:
        model.train()
        tick = time.perf_counter()
        loss = step_loss(step)
        optimisation_step(loss, opt, sched, trainable, scaler)
        value = loss.detach().item()
        log.step_seconds.append(time.perf_counter() - tick)
        log.losses.append(value)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)  # drawn at tqdm's own interval
        done = step + 1
        save = checkpoint is not None and every > 0 and done % every == 0 and done < n_steps
        if dev_eval is not None and settings.eval_every > 0 and (done % settings.eval_every == 0 or done == n_steps):
            f1 = float(dev_eval())
            log.dev.append((done, f1))
            if f1 > log.best_f1:
                log.best_f1, log.best_step = f1, done
                best = {k: v.cpu() for k, v in trainable_state(model).items()}
            save = checkpoint is not None
        if save:
            log.seconds, log.steps = time.perf_counter() - t0, done
            _checkpoint(checkpoint, model, opt, sched, done, log, best, scaler)
        if on_step is not None:
            on_step(done)
    log.seconds, log.steps = time.perf_counter() - t0, n_steps
    model.zero_grad(set_to_none=True)
    if best is not None and log.best_step != n_steps:
        model.load_state_dict(best, strict=False)
    if best is None:
        log.best_step = n_steps
    return log


# ---------------------------------------------------------------------------------------------------------------
# Teacher
# ---------------------------------------------------------------------------------------------------------------


def teacher_step_loss(model: MultiExitTokenClassifier, features: Sequence[dict], pad_id: int, settings: MSDSettings,
                      order: Iterator[list[int]], precision: str = "fp32") -> Callable[[int], torch.Tensor]:
    """The teacher's step: the next batch of ``order`` padded to its longest sentence, the forward pass under
    autocast (``precision``), the teacher loss (Eq. 2) in fp32."""
    device = model_device(model)

    def step_loss(step: int) -> torch.Tensor:
        batch = to_device(collate([features[i] for i in next(order)], pad_id), device)
        with autocast(device, precision):
            out = model(batch["input_ids"], batch["attention_mask"])
        logits = [x.float() for x in out.logits]
        return teacher_loss(logits, batch["labels"], out.aux_weights, settings.alpha)

    return step_loss


def train_teacher(
    model: MultiExitTokenClassifier,
    tokenizer,
    train_data,
    settings: MSDSettings,
    dev_data=None,
    seed: int = 42,
    checkpoint: Path | None = None,
    progress: bool = True,
    precision: str | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainLog:
    """Fine-tune ``model`` on labelled source data (``tokens``/``ner_tags``) with the teacher loss; with
    ``dev_data`` the best dev-F1 state is kept (evaluated every ``settings.eval_every`` steps). The model moves to
    :func:`nerlib.device.get_device`; ``precision`` (default :func:`training_precision`) sets autocast; with a
    ``checkpoint`` path the run resumes from it and writes it every ``settings.checkpoint_every`` steps."""
    set_seed(seed)
    device = get_device()
    model.to(device)
    model.freeze_bottom(settings.freeze_layers)
    features = encode(train_data["tokens"], tokenizer, settings.max_length, train_data["ner_tags"], model.label2id,
                      where="teacher train data")
    n_steps = total_steps(settings.teacher_steps, settings.teacher_epochs, len(features), settings.batch_size)
    order = batch_order(features, settings.batch_size, seed, settings.length_pool)
    if checkpoint is not None:  # replay the data order up to the resumed step
        for _ in range(_resume_step(checkpoint)):
            next(order)
    precision = training_precision(device, precision)
    step_loss = teacher_step_loss(model, features, tokenizer.pad_token_id, settings, order, precision)
    dev_eval = _dev_f1(model, tokenizer, dev_data, settings)
    return _loop(model, step_loss, n_steps, settings, settings.teacher_lr, dev_eval, checkpoint, "teacher", progress,
                 precision, on_step)


def _dev_f1(model, tokenizer, dev_data, settings: MSDSettings):
    """A callable returning the model's dev F1 (model selection), or None without dev data."""
    if dev_data is None:
        return None
    return lambda: evaluate(model, tokenizer, dev_data, settings.eval_max_length, settings.eval_batch_size)["f1"]


def _resume_step(checkpoint: Path) -> int:
    if not checkpoint.is_file():
        return 0
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["step"])


# ---------------------------------------------------------------------------------------------------------------
# Student
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def teacher_outputs(teacher: MultiExitTokenClassifier, features: Sequence[dict], pad_id: int,
                    batch_size: int = 32, progress: bool = False,
                    cache: Path | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run the teacher once in eval mode: per sentence the probabilities of every exit ``[exits, T, C]`` (soft
    labels for the student) and the [CLS] vectors ``[N, H]`` (the MMD anchor), both on the CPU. They depend only
    on the fixed teacher and the data, so with ``cache`` (a folder) they are computed once per dataset and read
    back after (the file name hashes the token ids)."""
    path = None
    if cache is not None:
        ids = hashlib.sha256(json.dumps([f["input_ids"] for f in features]).encode()).hexdigest()[:16]
        path = Path(cache) / f"teacher-outputs-{ids}.pt"
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return list(saved["probs"]), saved["cls"]
    teacher.eval()
    device = model_device(teacher)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))  # little padding
    probs: list[torch.Tensor | None] = [None] * len(features)
    cls = torch.zeros(0)
    for start in tqdm(range(0, len(order), batch_size), desc="teacher outputs", disable=not progress):
        idx = order[start : start + batch_size]
        batch = to_device(collate([features[i] for i in idx], pad_id), device)
        out = teacher(batch["input_ids"], batch["attention_mask"])
        stacked = torch.stack([torch.softmax(x.float(), -1) for x in out.logits], 1).cpu()  # [B, exits, T, C]
        if not len(cls):
            cls = torch.zeros(len(features), out.cls.shape[-1])
        cls[idx] = out.cls.float().cpu()
        for row, i in enumerate(idx):
            probs[i] = stacked[row, :, : len(features[i]["input_ids"])].clone()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"probs": probs, "cls": cls}, tmp)
        tmp.replace(path)
    return probs, cls


def pad_probs(probs: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Stack per-sentence ``[exits, T_i, C]`` teacher probabilities into ``[exits, B, width, C]`` (zeros pad)."""
    e, _, c = probs[0].shape
    out = torch.zeros(e, len(probs), width, c)
    for i, p in enumerate(probs):
        out[:, i, : p.shape[1]] = p
    return out


def student_step_loss(student: MultiExitTokenClassifier, target: Sequence[dict], probs: Sequence[torch.Tensor],
                      source: Sequence[dict] | None, teacher_cls: torch.Tensor | None, pad_id: int,
                      settings: MSDSettings, variant: "Variant", order: Iterator[list[int]],
                      source_order: Iterator[list[int]] | None, precision: str = "fp32") -> Callable[[int], torch.Tensor]:
    """The student's step (Eq. 8): every exit imitates the cached teacher probabilities of the next target batch
    (padded to its longest sentence), plus MMD^L (teacher [CLS] of a source batch vs the student's [CLS] of the
    target batch) and MMD^M (vs the student's [CLS] of the same source batch, one more forward pass). Forward
    passes run under autocast (``precision``); losses in fp32."""
    device = model_device(student)
    use_mmd = variant.mmd_m or variant.mmd_l

    def step_loss(step: int) -> torch.Tensor:
        idx = next(order)
        batch = to_device(collate([target[i] for i in idx], pad_id), device)
        with autocast(device, precision):
            out = student(batch["input_ids"], batch["attention_mask"])
        t_probs = pad_probs([probs[i] for i in idx], batch["input_ids"].shape[1]).to(device)
        mask = batch["labels"] != IGNORE
        logits = [x.float() for x in out.logits]
        loss = student_loss(logits, list(t_probs), mask, out.aux_weights, settings.beta, settings.temperature)
        mmd_m = mmd_l = None
        if use_mmd:
            sidx = next(source_order)
            anchor = teacher_cls[sidx].to(device)
            if variant.mmd_l:
                mmd_l = mmd2(anchor, out.cls.float(), settings.kernel_mul, settings.kernel_num)
            if variant.mmd_m:
                sbatch = to_device(collate([source[i] for i in sidx], pad_id), device)
                with autocast(device, precision):
                    s_cls = student(sbatch["input_ids"], sbatch["attention_mask"], exits="none").cls
                mmd_m = mmd2(anchor, s_cls.float(), settings.kernel_mul, settings.kernel_num)
        return msd_student_objective(loss, mmd_m, mmd_l, settings.alpha_mmd, settings.beta_mmd, settings.mmd_scale)

    return step_loss


def train_student(
    student: MultiExitTokenClassifier,
    teacher: MultiExitTokenClassifier,
    tokenizer,
    target_sentences: Sequence[Sequence[str]],
    source_sentences: Sequence[Sequence[str]],
    settings: MSDSettings,
    variant: Variant = Variant(),
    dev_data=None,
    seed: int = 42,
    checkpoint: Path | None = None,
    progress: bool = True,
    precision: str | None = None,
    on_step: Callable[[int], None] | None = None,
    outputs_cache: Path | None = None,
) -> TrainLog:
    """Distil ``teacher`` into ``student`` on unlabelled ``target_sentences`` (word lists only: no tags exist
    here), plus the MMD terms on [CLS] features of ``source_sentences``. Both models must share exits when the
    distillers are used; the teacher stays frozen. Target batches are length-grouped; the MMD source batches stay
    random (an MMD estimate compares two samples of sentences, which grouping would skew). ``outputs_cache``: a
    folder where the teacher's outputs are kept per dataset (:func:`teacher_outputs`)."""
    if variant.distillers and student.exit_layers != teacher.exit_layers:
        raise ValueError(f"student exits {student.exit_layers} differ from teacher exits {teacher.exit_layers}")
    set_seed(seed)
    device = get_device()
    student.to(device)
    teacher.to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student.freeze_bottom(settings.freeze_layers)
    pad = tokenizer.pad_token_id
    tgt = encode(target_sentences, tokenizer, settings.max_length, where="target text")
    probs, _ = teacher_outputs(teacher, tgt, pad, settings.eval_batch_size, progress, outputs_cache)
    if not variant.distillers:
        probs = [p[-1:] for p in probs]
    use_mmd = variant.mmd_m or variant.mmd_l
    src = teacher_cls = src_order = None
    if use_mmd:
        src = encode(source_sentences, tokenizer, settings.max_length, where="source text")
        _, teacher_cls = teacher_outputs(teacher, src, pad, settings.eval_batch_size, progress, outputs_cache)
        src_order = endless_batches(len(src), min(settings.mmd_batch_size, len(src)), seed + 1)
    n_steps = total_steps(settings.student_steps, settings.student_epochs, len(tgt), settings.batch_size)
    order = batch_order(tgt, settings.batch_size, seed, settings.length_pool)
    for _ in range(_resume_step(checkpoint) if checkpoint is not None else 0):
        next(order)
        if use_mmd:
            next(src_order)
    precision = training_precision(device, precision)
    step_loss = student_step_loss(student, tgt, probs, src, teacher_cls, pad, settings, variant, order, src_order,
                                  precision)
    dev_eval = _dev_f1(student, tokenizer, dev_data, settings)
    return _loop(student, step_loss, n_steps, settings, settings.student_lr, dev_eval, checkpoint, "student", progress,
                 precision, on_step)
