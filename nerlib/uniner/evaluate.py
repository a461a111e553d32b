"""Zero-shot evaluation on the official UniversalNER CrossNER files, strict and partial string F1.

The files ``$NERLIB_DATA_DIR/uniner_eval/CrossNER_{AI,literature,music,politics,science}.jsonl`` hold one record
per (passage, entity type) in conversation format; without them (no data folder, as on Colab) the same records
are built from the CrossNER test splits (:func:`eval_file`). We group the records by passage so that each passage is read
once (shared-prefix inference, :mod:`nerlib.uniner.infer`), answer every type greedily, and score as the
official script: parse each answer up to the first ``]``, normalise, micro F1 over all queries
(:func:`nerlib.metrics.score_answers`). Answers that are not a JSON list count as empty and are counted as
parse failures. ``limit`` keeps the first N passages of each domain.

Predictions can be written to a JSONL file as they are made (a :class:`nerlib.runs.AppendLog`): a second run
with the same file skips the passages already answered (long benchmark runs resume).

The pipeline steps that load or train a model and then evaluate it (``nerlib uniner evaluate``, the chapters'
``evaluate_base`` and ``train_and_evaluate``) are in :mod:`nerlib.uniner.pipeline`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nerlib.config import data_dir
from nerlib.data.io import json_records
from nerlib.runs import AppendLog
from nerlib.uniner.conversations import PASSAGE_PREFIX, parse_question
from nerlib.uniner.eval_data import DOMAIN_FILES, eval_records_from_dataset, write_eval_file

#: The CrossNER domains of the zero-shot benchmark, in the paper's order.
DOMAINS: tuple[str, ...] = tuple(DOMAIN_FILES)


@dataclass
class EvalQuery:
    """One official record: its id, the entity type asked about and the gold answer text (a JSON list)."""

    id: str
    entity_type: str
    gold: str


@dataclass
class EvalPassage:
    """A passage and all the records (type questions) asked about it."""

    passage: str
    queries: list[EvalQuery] = field(default_factory=list)


#: The open-type evaluation on held-out teacher passages (not a CrossNER domain): :func:`eval_file`.
OPEN_DOMAIN = "pile_held_out"


def _built_eval_folder() -> Path:
    """Where evaluation files built from the data are kept: ``$NERLIB_CACHE_DIR/uniner/eval/<source>/``, one folder
    per data folder (or ``hub`` without one)."""
    import hashlib

    from nerlib.config import cache_dir

    root = data_dir()
    source = "hub" if root is None else "data-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return cache_dir() / "uniner" / "eval" / source


def _held_out_file(split: str) -> Path:
    """The evaluation file of :data:`OPEN_DOMAIN`, written once under :func:`_built_eval_folder`."""
    from nerlib.uniner.eval_data import eval_records_from_annotations
    from nerlib.uniner.pile import held_out_pile_ner

    if split != "test":
        raise ValueError(f"{OPEN_DOMAIN!r} has a test split only (its passages are all held out), got {split!r}")
    path = _built_eval_folder() / "PileNER_held_out.jsonl"
    if not path.exists():
        records = eval_records_from_annotations(held_out_pile_ner(), "PileNER_held_out")
        write_eval_file(records, path.with_name(path.name + ".partial")).replace(path)
    return path


def eval_file(domain: str, split: str = "test") -> Path:
    """The evaluation file of a CrossNER domain (``ai``, ``literature``, ``music``, ``politics``, ``science``).

    For the test split, the official file ``$NERLIB_DATA_DIR/uniner_eval/CrossNER_<domain>.jsonl`` when the data
    folder has it; otherwise, and for ``split="validation"`` (where settings are chosen, so that the test passages
    stay unseen), the same kind of records built once from the domain's BIO split (the data folder's copy, or the
    hub's when ``NERLIB_DATA_DIR`` is unset, as on Colab) by :func:`nerlib.uniner.eval_data.eval_records_from_dataset`
    and kept under ``$NERLIB_CACHE_DIR/uniner/eval/<source>/``.

    ``domain=OPEN_DOMAIN`` (``"pile_held_out"``) is not CrossNER: open-type questions on the Pile-NER-type passages
    that no training set of the course reads (:func:`nerlib.uniner.pile.held_out_pile_ner`), test split only."""
    if domain == OPEN_DOMAIN:
        return _held_out_file(split)
    if domain not in DOMAIN_FILES:
        raise ValueError(f"unknown CrossNER domain {domain!r}; choose from {', '.join(DOMAINS)} (or {OPEN_DOMAIN!r})")
    if split not in ("test", "validation"):
        raise ValueError(f"unknown evaluation split {split!r}; choose 'test' or 'validation'")
    root = data_dir()
    if root is not None and split == "test":
        official = root / "uniner_eval" / f"{DOMAIN_FILES[domain]}.jsonl"
        if official.exists():
            return official
    name = DOMAIN_FILES[domain] + ("" if split == "test" else f"-{split}")
    path = _built_eval_folder() / f"{name}.jsonl"
    if not path.exists():
        records = eval_records_from_dataset(f"crossner_{domain}", split=split)
        partial = write_eval_file(records, path.with_name(path.name + ".partial"))
        partial.replace(path)  # a run cut off while writing never leaves a half file behind
    return path


def parse_record(record: Any, where: str) -> tuple[str, EvalQuery]:
    """(passage, query) of one official record; malformed records raise naming ``where`` and the field."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a record must be a JSON object")
    turns = record.get("conversations")
    if not isinstance(turns, list) or len(turns) != 4:
        raise ValueError(f"{where}: field 'conversations' must be a list of 4 turns")
    for i, (turn, role) in enumerate(zip(turns, ("human", "gpt", "human", "gpt"))):
        if not isinstance(turn, dict) or turn.get("from") != role or not isinstance(turn.get("value"), str):
            raise ValueError(f"{where}: conversations[{i}] must be {{'from': {role!r}, 'value': str}}")
    text = turns[0]["value"]
    if not text.startswith(PASSAGE_PREFIX):
        raise ValueError(f"{where}: conversations[0].value must start with {PASSAGE_PREFIX!r}")
    entity_type = parse_question(turns[2]["value"])
    if entity_type is None:
        raise ValueError(f"{where}: conversations[2].value is not 'What describes <type> in the text?'")
    rid = record.get("id", where)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"{where}: id: expected a string, got {rid!r:.40}")
    return text[len(PASSAGE_PREFIX):], EvalQuery(str(rid), entity_type, turns[3]["value"])


