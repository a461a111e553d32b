"""From teacher answers to clean typed annotations (UniversalNER, Section 2, "data construction").

The teacher answers in free text that *should* be a list of ``("mention", "type")`` tuples. :func:`parse_tuples`
reads it tolerantly (Python literals, JSON, stray text around the list, cut-off answers) and says how it fared:
``ok`` (the list parsed as a whole), ``recovered`` (pairs salvaged from broken text) or ``failed``. :func:`clean`
then applies the paper's post-processing: mentions that do not occur in the passage, empty types and catch-all
types (``none``, ``misc``, ``other``, ...) are dropped, and type strings are normalised. Nothing is dropped
silently: every decision is counted in an :class:`AnnotationReport`.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from nerlib.config import NerlibWarning
from nerlib.data.io import json_records
from nerlib.uniner.records import (
    InstructionExample, Query, RecordError, record_id, require, require_passage, string_list,
)

#: Types that carry no information; annotations with them are dropped (after normalisation).
CATCH_ALL_TYPES = frozenset(
    {"", "none", "null", "nil", "n/a", "na", "nan", "misc", "miscellaneous", "other", "others", "else",
     "unknown", "not applicable", "no type", "entity", "entities", "type", "entity type"}
)

_QUOTED = r"""(?:"(?P<{0}d>[^"\n]*)"|'(?P<{0}s>[^'\n]*)')"""
# One ("mention", "type") pair in double or single quotes, inside () or []; a quoted string never spans lines or
# contains its own quote character, so a pair with an unbalanced quote cannot swallow its neighbours.
_PAIR = re.compile(r"[\(\[]\s*" + _QUOTED.format("m") + r"\s*,\s*" + _QUOTED.format("t") + r"\s*[\)\]]")


@dataclass
class Annotation:
    """A passage with its clean ``(mention, type)`` pairs; ``empty_types`` are types asked with no answer."""

    passage: str
    entities: list[tuple[str, str]]
    empty_types: list[str] = field(default_factory=list)
    id: str = ""

    @property
    def types(self) -> list[str]:
        """The distinct entity types of the passage, in order of first mention."""
        return list(dict.fromkeys(t for _, t in self.entities))


@dataclass
class AnnotationReport:
    """Counts from parsing and cleaning a batch of answers."""

    passages: int = 0
    teacher_failures: int = 0  # results with an error (no answer at all)
    parsed_ok: int = 0
    parse_recovered: int = 0
    parse_failed: int = 0
    pairs: int = 0  # pairs read from the answers
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    examples_failed: list[str] = field(default_factory=list)  # a few raw answers that did not parse

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("dropped", "examples_failed")}
        d.update({f"dropped_{k}": v for k, v in sorted(self.dropped.items())})
        return d


