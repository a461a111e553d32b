"""The cache of trained MSD models: train once, reuse everywhere.

:func:`cached_teacher` and :func:`cached_student` return the model for a set of settings, loading it from
``<cache>/msd/teacher-<key>`` or ``student-<key>`` when it exists and training and saving it otherwise. The key
(:func:`teacher_key`, :func:`student_key`, through :func:`nerlib.runs.run_key`) hashes exactly the settings that
change the result, so chapters and benchmarks train once. The keys name folders that hold hours of training:
their values are pinned by ``tests/msd/test_msd_keys.py``.

A run folder is the model folder (``save_pretrained``: ``config.json`` and ``model.safetensors``) plus ``run.json``
(the training log and what the run was: role, seed, settings). It holds only the tensors training changed; the
frozen encoder weights are rebuilt from the encoder the config names (dozens of students are cached, and a full
copy each would be hundreds of MB). :func:`load_run` reads it back, and also reads the earlier format
(``trainable.pt`` + ``run.json``) of runs cached before.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from transformers.utils import SAFE_WEIGHTS_NAME

from nerlib.config import MSDSettings, cache_dir, machine_summary, set_seed
from nerlib.device import get_device
from nerlib.models import load_tokenizer
from nerlib.msd.model import MSDConfig, MultiExitTokenClassifier
from nerlib.msd.train import TrainLog, train_student, train_teacher, trainable_state
from nerlib.msd.variants import VARIANTS, Variant
from nerlib.runs import run_key

RUN_INFO = "run.json"
LEGACY_WEIGHTS = "trainable.pt"  # run folders written before the model was a PreTrainedModel


def write_run(model: MultiExitTokenClassifier, folder: Path, encoder: str, info: dict,
              state: dict[str, torch.Tensor]) -> Path:
    """Write a run folder: the model folder (``config.json`` naming ``encoder``, and ``model.safetensors`` holding
    only ``state``, the tensors that differ from the pretrained encoder) plus ``run.json`` (``info``). The frozen
    encoder weights are not copied: :func:`load_run` rebuilds them from ``encoder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.encoder = str(encoder)
    model.save_pretrained(folder, state_dict={k: v.detach().cpu().contiguous() for k, v in state.items()})
    (folder / RUN_INFO).write_text(json.dumps(info, indent=1, default=str))
    return folder


def save_run(model: MultiExitTokenClassifier, folder: Path, encoder: str, log: TrainLog, meta: dict) -> Path:
    """Save a trained model compactly: its trainable parameters (frozen ones equal ``encoder``), config, log, and
    the machine that trained it (:func:`nerlib.config.machine_summary`)."""
    info = {"encoder": encoder, "labels": model.labels, "first_exit_layer": model.first_exit_layer,
            "multi_exit": model.multi_exit, "log": asdict(log), "machine": machine_summary(), **meta}
    return write_run(model, folder, encoder, info, trainable_state(model))


def load_run(folder: Path) -> tuple[MultiExitTokenClassifier, dict]:
    """Rebuild a model saved by :func:`save_run` (the pretrained encoder plus the saved tensors), on
    :func:`nerlib.device.get_device`, in evaluation mode; returns it with the run's ``run.json``. Run folders of
    the earlier format (``trainable.pt``, the model described in ``run.json``) load too."""
    folder = Path(folder)
    info = json.loads((folder / RUN_INFO).read_text())
    if (folder / LEGACY_WEIGHTS).is_file():
        weights = folder / LEGACY_WEIGHTS
        model = MultiExitTokenClassifier.from_encoder(info["encoder"], info["labels"], info["first_exit_layer"],
                                                      info["multi_exit"])
        state = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        weights = folder / SAFE_WEIGHTS_NAME
        config = MSDConfig.from_pretrained(folder)
        model = MultiExitTokenClassifier.from_encoder(config.encoder, config.labels, config.first_exit_layer,
                                                      config.multi_exit, config.head_dropout)
        state = load_file(weights)
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{weights}: unexpected parameters {unexpected[:3]}")
    model.to(get_device())
    model.eval()
    return model, info


def _labels_for(source: str) -> list[str]:
    from nerlib.data import registry

    return registry.get(source).tag_names


def _load(name: str, split: str, limit: int | None):
    from nerlib.data import load

    return load(name, split, limit=limit)


def msd_dir() -> Path:
    """``<cache>/msd``, where the trained teachers and students live (created)."""
    path = cache_dir() / "msd"
    path.mkdir(parents=True, exist_ok=True)
    return path


