"""The command line: one sub-command per pipeline step, so a course run can be scripted without notebooks.

``python -m nerlib --help`` (or the console script ``nerlib``) lists the commands::

    nerlib profile                      the active profile as JSON
    nerlib models list | prepare        offline models: which are installed; convert them once into the cache
    nerlib data show NAME               a dataset's labels and a few sentences
    nerlib uniner annotate | build-data | train | evaluate
    nerlib msd train-teacher | train-student | ablation | tsne

Every command prints its result as JSON on stdout (``--output FILE`` also writes it to a file), so the steps can be
chained by scripts. Library modules are imported only when a command runs: ``--help`` works even where torch or a
library part is missing, and a step whose library function does not exist yet fails with a message that names it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from nerlib import config

EXIT_USAGE = 2
EXIT_NOT_AVAILABLE = 3
# The ablation variants of nerlib.msd.train.VARIANTS (repeated here so that --help needs no torch import).
MSD_VARIANTS = ("MSD", "w/o distillers", "w/o MMD^L", "w/o MMD^M", "w/o all")
# The rows of nerlib.msd.ablation.ROWS: the variants plus the single-head teacher applied as it is.
MSD_ROWS = MSD_VARIANTS + ("direct transfer",)
# MSD settings that the msd commands can override from the command line (name -> type).
MSD_BUDGET = {"teacher_steps": int, "student_steps": int, "teacher_lr": float, "student_lr": float,
              "batch_size": int, "train_sentences": int, "unlabeled_sentences": int, "eval_sentences": int}


class CLIError(Exception):
    """A user-facing error: printed as ``nerlib: error: ...`` without a traceback."""

    exit_code = EXIT_USAGE


class NotAvailableError(CLIError):
    """The library function behind a command is missing (not written yet, or an optional dependency is absent)."""

    exit_code = EXIT_NOT_AVAILABLE


def library_function(module: str, name: str, command: str) -> Callable[..., Any]:
    """Import ``module.name`` for ``command``; a missing module or function becomes a clear :class:`NotAvailableError`."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (err.name == module or module.startswith(err.name + ".")):
            raise NotAvailableError(
                f"`nerlib {command}` is not available: the library module {module} does not exist in this version"
            ) from None
        raise NotAvailableError(
            f"`nerlib {command}` needs the package {err.name!r}, which is not installed (pip install {err.name})"
        ) from None
    fn = getattr(mod, name, None)
    if fn is None or not callable(fn):
        raise NotAvailableError(
            f"`nerlib {command}` is not available: {module} has no function {name}() in this version"
        )
    return fn


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths, tuples, sets and NumPy scalars to plain JSON types (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return value.item()  # NumPy / torch scalar
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def emit(result: Any, output: str | None) -> None:
    """Print ``result`` as indented JSON and, with ``--output``, write it to that file too."""
    text = json.dumps(to_jsonable(result), indent=2, ensure_ascii=False)
    print(text)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")


def _profile(args: argparse.Namespace) -> config.Profile:
    try:
        prof = config.get_profile(args.profile)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.seed is not None:
        prof = prof.replace(seed=args.seed)
    budget = {name: getattr(args, name) for name in MSD_BUDGET if getattr(args, name, None) is not None}
    if budget:  # `nerlib msd ... --student-steps 750`: a budget other than the profile's, without editing it
        prof = prof.replace(msd=dataclasses.replace(prof.msd, **budget))
    return prof


def _run_dir(args: argparse.Namespace, step: str, own: bool = True) -> Path:
    """Where a step writes its artefacts: ``--out-dir`` (for the running step, ``own``) or
    ``<cache>/runs/<profile>/<step>``; the running step's folder is created, another step's is only located."""
    if own and getattr(args, "out_dir", None):
        path = Path(args.out_dir)
    else:
        path = config.cache_dir() / "runs" / _profile(args).name / step
    if own:
        path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------------- commands


def cmd_profile(args: argparse.Namespace) -> dict:
    prof = _profile(args)
    data = config.data_dir()
    return {
        "profile": dataclasses.asdict(prof),
        "settings": {
            config.PROFILE_ENV: os.environ.get(config.PROFILE_ENV) or None,
            config.DATA_DIR_ENV: str(data) if data else None,
            config.CACHE_DIR_ENV: os.environ.get(config.CACHE_DIR_ENV) or None,
        },
    }


def cmd_models_list(args: argparse.Namespace) -> dict:
    available = library_function("nerlib.models", "available", "models list")
    return {"models": available()}


def cmd_models_prepare(args: argparse.Namespace) -> dict:
    resolve = library_function("nerlib.models", "resolve", "models prepare")
    names = args.names
    if not names:
        prof = _profile(args)
        names = sorted({prof.msd.encoder, prof.uniner.student})
    prepared = {}
    for name in _progress(names, "models"):
        try:
            prepared[name] = str(resolve(name))
        except Exception as err:  # report every model, then fail
            prepared[name] = f"error: {err}"
    failed = [n for n, v in prepared.items() if v.startswith("error:")]
    if failed:
        emit({"prepared": prepared}, None)
        raise CLIError(f"could not prepare {', '.join(failed)}")
    return {"prepared": prepared}


def cmd_data_show(args: argparse.Namespace) -> dict:
    get = library_function("nerlib.data.registry", "get", "data show")
    load = library_function("nerlib.data", "load", "data show")
    try:
        info = get(args.name)
    except KeyError as err:
        raise CLIError(f"unknown dataset {args.name!r} ({err})") from None
    ds = load(args.name, args.split, limit=args.limit)
    return {
        "name": info.name,
        "domain": info.domain,
        "language": info.language,
        "labels": list(info.labels),
        "natural": dict(info.natural),
        "split": args.split,
        "examples": [{"tokens": row["tokens"], "ner_tags": row["ner_tags"]} for row in ds],
    }


def cmd_uniner_annotate(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.teacher", "annotate", "uniner annotate")
    return fn(_profile(args), out_dir=_run_dir(args, "uniner_annotate"), progress=True)


def cmd_uniner_build_data(args: argparse.Namespace) -> dict:
    """Teacher annotations + sampled negative types + supervised sentences -> ``train.jsonl`` for ``uniner train``."""
    mixture = library_function("nerlib.uniner.supervised", "instruction_mixture", "uniner build-data")
    read_annotations = library_function("nerlib.uniner.annotations", "read_annotations", "uniner build-data")
    from nerlib.uniner.records import write_examples

    prof = _profile(args)
    source = Path(args.annotations) if args.annotations else _run_dir(args, "uniner_annotate", own=False) / "annotations.jsonl"
    if not source.is_file():
        raise CLIError(f"no annotations at {source}: run `nerlib uniner annotate` first (or pass --annotations)")
    examples = mixture(read_annotations(source), prof.uniner, seed=prof.seed, progress=True)
    target = write_examples(examples, _run_dir(args, "uniner_data") / "train.jsonl")
    queries = [q for ex in examples for q in ex.queries]
    return {
        "annotations": source,
        "examples": target,
        "passages": len(examples),
        "supervised_passages": sum(ex.dataset is not None for ex in examples),
        "queries": len(queries),
        "empty_answers": sum(not q.answers for q in queries),
    }


def cmd_uniner_train(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.train", "train", "uniner train")
    examples = args.examples or _run_dir(args, "uniner_data", own=False) / "train.jsonl"
    if not Path(examples).is_file():
        raise CLIError(f"no training examples at {examples}: run `nerlib uniner build-data` first (or pass --examples)")
    return fn(_profile(args), out_dir=_run_dir(args, "uniner_train"), examples=examples, resume=args.resume)


def cmd_uniner_evaluate(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.evaluate", "evaluate", "uniner evaluate")
    model = args.model
    if model is None:  # the student trained by `nerlib uniner train`, else the untuned student
        trained = _run_dir(args, "uniner_train", own=False)
        model = str(trained) if trained.is_dir() and any(trained.glob("*.json")) else None
    return fn(_profile(args), model=model, out_dir=_run_dir(args, "uniner_eval"))


def _msd_scores(model, settings, names: Sequence[str]) -> dict:
    """seqeval F1 of an MSD model on the first ``settings.eval_sentences`` test sentences of each dataset."""
    evaluate = library_function("nerlib.msd.train", "evaluate", "msd")
    load_tokenizer = library_function("nerlib.msd.train", "load_tokenizer", "msd")
    load = library_function("nerlib.data", "load", "msd")
    tokenizer = load_tokenizer(settings.encoder)
    scores = {}
    for name in _progress(list(names), "evaluate"):
        data = load(name, "test", limit=settings.eval_sentences)
        res = evaluate(model, tokenizer, data, settings.eval_max_length, settings.eval_batch_size)
        scores[name] = {k: res[k] for k in ("precision", "recall", "f1") if k in res}
    return scores


def _run_summary(run: dict) -> dict:
    """A trained MSD run's record without its long per-step log."""
    return {k: v for k, v in run.items() if k not in ("log", "settings")}


def cmd_msd_train_teacher(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.train", "cached_teacher", "msd train-teacher")
    prof = _profile(args)
    s = prof.msd
    model, run = fn(s, multi_exit=not args.single_exit, seed=prof.seed, progress=True)
    result = {"teacher": _run_summary(run)}
    if not args.no_eval:
        result["test"] = _msd_scores(model, s, [s.source, *s.targets])
    return result


def cmd_msd_train_student(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.train", "cached_student", "msd train-student")
    prof = _profile(args)
    s = prof.msd
    targets = args.target or list(s.targets)
    result = {}
    for target in targets:
        model, run = fn(s, target, variant=args.variant, seed=prof.seed, progress=True)
        result[target] = {"student": _run_summary(run)}
        if not args.no_eval:
            result[target]["test"] = _msd_scores(model, s, [target])[target]
    return {"variant": args.variant, "targets": result}


def cmd_msd_ablation(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.ablation", "run_ablation", "msd ablation")
    out = _run_dir(args, "msd_ablation")
    table = fn(_profile(args), targets=args.target, seeds=args.seeds, rows=args.rows or MSD_ROWS, out_dir=out,
               progress=True, max_cells=args.max_cells)
    from nerlib.msd.ablation import ablation_markdown  # already imported by run_ablation above

    try:
        text = ablation_markdown(table)  # blank cells, not nan
    except ImportError:  # pandas needs `tabulate` for Markdown
        text = table.to_string()
    (out / "ablation.md").write_text(text + "\n")
    return {"table": table.reset_index().to_dict(orient="records"), "out_dir": out}


def cmd_msd_tsne(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.tsne", "run_tsne", "msd tsne")
    return fn(_profile(args), target=args.target, out_dir=_run_dir(args, "msd_tsne"), progress=True)


def _progress(items: Sequence[str], desc: str):
    """A tqdm progress bar on stderr (stdout stays pure JSON)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, disable=len(items) < 2)


# ------------------------------------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, out_dir: bool = False) -> None:
    p.add_argument("--profile", choices=config.PROFILES, help="profile to use (default: $NERLIB_PROFILE)")
    p.add_argument("--seed", type=int, help="override the profile's seed")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the JSON result to FILE")
    if out_dir:
        p.add_argument("--out-dir", metavar="DIR", help="where artefacts go (default: <cache>/runs/<profile>/<step>)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; every leaf sets ``func`` to its command function."""
    parser = argparse.ArgumentParser(
        prog="nerlib",
        description="Distilling NER models: each step of the UniversalNER and MSD pipelines as a command. "
        "Results are printed as JSON.",
    )
    parser.add_argument("--version", action="version", version=f"nerlib {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("profile", help="show the active profile as JSON", description="Show the active profile.")
    _common(p)
    p.set_defaults(func=cmd_profile)

    models = sub.add_parser("models", help="offline models", description="Offline models (see nerlib.models).")
    msub = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = msub.add_parser("list", help="which offline models are installed", description="List offline models.")
    _common(p)
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser(
        "prepare",
        help="convert models once into the cache",
        description="Convert models into the cache (default: the profile's MSD encoder and UniversalNER student).",
    )
    p.add_argument("names", nargs="*", help="short names (me5-small, minilm-l6, smollm2-135m, gemma-3-270m)")
    _common(p)
    p.set_defaults(func=cmd_models_prepare)

    data = sub.add_parser("data", help="datasets", description="Datasets (see nerlib.data).")
    dsub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = dsub.add_parser("show", help="labels and a few sentences of a dataset", description="Show a dataset.")
    p.add_argument("name", help="dataset name, e.g. conll2003_en or crossner_ai")
    p.add_argument("--split", default="validation", help="train, validation or test (default: validation)")
    p.add_argument("--limit", type=int, default=3, help="number of sentences to show (default: 3)")
    _common(p)
    p.set_defaults(func=cmd_data_show)

    uniner = sub.add_parser("uniner", help="UniversalNER pipeline", description="UniversalNER: targeted distillation.")
    usub = uniner.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("annotate", "ask the teacher to annotate passages (cached, resumable)", cmd_uniner_annotate),
        ("build-data", "turn annotations into instruction examples with negative types", cmd_uniner_build_data),
        ("train", "instruction-tune the student (LoRA or full)", cmd_uniner_train),
        ("evaluate", "zero-shot evaluation on CrossNER", cmd_uniner_evaluate),
    ):
        p = usub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        if name == "build-data":
            p.add_argument("--annotations", help="annotations JSONL (default: the output of `uniner annotate`)")
        if name == "train":
            p.add_argument("--examples", help="instruction examples JSONL (default: the output of `uniner build-data`)")
            p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
        if name == "evaluate":
            p.add_argument(
                "--model", help="trained folder or model name (default: the output of `uniner train`, else the "
                "untuned student)"
            )
        _common(p, out_dir=True)
        p.set_defaults(func=func)

    msd = sub.add_parser("msd", help="MSD pipeline", description="MSD: mixture of short-channel distillers.")
    ssub = msd.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("train-teacher", "train the multi-exit teacher on the source language", cmd_msd_train_teacher),
        ("train-student", "distil the student on unlabelled target-language text", cmd_msd_train_student),
        ("ablation", "run the ablation grid and write its table", cmd_msd_ablation),
        ("tsne", "t-SNE of [CLS] features across languages", cmd_msd_tsne),
    ):
        p = ssub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        if name == "train-teacher":
            p.add_argument("--single-exit", action="store_true", help="one exit at the last layer (plain baseline)")
        if name == "train-student":
            p.add_argument("--target", action="append", help="target dataset (repeatable; default: the profile's)")
            p.add_argument("--variant", default="MSD", choices=MSD_VARIANTS, help="which components (default: MSD)")
        if name in ("train-teacher", "train-student"):
            p.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation")
        if name == "ablation":
            p.add_argument("--target", action="append", help="target dataset (repeatable; default: the profile's)")
            p.add_argument("--max-cells", type=int, help="stop after this many new runs (resumable; a time budget)")
            p.add_argument("--rows", nargs="+", choices=MSD_ROWS, metavar="ROW",
                           help=f"rows of the table (default: all of {', '.join(MSD_ROWS)})")
            p.add_argument("--seeds", nargs="+", type=int, help="seeds to average (default: the profile's)")
        if name != "tsne":
            for field, kind in MSD_BUDGET.items():
                p.add_argument("--" + field.replace("_", "-"), type=kind, metavar="N" if kind is int else "X",
                               help=f"override the profile's msd.{field}")
        if name == "tsne":
            p.add_argument("--target", help="target dataset (default: the profile's first target)")
        _common(p, out_dir=True)
        p.set_defaults(func=func)
    return parser


def _version() -> str:
    from nerlib import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, print its JSON; returns the exit code (0 ok, 2 usage, 3 not available)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = os.environ.get(config.PROFILE_ENV)
    try:
        if getattr(args, "profile", None):
            os.environ[config.PROFILE_ENV] = args.profile  # library code that calls get_profile() agrees with us
        result = args.func(args)
        emit(result, getattr(args, "output", None))
    except CLIError as err:
        print(f"nerlib: error: {err}", file=sys.stderr)
        return err.exit_code
    except (FileNotFoundError, ValueError) as err:  # bad input; library messages name the file, line and field
        if os.environ.get("NERLIB_DEBUG") == "1":
            raise
        print(f"nerlib: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if saved is None:
            os.environ.pop(config.PROFILE_ENV, None)
        else:
            os.environ[config.PROFILE_ENV] = saved
    return 0