def _as_pairs(value: Any) -> list[tuple[str, str]] | None:
    """Pairs from a parsed Python/JSON value, or ``None`` when it is not a list of 2-string items."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        value = [value]  # a single tuple without the surrounding list
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for item in value:
        if isinstance(item, dict) and len(item) == 2:
            item = tuple(item.values())
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            return None
        if not all(isinstance(v, (str, int, float)) for v in item):
            return None
        out.append((str(item[0]), str(item[1])))
    return out


def parse_tuples(text: str) -> tuple[list[tuple[str, str]], str]:
    """Read a teacher answer into ``(mention, type)`` pairs; the status is ``ok``, ``recovered`` or ``failed``.

    ``ok``: the text from the first ``[`` to the last ``]`` is a Python literal or JSON list of 2-item tuples
    (``[]`` included). ``recovered``: that failed (cut-off answer, unbalanced quotes, prose between items) but
    quoted pairs could be salvaged one by one. ``failed``: nothing usable.
    """
    if not isinstance(text, str):
        return [], "failed"
    start, end = text.find("["), text.rfind("]")
    candidates = [text[start : end + 1]] if start != -1 and end > start else []
    candidates.append(text.strip())
    for cand in candidates:
        for loader in (ast.literal_eval, json.loads):
            try:
                pairs = _as_pairs(loader(cand))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if pairs is not None:
                return pairs, "ok"
    pairs = [(m["md"] if m["md"] is not None else m["ms"], m["td"] if m["td"] is not None else m["ts"])
             for m in _PAIR.finditer(text)]
    return (pairs, "recovered") if pairs else ([], "failed")


def normalize_type(entity_type: str) -> str:
    """Lower-case, underscores/hyphen runs as spaces, surrounding quotes and punctuation stripped, spaces collapsed."""
    t = entity_type.lower().replace("_", " ")
    t = re.sub(r"\s+", " ", t).strip(" \t\n\"'`.,;:")
    return t


def clean(
    pairs: Sequence[tuple[str, str]],
    passage: str,
    report: AnnotationReport | None = None,
) -> list[tuple[str, str]]:
    """The paper's post-processing of one passage's pairs; reasons for every drop go into ``report.dropped``.

    Drops: empty mention, mention not found verbatim in the passage, empty or catch-all type, duplicate pair.
    Kept pairs have the mention stripped and the type normalised (:func:`normalize_type`).
    """
    report = report if report is not None else AnnotationReport()
    out: list[tuple[str, str]] = []
    seen = set()
    for mention, entity_type in pairs:
        report.pairs += 1
        mention = mention.strip()
        t = normalize_type(entity_type)
        reason = None
        if not mention:
            reason = "empty_mention"
        elif mention not in passage:
            reason = "mention_not_in_passage"
        elif t in CATCH_ALL_TYPES:
            reason = "empty_type" if not t else "catch_all_type"
        elif (mention, t) in seen:
            reason = "duplicate"
        if reason:
            report.dropped[reason] += 1
            continue
        seen.add((mention, t))
        out.append((mention, t))
    report.kept += len(out)
    return out


def annotate(results: Iterable[Any], keep_failed: int = 5) -> tuple[list[Annotation], AnnotationReport]:
    """Parse and clean teacher results (``TeacherResult`` or anything with ``passage``, ``content``, ``ok``).

    Every passage with an answer yields an :class:`Annotation` (possibly with no entities); failed requests and
    unparseable answers are counted, and the first ``keep_failed`` unparseable answers are kept for inspection.
    """
    report = AnnotationReport()
    out = []
    for r in results:
        report.passages += 1
        if not getattr(r, "ok", True):
            report.teacher_failures += 1
            continue
        pairs, status = parse_tuples(r.content)
        if status == "ok":
            report.parsed_ok += 1
        elif status == "recovered":
            report.parse_recovered += 1
        else:
            report.parse_failed += 1
            if len(report.examples_failed) < keep_failed:
                report.examples_failed.append(r.content)
            continue
        out.append(Annotation(r.passage, clean(pairs, r.passage, report), id=getattr(r, "id", "")))
    return out, report


# ----------------------------------------------------------------------------------------------------------------
# Statistics and the head/tail picture of the paper
# ----------------------------------------------------------------------------------------------------------------


def type_counts(annotations: Iterable[Annotation]) -> Counter:
    """How many mentions each entity type has over the whole data set."""
    return Counter(t for a in annotations for _, t in a.entities)


def summary(annotations: Sequence[Annotation]) -> dict[str, float]:
    """Passages, entities (mentions), distinct types, and means per passage."""
    counts = type_counts(annotations)
    n = len(annotations)
    entities = sum(counts.values())
    return {
        "passages": n,
        "entities": entities,
        "types": len(counts),
        "entities_per_passage": entities / n if n else 0.0,
        "types_per_passage": sum(len(a.types) for a in annotations) / n if n else 0.0,
    }


def head_tail(counts: Counter, cuts: Sequence[float] = (0.01, 0.10)) -> list[dict[str, Any]]:
    """The paper's head/tail table: share of all mentions held by the top 1%, the top 1-10% and the rest of types.

    Each row: ``group``, ``types`` (how many), ``share`` (fraction of mentions), ``examples`` (most frequent few).
    """
    ranked = [t for t, _ in counts.most_common()]
    total = sum(counts.values()) or 1
    bounds = [0] + [max(1, math.ceil(c * len(ranked))) for c in cuts] + [len(ranked)]
    names = []
    prev = 0.0
    for c in cuts:
        names.append(f"top {prev * 100:g}-{c * 100:g}%" if prev else f"top {c * 100:g}%")
        prev = c
    names.append("the rest")
    rows = []
    for name, lo, hi in zip(names, bounds[:-1], bounds[1:]):
        group = ranked[lo:hi] if hi > lo else []
        rows.append({
            "group": name,
            "types": len(group),
            "share": sum(counts[t] for t in group) / total,
            "examples": group[:6],
        })
    return rows


def plot_type_distribution(counts: Counter, top: int = 8, ax: Any = None, title: str | None = None) -> Any:
    """Frequency against rank of entity types on log-log axes, the ``top`` most frequent types labelled.

    This is the long tail the paper shows: a few general types (person, organization, ...) and thousands of rare
    ones. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    ranked = counts.most_common()
    if not ranked:
        raise ValueError("no entity types to plot")
    ranks = range(1, len(ranked) + 1)
    freqs = [c for _, c in ranked]
    ax.loglog(ranks, freqs, marker=".", linestyle="none", markersize=4)
    for i, (name, c) in enumerate(ranked[:top]):
        ax.annotate(name, (i + 1, c), xytext=(6, -2 - 9 * (i % 2)), textcoords="offset points", fontsize=7)
    ax.set_xlabel("type rank")
    ax.set_ylabel("mentions")
    ax.set_title(title or f"{len(ranked)} entity types, {sum(freqs)} mentions")
    return ax