def teacher_key(settings: MSDSettings, multi_exit: bool, seed: int, dev: str) -> str:
    """The cache key of a teacher: every setting that changes it (``dev``: the dataset of model selection)."""
    s = settings
    return run_key(role="teacher", encoder=s.encoder, source=s.source, multi_exit=multi_exit, seed=seed,
                   steps=s.teacher_steps, epochs=s.teacher_epochs, lr=s.teacher_lr, batch=s.batch_size,
                   n=s.train_sentences, max_length=s.max_length, alpha=s.alpha, first=s.first_exit_layer,
                   freeze=s.freeze_layers, warmup=s.warmup_ratio, wd=s.weight_decay, eval_every=s.eval_every, dev=dev,
                   eval_n=s.eval_sentences, pool=s.length_pool)


def _dev_name(settings: MSDSettings, target: str | None) -> str:
    """The dataset of model selection: the source, or ``target`` when ``settings.select_on == "target"``."""
    return target if settings.select_on == "target" and target else settings.source


def student_key(settings: MSDSettings, target: str, variant: Variant, seed: int) -> str:
    """The cache key of a student: its teacher's key, the target, the variant and the student's settings."""
    s = settings
    dev = _dev_name(s, target)
    return run_key(role="student", teacher=teacher_key(s, variant.teacher_is_multi_exit, seed, dev), target=target,
                   variant=variant.key(), steps=s.student_steps, epochs=s.student_epochs, lr=s.student_lr,
                   n=s.unlabeled_sentences, beta=s.beta, t=s.temperature,
                   mmd=(s.alpha_mmd, s.beta_mmd, s.mmd_scale, s.mmd_batch_size, s.kernel_mul, s.kernel_num),
                   seed=seed, dev=dev, pool=s.length_pool)


def cached_teacher(settings: MSDSettings, multi_exit: bool = True, seed: int = 42, target: str | None = None,
                   progress: bool = True) -> tuple[MultiExitTokenClassifier, dict]:
    """The teacher for these settings: loaded from the cache, or trained on ``settings.source`` and cached.
    Model selection uses the source dev set, or ``target``'s dev set when ``settings.select_on == "target"``."""
    dev_name = _dev_name(settings, target)
    folder = msd_dir() / f"teacher-{teacher_key(settings, multi_exit, seed, dev_name)}"
    if (folder / RUN_INFO).is_file():
        return load_run(folder)
    labels = _labels_for(settings.source)
    set_seed(seed)  # the fresh heads are random: seed them too
    model = MultiExitTokenClassifier.from_encoder(settings.encoder, labels, settings.first_exit_layer, multi_exit)
    tokenizer = load_tokenizer(settings.encoder)
    train = _load(settings.source, "train", settings.train_sentences)
    dev = _load(dev_name, "validation", settings.eval_sentences) if settings.eval_every > 0 else None
    folder.mkdir(parents=True, exist_ok=True)
    log = train_teacher(model, tokenizer, train, settings, dev, seed, folder / "checkpoint.pt", progress)
    save_run(model, folder, settings.encoder, log, {"role": "teacher", "seed": seed, "dev": dev_name,
                                                     "settings": asdict(settings)})
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    model.eval()
    return model, json.loads((folder / RUN_INFO).read_text())


def cached_student(settings: MSDSettings, target: str, variant: Variant | str = "MSD", seed: int = 42,
                   progress: bool = True) -> tuple[MultiExitTokenClassifier, dict]:
    """The student for ``target`` and ``variant``: from the cache, or distilled from :func:`cached_teacher`
    (multi-exit when the variant uses distillers, or as ``variant.multi_exit_teacher`` says) on unlabelled target
    train sentences and cached."""
    if isinstance(variant, str):
        variant = VARIANTS[variant]
    s = settings
    dev_name = _dev_name(s, target)
    folder = msd_dir() / f"student-{student_key(s, target, variant, seed)}"
    if (folder / RUN_INFO).is_file():
        return load_run(folder)
    teacher, _ = cached_teacher(s, variant.teacher_is_multi_exit, seed, target, progress)
    set_seed(seed)
    student = MultiExitTokenClassifier.from_encoder(s.encoder, teacher.labels, s.first_exit_layer, variant.distillers)
    tokenizer = load_tokenizer(s.encoder)
    target_text = _load(target, "train", s.unlabeled_sentences)["tokens"]  # words only: the tags are not read
    source_text = _load(s.source, "train", s.unlabeled_sentences)["tokens"]
    dev = _load(dev_name, "validation", s.eval_sentences) if s.eval_every > 0 else None
    folder.mkdir(parents=True, exist_ok=True)
    teacher_folder = msd_dir() / f"teacher-{teacher_key(s, variant.teacher_is_multi_exit, seed, dev_name)}"
    log = train_student(student, teacher, tokenizer, target_text, source_text, s, variant, dev, seed,
                        folder / "checkpoint.pt", progress, outputs_cache=teacher_folder)
    save_run(student, folder, s.encoder, log, {"role": "student", "seed": seed, "target": target,
                                               "variant": variant.key(), "dev": dev_name, "settings": asdict(s)})
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    student.eval()
    return student, json.loads((folder / RUN_INFO).read_text())
