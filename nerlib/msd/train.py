"""Training MSD: the teacher on labelled source text, the student on unlabelled target text, evaluation with
seqeval, model selection, resumable checkpoints and a cache of trained models.

The flow (Ma et al., EMNLP 2022, Sections 3.1-3.3):

1. :func:`train_teacher` fine-tunes a :class:`~nerlib.msd.model.MultiExitTokenClassifier` on the source language
   with :func:`~nerlib.msd.losses.teacher_loss` (a single-head model is the plain baseline).
2. :func:`teacher_outputs` runs the frozen teacher once over the unlabelled target sentences (probabilities of every
   exit) and over source sentences ([CLS] vectors for the MMD terms).
3. :func:`train_student` trains a *fresh* encoder on those soft labels with
   :func:`~nerlib.msd.losses.student_loss` plus the two MMD terms. Target tags are never read.

Speed on the CPU without changing the mathematics: batches are grouped by length (shuffled pools sorted by length,
then the batches shuffled) so a batch pads to about its own sentences' length; the frozen embeddings and bottom
layers build no autograd graph (none of their inputs or weights needs a gradient); the teacher's probabilities and
[CLS] vectors are computed once per dataset and cached on disk; AdamW is the fused kernel; losses run in fp32 even
when the forward pass runs under bf16/fp16 autocast (``nerlib.device.precision_for``). Every model and batch goes to
``nerlib.device.get_device()``. ``_loop`` writes a resumable checkpoint every ``checkpoint_every`` steps (weights,
optimiser, schedule, random state; the data order is replayed from the seed).

Everything that takes minutes is cached (:func:`cached_teacher`, :func:`cached_student`) under
``cache_dir()/msd`` keyed by the settings that change the result, so chapters and benchmarks train once.
"""

from __future__ import annotations

import copy
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

from nerlib.config import MSDSettings, cache_dir, set_seed
from nerlib.device import autocast, get_device, precision_for, to_device
from nerlib.msd.losses import IGNORE, mmd2, msd_student_objective, student_loss, teacher_loss
from nerlib.msd.model import MultiExitTokenClassifier

# ---------------------------------------------------------------------------------------------------------------
# Data: first-subword features
# ---------------------------------------------------------------------------------------------------------------


def tag_list(types: Sequence[str]) -> list[str]:
    """IOB2 tag names for entity ``types``: ``["O", "B-T1", "I-T1", ...]``."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def first_subword_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Label the first subword of each word, ``-100`` elsewhere (other subwords, special tokens)."""
    try:  # the shared implementation, when present
        from nerlib.data.align import align_labels

        return list(align_labels(list(word_ids), list(word_labels)))
    except ImportError:
        out, previous = [], None
        for wid in word_ids:
            out.append(IGNORE if wid is None or wid == previous else int(word_labels[wid]))
            previous = wid
        return out


def encode(
    sentences: Sequence[Sequence[str]],
    tokenizer,
    max_length: int,
    tags: Sequence[Sequence[str]] | None = None,
    label2id: dict[str, int] | None = None,
    where: str = "data",
) -> list[dict]:
    """Tokenize word lists into features ``{input_ids, labels}``. With ``tags`` the first subword of every word
    carries its tag id; without (unlabelled target text) it carries ``0``, which only marks the position — so
    the loss mask comes from the tokenizer, never from gold tags. Sentences are cut at ``max_length``."""
    if tags is not None and len(tags) != len(sentences):
        raise ValueError(f"{where}: {len(sentences)} sentences but {len(tags)} tag lists")
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    features = []
    for i, sentence in enumerate(sentences):
        if tags is None:
            word_labels = [0] * len(sentence)
        else:
            if len(tags[i]) != len(sentence):
                raise ValueError(f"{where}: sentence {i + 1} has {len(sentence)} tokens but {len(tags[i])} tags")
            unknown = [t for t in tags[i] if t not in label2id]
            if unknown:
                raise ValueError(f"{where}: sentence {i + 1}, field ner_tags: unknown tag {unknown[0]!r}")
            word_labels = [label2id[t] for t in tags[i]]
        labels = first_subword_labels(enc.word_ids(i), word_labels)
        features.append({"input_ids": enc["input_ids"][i], "labels": labels})
    return features


