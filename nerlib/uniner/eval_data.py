"""UniversalNER evaluation files made from any BIO dataset (``nerlib uniner make-eval``).

The official zero-shot files (``uniner_eval/CrossNER_*.jsonl``) hold one record per (passage, entity type): the
passage is the sentence's tokens joined by single spaces, every type of the dataset is asked about every passage
(the benchmark never asks CrossNER's ``misc``), the type is asked in natural language and the gold answer is the
JSON list of the type's mentions in sentence order (``[]`` when there is none)::

    {"id": "CrossNER_AI_0", "conversations": [
        {"from": "human", "value": "Text: <passage>"}, {"from": "gpt", "value": "I've read this text."},
        {"from": "human", "value": "What describes <type> in the text?"}, {"from": "gpt", "value": "[...]"}]}

:func:`eval_records_from_dataset` builds these records from a registry dataset (natural names from the registry)
or from a local JSONL file / CoNLL file / folder of splits (natural names from a ``labels`` map, else the names
file ``data/labels/natural_names.tsv``, else the raw name with underscores as spaces), so a course run without the
official files (Colab, from the hub) still evaluates.

Reproducing the official CrossNER files. Measured against the five files: the same passages in the same order,
the same types per passage (the official files shuffle the type order within a passage; we keep the registry
order) and the same gold lists as multisets, except for two conversion quirks of the official files:

* an entity that ends at the last token of its sentence is missing from the official gold list (their converter
  closes an open entity only when it reads the next tag): 4 records in AI, 2 in literature, 2 in music, 1 in
  politics, 1 in science. ``official_quirk=True`` reproduces this (the default for the five CrossNER datasets,
  so that scores equal those on the official files); ``False`` keeps every entity (the default elsewhere);
* the official politics file lacks the last test sentence (8 records), most likely a file without a final blank
  line; we keep it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from nerlib.data.tags import bio_to_spans
from nerlib.uniner.conversations import READ_REPLY, first_user_turn, parse_question, question

#: The CrossNER domains of the zero-shot benchmark and the names of their official files (``<name>.jsonl``).
DOMAIN_FILES = {
    "ai": "CrossNER_AI",
    "literature": "CrossNER_literature",
    "music": "CrossNER_music",
    "politics": "CrossNER_politics",
    "science": "CrossNER_science",
}
#: Registry names whose official evaluation files exist (record ids follow the official file names).
OFFICIAL_IDS = {f"crossner_{domain}": name for domain, name in DOMAIN_FILES.items()}


def default_natural(raw: str) -> str:
    """The natural-language name of a raw type without a registry entry: underscores become spaces
    (``Restaurant_Name`` -> ``Restaurant Name``)."""
    return raw.replace("_", " ").strip()


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"Restaurant_Name=restaurant name,Amenity=amenity"`` -> ``{"Restaurant_Name": "restaurant name", ...}``;
    a malformed item raises naming it."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        raw, sep, natural = item.partition("=")
        if not sep or not raw.strip() or not natural.strip():
            raise ValueError(f"--labels: item {item.strip()!r} is not RAW=natural name")
        out[raw.strip()] = natural.strip()
    return out


def read_bio(name_or_path: str | Path, split: str = "test", limit: int | None = None) -> tuple[str, list[dict], Any]:
    """(dataset name, sentences ``{"tokens", "ner_tags"}``, :class:`~nerlib.data.registry.DatasetInfo`) of a
    registry dataset, a JSONL or CoNLL file, or a folder holding one file per split (``test.jsonl``, ``dev.txt``,
    ...; see :func:`nerlib.data.registry.load_path`)."""
    from nerlib.data import registry

    name = str(name_or_path)
    if name not in registry.REGISTRY and not Path(name).exists():
        raise FileNotFoundError(
            f"{name!r} is neither a registered dataset ({', '.join(registry.names())}) nor an existing file or folder"
        )
    info = registry.get(name)
    ds = registry.load(name, split, limit=limit)
    examples = [{"tokens": list(r["tokens"]), "ner_tags": list(r["ner_tags"])} for r in ds]
    label = name if name in registry.REGISTRY else (Path(name).stem if Path(name).is_file() else Path(name).name)
    return label, examples, info


def gold_mentions(tokens: Sequence[str], tags: Sequence[str], official_quirk: bool = False) -> dict[str, list[str]]:
    """Mentions of every type in sentence order (tokens joined by spaces). ``official_quirk`` drops an entity
    that ends at the sentence's last token, as the official CrossNER files do."""
    out: dict[str, list[str]] = {}
    for start, end, etype in bio_to_spans(tags):
        if official_quirk and end == len(tokens):
            continue
        out.setdefault(etype, []).append(" ".join(tokens[start:end]))
    return out


