"""The command line: one sub-command per pipeline step, so a course run can be scripted without notebooks.

``python -m nerlib --help`` (or the console script ``nerlib``) lists the commands::

    nerlib profile                      the active profile as JSON
    nerlib models list | prepare        offline models: which are installed; convert them once into the cache
    nerlib data show NAME               a dataset's labels and a few sentences
    nerlib uniner annotate | build-data | train | evaluate | extract | export | make-eval
    nerlib msd train-teacher | train-student | ablation | tsne | tag | export | evaluate

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
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from nerlib import config
from nerlib.msd.variants import ROWS as MSD_ROWS, VARIANTS

EXIT_USAGE = 2
EXIT_NOT_AVAILABLE = 3
# The ablation's variants (nerlib.msd.variants imports nothing: --help stays fast and works in a bare install).
MSD_VARIANTS = tuple(VARIANTS)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (sizes, batch sizes, counts), rejected before any work starts."""
    value = int(text)  # ValueError -> argparse's "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def steps_int(text: str) -> int:
    """argparse type: a positive number of steps, or -1 (train by the profile's epochs instead)."""
    value = int(text)
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"{text}: use a positive number of steps, or -1 to train by epochs")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (learning rates)."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (biases)."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 0")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def seed_int(text: str) -> int:
    """argparse type: a random seed, an integer from 0 to 2**32 - 1 (what NumPy accepts)."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text}: a seed must be between 0 and 2**32 - 1")
    return value


positive_int.__name__ = "positive integer"  # argparse names the type in "invalid ... value" messages
steps_int.__name__ = "number of steps"
positive_float.__name__ = "positive number"
non_negative_int.__name__ = "non-negative integer"
seed_int.__name__ = "seed"
#: MSD settings that the msd commands can override from the command line, with each flag's argparse type.
MSD_BUDGET = {"teacher_steps": steps_int, "student_steps": steps_int, "teacher_lr": positive_float,
              "student_lr": positive_float, "batch_size": positive_int, "train_sentences": positive_int,
              "unlabeled_sentences": positive_int, "eval_sentences": positive_int}


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


class JsonLines(list):
    """A command result printed as one compact JSON object per line (``uniner extract``, ``msd tag``)."""


def emit(result: Any, output: str | None) -> None:
    """Print ``result`` as indented JSON (a :class:`JsonLines` result: one object per line) and, with
    ``--output``, write it to that file too."""
    if isinstance(result, JsonLines):
        text = "\n".join(json.dumps(to_jsonable(r), ensure_ascii=False) for r in result)
    else:
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
    """Where a step writes its artefacts (:func:`nerlib.runs.run_dir`): ``--out-dir`` for the running step (``own``,
    created), else ``<cache>/runs/<profile>/<step>``; another step's folder is only located."""
    from nerlib.runs import run_dir  # imports nerlib.data: only when a command runs

    out_dir = (getattr(args, "out_dir", None) if own else None) or None
    profile = "" if out_dir else _profile(args).name  # with --out-dir, no profile (the default one looks for a GPU)
    return run_dir(profile, step, out_dir=out_dir, create=own)


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
    resolve = library_function("nerlib.models", "prepare", "models prepare")
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
    """The profile's teacher over its recorded passages or, with ``--input``, any OpenAI-compatible teacher over
    the passages of a file. Failed requests exit 1 (rerun to retry them: answers are cached); Ctrl-C exits 130."""
    teacher_mod = "nerlib.uniner.teacher"
    budget = {"max_requests": args.max_requests, "max_cost": args.max_cost}
    price = (args.price_in, args.price_out) if args.price_in is not None or args.price_out is not None else None
    if price is not None and None in price:
        raise CLIError("give both --price-in and --price-out (US dollars per 1,000 input and output tokens)")
    if args.max_cost is not None and price is None:
        raise CLIError("--max-cost needs the teacher's prices: --price-in and --price-out (US dollars per 1,000 "
                       "input and output tokens; no default, since they differ by model and provider)")
    if args.input:
        if not args.teacher or not args.base_url:
            raise CLIError("--input needs --teacher MODEL and --base-url URL (an OpenAI-compatible endpoint)")
        if args.api_key_env and not os.environ.get(args.api_key_env):
            raise CLIError(f"the environment variable {args.api_key_env} (named by --api-key-env) is not set")
        fn = library_function("nerlib.uniner.pipeline", "annotate_file", "uniner annotate --input")
        run = lambda out: fn(args.input, out, args.teacher, args.base_url,  # noqa: E731
                             api_key_env=args.api_key_env or "OPENAI_API_KEY", price_per_1k=price,
                             max_workers=args.workers, timeout=args.timeout, progress=True, **budget)
    else:
        if args.teacher or args.base_url or args.price_in is not None:
            raise CLIError("--teacher, --base-url and the prices go with --input FILE (without it the profile's "
                           "teacher annotates the profile's passages)")
        fn = library_function("nerlib.uniner.pipeline", "annotate", "uniner annotate")
        run = lambda out: fn(_profile(args), out_dir=out, progress=True, **budget)  # noqa: E731
    teacher_error = importlib.import_module(teacher_mod).TeacherError
    import logging

    teacher_log = logging.getLogger(teacher_mod)
    if not teacher_log.handlers and not logging.getLogger().handlers:  # show retries and budget stops on stderr
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("nerlib: %(message)s"))
        teacher_log.addHandler(handler)
        teacher_log.setLevel(logging.INFO)
    out = _run_dir(args, "uniner_annotate")
    try:
        summary = run(out)
    except KeyboardInterrupt:
        err = CLIError(f"interrupted: no new requests after Ctrl-C; the answers that arrived are kept in "
                       f"{out / 'answers.jsonl'}: run the same command again to resume")
        err.exit_code = 130
        raise err from None
    except teacher_error as err:  # e.g. the OpenAI endpoint without a key
        raise CLIError(str(err)) from None
    if summary.get("stopped"):
        print(f"nerlib: warning: stopped early: {summary['stopped']}; run again with a larger budget to continue "
              "(answers are cached)", file=sys.stderr)
    if summary.get("failed"):
        err = CLIError(f"{summary['failed']} of {summary['passages']} passages got no answer (failed requests; "
                       f"see the log above); counts in {out / 'summary.json'}; run the same command again to retry "
                       "them (the answers that arrived are cached)")
        err.exit_code = 1
        raise err
    return summary


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
    fn = library_function("nerlib.uniner.pipeline", "train", "uniner train")
    examples = args.examples or _run_dir(args, "uniner_data", own=False) / "train.jsonl"
    if not Path(examples).is_file():
        raise CLIError(f"no training examples at {examples}: run `nerlib uniner build-data` first (or pass --examples)")
    return fn(_profile(args), out_dir=_run_dir(args, "uniner_train"), examples=examples, resume=args.resume)