def collate(features: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to one batch: ``input_ids``, ``attention_mask``, ``labels`` (-100 on padding)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        labels[i, :n] = torch.tensor(f["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def endless_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Indices of shuffled batches, epoch after epoch (a fresh permutation per epoch, reproducible in ``seed``)."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, pool: int = 50) -> Iterator[list[int]]:
    """Indices of batches of similar length, epoch after epoch, reproducible in ``seed``.

    Every epoch takes a fresh permutation (dropping the last ``n % batch_size`` indices, like
    :func:`endless_batches`), cuts it into pools of ``pool`` batches, sorts each pool by length and cuts it into
    batches, then shuffles the epoch's batches. Each sentence is seen once per epoch as before; a batch only pads
    to about its own sentences' length (the padding is masked out of every loss, so this changes which sentences
    share a batch, not what a batch's loss is). ``pool=1`` gives plain random batches.
    """
    if pool < 1:
        raise ValueError(f"length pool must be at least 1 batch, got {pool}")
    rng = random.Random(seed)
    n = len(lengths)
    size = min(batch_size, n)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        order = order[: n - n % size] if n >= size else order
        batches = []
        for start in range(0, len(order), pool * size):
            chunk = sorted(order[start : start + pool * size], key=lambda i: lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(batches)
        yield from batches


# ---------------------------------------------------------------------------------------------------------------
# Prediction and evaluation
# ---------------------------------------------------------------------------------------------------------------


def predict_tags(
    model: MultiExitTokenClassifier,
    tokenizer,
    sentences: Sequence[Sequence[str]],
    max_length: int = 512,
    batch_size: int = 32,
    progress: bool = False,
    exit_index: int = -1,
) -> list[list[str]]:
    """IOB2 tags for every word from the head ``exit_index`` (default the last, the model's prediction; other
    indices read the short-channel exits, shallow first). Words cut off by ``max_length`` get ``O`` (evaluate
    at a length that cuts nothing: ``eval_max_length``)."""
    return predict_exits(model, tokenizer, sentences, max_length, batch_size, progress, [exit_index])[exit_index]


@torch.no_grad()
def predict_exits(
    model: MultiExitTokenClassifier,
    tokenizer,
    sentences: Sequence[Sequence[str]],
    max_length: int = 512,
    batch_size: int = 32,
    progress: bool = False,
    exit_indices: Sequence[int] | None = None,
) -> dict[int, list[list[str]]]:
    """Tags from several heads in one pass over the data: ``{exit index: tags per sentence}`` (default: all)."""
    model.eval()
    n_exits = len(model.exit_layers)
    indices = list(range(n_exits)) if exit_indices is None else list(exit_indices)
    last_only = all(i in (-1, n_exits - 1) for i in indices)
    features = encode(sentences, tokenizer, max_length)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out: dict[int, list] = {i: [None] * len(features) for i in indices}
    device = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc="predict", disable=not progress):
        idx = order[start : start + batch_size]
        batch = collate([features[i] for i in idx], tokenizer.pad_token_id)
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       exits="last" if last_only else "all").logits
        logits = [x.float().cpu() for x in logits]  # read values on the CPU
        positions = [(batch["labels"][row] != IGNORE).nonzero().flatten() for row in range(len(idx))]
        for k in indices:
            pred = (logits[-1] if last_only else logits[k]).argmax(-1)
            for row, i in enumerate(idx):
                tags = [model.labels[j] for j in pred[row, positions[row]].tolist()]
                out[k][i] = repair_iob2(tags + ["O"] * (len(sentences[i]) - len(tags)))
    return out


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's parameters live on (batches follow it)."""
    return next(model.parameters()).device


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Turn an ``I-X`` that does not continue an ``X`` entity into ``B-X`` (the usual decoding convention)."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def seqeval_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision/recall/F1 (x100) and ``per_type`` F1 (x100), as seqeval computes them."""
    try:
        from nerlib.metrics import seqeval_f1

        scores = seqeval_f1([list(g) for g in gold], [list(p) for p in pred])
        out = {k: (100 * v if k in ("precision", "recall", "f1") else v) for k, v in scores.items() if k != "per_type"}
        out["per_type"] = {t: 100 * v["f1"] for t, v in scores.get("per_type", {}).items()}
        return out
    except ImportError:
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

        gold, pred = [list(g) for g in gold], [list(p) for p in pred]
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        per_type = {k: 100 * v["f1-score"] for k, v in report.items() if "avg" not in k}
        return {"precision": 100 * precision_score(gold, pred, zero_division=0),
                "recall": 100 * recall_score(gold, pred, zero_division=0),
                "f1": 100 * f1_score(gold, pred, zero_division=0), "per_type": per_type}


def evaluate(model: MultiExitTokenClassifier, tokenizer, dataset, max_length: int = 512, batch_size: int = 32,
             progress: bool = False, exit_index: int = -1) -> dict:
    """seqeval scores (x100) of one head (default the last) on a dataset with ``tokens`` and ``ner_tags``."""
    pred = predict_tags(model, tokenizer, dataset["tokens"], max_length, batch_size, progress, exit_index)
    return seqeval_scores(dataset["ner_tags"], pred)


def evaluate_exits(model: MultiExitTokenClassifier, tokenizer, dataset, max_length: int = 512,
                   batch_size: int = 32) -> dict[int, float]:
    """F1 of every exit, keyed by its layer number: how much NER each depth of the encoder already knows."""
    preds = predict_exits(model, tokenizer, dataset["tokens"], max_length, batch_size)
    return {layer: seqeval_scores(dataset["ner_tags"], preds[i])["f1"] for i, layer in enumerate(model.exit_layers)}


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
        bar.set_postfix(loss=f"{value:.4f}")
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


def batch_order(features: Sequence[dict], batch_size: int, seed: int, pool: int) -> Iterator[list[int]]:
    """The training batches: length-grouped (:func:`length_grouped_batches`, ``pool`` batches per sorted pool)."""
    return length_grouped_batches([len(f["input_ids"]) for f in features], batch_size, seed, pool)


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


@dataclass(frozen=True)
class Variant:
    """Which parts of MSD a student uses: the short-channel distillers (multi-exit teacher and student) and the
    two MMD terms. ``Variant()`` is full MSD; all ``False`` is plain knowledge distillation."""

    distillers: bool = True
    mmd_m: bool = True
    mmd_l: bool = True


VARIANTS: dict[str, Variant] = {
    "MSD": Variant(True, True, True),
    "w/o distillers": Variant(False, True, True),
    "w/o MMD^L": Variant(True, True, False),
    "w/o MMD^M": Variant(True, False, True),
    "w/o all": Variant(False, False, False),
}


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


# ---------------------------------------------------------------------------------------------------------------
# Cached runs: train once, reuse everywhere
# ---------------------------------------------------------------------------------------------------------------


def run_key(**parts) -> str:
    """A short stable hash of the settings that determine a trained model."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_run(model: MultiExitTokenClassifier, folder: Path, encoder: str, log: TrainLog, meta: dict) -> Path:
    """Save a trained model compactly: its trainable parameters (frozen ones equal ``encoder``), config, log."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(trainable_state(model), folder / "trainable.pt")
    info = {"encoder": encoder, "labels": model.labels, "first_exit_layer": model.first_exit_layer,
            "multi_exit": model.multi_exit, "log": asdict(log), **meta}
    (folder / "run.json").write_text(json.dumps(info, indent=1, default=str))
    return folder


def load_run(folder: Path) -> tuple[MultiExitTokenClassifier, dict]:
    """Rebuild a model saved by :func:`save_run` (the pretrained encoder plus the saved trainable parameters)."""
    info = json.loads((folder / "run.json").read_text())
    model = MultiExitTokenClassifier.from_pretrained(info["encoder"], info["labels"], info["first_exit_layer"],
                                                     info["multi_exit"])
    missing, unexpected = model.load_state_dict(torch.load(folder / "trainable.pt", map_location="cpu",
                                                           weights_only=True), strict=False)
    if unexpected:
        raise ValueError(f"{folder / 'trainable.pt'}: unexpected parameters {unexpected[:3]}")
    model.to(get_device())
    model.eval()
    return model, info


def load_tokenizer(encoder: str):
    """The encoder's tokenizer (offline short names resolved like the model)."""
    from transformers import AutoTokenizer

    from nerlib.msd.model import resolve_encoder

    return AutoTokenizer.from_pretrained(resolve_encoder(encoder))


def _labels_for(source: str) -> list[str]:
    from nerlib.data import registry

    return tag_list(registry.get(source).labels)


def _load(name: str, split: str, limit: int | None):
    from nerlib.data import load

    return load(name, split, limit=limit)


def _msd_dir() -> Path:
    path = cache_dir() / "msd"
    path.mkdir(parents=True, exist_ok=True)
    return path


def teacher_key(settings: MSDSettings, multi_exit: bool, seed: int, dev: str) -> str:
    s = settings
    return run_key(role="teacher", encoder=s.encoder, source=s.source, multi_exit=multi_exit, seed=seed,
                   steps=s.teacher_steps, epochs=s.teacher_epochs, lr=s.teacher_lr, batch=s.batch_size,
                   n=s.train_sentences, max_length=s.max_length, alpha=s.alpha, first=s.first_exit_layer,
                   freeze=s.freeze_layers, warmup=s.warmup_ratio, wd=s.weight_decay, eval_every=s.eval_every, dev=dev,
                   eval_n=s.eval_sentences, pool=s.length_pool)


def cached_teacher(settings: MSDSettings, multi_exit: bool = True, seed: int = 42, target: str | None = None,
                   progress: bool = True) -> tuple[MultiExitTokenClassifier, dict]:
    """The teacher for these settings: loaded from the cache, or trained on ``settings.source`` and cached.
    Model selection uses the source dev set, or ``target``'s dev set when ``settings.select_on == "target"``."""
    dev_name = target if settings.select_on == "target" and target else settings.source
    folder = _msd_dir() / f"teacher-{teacher_key(settings, multi_exit, seed, dev_name)}"
    if (folder / "run.json").is_file():
        return load_run(folder)
    labels = _labels_for(settings.source)
    set_seed(seed)  # the fresh heads are random: seed them too
    model = MultiExitTokenClassifier.from_pretrained(settings.encoder, labels, settings.first_exit_layer, multi_exit)
    tokenizer = load_tokenizer(settings.encoder)
    train = _load(settings.source, "train", settings.train_sentences)
    dev = _load(dev_name, "validation", settings.eval_sentences) if settings.eval_every > 0 else None
    folder.mkdir(parents=True, exist_ok=True)
    log = train_teacher(model, tokenizer, train, settings, dev, seed, folder / "checkpoint.pt", progress)
    save_run(model, folder, settings.encoder, log, {"role": "teacher", "seed": seed, "dev": dev_name,
                                                     "settings": asdict(settings)})
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    model.eval()
    return model, json.loads((folder / "run.json").read_text())


def cached_student(settings: MSDSettings, target: str, variant: Variant | str = "MSD", seed: int = 42,
                   progress: bool = True) -> tuple[MultiExitTokenClassifier, dict]:
    """The student for ``target`` and ``variant``: from the cache, or distilled from :func:`cached_teacher`
    (multi-exit when the variant uses distillers) on unlabelled target train sentences and cached."""
    if isinstance(variant, str):
        variant = VARIANTS[variant]
    dev_name = target if settings.select_on == "target" else settings.source
    s = settings
    key = run_key(role="student", teacher=teacher_key(s, variant.distillers, seed,
                                                      target if s.select_on == "target" else s.source),
                  target=target, variant=asdict(variant), steps=s.student_steps, epochs=s.student_epochs,
                  lr=s.student_lr, n=s.unlabeled_sentences, beta=s.beta, t=s.temperature, mmd=(s.alpha_mmd, s.beta_mmd,
                  s.mmd_scale, s.mmd_batch_size, s.kernel_mul, s.kernel_num), seed=seed, dev=dev_name, pool=s.length_pool)
    folder = _msd_dir() / f"student-{key}"
    if (folder / "run.json").is_file():
        return load_run(folder)
    teacher, _ = cached_teacher(settings, variant.distillers, seed, target, progress)
    set_seed(seed)
    student = MultiExitTokenClassifier.from_pretrained(s.encoder, teacher.labels, s.first_exit_layer,
                                                       variant.distillers)
    tokenizer = load_tokenizer(s.encoder)
    target_text = _load(target, "train", s.unlabeled_sentences)["tokens"]  # words only: the tags are not read
    source_text = _load(s.source, "train", s.unlabeled_sentences)["tokens"]
    dev = _load(dev_name, "validation", s.eval_sentences) if s.eval_every > 0 else None
    folder.mkdir(parents=True, exist_ok=True)
    teacher_folder = _msd_dir() / f"teacher-{teacher_key(s, variant.distillers, seed, dev_name)}"
    log = train_student(student, teacher, tokenizer, target_text, source_text, s, variant, dev, seed,
                        folder / "checkpoint.pt", progress, outputs_cache=teacher_folder)
    save_run(student, folder, s.encoder, log, {"role": "student", "seed": seed, "target": target,
                                               "variant": asdict(variant), "dev": dev_name, "settings": asdict(s)})
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    student.eval()
    return student, json.loads((folder / "run.json").read_text())