def read_eval_file(path: str | Path, limit: int | None = None) -> list[EvalPassage]:
    """Read an official evaluation file (JSONL, or the original JSON array) grouped by passage, in file order;
    ``limit`` keeps the first N passages. Predictions are keyed by record id, so a record id that occurs twice is
    an error naming both places (the second question would otherwise never be asked)."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        data = path.read_bytes()
        try:
            array = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise ValueError(f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x}); save the file as "
                             "UTF-8") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(array, list):
            raise ValueError(f"{path}: expected a JSON array of records")
        records = [(f"{path}: record {i}", r) for i, r in enumerate(array, 1)]
    else:
        records = [(f"{path}:{n}", r) for n, r in json_records(path, blank_lines="skip")]
    groups: dict[str, EvalPassage] = {}
    seen: dict[str, str] = {}  # record id -> where it was first seen
    for where, record in records:
        passage, query = parse_record(record, where)
        if query.id in seen:  # predictions are keyed by id: a second record with it would never be asked
            raise ValueError(f"{where}: id: duplicate record id {query.id!r} (first at {seen[query.id]})")
        seen[query.id] = where
        if passage not in groups:
            if limit is not None and len(groups) >= limit:
                continue
            groups[passage] = EvalPassage(passage)
        groups[passage].queries.append(query)
    return list(groups.values())


def _check_prediction(record: Any, where: str) -> None:
    if not (isinstance(record, dict) and isinstance(record.get("id"), str)
            and isinstance(record.get("prediction"), str)):
        raise ValueError(f"{where}: not a prediction record (expected {{'id': str, 'prediction': str}})")


def predict(
    model: Any,
    tokenizer: Any,
    passages: Sequence[EvalPassage],
    max_new_tokens: int = 64,
    shared_prefix: bool = True,
    cache: str | Path | None = None,
    progress: bool = True,
    eos: str | None = None,
    variant: str = "per_type",
) -> dict[str, str]:
    """The model's answer text for every record id; with ``cache`` (a JSONL file) answers are appended as they
    are made and reused on the next call."""
    from tqdm.auto import tqdm

    from nerlib.uniner.infer import answer

    log = AppendLog(cache, check=_check_prediction) if cache is not None else None
    # a cut-off last line (an interrupted run) is skipped with a warning and its passage answered again
    done = {r["id"]: r["prediction"] for r in log} if log is not None else {}
    for p in tqdm(passages, desc="passages", disable=not progress):
        todo = [q for q in p.queries if q.id not in done]
        if not todo:
            continue
        answers = answer(model, tokenizer, p.passage, [q.entity_type for q in todo], shared_prefix=shared_prefix,
                         max_new_tokens=max_new_tokens, eos=eos, variant=variant)
        for q, a in zip(todo, answers):
            done[q.id] = a
        if log is not None:
            log.append(*({"id": q.id, "prediction": a} for q, a in zip(todo, answers)))
    return done


def passage_counts(passages: Sequence[EvalPassage], predictions: dict[str, str],
                   partial: bool = False) -> list[tuple[float, int, int]]:
    """``(tp, n_gold, n_pred)`` of each passage's questions (strict, or partial credit): the units that
    :func:`nerlib.metrics.bootstrap_f1` resamples."""
    from nerlib.metrics import score_answers

    out = []
    for p in passages:
        r = score_answers([q.gold for q in p.queries], [predictions[q.id] for q in p.queries], partial=partial)
        out.append((r["tp"], r["n_gold"], r["n_pred"]))
    return out


def score(passages: Sequence[EvalPassage], predictions: dict[str, str],
          counts: Sequence[tuple[float, int, int]] | None = None) -> dict:
    """Strict and partial precision/recall/F1, a 95% bootstrap interval of strict F1 over passages
    (``f1_low``, ``f1_high``), parse failures, and how many answers and gold answers are empty (``[]``).
    The two ways an answer's emptiness can be wrong, counted per question: ``missed_questions`` (the gold names
    mentions, the answer none: ``[]`` or a parse failure) and ``invented_questions`` (the gold is ``[]``, the answer
    names something). A student can answer ``[]`` as often as the gold does and still make both errors often.
    ``counts``: the passages' :func:`passage_counts`, when the caller has them already."""
    from nerlib.metrics import bootstrap_f1, score_answers

    queries = [q for p in passages for q in p.queries]
    missing = [q.id for q in queries if q.id not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} records (first: {missing[0]})")
    golds = [q.gold for q in queries]
    preds = [predictions[q.id] for q in queries]
    strict = score_answers(golds, preds)
    partial = score_answers(golds, preds, partial=True)
    return {
        "passages": len(passages),
        "queries": len(queries),
        "precision": strict["precision"],
        "recall": strict["recall"],
        "f1": strict["f1"],
        "partial_precision": partial["precision"],
        "partial_recall": partial["recall"],
        "partial_f1": partial["f1"],
        "parse_failures": strict["parse_failures"],
        "empty_predictions": sum(p.strip() == "[]" for p in preds),
        "empty_golds": sum(g.strip() == "[]" for g in golds),
        "missed_questions": strict["missed_queries"],
        "invented_questions": strict["invented_queries"],
        **dict(zip(("f1_low", "f1_high"), bootstrap_f1([counts or passage_counts(passages, predictions)])
                   if passages else (0.0, 0.0))),
    }


