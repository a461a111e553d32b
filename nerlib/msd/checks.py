"""Checks of an MSD run's settings and data, made before any training starts.

A teacher trains for minutes before the student's target is even read, so a typo in a target name, a missing data
file, a budget of ``-5`` steps or a target whose entity types share nothing with the source would otherwise surface
late (or never: a student that can only predict types the target lacks scores F1 0.0 and the run "succeeds").
:func:`check_msd` raises ``ValueError`` (or ``FileNotFoundError`` for missing data) naming the setting, dataset or
label sets, and warns when source and target share only some types. It imports no torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

from nerlib.config import NerlibWarning

#: Settings that are a number of steps: positive, or -1 for "use the epochs setting instead".
STEP_SETTINGS = ("teacher_steps", "student_steps")
#: Settings that are a count of sentences: positive, or None for the whole split.
SIZE_SETTINGS = ("train_sentences", "unlabeled_sentences", "eval_sentences")
#: Settings that must be positive numbers.
POSITIVE_SETTINGS = ("batch_size", "eval_batch_size", "mmd_batch_size", "max_length", "eval_max_length",
                     "teacher_lr", "student_lr", "teacher_epochs", "student_epochs", "first_exit_layer",
                     "tsne_sentences", "temperature")


def check_budget(settings: Any) -> None:
    """Steps, sizes, batch sizes, lengths and learning rates of ``settings`` (an ``MSDSettings``) are usable."""
    for name in STEP_SETTINGS:
        value = getattr(settings, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
            raise ValueError(f"msd.{name}={value!r}: use a positive number of steps (or -1 to train by epochs)")
    for name in SIZE_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"msd.{name}={value!r}: use a positive number of sentences (or None for all)")
    for name in POSITIVE_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"msd.{name}={value!r}: must be a positive number")
    if getattr(settings, "eval_every", 0) < 0:
        raise ValueError(f"msd.eval_every={settings.eval_every!r}: use 0 (keep the last step) or a positive number")


def check_dataset(name: Any, role: str, splits: Sequence[str] = ()) -> Any:
    """The registry entry of dataset ``name`` used as ``role`` (``source``/``target``); with a local data folder,
    each of ``splits`` must exist there. Unknown names raise ``ValueError`` listing the known ones."""
    from nerlib.config import data_dir
    from nerlib.data import registry

    if isinstance(name, str) and name not in registry.REGISTRY and Path(name).exists():  # a local data folder
        for split in splits:
            registry.split_file(name, split)  # FileNotFoundError naming the folder and the split
        return registry.get(name)
    if not isinstance(name, str) or name not in registry.REGISTRY:
        raise ValueError(f"unknown {role} dataset {name!r}; known: {', '.join(registry.names())} (or a data folder)")
    info = registry.get(name)
    root = data_dir()
    if root is not None:
        for split in splits:
            path = root / name / f"{split}.jsonl"
            if not path.is_file():
                hint = "" if info.local else " (this dataset is only on the hub: unset NERLIB_DATA_DIR to download it)"
                raise FileNotFoundError(f"{role} dataset {name!r}: {path} not found{hint}")
    return info


def check_labels(source: str, target: str) -> list[str]:
    """The entity types ``source`` and ``target`` share (sorted). None shared: ``ValueError`` naming both sets (the
    student could only predict types the target never has); some not shared: a warning listing the shared types."""
    from nerlib.data import registry

    src, tgt = set(registry.get(source).labels), set(registry.get(target).labels)
    shared = sorted(src & tgt)
    if not shared:
        raise ValueError(
            f"source {source!r} and target {target!r} share no entity type: source types {sorted(src)}, target "
            f"types {sorted(tgt)}; a student distilled from this teacher can only predict source types"
        )
    if src != tgt:
        warnings.warn(
            f"source {source!r} and target {target!r} share only the types {shared} (source only: "
            f"{sorted(src - tgt) or 'none'}, target only: {sorted(tgt - src) or 'none'}); target-only types are "
            "never predicted and count as misses", NerlibWarning, stacklevel=2,
        )
    return shared


def check_msd(settings: Any, targets: Sequence[str] | None = None, train: bool = True) -> None:
    """Everything an MSD command needs, checked up front: the budget, the source and every target (known, their
    files present in a local data folder, entity types shared with the source). ``targets`` defaults to
    ``settings.targets``; ``train=False`` checks only what evaluation reads (test splits)."""
    check_budget(settings)
    targets = settings.targets if targets is None else targets
    targets = [targets] if isinstance(targets, str) else list(targets)
    dev = ("validation",) if train and getattr(settings, "eval_every", 0) > 0 else ()
    on_target = getattr(settings, "select_on", "source") == "target"
    check_dataset(settings.source, "source", (("train",) if train else ()) + ("test",) + (() if on_target else dev))
    for target in targets:
        check_dataset(target, "target", (("train",) if train else ()) + ("test",) + (dev if on_target else ()))
        check_labels(settings.source, target)