def cmd_uniner_evaluate(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.pipeline", "evaluate", "uniner evaluate")
    model = args.model
    if model is None:  # the student trained by `nerlib uniner train`, else the untuned student
        trained = _run_dir(args, "uniner_train", own=False)
        model = str(trained) if trained.is_dir() and any(trained.glob("*.json")) else None
    if args.eval_file or args.dataset:  # any evaluation file, or a BIO dataset converted to one
        fn = library_function("nerlib.uniner.pipeline", "evaluate_student", "uniner evaluate")
        return fn(model, eval_file=args.eval_file, dataset=args.dataset, split=args.split, labels=args.labels,
                  limit=args.limit, max_new_tokens=_profile(args).uniner.max_new_tokens,
                  out_dir=_run_dir(args, "uniner_eval"), profile=_profile(args))
    if args.labels:
        raise CLIError("--labels goes with --dataset")
    return fn(_profile(args), model=model, out_dir=_run_dir(args, "uniner_eval"))


def _texts(args: argparse.Namespace) -> list[str]:
    fn = library_function("nerlib.uniner.extract", "input_texts", "uniner extract")
    try:
        return fn(args.text, args.input)
    except ValueError as err:
        raise CLIError(str(err)) from None


def cmd_uniner_extract(args: argparse.Namespace) -> JsonLines:
    fn = library_function("nerlib.uniner.extract", "extract_texts", "uniner extract")
    texts = _texts(args)
    return JsonLines(fn(args.model, args.types, texts, max_new_tokens=args.max_new_tokens,
                        max_passage_tokens=args.max_passage_tokens,
                        one_type_per_mention=args.one_type_per_mention, empty_bias=args.empty_bias))


def _card_scores(args: argparse.Namespace, command: str) -> dict | None:
    """The scores of an export's ``--scores FILE`` (an evaluate command's JSON) for its model card, if given."""
    if not args.scores:
        return None
    return library_function("nerlib.modelcard", "scores_from_file", command)(args.scores)


def cmd_uniner_export(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.export", "export_model", "uniner export")
    return fn(args.model, args.out, base=args.base, scores=_card_scores(args, "uniner export"),
              push_to=args.push_to_hub, profile=args.profile)


def cmd_uniner_make_eval(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.uniner.eval_data", "make_eval", "uniner make-eval")
    quirk = {"official": True, "exact": False, "auto": None}[args.golds]
    return fn(args.dataset, args.out, split=args.split, labels=args.labels, limit=args.limit, official_quirk=quirk)


def cmd_msd_tag(args: argparse.Namespace) -> JsonLines:
    fn = library_function("nerlib.msd.tag", "tag_texts", "msd tag")
    return JsonLines(fn(args.model, _texts(args)))


def cmd_msd_export(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.export", "export_model", "msd export")
    return fn(args.run, args.out, scores=_card_scores(args, "msd export"), push_to=args.push_to_hub)


def cmd_msd_evaluate(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.tag", "evaluate_dataset", "msd evaluate")
    result = fn(args.model, args.dataset, split=args.split, limit=args.limit)
    if args.out_dir:
        (_run_dir(args, "msd_evaluate") / "scores.json").write_text(json.dumps(result, indent=2))
    return result


def _msd_data(args: argparse.Namespace, settings):
    """The profile's MSD settings with ``--source`` / ``--target`` (registry names or data folders) applied."""
    changes = {}
    if getattr(args, "source", None):
        changes["source"] = args.source
    if getattr(args, "target", None):
        changes["targets"] = tuple(args.target)
    return dataclasses.replace(settings, **changes) if changes else settings


def _write_run(args: argparse.Namespace, model, run: dict, step: str) -> str | None:
    """With ``--out-dir``: the trained model as a run folder (``nerlib msd tag|export --model/--run DIR``)."""
    if not getattr(args, "out_dir", None):
        return None
    fn = library_function("nerlib.msd.export", "write_run_folder", f"msd {step}")
    return str(fn(model, {**run, "profile": _profile(args).name}, _run_dir(args, step)))


def _msd_scores(model, settings, names: Sequence[str]) -> dict:
    """seqeval F1 of an MSD model on the first ``settings.eval_sentences`` test sentences of each dataset."""
    evaluate = library_function("nerlib.msd.predict", "evaluate", "msd")
    load_tokenizer = library_function("nerlib.models", "load_tokenizer", "msd")
    load = library_function("nerlib.data", "load", "msd")
    tokenizer = load_tokenizer(settings.encoder)
    scores = {}
    for name in _progress(list(names), "evaluate"):
        data = load(name, "test", limit=settings.eval_sentences)
        res = evaluate(model, tokenizer, data, settings.eval_max_length, settings.eval_batch_size)
        scores[name] = {k: res[k] for k in ("precision", "recall", "f1") if k in res}
    return scores


def _check_msd(settings, targets: Sequence[str], train: bool = True) -> None:
    """Budget, datasets and label overlap of an MSD command, before any training (see nerlib.msd.checks)."""
    from nerlib.msd.checks import check_msd

    check_msd(settings, targets, train=train)


def _run_summary(run: dict) -> dict:
    """A trained MSD run's record without its long per-step log."""
    return {k: v for k, v in run.items() if k not in ("log", "settings")}


def cmd_msd_train_teacher(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.runs", "cached_teacher", "msd train-teacher")
    prof = _profile(args)
    s = _msd_data(args, prof.msd)
    _check_msd(s, s.targets if not args.no_eval else [])
    model, run = fn(s, multi_exit=not args.single_exit, seed=prof.seed, progress=True)
    result = {"teacher": _run_summary(run)}
    if args.out_dir:
        result["run_dir"] = _write_run(args, model, run, "msd_teacher")
    if not args.no_eval:
        result["test"] = _msd_scores(model, s, [s.source, *s.targets])
    return result


def cmd_msd_train_student(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.runs", "cached_student", "msd train-student")
    prof = _profile(args)
    s = _msd_data(args, prof.msd)
    targets = list(s.targets)
    _check_msd(s, targets)  # every target, before the first teacher trains
    result = {}
    for target in targets:
        model, run = fn(s, target, variant=args.variant, seed=prof.seed, progress=True)
        result[target] = {"student": _run_summary(run)}
        if args.out_dir:  # one target: the folder itself; several: one sub-folder per target
            sub = argparse.Namespace(**{**vars(args), "out_dir": args.out_dir if len(targets) == 1 else
                                        str(Path(args.out_dir) / Path(target).name)})
            result[target]["run_dir"] = _write_run(sub, model, run, "msd_student")
        if not args.no_eval:
            result[target]["test"] = _msd_scores(model, s, [target])[target]
    return {"variant": args.variant, "targets": result}


def cmd_msd_ablation(args: argparse.Namespace) -> dict:
    fn = library_function("nerlib.msd.ablation", "run_ablation", "msd ablation")
    prof = _profile(args)
    _check_msd(prof.msd, args.target or prof.msd.targets)
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
    if args.target:
        _check_msd(_profile(args).msd, [args.target], train=False)
    return fn(_profile(args), target=args.target, out_dir=_run_dir(args, "msd_tsne"), progress=True)


def _progress(items: Sequence[str], desc: str):
    """A tqdm progress bar on stderr (stdout stays pure JSON)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, disable=len(items) < 2)


# ------------------------------------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, out_dir: bool = False, short_output: bool = True) -> None:
    """The options of every command: ``--profile``, ``--seed``, ``-o/--output`` (only ``--output`` where the command
    takes ``-o`` for something else) and, for a step that writes artefacts, ``--out-dir``."""
    p.add_argument("--profile", choices=config.PROFILES, help="profile to use (default: $NERLIB_PROFILE)")
    p.add_argument("--seed", type=seed_int, help="override the profile's seed")
    p.add_argument(*(("-o", "--output") if short_output else ("--output",)), metavar="FILE",
                   help="also write the JSON result to FILE")
    if out_dir:
        p.add_argument("--out-dir", metavar="DIR", help="where artefacts go (default: <cache>/runs/<profile>/<step>)")


def _text_options(p: argparse.ArgumentParser) -> None:
    """The input of both raw-text commands (``uniner extract``, ``msd tag``): one text, or a file of texts."""
    p.add_argument("--text", help="the text")
    p.add_argument("--input", metavar="FILE", help="texts: one per line, or JSONL with a \"text\" field")


def _export_options(p: argparse.ArgumentParser) -> None:
    """The options of both export commands: the folder to write, an optional hub upload, the card's scores."""
    p.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload to the hub as REPO (private; needs a token)")
    p.add_argument("--scores", metavar="FILE", help="an evaluate command's JSON (-o FILE) for the card's score table")


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
    p.add_argument("names", nargs="*", help="short names, as `nerlib models list` shows them")
    _common(p)
    p.set_defaults(func=cmd_models_prepare)

    data = sub.add_parser("data", help="datasets", description="Datasets (see nerlib.data).")
    dsub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = dsub.add_parser("show", help="labels and a few sentences of a dataset", description="Show a dataset.")
    p.add_argument("name", help="dataset name, e.g. conll2003_en or crossner_ai")
    p.add_argument("--split", default="validation", help="train, validation or test (default: validation)")
    p.add_argument("--limit", type=non_negative_int, default=3, help="number of sentences to show (default: 3)")
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
        if name == "annotate":
            p.add_argument("--input", metavar="FILE", help="passages to annotate: plain text (one per line) or JSONL "
                           "with a \"text\" field (default: the profile's recorded passages and teacher)")
            p.add_argument("--teacher", metavar="MODEL", help="model name at --base-url (with --input)")
            p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible API root, e.g. "
                           "https://api.openai.com/v1, http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 "
                           "(Ollama)")
            p.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the API key "
                           "(default: OPENAI_API_KEY, optional for local servers); the key is never printed or saved")
            p.add_argument("--max-requests", type=non_negative_int, metavar="N",
                           help="send at most N requests (cached answers are free)")
            p.add_argument("--max-cost", type=positive_float, metavar="USD",
                           help="send no new request once this much is spent (needs --price-in/--price-out)")
            p.add_argument("--price-in", type=positive_float, metavar="USD", help="price per 1,000 input tokens")
            p.add_argument("--price-out", type=positive_float, metavar="USD", help="price per 1,000 output tokens")
            p.add_argument("--workers", type=positive_int, default=4, metavar="N",
                           help="concurrent requests (default: 4)")
            p.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                           help="deadline of one request attempt in seconds (default: 120)")
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
            p.add_argument("--eval-file", metavar="FILE", help="any file in the official UniversalNER format "
                           "(e.g. from `uniner make-eval`) instead of the profile's CrossNER domains")
            p.add_argument("--dataset", metavar="NAME_OR_PATH", help="a BIO dataset (registry name, JSONL/CoNLL "
                           "file or folder) converted to questions on the fly")
            p.add_argument("--split", default="test", help="split of --dataset (default: test)")
            p.add_argument("--labels", metavar="MAP", help="natural names of --dataset's types: "
                           "Restaurant_Name=restaurant name,... (default: registry names, else underscores as spaces)")
            p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N passages")
        _common(p, out_dir=True)
        p.set_defaults(func=func)

    p = usub.add_parser("extract", help="extract entities of any types from raw text (JSON lines with offsets)",
                        description="Extract entities of the given types from raw text with a trained student; "
                        "prints one JSON object per text with character offsets.")
    p.add_argument("--model", required=True, help="trained folder (LoRA adapter or exported model) or model name")
    p.add_argument("--types", required=True, help='entity types in natural language, e.g. "person,organization"')
    _text_options(p)
    p.add_argument("--max-new-tokens", type=positive_int, default=64, metavar="N", help="answer budget per type")
    p.add_argument("--max-passage-tokens", type=positive_int, default=256, metavar="N",
                   help="longer texts are cut into windows of at most N tokens (default: 256)")
    p.add_argument("--one-type-per-mention", action="store_true",
                   help="a mention answered under several types keeps only the type the model was most sure of")
    p.add_argument("--empty-bias", type=non_negative_float, default=0.0, metavar="B",
                   help="make the empty answer [] B logits less likely (chosen on validation passages: "
                        "benchmarks/uniner_empty_bias.py; default 0)")
    _common(p)
    p.set_defaults(func=cmd_uniner_extract)
    p = usub.add_parser("export", help="merge a LoRA student into a plain causal LM folder with a model card",
                        description="Export a trained student as an AutoModelForCausalLM folder (LoRA merged).")
    p.add_argument("--model", required=True, help="trained folder (LoRA adapter or full model)")
    p.add_argument("--base", help="base model of the adapter (default: the one its adapter_config.json names)")
    _export_options(p)
    _common(p)
    p.set_defaults(func=cmd_uniner_export)
    p = usub.add_parser("make-eval", help="write an evaluation file in the official format from a BIO dataset",
                        description="Write UniversalNER evaluation records (one per passage and type) from a BIO "
                        "dataset, with the registry's natural-language type names.")
    p.add_argument("--dataset", required=True, metavar="NAME_OR_PATH", help="registry name or JSONL/CoNLL file/folder")
    p.add_argument("--split", default="test", help="train, validation or test (default: test)")
    p.add_argument("-o", "--out", dest="out", required=True, metavar="FILE", help="the JSONL file to write")
    p.add_argument("--labels", metavar="MAP", help="natural names: RAW=name,... (overrides the registry)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N sentences")
    p.add_argument("--golds", choices=("auto", "official", "exact"), default="auto",
                   help="official: drop sentence-final entities as the official CrossNER files do; exact: keep "
                   "them; auto (default): official for the five CrossNER datasets, exact elsewhere")
    _common(p, short_output=False)
    p.set_defaults(func=cmd_uniner_make_eval)

    msd = sub.add_parser("msd", help="MSD pipeline", description="MSD: mixture of short-channel distillers.")
    ssub = msd.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("train-teacher", "train the multi-exit teacher on the source language", cmd_msd_train_teacher),
        ("train-student", "distil the student on unlabelled target-language text", cmd_msd_train_student),
        ("ablation", "run the ablation grid and write its table", cmd_msd_ablation),
        ("tsne", "t-SNE of [CLS] features across languages", cmd_msd_tsne),
    ):
        p = ssub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        if name == "tsne":
            p.add_argument("--target", help="target dataset (default: the profile's first target)")
        else:
            what = "to evaluate on, registry name or data folder " if name == "train-teacher" else ""
            p.add_argument("--target", action="append",
                           help=f"target dataset {what}(repeatable; default: the profile's)")
        if name == "train-teacher":
            p.add_argument("--single-exit", action="store_true", help="one exit at the last layer (plain baseline)")
        if name == "train-student":
            p.add_argument("--variant", default="MSD", choices=MSD_VARIANTS, help="which components (default: MSD)")
        if name in ("train-teacher", "train-student"):
            p.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation")
            p.add_argument("--source", metavar="NAME_OR_DIR", help="labelled source dataset: registry name or data "
                           "folder with train/validation/test files (default: the profile's msd.source)")
        if name == "ablation":
            p.add_argument("--max-cells", type=non_negative_int,
                           help="stop after this many new runs (resumable; a time budget)")
            p.add_argument("--rows", nargs="+", choices=MSD_ROWS, metavar="ROW",
                           help=f"rows of the table (default: all of {', '.join(MSD_ROWS)})")
            p.add_argument("--seeds", nargs="+", type=seed_int, help="seeds to average (default: the profile's)")
        if name != "tsne":
            for field, kind in MSD_BUDGET.items():
                p.add_argument("--" + field.replace("_", "-"), metavar="X" if kind is positive_float else "N",
                               type=kind, help=f"override the profile's msd.{field}")
        _common(p, out_dir=True)
        p.set_defaults(func=func)

    p = ssub.add_parser("tag", help="tag raw text with a trained model (JSON lines with offsets)",
                        description="Tag raw text (split into CoNLL-style words) with a run folder or an exported "
                        "model; prints one JSON object per text.")
    p.add_argument("--model", required=True, help="run folder (train-teacher/train-student --out-dir) or export")
    _text_options(p)
    _common(p)
    p.set_defaults(func=cmd_msd_tag)
    p = ssub.add_parser("export", help="the last exit as an AutoModelForTokenClassification folder",
                        description="Export a run's last exit as a standard token-classification model with a card.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run folder (train-teacher/train-student --out-dir)")
    _export_options(p)
    _common(p)
    p.set_defaults(func=cmd_msd_export)
    p = ssub.add_parser("evaluate", help="strict and partial F1 per type on any BIO dataset",
                        description="Score a run folder or exported model on a BIO dataset whose types are the "
                        "model's.")
    p.add_argument("--model", required=True, help="run folder or exported model")
    p.add_argument("--dataset", required=True, metavar="NAME_OR_PATH", help="registry name or JSONL/CoNLL file/folder")
    p.add_argument("--split", default="test", help="train, validation or test (default: test)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N sentences")
    _common(p, out_dir=True)
    p.set_defaults(func=cmd_msd_evaluate)
    return parser


def _version() -> str:
    from nerlib import __version__

    return __version__


def preflight(args: argparse.Namespace) -> None:
    """Checks made before a command does any work: every ``NERLIB_*`` setting, and that ``--output`` and
    ``--out-dir`` can be written (a file where a folder should be is one clear error, not a late traceback)."""
    config.check_settings()
    output = getattr(args, "output", None)
    if output:
        path = Path(output).expanduser()
        if path.is_dir():
            raise CLIError(f"--output {output}: is a folder; give a file name")
        config.writable_dir(path.parent, f"--output {output}")
    out_dir = getattr(args, "out_dir", None)
    if out_dir:
        config.writable_dir(out_dir, f"--out-dir {out_dir}")


def _one_line(err: BaseException) -> str:
    """An error as one line: OSError's ``[Errno N] text: 'path'`` keeps its text and path."""
    if isinstance(err, OSError) and err.strerror and type(err).__str__ is OSError.__str__:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return " ".join(str(err).split()) or type(err).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from library code, printed as ``nerlib: warning: ...`` on stderr (no source line)."""
    print(f"nerlib: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, print its JSON; returns the exit code (0 ok, 2 usage, 3 not available)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = os.environ.get(config.PROFILE_ENV)
    try:
        if getattr(args, "profile", None):
            os.environ[config.PROFILE_ENV] = args.profile  # library code that calls get_profile() agrees with us
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            preflight(args)
            result = args.func(args)
            emit(result, getattr(args, "output", None))
    except CLIError as err:
        print(f"nerlib: error: {err}", file=sys.stderr)
        return err.exit_code
    # Bad input and an unusable environment: library messages name the file, line, field or setting. OSError
    # covers missing files, unwritable folders and an unreachable hub. TypeError and other exceptions are bugs
    # and keep their traceback.
    except (OSError, ValueError) as err:
        if os.environ.get("NERLIB_DEBUG") == "1":
            raise
        print(f"nerlib: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if saved is None:
            os.environ.pop(config.PROFILE_ENV, None)
        else:
            os.environ[config.PROFILE_ENV] = saved
    return 0