# ----------------------------------------------------------------------------------------------------------------
# Annotations -> instruction examples
# ----------------------------------------------------------------------------------------------------------------


def to_example(annotation: Annotation, include_empty: bool = True) -> InstructionExample:
    """One :class:`InstructionExample`: a query per positive type (mentions in order, de-duplicated), then the
    recorded empty types as negative queries when ``include_empty``."""
    by_type: dict[str, list[str]] = {}
    for mention, t in annotation.entities:
        answers = by_type.setdefault(t, [])
        if mention not in answers:
            answers.append(mention)
    queries = [Query(t, answers) for t, answers in by_type.items()]
    if include_empty:
        queries += [Query(t, []) for t in annotation.empty_types if t not in by_type]
    return InstructionExample(passage=annotation.passage, queries=queries, id=annotation.id)


def to_examples(annotations: Iterable[Annotation], include_empty: bool = True) -> list[InstructionExample]:
    """:func:`to_example` for every annotation with at least one query."""
    out = [to_example(a, include_empty) for a in annotations]
    return [ex for ex in out if ex.queries]


def write_annotations(annotations: Iterable[Annotation], path: str | Path) -> Path:
    """Write annotations as JSONL (``passage``, ``entities`` as [mention, type] pairs, ``empty_types``, ``id``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for a in annotations:
            f.write(json.dumps({"passage": a.passage, "entities": [list(e) for e in a.entities],
                                "empty_types": a.empty_types, "id": a.id}, ensure_ascii=False) + "\n")
    return path


def read_annotations(path: str | Path, missing_mentions: str = "drop") -> list[Annotation]:
    """Read :func:`write_annotations` output, checking every field's type; errors name the file, line and field.

    ``passage`` must be a non-empty string, ``entities`` a list of ``[mention, type]`` string pairs, ``empty_types``
    a list of strings (a bare string is an error, never a list of its letters), ``id`` a string. A mention that does
    not occur in its passage cannot be trained on: with ``missing_mentions="drop"`` (the default) it is dropped and
    the drops are counted in one warning naming the first place; with ``"error"`` it raises.
    """
    if missing_mentions not in ("drop", "error"):
        raise ValueError(f"missing_mentions must be 'drop' or 'error', got {missing_mentions!r}")
    path = Path(path)
    out = []
    dropped, first = 0, ""
    for n, d in json_records(path, blank_lines="skip"):
        where = f"{path}:{n}"
        passage = require_passage(d, where)
        raw = require(d, "entities", list, where)
        entities = []
        for i, pair in enumerate(raw):
            name = f"entities[{i}]"
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                raise RecordError(f"{where}: {name}: expected a [mention, type] pair of strings, got {pair!r:.60}")
            mention, entity_type = pair
            if not mention.strip() or not entity_type.strip():
                raise RecordError(f"{where}: {name}: empty mention or type in {pair!r:.60}")
            if mention not in passage:
                if missing_mentions == "error":
                    raise RecordError(f"{where}: {name}: mention {mention!r} does not occur in the passage")
                dropped += 1
                first = first or f"{where}: {name} ({mention!r})"
                continue
            entities.append((mention, entity_type))
        empty_types = string_list(d.get("empty_types", []), where, "empty_types")
        out.append(Annotation(passage, entities, empty_types, record_id(d, where)))
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} mention(s) that do not occur in their passage (first: {first})",
                      NerlibWarning, stacklevel=2)
    return out
