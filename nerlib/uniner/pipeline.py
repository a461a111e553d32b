"""The UniversalNER pipeline steps: each runs the concept modules end to end and writes or caches its result.

* :func:`annotate` / :func:`annotate_file` (``nerlib uniner annotate [--input FILE]``): a teacher
  (:mod:`~nerlib.uniner.teacher`) over passages, answers parsed and cleaned (:mod:`~nerlib.uniner.annotations`);
* :func:`build_training_examples`: recorded teacher annotations (:mod:`~nerlib.uniner.pile`), sampled negative
  types and supervised sentences (:mod:`~nerlib.uniner.supervised`) as instruction examples;
* :func:`train_or_load` (the chapters: trained once, cached by :func:`~nerlib.uniner.train.run_key`) and
  :func:`train` (``nerlib uniner train``; ``python -m nerlib.uniner.pipeline`` under ``accelerate launch``), both
  through :func:`nerlib.uniner.train.fit`;
* :func:`evaluate` and :func:`evaluate_student` (``nerlib uniner evaluate``), :func:`evaluate_base` and
  :func:`train_and_evaluate` (chapters and benchmarks), scoring through :mod:`~nerlib.uniner.evaluate`.

The concept modules never import this one: the import graph goes from the steps down to the concepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nerlib.config import Profile, UniNERSettings, cache_dir, get_profile
from nerlib.device import get_device
from nerlib.runs import run_dir
from nerlib.uniner import annotations as ann
from nerlib.uniner.eval_data import eval_records_from_dataset, parse_label_map, write_eval_file
from nerlib.uniner.evaluate import evaluate_domains, predict, read_eval_file, score_per_type
from nerlib.uniner.pile import attach_recorded, load_pile_ner_type, replay_teacher
from nerlib.uniner.records import InstructionExample, read_examples
from nerlib.uniner.supervised import instruction_mixture
from nerlib.uniner.teacher import AnswerCache, Teacher, TransformersTeacher
from nerlib.uniner.train import (
    SAVE_STEPS, fit, load_student, load_trained, ready_for_inference, run_key, training_dtype, training_precision,
)

# ----------------------------------------------------------------------------------------------------------------
# Annotate (``nerlib uniner annotate``)
# ----------------------------------------------------------------------------------------------------------------

#: Environment variable naming an OpenAI-compatible endpoint for a non-replay teacher (e.g. a local vLLM server).
TEACHER_URL_ENV = "NERLIB_TEACHER_URL"


def make_teacher(teacher: str, recorded: Any = None, cache: AnswerCache | str | Path | None = None) -> Teacher:
    """The profile's teacher: ``"replay"`` (the ``recorded`` annotations), an API model name (served at
    ``$NERLIB_TEACHER_URL`` or by OpenAI with ``$OPENAI_API_KEY``), or else a local transformers model."""
    if teacher == "replay":
        if recorded is None:
            raise ValueError("the replay teacher needs the recorded annotations")
        return replay_teacher(recorded, cache=AnswerCache(cache) if isinstance(cache, (str, Path)) else cache)
    url = os.environ.get(TEACHER_URL_ENV)
    if url or os.environ.get("OPENAI_API_KEY"):
        from nerlib.uniner.openai_teacher import OpenAITeacher  # the openai SDK only when it is used

        return OpenAITeacher(teacher, base_url=url or "https://api.openai.com/v1", cache=cache)
    return TransformersTeacher(teacher, cache=cache)


@dataclass(frozen=True)
class InputPassage:
    """One passage of an input file: its text and an id naming the file and line."""

    text: str
    id: str


def read_passages(path: str | Path) -> list[InputPassage]:
    """The passages of a text file, one per line (blank lines skipped), or of a JSONL file (``.jsonl`` or a first
    line starting with ``{``) whose records have a string ``text`` and optionally an ``id``. Errors name the file,
    the line and the field."""
    from nerlib.data.io import DataFormatError, json_records, text_lines

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    first = next((line for _, line, _ in text_lines(path) if line.strip()), "")
    out: list[InputPassage] = []
    if path.suffix == ".jsonl" or first.lstrip().startswith("{"):
        for lineno, record in json_records(path, blank_lines="skip"):
            if not isinstance(record, dict):
                raise DataFormatError(path, lineno, None, f"expected a JSON object with a \"text\" field, "
                                      f"got {type(record).__name__}")
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                problem = "missing" if text is None else f"expected a non-empty string, got {text!r:.60}"
                raise DataFormatError(path, lineno, "text", problem)
            pid = record.get("id", f"{path.name}:{lineno}")
            if not isinstance(pid, (str, int)) or isinstance(pid, bool):
                raise DataFormatError(path, lineno, "id", f"expected a string or an integer, got {pid!r:.60}")
            out.append(InputPassage(text, str(pid)))
    else:
        out = [InputPassage(line.strip(), f"{path.name}:{lineno}")
               for lineno, line, _ in text_lines(path) if line.strip()]
    if not out:
        raise ValueError(f"{path}: no passages (expected one passage per line, or JSONL with a \"text\" field)")
    return out


def _run(teacher: Teacher, passages: Sequence[Any], out: Path, recorded: Any = None, progress: bool = True,
         max_requests: int | None = None, max_cost: float | None = None, extra: dict | None = None) -> dict:
    """Ask ``teacher`` about ``passages``, parse and clean the answers, write ``annotations.jsonl`` and
    ``summary.json`` into ``out`` (the answers are in the teacher's cache) and return the summary."""
    results = list(teacher.annotate(passages, progress=progress, max_requests=max_requests, max_cost=max_cost))
    annotations, report = ann.annotate(results)
    if recorded is not None:
        attach_recorded(annotations, recorded)  # keep the recorded ids and negatives (types asked, answered empty)
    ann.write_annotations(annotations, out / "annotations.jsonl")
    s = teacher.stats
    summary = {
        **(extra or {}),
        "teacher": teacher.model,
        "passages": s.passages,
        "asked": s.asked,
        "answered": sum(r.ok for r in results),
        "cached": s.cached,
        "failed": s.failed,
        "not_asked": s.not_asked,
        "parse_failures": report.parse_failed,
        "kept_entities": report.kept,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cost": round(s.cost, 6) if teacher.price_per_1k else None,
        "stopped": s.stopped,
    }
    summary.update((k, v) for k, v in report.as_dict().items() if k != "passages")
    summary.update(("annotated_passages" if k == "passages" else k, v) for k, v in ann.summary(annotations).items())
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def annotate(profile: Profile | None = None, out_dir: str | Path | None = None, progress: bool = True,
             max_requests: int | None = None, max_cost: float | None = None) -> dict:
    """Run the profile's teacher over the profile's passages (the recorded Pile-NER-type passages), then parse and
    clean the answers. Writes ``answers.jsonl`` (the resumable cache), ``annotations.jsonl`` and ``summary.json``
    (also as ``report.json``, its earlier name) into ``out_dir`` (default ``<cache>/runs/<profile>/uniner_annotate``)
    and returns the counts."""
    profile = profile or get_profile()
    u = profile.uniner
    out = run_dir(profile.name, "uniner_annotate", out_dir)
    recorded = load_pile_ner_type(u.teacher_data, limit=u.max_passages)
    teacher = make_teacher(u.teacher, recorded, cache=out / "answers.jsonl")
    summary = _run(teacher, [a.passage for a in recorded], out, recorded, progress, max_requests, max_cost)
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


def annotate_file(
    input: str | Path,
    out_dir: str | Path,
    teacher: str,
    base_url: str,
    api_key_env: str = "OPENAI_API_KEY",
    max_requests: int | None = None,
    max_cost: float | None = None,
    price_per_1k: tuple[float, float] | None = None,
    max_workers: int = 4,
    timeout: float = 120.0,
    progress: bool = True,
) -> dict:
    """Annotate the passages of ``input`` (see :func:`read_passages`) with the model ``teacher`` behind the
    OpenAI-compatible endpoint ``base_url``, the key read from ``$api_key_env``. Writes ``answers.jsonl`` (the
    resumable cache), ``annotations.jsonl`` and ``summary.json`` into ``out_dir`` and returns the summary."""
    from nerlib.uniner.openai_teacher import OpenAITeacher

    passages = read_passages(input)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client = OpenAITeacher(teacher, base_url=base_url, cache=out / "answers.jsonl", api_key_env=api_key_env,
                           max_workers=max_workers, timeout=timeout, price_per_1k=price_per_1k)
    parts = client._parts  # the address without a query string, which could hold a credential
    where = {"input": str(input), "base_url": f"{parts.scheme}://{parts.netloc}{parts.path}"}
    return _run(client, passages, out, None, progress, max_requests, max_cost, extra=where)


# ----------------------------------------------------------------------------------------------------------------
# Training data and training
# ----------------------------------------------------------------------------------------------------------------


def build_training_examples(
    settings: UniNERSettings, seed: int = 42, progress: bool = True
) -> list[InstructionExample]:
    """The profile's training mixture: ``settings.max_passages`` recorded teacher passages (Pile-NER-type), their
    negatives (``negative_sampling``, ``negatives_per_passage``) and the supervised sets through the
    dataset-specific template (``supervised_datasets``; pass ``()`` for teacher data only)."""
    annotations = load_pile_ner_type(settings.teacher_data, limit=settings.max_passages)
    return instruction_mixture(annotations, settings, seed=seed, progress=progress)


def student_name(settings: UniNERSettings, variant: str = "per_type") -> str:
    """A readable name for the student ``settings`` train, e.g. ``smollm2-135m-frequency+supervised``: the cache
    folder is ``<name>-<run key>``, so chapters and benchmarks that train the same settings share one model."""
    name = f"{Path(settings.student).name}-{settings.negative_sampling}"
    name += "+supervised" if settings.supervised_datasets else ""
    return name + ("-all-in-one" if variant == "all_in_one" else "")


def train_or_load(
    profile: Profile,
    examples: Sequence[InstructionExample],
    name: str | None = None,
    variant: str = "per_type",
    settings: UniNERSettings | None = None,
    progress: bool = True,
    save_steps: int | None = SAVE_STEPS,
) -> tuple[Any, Any, dict]:
    """Train the profile's student on ``examples`` once and cache it under ``$NERLIB_CACHE_DIR/uniner/<name>-<key>``
    (the key hashes settings, data and seed; ``name`` defaults to :func:`student_name`, so every caller training
    the same settings shares the model); later calls, later chapters and the benchmarks load the cached model.

    While training, a checkpoint is written every ``save_steps`` steps into that folder; a call that finds
    checkpoints but no finished model (the previous run was interrupted: a Colab disconnect, a killed kernel)
    continues from the newest one. The checkpoints are removed once the model is saved.

    Returns (model ready for inference on the library's device, tokenizer, the training record with ``model_dir``
    the folder, ``cached`` telling which happened and ``resumed_from`` the checkpoint a resumed run started from)."""
    settings = settings or profile.uniner
    key = run_key(settings, examples, profile.seed, variant)
    name = name or student_name(settings, variant)
    folder = cache_dir() / "uniner" / f"{name}-{key}"
    record_path = folder / "train_result.json"
    device = get_device()
    if record_path.exists():
        model, tokenizer = load_trained(folder, settings.student, device)
        return model, tokenizer, {**json.loads(record_path.read_text()), "model_dir": str(folder), "cached": True}
    from transformers import set_seed

    precision = training_precision(settings, device)
    set_seed(profile.seed)  # LoRA's initial weights too depend on the seed only (a resumed run starts alike)
    model, tokenizer = load_student(
        settings.student, settings.lora, settings.lora_r, dtype=training_dtype(precision),
        gradient_checkpointing=settings.gradient_checkpointing,
    )
    resume = any(folder.glob("checkpoint-*"))
    result = fit(model, tokenizer, examples, folder, settings, seed=profile.seed, variant=variant, progress=progress,
                 save_steps=save_steps, resume=resume, device=device)
    record = {**result.to_dict(), "student": settings.student, "key": key}
    record_path.write_text(json.dumps(record, indent=2))
    for checkpoint in folder.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    return ready_for_inference(model, device), tokenizer, {**record, "model_dir": str(folder), "cached": False}


def train(
    profile: Profile | None = None,
    out_dir: str | Path | None = None,
    examples: Sequence[InstructionExample] | str | Path | None = None,
    resume: bool = False,
    save_steps: int | None = 100,
) -> dict:
    """Command-line step ``nerlib uniner train``: train the profile's student on an examples JSONL file into
    ``out_dir`` (default ``<cache>/runs/<profile>/uniner_train``); the examples default to the sibling
    ``uniner_data/train.jsonl``, written by ``nerlib uniner build-data``."""
    profile = profile or get_profile()
    out_dir = run_dir(profile.name, "uniner_train", out_dir)
    if examples is None:
        examples = out_dir.parent / "uniner_data" / "train.jsonl"
    if isinstance(examples, (str, Path)):
        if not Path(examples).exists():
            raise FileNotFoundError(f"no training examples at {examples}: run `nerlib uniner build-data` first")
        examples = read_examples(examples)
    from transformers import set_seed

    u = profile.uniner
    set_seed(profile.seed)
    model, tokenizer = load_student(u.student, u.lora, u.lora_r, dtype=training_dtype(training_precision(u)),
                                    gradient_checkpointing=u.gradient_checkpointing)
    result = fit(model, tokenizer, examples, out_dir, u, seed=profile.seed, save_steps=save_steps, resume=resume)
    return {k: v for k, v in result.to_dict().items() if k != "log_history"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m nerlib.uniner.pipeline``: :func:`train` from the command line, also under ``accelerate launch``
    (DDP, or FSDP through an accelerate config file; see :mod:`nerlib.uniner.train`)."""
    parser = argparse.ArgumentParser(description="Instruction-tune the UniversalNER student on an examples file.")
    parser.add_argument("--examples", required=True, help="instruction examples JSONL (nerlib.uniner.records)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--profile", default=None, help="smoke, small or gpu (default: $NERLIB_PROFILE)")
    parser.add_argument("--save-steps", type=int, default=100)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("--student", help="student model (short name, hub id or folder; default: the profile's)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.student:
        profile = profile.replace(uniner=dataclasses.replace(profile.uniner, student=args.student))
    result = train(profile, args.output_dir, args.examples, args.resume, args.save_steps)
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch every process gets here: print once
        print(json.dumps(result, indent=2))


# ----------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------


def evaluate(profile: Profile | None = None, model: str | None = None, out_dir: str | Path | None = None) -> dict:
    """Command-line step ``nerlib uniner evaluate``: evaluate a trained folder (LoRA adapter or full model) or,
    when ``model`` is a model name or omitted, the profile's untuned student, on the profile's domains."""
    profile = profile or get_profile()
    u = profile.uniner
    if model and Path(model).is_dir():  # a trained folder: LoRA adapter or full model (on the library's device)
        lm, tok = load_trained(model, u.student)
    else:
        lm, tok = load_student(model or u.student, lora=False)
        lm = ready_for_inference(lm)
    table = evaluate_domains(lm, tok, u.eval_domains, u.eval_passages_per_domain, u.max_new_tokens,
                             cache_dir=Path(out_dir) / "predictions" if out_dir else None)
    result = {"model": model or u.student, "table": table.reset_index().to_dict(orient="records")}
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "scores.json").write_text(json.dumps(result, indent=2))
    return result


def evaluate_student(
    model: str | Path | None = None,
    eval_file: str | Path | None = None,
    dataset: str | None = None,
    split: str = "test",
    labels: dict[str, str] | str | None = None,
    limit: int | None = None,
    max_new_tokens: int = 64,
    out_dir: str | Path | None = None,
    profile: Profile | None = None,
    progress: bool = True,
) -> dict:
    """Command-line step ``nerlib uniner evaluate --eval-file FILE | --dataset NAME_OR_PATH``: a trained student
    (adapter or exported folder, or a model name; default the profile's untuned student) on any file in the
    official format or on a BIO dataset converted with :func:`nerlib.uniner.eval_data.eval_records_from_dataset`.
    ``limit`` keeps the first N passages. Predictions are cached in ``out_dir`` (a rerun resumes)."""
    from nerlib.uniner.extract import Extractor

    if (eval_file is None) == (dataset is None):
        raise ValueError("give exactly one of --eval-file or --dataset")
    if isinstance(labels, str):
        labels = parse_label_map(labels)
    if dataset is not None:
        records = eval_records_from_dataset(dataset, split, labels, limit)
        target = Path(out_dir) / "eval_file.jsonl" if out_dir else _temporary_file()
        eval_file = write_eval_file(records, target)
    elif labels:
        raise ValueError("--labels goes with --dataset (an evaluation file already names its types)")
    passages = read_eval_file(eval_file, limit)
    if model is None:
        model = (profile or get_profile()).uniner.student
    extractor = Extractor.from_pretrained(model)
    cache = Path(out_dir) / "predictions.jsonl" if out_dir else None
    preds = predict(extractor.model, extractor.tokenizer, passages, max_new_tokens, cache=cache, progress=progress)
    result = {"model": str(model), "eval_file": str(eval_file),
              **({"dataset": dataset, "split": split} if dataset else {}), **score_per_type(passages, preds)}
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "scores.json").write_text(json.dumps(result, indent=2))
    return result


def _temporary_file() -> Path:
    """A fresh temporary file (the converted evaluation file when no output folder is given)."""
    handle, name = tempfile.mkstemp(suffix=".jsonl", prefix="nerlib-eval-")
    os.close(handle)
    return Path(name)


def evaluate_base(
    profile: Profile,
    domains: Sequence[str] | None = None,
    limit: int | None = -1,
    progress: bool = True,
    model: str | None = None,
    split: str = "test",
) -> Any:
    """The untuned student (``model`` or the profile's) on the profile's domains (predictions cached, so the
    chapters and benchmarks that share a setting reuse them; ``split`` as in
    :func:`~nerlib.uniner.evaluate.evaluate_domains`). Returns the per-domain table."""
    u = profile.uniner
    name = model or u.student
    lm, tok = load_student(name, lora=False)
    lm = ready_for_inference(lm)  # the library's device (nerlib.device), inference dtype
    limit = u.eval_passages_per_domain if limit == -1 else limit
    budget = base_budget(u)
    folder = cache_dir() / "uniner" / "predictions" / _split_suffix(f"base-{Path(name).name}-{budget}-{limit}", split)
    return evaluate_domains(lm, tok, domains or u.eval_domains, limit, budget, cache_dir=folder,
                            progress=progress, split=split)


def base_budget(settings: UniNERSettings) -> int:
    """The untuned model's answer budget: ``base_max_new_tokens``, or the tuned students' ``max_new_tokens``."""
    return settings.max_new_tokens if settings.base_max_new_tokens is None else settings.base_max_new_tokens


def _split_suffix(folder: str, split: str) -> str:
    """Prediction folders of the test split keep their names (caches made before splits existed stay valid)."""
    return folder if split == "test" else f"{folder}-{split}"


def predictions_folder(name: str, key: str, variant: str, max_new_tokens: int, limit: int | None,
                       split: str) -> Path:
    """Where :func:`train_and_evaluate` caches the answers of the student ``<name>-<key>`` (one file per domain):
    ``$NERLIB_CACHE_DIR/uniner/predictions/<name>-<key>-<variant>-<max_new_tokens>-<limit>[-<split>]``."""
    return cache_dir() / "uniner" / "predictions" / _split_suffix(
        f"{name}-{key}-{variant}-{max_new_tokens}-{limit}", split)


def train_and_evaluate(
    profile: Profile,
    settings: UniNERSettings | None = None,
    name: str | None = None,
    examples: Sequence[InstructionExample] | None = None,
    domains: Sequence[str] | None = None,
    limit: int | None = -1,
    variant: str = "per_type",
    progress: bool = True,
    split: str = "test",
    resolve_types: bool = False,
    ground_mentions: bool = False,
) -> tuple[Any, dict]:
    """Train (or load the cached) student for ``settings`` (default ``profile.uniner``) on ``examples`` (default:
    the settings' training mixture) and evaluate it zero-shot. Returns (per-domain table, training record).
    Both the trained model and its predictions are cached under ``$NERLIB_CACHE_DIR/uniner`` (``name`` as in
    :func:`train_or_load`), so chapters and benchmarks with the same settings train once and score once.
    ``split="validation"`` scores CrossNER's validation passages: the split on which to choose settings.
    ``resolve_types`` keeps each mention under one type only (:mod:`nerlib.uniner.resolve`), and ``ground_mentions``
    only the mentions found in the passage (:func:`nerlib.uniner.extract.ground_answer`), from the same answers."""
    settings = settings or profile.uniner
    name = name or student_name(settings, variant)
    if examples is None:
        examples = build_training_examples(settings, seed=profile.seed, progress=progress)
    model, tok, record = train_or_load(profile, examples, name=name, variant=variant, settings=settings,
                                       progress=progress)
    limit = settings.eval_passages_per_domain if limit == -1 else limit
    folder = predictions_folder(name, record["key"], variant, settings.max_new_tokens, limit, split)
    new_tokens = settings.max_new_tokens if variant == "per_type" else 4 * settings.max_new_tokens
    table = evaluate_domains(model, tok, domains or settings.eval_domains, limit, new_tokens,
                             cache_dir=folder, progress=progress, variant=variant, split=split,
                             resolve_types=resolve_types, ground_mentions=ground_mentions)
    return table, record


def answers_and_margins(
    profile: Profile,
    settings: UniNERSettings | None = None,
    domains: Sequence[str] | None = None,
    limit: int | None = -1,
    split: str = "test",
    max_bias: float = 6.0,
    progress: bool = True,
) -> tuple[dict, dict, dict, dict]:
    """What :mod:`nerlib.uniner.calibrate` needs to score every empty-answer bias up to ``max_bias`` for the student
    of ``settings`` (trained or loaded as by :func:`train_and_evaluate`): per domain, the evaluation passages, the
    plain answers (by record id) and the margin records; and the student's training record. The margins are cached
    beside the answers (``<domain>.margins-<max_bias>.jsonl``), so chapters and benchmarks record them once."""
    from nerlib.uniner.calibrate import predict_margins
    from nerlib.uniner.evaluate import eval_file

    settings = settings or profile.uniner
    domains = list(domains or settings.eval_domains)
    examples = build_training_examples(settings, seed=profile.seed, progress=False)
    table, record = train_and_evaluate(profile, settings, examples=examples, domains=domains, limit=limit,
                                       split=split, progress=progress)
    model, tok, _ = train_or_load(profile, examples, settings=settings, progress=progress)
    limit = settings.eval_passages_per_domain if limit == -1 else limit
    folder = predictions_folder(student_name(settings), record["key"], "per_type", settings.max_new_tokens, limit,
                                split)
    passages, margins = {}, {}
    for domain in domains:
        passages[domain] = read_eval_file(eval_file(domain, split), limit)
        margins[domain] = predict_margins(model, tok, passages[domain], settings.max_new_tokens, max_bias,
                                          folder / f"{domain}.margins-{max_bias:g}.jsonl", progress)
    return passages, table.attrs["predictions"], margins, record


if __name__ == "__main__":
    main()
