"""Profiles and settings: the one switch between a CI smoke run, a CPU laptop and a Colab GPU.

A profile is plain data (model names, data sizes, steps, batch sizes, lengths). Notebooks and scripts read
``get_profile()`` and never branch on the profile's name themselves. The profile is chosen by the environment
variable ``NERLIB_PROFILE`` (``smoke``, ``small`` or ``gpu``); the default is ``small`` on a machine without a
CUDA GPU and ``gpu`` where one is present.

Other settings (all optional, all environment variables, never machine paths in code):

``NERLIB_DATA_DIR``
    folder holding local copies of the datasets (one sub-folder per dataset with ``train.jsonl``,
    ``validation.jsonl``, ``test.jsonl``). When unset, datasets are loaded from the Hugging Face hub.
``NERLIB_CACHE_DIR``
    where converted models and other derived artefacts go (default ``~/.cache/nerlib``).
``NERLIB_SEED``
    overrides the profile's seed (an integer from 0 to 2**32 - 1).

A value that cannot be used raises :class:`SettingError` naming the variable; :func:`check_settings` checks them all
(the command line does so before any work).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_ENV = "NERLIB_PROFILE"
DATA_DIR_ENV = "NERLIB_DATA_DIR"
CACHE_DIR_ENV = "NERLIB_CACHE_DIR"
SEED_ENV = "NERLIB_SEED"

PROFILES = ("smoke", "small", "gpu")


class SettingError(ValueError):
    """An environment setting (``NERLIB_*``) with an unusable value; the message names the variable."""


class NerlibWarning(UserWarning):
    """nerlib's own warnings: something about the reader's data or settings (passages skipped as too long, mentions
    dropped, a cut-off cache line, entity types a target lacks). Chapters print them as notes in the output
    (:func:`nerlib.course.show_nerlib_warnings`)."""


@dataclass(frozen=True)
class DataSettings:
    """How much of each dataset the chapters read (``None`` means the whole split)."""

    max_train_sentences: int | None = 2000
    max_eval_sentences: int | None = 500
    show_examples: int = 3


@dataclass(frozen=True)
class UniNERSettings:
    """UniversalNER: teacher data, instruction tuning of a causal student, zero-shot evaluation."""

    student: str = "smollm2-135m"
    teacher: str = "replay"  # "replay" (recorded ChatGPT answers), an OpenAI-compatible model name, or a local model
    teacher_data: str = "pile_ner_type"
    max_passages: int | None = 448
    passage_tokens: int = 256
    supervised_datasets: tuple[str, ...] = ("conll2003_en", "wikiann_en")
    supervised_per_dataset: int = 200
    negative_sampling: str = "frequency"
    negatives_per_passage: int = 2
    max_length: int = 512
    lora: bool = True
    lora_r: int = 16
    learning_rate: float = 1e-3  # high for LoRA, so that the chapters' few steps learn the answer format
    epochs: float = 1.0
    max_steps: int = -1  # -1: ``epochs`` over the data (small: one epoch, about 220 updates of 2 passages)
    batch_size: int = 1
    grad_accum: int = 2  # small: many small updates learn more than few large ones on a CPU budget
    bf16: bool = False  # allow mixed precision; the device picks it: bf16 (Ampere+), fp16 (T4), fp32 (CPU/MPS)
    gradient_checkpointing: bool = False
    eval_domains: tuple[str, ...] = ("ai", "literature", "music", "politics", "science")
    eval_passages_per_domain: int | None = 50  # 20 leaves a few points of noise; intervals are reported beside
    # 128: at 32, answers that list many mentions (an album's songs) or loop were cut before their closing ']' and
    # scored as missing: on CrossNER validation 128 scored +2.7 [+0.9, +4.6] F1 over 32 (uniner_answer_budget)
    max_new_tokens: int = 128
    # The untuned model's budget (None: max_new_tokens). An untuned chat model answers in prose until the budget
    # runs out (0 F1 on all 3,044 small-profile questions at 32), so a longer budget only costs time.
    base_max_new_tokens: int | None = 32
    ablation_max_steps: int = -1  # each variant of the chapter ablations (small: the full budget, as the benchmarks)
    ablation_eval_passages: int | None = 50  # per domain, for the chapter ablations


@dataclass(frozen=True)
class MSDSettings:
    """MSD: multi-exit teacher on the source language, distilled student on unlabelled target text."""

    encoder: str = "me5-small"
    source: str = "conll2003_en"
    targets: tuple[str, ...] = ("conll2002_es", "conll2002_nl")
    first_exit_layer: int = 4
    freeze_layers: int = 3
    max_length: int = 64
    eval_max_length: int = 512
    batch_size: int = 16
    teacher_lr: float = 5e-5
    student_lr: float = 2e-4  # 5e-5 for 250 steps: the plain student tags every entity B-PER (msd_student_budget)
    # Small: a converged teacher, 750 steps on 12,000 English sentences (shared/REFERENCE.md: a plain me5-small
    # fine-tune reaches 83.7 / 60.5 / 71.3 en/es/nl there). Over seeds 42-44 the multi-exit teacher scores 85.4 /
    # 59.3 / 69.1 on the first 1,000 test sentences (benchmarks/results/msd_teacher.md). This is the budget of the
    # ablation benchmark, so the chapters reuse its cached models. (At 250 steps on 4,000 sentences the teacher
    # scored 62.3 en / 32.8 es: training progress, not transfer.)
    teacher_steps: int = 750
    # From the converged teacher, the plain distilled student (w/o all) needs 1,500 steps at lr 2e-4 on 8,000
    # unlabelled sentences to match it: nl 70.6 against 70.9, es 62.7 against 59.8 (750 steps on 2,000 sentences:
    # nl 64.4); benchmarks/results/msd_student_budget.md
    student_steps: int = 1500
    warmup_ratio: float = 0.1
    train_sentences: int | None = 12000
    unlabeled_sentences: int | None = 8000
    eval_sentences: int | None = 1000
    alpha: float = 0.1
    beta: float = 0.1
    alpha_mmd: float = 1.0
    beta_mmd: float = 1.0
    mmd_scale: float = 1000.0
    tsne_sentences: int = 300
    # Added by the MSD implementation (nerlib/msd):
    teacher_epochs: float = 3.0  # used when teacher_steps == -1 (whole training set, as on a GPU)
    student_epochs: float = 3.0  # used when student_steps == -1
    mmd_batch_size: int = 8  # source sentences per student step for the two MMD terms
    temperature: float = 1.0  # softmax temperature of the student's probabilities in the distillation MSE
    eval_every: int = 0  # steps between dev evaluations for model selection (0: keep the last step; gpu: 500)
    eval_batch_size: int = 32
    checkpoint_every: int = 50  # steps between resumable checkpoints, whatever eval_every is (0: only at dev evals)
    length_pool: int = 50  # batches per length-sorted pool (length-grouped batching); 1: random batches
    select_on: str = "source"  # "source" (truly zero-shot) or "target" (the official code's choice)
    weight_decay: float = 0.01
    kernel_mul: float = 2.0
    kernel_num: int = 5
    seeds: tuple[int, ...] = (42,)  # seeds of the ablation grid


@dataclass(frozen=True)
class Profile:
    """Everything a chapter needs to size its work. Change a profile here, never in a notebook."""

    name: str
    seed: int = 42
    data: DataSettings = field(default_factory=DataSettings)
    uniner: UniNERSettings = field(default_factory=UniNERSettings)
    msd: MSDSettings = field(default_factory=MSDSettings)

    def replace(self, **changes) -> "Profile":
        """A copy with top-level fields changed (``profile.replace(seed=1)``)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A short human-readable summary for the first cell of a chapter."""
        return (
            f"profile={self.name} seed={self.seed} | UniversalNER student={self.uniner.student} | "
            f"MSD encoder={self.msd.encoder} | data dir={data_dir() or 'Hugging Face hub'}"
        )


def _smoke() -> Profile:
    return Profile(
        name="smoke",
        data=DataSettings(max_train_sentences=64, max_eval_sentences=32, show_examples=2),
        uniner=UniNERSettings(
            max_passages=16,
            supervised_per_dataset=8,
            max_length=384,
            max_steps=2,
            grad_accum=1,
            eval_domains=("ai", "music"),
            eval_passages_per_domain=2,
            max_new_tokens=16,
            base_max_new_tokens=None,
            ablation_max_steps=1,
            ablation_eval_passages=1,
        ),
        msd=MSDSettings(
            max_length=32,
            eval_max_length=128,
            batch_size=8,
            teacher_steps=2,
            student_steps=2,
            train_sentences=64,
            unlabeled_sentences=32,
            eval_sentences=32,
            tsne_sentences=30,
            mmd_batch_size=4,
            eval_every=0,
            eval_batch_size=16,
        ),
    )


def _small() -> Profile:
    # The UniNER chapters train at the benchmarks' budget (one epoch over 448 teacher passages, frequency negatives)
    # and evaluate 50 passages of every CrossNER domain, so a chapter shows the number on the results page and loads
    # the students the benchmarks cached (same settings, same cache key). Shorter budgets did not show the method:
    # 48 updates of 2 passages scored 6.0 / 2.0 strict F1 (AI / music), and with negatives answered [] to everything.
    return Profile(name="small")


def _gpu() -> Profile:
    return Profile(
        name="gpu",
        data=DataSettings(max_train_sentences=None, max_eval_sentences=None),
        uniner=UniNERSettings(
            student="Qwen/Qwen2.5-0.5B",
            teacher_data="Universal-NER/Pile-NER-type",
            max_passages=None,
            supervised_per_dataset=2000,
            max_length=1024,
            learning_rate=1e-4,
            epochs=1.0,
            batch_size=4,
            grad_accum=4,
            bf16=True,
            gradient_checkpointing=True,
            max_steps=-1,
            eval_domains=("ai", "literature", "music", "politics", "science"),
            eval_passages_per_domain=None,
            max_new_tokens=128,
            base_max_new_tokens=None,
            ablation_max_steps=500,
            ablation_eval_passages=100,
        ),
        msd=MSDSettings(
            encoder="bert-base-multilingual-cased",
            targets=("conll2002_es", "conll2002_nl"),
            max_length=128,
            eval_max_length=512,
            batch_size=32,
            teacher_lr=5e-5,
            student_lr=2e-5,
            teacher_steps=-1,
            student_steps=-1,
            train_sentences=None,
            unlabeled_sentences=None,
            eval_sentences=None,
            tsne_sentences=1000,
            mmd_batch_size=32,
            eval_every=500,
            eval_batch_size=64,
            seeds=(42, 43, 44),
        ),
    )


_BUILDERS = {"smoke": _smoke, "small": _small, "gpu": _gpu}


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU profile by default
        return False


def profile_name() -> str:
    """The selected profile's name: ``$NERLIB_PROFILE``, else ``gpu`` with CUDA, else ``small``."""
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not name:
        return "gpu" if _has_cuda() else "small"
    if name not in _BUILDERS:
        raise SettingError(f"{PROFILE_ENV}={name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    return name


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name`` (default: the one selected by ``$NERLIB_PROFILE``)."""
    name = name or profile_name()
    if name not in _BUILDERS:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    profile = _BUILDERS[name]()
    seed = env_seed()
    if seed is not None:
        profile = profile.replace(seed=seed)
    return profile


def env_seed() -> int | None:
    """``$NERLIB_SEED`` as an integer (``None`` when unset); any other value is a :class:`SettingError`."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return None
    try:
        seed = int(value)
    except ValueError:
        raise SettingError(f"{SEED_ENV}={value!r} is not an integer seed") from None
    if not 0 <= seed < 2**32:
        raise SettingError(f"{SEED_ENV}={value!r}: a seed must be between 0 and 2**32 - 1")
    return seed


def writable_dir(path: str | Path, what: str) -> Path:
    """Create folder ``path`` (with parents) and check it can be written; a file in the way, a missing permission
    or a read-only disk is a :class:`SettingError` naming ``what`` (e.g. ``"NERLIB_CACHE_DIR"``) and the path."""
    path = Path(path).expanduser()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SettingError(f"{what}: cannot create the folder {path}: {parent} is a file")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SettingError(f"{what}: cannot create the folder {path} ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SettingError(f"{what}: the folder {path} is not writable")
    return path


class HubUnavailableError(ConnectionError):
    """The Hugging Face hub could not be reached for something that has no local copy."""


def hub_unavailable(what: str, err: BaseException) -> HubUnavailableError:
    """The error to raise when ``what`` (e.g. ``"dataset 'conll2003_en'"``) needs the hub and it cannot be reached."""
    return HubUnavailableError(
        f"cannot reach the Hugging Face hub for {what} ({type(err).__name__}): set {DATA_DIR_ENV} to the course "
        "data folder to work offline, or connect to the internet"
    )


def check_settings() -> None:
    """Check every ``NERLIB_*`` setting this module reads before a command does any work; a bad value raises
    :class:`SettingError` (or ``FileNotFoundError`` for a data folder that does not exist) naming the variable."""
    if os.environ.get(PROFILE_ENV, "").strip():  # unset: the default is chosen later, only if needed (torch, ~4 s)
        profile_name()
    env_seed()
    data_dir()
    cache_dir()
    threads = os.environ.get("NERLIB_THREADS", "").strip()  # read by nerlib.course.set_threads
    if threads and not (threads.isdigit() and int(threads) >= 1):
        raise SettingError(f"NERLIB_THREADS={threads!r} must be a positive integer")
    device = os.environ.get("NERLIB_DEVICE", "").strip().lower()  # read by nerlib.device.get_device
    if device and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise SettingError(f"NERLIB_DEVICE={device!r} is not a device; use cpu, cuda, cuda:N, mps or auto")
    from nerlib.device import cpu_bf16_requested

    try:
        cpu_bf16_requested()
    except ValueError as err:
        raise SettingError(str(err)) from None


def data_dir() -> Path | None:
    """The local data folder from ``$NERLIB_DATA_DIR``, or ``None`` (then datasets come from the hub)."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{DATA_DIR_ENV}={value!r} is not a folder (point it at the course data folder, "
                                "or unset it to read datasets from the Hugging Face hub)")
    return path


def cache_dir() -> Path:
    """Where converted models and derived artefacts are kept (``$NERLIB_CACHE_DIR``, default ``~/.cache/nerlib``)."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "nerlib"
    what = f"{CACHE_DIR_ENV}={value!r}" if value else f"the cache folder ~/.cache/nerlib (set {CACHE_DIR_ENV})"
    return writable_dir(path, what)


def machine_summary() -> str:
    """The processor, the vector instructions torch's CPU kernels use, and torch's thread count, as one line.

    Recorded with every trained model and benchmark: floating-point sums are rounded differently by the AVX2 and
    AVX-512 kernels and by different thread counts, so the same settings and seed trained on two machines (or with
    two thread counts) give models that differ by about a point of F1. This line says which runs can be compared
    bit for bit."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    line = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        threads = torch.get_num_threads()
        line += (f", torch {torch.__version__} CPU kernels {torch.backends.cpu.get_cpu_capability()}, "
                 f"{threads} torch thread{'' if threads == 1 else 's'}")
    except ImportError:
        pass
    return line


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:
        pass