def eval_record(record_id: str, passage: str, entity_type: str, mentions: Sequence[str]) -> dict:
    """One record in the official conversation format."""
    return {
        "id": record_id,
        "conversations": [
            {"from": "human", "value": first_user_turn(passage)},
            {"from": "gpt", "value": READ_REPLY},
            {"from": "human", "value": question(entity_type)},
            {"from": "gpt", "value": json.dumps(list(mentions))},
        ],
    }


def eval_records_from_dataset(
    name_or_path: str,
    split: str = "test",
    labels: dict[str, str] | None = None,
    limit: int | None = None,
    official_quirk: bool | None = None,
) -> list[dict]:
    """Official-format evaluation records for every (sentence, type) of a BIO dataset split.

    ``name_or_path``: a registry name (natural names from the registry; the benchmark's excluded types, e.g.
    CrossNER ``misc``, are not asked) or a local JSONL/CoNLL file or folder (every type found in its split files is
    asked). ``labels`` maps raw types to natural names and overrides both. ``limit`` keeps the first N sentences.
    ``official_quirk`` (default: on for the five CrossNER datasets only) reproduces the official files' missing
    sentence-final entities (see the module docstring)."""
    name, examples, info = read_bio(name_or_path, split, limit)
    if official_quirk is None:
        official_quirk = str(name_or_path) in OFFICIAL_IDS
    types = list(info.benchmark_labels)
    natural = {t: info.natural.get(t, default_natural(t)) for t in types}
    natural.update({k: v for k, v in (labels or {}).items() if k in natural})
    unknown = sorted(set(labels or {}) - set(natural))
    if unknown:
        raise ValueError(f"labels map names types {unknown} that {name!r} ({split}) does not have; its types: {types}")
    prefix = OFFICIAL_IDS.get(str(name_or_path), name)
    records = []
    for ex in examples:
        passage = " ".join(ex["tokens"])
        gold = gold_mentions(ex["tokens"], ex["ner_tags"], official_quirk)
        for t in types:
            records.append(eval_record(f"{prefix}_{len(records)}", passage, natural[t], gold.get(t, [])))
    return records


def eval_records_from_annotations(annotations: Sequence[Any], prefix: str) -> list[dict]:
    """Official-format records for teacher annotations (:class:`~nerlib.uniner.annotations.Annotation`): every type
    of a passage is asked, those with mentions (gold: its mentions, in passage order, each once) and the types the
    teacher was asked and found absent (gold ``[]``). Ids are ``<prefix>_<n>``."""
    records = []
    for ann in annotations:
        mentions: dict[str, list[str]] = {}
        for m, t in ann.entities:
            if m not in mentions.setdefault(t, []):
                mentions[t].append(m)
        for t in [*mentions, *(t for t in ann.empty_types if t not in mentions)]:
            records.append(eval_record(f"{prefix}_{len(records)}", ann.passage, t, mentions.get(t, [])))
    return records


def write_eval_file(records: Sequence[dict], path: str | Path) -> Path:
    """Write records as JSONL, one record per line, UTF-8 (the gold answers keep the official ``\\uXXXX``
    escapes inside their JSON list), like the course's copies of the official files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def make_eval(
    dataset: str,
    out: str | Path,
    split: str = "test",
    labels: dict[str, str] | str | None = None,
    limit: int | None = None,
    official_quirk: bool | None = None,
) -> dict:
    """Command-line entry (``nerlib uniner make-eval``): write the file and summarise it."""
    if isinstance(labels, str):
        labels = parse_label_map(labels)
    records = eval_records_from_dataset(dataset, split, labels, limit, official_quirk)
    path = write_eval_file(records, out)
    passages = {r["conversations"][0]["value"] for r in records}
    types = sorted({parse_question(r["conversations"][2]["value"]) for r in records})
    return {"dataset": dataset, "split": split, "file": str(path), "records": len(records),
            "distinct_passages": len(passages), "types": types,
            "non_empty_golds": sum(r["conversations"][3]["value"] != "[]" for r in records)}


__all__ = [
    "DOMAIN_FILES", "OFFICIAL_IDS", "default_natural", "eval_record", "eval_records_from_dataset", "gold_mentions", "make_eval",
    "parse_label_map", "read_bio", "write_eval_file",
]