def score_per_type(passages: Sequence[EvalPassage], predictions: dict[str, str]) -> dict:
    """Strict and partial precision/recall/F1 (percent) over all queries and for each entity type."""
    from nerlib.metrics import score_answers

    def percent(golds: list[str], preds: list[str]) -> dict:
        out = {}
        for prefix, partial in (("", False), ("partial_", True)):
            r = score_answers(golds, preds, partial=partial)
            out.update({prefix + k: round(100 * r[k], 2) for k in ("precision", "recall", "f1")})
        return out

    by_type: dict[str, tuple[list[str], list[str]]] = {}
    for p in passages:
        for q in p.queries:
            golds, preds = by_type.setdefault(q.entity_type, ([], []))
            golds.append(q.gold)
            preds.append(predictions[q.id])
    overall = score(passages, predictions)
    for k in ("precision", "recall", "f1", "partial_precision", "partial_recall", "partial_f1", "f1_low", "f1_high"):
        overall[k] = round(100 * overall[k], 2)
    overall["per_type"] = {t: {**percent(g, p), "queries": len(g)} for t, (g, p) in sorted(by_type.items())}
    return overall


def evaluate_domains(
    model: Any,
    tokenizer: Any,
    domains: Sequence[str] = DOMAINS,
    limit: int | None = None,
    max_new_tokens: int = 64,
    shared_prefix: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    eos: str | None = None,
    variant: str = "per_type",
    split: str = "test",
    resolve_types: bool = False,
    ground_mentions: bool = False,
) -> "Any":
    """One row per domain and an ``average`` row, a ``pandas.DataFrame`` indexed by domain: strict and partial F1 in
    percent with a 95% bootstrap interval of strict F1 over passages (``f1_low``, ``f1_high``; the average row's
    is the interval of the mean over domains), parse failures, the share of empty answers beside the gold's
    (``empty_pred_share``, ``empty_gold_share``, percent), the two errors behind that share (``missed_share``: of
    the questions whose gold names mentions, the percent answered with none; ``invented_share``: of those whose gold
    is ``[]``, the percent answered with some; NaN where a domain has no such question) and seconds.
    ``cache_dir`` keeps per-domain prediction files for resuming. ``split="validation"`` asks the domains' validation passages instead of the test ones (to
    choose settings without looking at the test set). ``table.attrs["passage_counts"]`` keeps each domain's
    per-passage counts, for :func:`f1_difference`, ``table.attrs["predictions"]`` the scored answers of each
    domain by record id, and ``split`` and ``limit`` which passages they answer (for :func:`domain_confusions`).
    ``resolve_types`` scores the answers after :func:`nerlib.uniner.resolve.resolve_predictions` (one type per
    mention; cached beside the predictions as ``<domain>.resolved.jsonl``). ``ground_mentions`` scores them after
    :func:`nerlib.uniner.extract.ground_answer` (only the mentions found in the passage, as the extractor returns
    them; not the paper's metric, which scores every string written)."""
    passages, answers, seconds = {}, {}, {}
    for domain in domains:
        passages[domain] = read_eval_file(eval_file(domain, split), limit)
        cache = Path(cache_dir) / f"{domain}.jsonl" if cache_dir is not None else None
        start = time.perf_counter()
        preds = predict(model, tokenizer, passages[domain], max_new_tokens, shared_prefix, cache, progress, eos,
                        variant)
        if resolve_types:
            from nerlib.uniner.resolve import resolve_predictions

            resolved = Path(cache_dir) / f"{domain}.resolved.jsonl" if cache_dir is not None else None
            preds = resolve_predictions(model, tokenizer, passages[domain], preds, resolved, progress, eos)
        if ground_mentions:
            from nerlib.uniner.extract import ground_answer

            text = {q.id: p.passage for p in passages[domain] for q in p.queries}
            preds = {rid: ground_answer(text[rid], a) if rid in text else a for rid, a in preds.items()}
        seconds[domain] = time.perf_counter() - start
        answers[domain] = preds
    return score_domains(passages, answers, split, limit, seconds)


def score_domains(passages: dict[str, Sequence[EvalPassage]], predictions: dict[str, dict[str, str]],
                  split: str = "test", limit: int | None = None, seconds: dict[str, float] | None = None) -> "Any":
    """The table of :func:`evaluate_domains` from answers already made: ``predictions[domain]`` maps the record ids
    of ``passages[domain]`` to answer texts (``split`` and ``limit`` only label the table; ``seconds`` per domain,
    NaN where not given)."""
    import pandas as pd

    from nerlib.metrics import bootstrap_f1

    rows = []
    counts, answers = [], []
    for domain, ps in passages.items():
        preds = predictions[domain]
        answers.append(preds)
        counts.append(passage_counts(ps, preds))
        rows.append({"domain": domain, **score(ps, preds, counts[-1]),
                     "seconds": (seconds or {}).get(domain, float("nan"))})
    table = pd.DataFrame(rows).set_index("domain")
    table["empty_pred_share"] = table["empty_predictions"] / table["queries"]
    table["empty_gold_share"] = table["empty_golds"] / table["queries"]
    table["missed_share"] = table["missed_questions"] / (table["queries"] - table["empty_golds"])
    table["invented_share"] = table["invented_questions"] / table["empty_golds"]
    for col in ("precision", "recall", "f1", "partial_precision", "partial_recall", "partial_f1", "f1_low",
                "f1_high", "empty_pred_share", "empty_gold_share", "missed_share", "invented_share"):
        table[col] = 100 * table[col]
    if len(table) > 1:
        table.loc["average"] = table.mean(numeric_only=True)
        low, high = bootstrap_f1(counts)
        table.loc["average", ["f1_low", "f1_high"]] = [100 * low, 100 * high]
    table = table.round(2)
    table.attrs["passage_counts"] = dict(zip(passages, counts))
    table.attrs["predictions"] = dict(zip(passages, answers))  # the scored answers by record id, per domain
    table.attrs["split"], table.attrs["limit"] = split, limit  # which passages were asked
    return table


#: The columns that compare students at a glance: strict F1 with its interval, partial F1, empty-answer shares and
#: the two errors behind them.
SUMMARY_COLUMNS = ("f1", "f1_low", "f1_high", "partial_f1", "empty_pred_share", "empty_gold_share", "missed_share",
                   "invented_share")


def averages(tables: dict[str, Any]) -> Any:
    """One row per student (label -> :func:`evaluate_domains` table): its ``average`` row (its only row when it
    scored one domain) in :data:`SUMMARY_COLUMNS`, as a ``pandas.DataFrame`` indexed by label."""
    import pandas as pd

    rows = {label: (t.loc["average"] if "average" in t.index else t.iloc[-1])[list(SUMMARY_COLUMNS)]
            for label, t in tables.items()}
    return pd.DataFrame(rows).T


def domain_confusions(table: Any) -> "Any":
    """:func:`nerlib.uniner.resolve.type_confusions` per domain of an :func:`evaluate_domains` table (its scored
    answers against the same passages), a ``pandas.DataFrame`` with one row per domain; ``.sum()`` gives the total."""
    import pandas as pd

    from nerlib.uniner.resolve import type_confusions

    missing = [k for k in ("predictions", "split") if k not in table.attrs]
    if missing:
        raise ValueError(f"domain_confusions needs a table from evaluate_domains; its attrs lack {missing}")
    return pd.DataFrame({d: type_confusions(read_eval_file(eval_file(d, table.attrs["split"]), table.attrs["limit"]),
                                            answers) for d, answers in table.attrs["predictions"].items()}).T


def f1_difference(a: Any, b: Any, level: float = 0.95) -> dict:
    """Strict F1 of student ``a`` minus student ``b`` (two :func:`evaluate_domains` tables over the same passages),
    averaged over domains as the tables' ``average`` row, with a paired bootstrap interval over passages
    (:func:`nerlib.metrics.paired_bootstrap_difference`): ``{"difference", "low", "high"}`` in F1 points. Two
    students' separate intervals may overlap while the paired one excludes 0: they err on the same hard passages."""
    from nerlib.metrics import paired_bootstrap_difference

    ca, cb = a.attrs.get("passage_counts"), b.attrs.get("passage_counts")
    if ca is None or cb is None:
        raise ValueError("f1_difference: pass tables from evaluate_domains (they carry the per-passage counts)")
    if list(ca) != list(cb):
        raise ValueError(f"f1_difference: the tables cover different domains: {list(ca)} and {list(cb)}")
    diff, low, high = paired_bootstrap_difference(list(ca.values()), list(cb.values()), level=level)
    return {"difference": round(100 * diff, 2), "low": round(100 * low, 2), "high": round(100 * high, 2)}


def plot_domains(tables: dict[str, Any], paper_rows: Sequence[str] = ("UniNER-7B", "ChatGPT (teacher)"), ax=None):
    """Strict F1 per CrossNER domain as grouped bars: each of ``tables`` (label -> an :func:`evaluate_domains`
    table) with its 95% bootstrap interval as error bar, beside the paper's Table 3 rows (hatched, no interval).
    The ``average`` column is the mean over the domains shown, for the paper's rows too. Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    from nerlib.uniner.paper import TABLE3

    first = next(iter(tables.values()))
    domains = [d for d in first.index if d != "average"]
    columns = domains + (["average"] if "average" in first.index else [])
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(columns) + 3, 4))
    n = len(tables) + len(paper_rows)
    width = 0.8 / n
    x = np.arange(len(columns))
    for i, (label, table) in enumerate(tables.items()):
        f1 = table.loc[columns, "f1"].to_numpy(float)
        err = None
        if {"f1_low", "f1_high"} <= set(table.columns):
            err = np.vstack([f1 - table.loc[columns, "f1_low"].to_numpy(float),
                             table.loc[columns, "f1_high"].to_numpy(float) - f1])
        ax.bar(x - 0.4 + width * (i + 0.5), f1, width, yerr=err, capsize=2, label=label, color=f"C{i}")
    for j, row in enumerate(paper_rows):
        values = [TABLE3[row][d] for d in domains]
        values += [float(np.mean(values))] if "average" in columns else []
        ax.bar(x - 0.4 + width * (len(tables) + j + 0.5), values, width, label=f"{row} (paper)", color="white",
               edgecolor=f"C{len(tables) + j}", hatch="//")
    ax.set_xticks(x, columns)
    ax.set_ylabel("strict F1 (%)")
    ax.set_title("Zero-shot CrossNER: ours (95% bootstrap interval) beside the paper's Table 3")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


__all__ = [
    "DOMAINS", "DOMAIN_FILES", "EvalPassage", "EvalQuery", "SUMMARY_COLUMNS", "averages", "eval_file",
    "evaluate_domains", "f1_difference",
    "parse_record",
    "passage_counts", "plot_domains", "predict", "read_eval_file", "score", "score_domains", "score_per_type",
]
