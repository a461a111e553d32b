"""The instruction-data record shared by the data side (teacher, negatives, supervised data) and the
model side (conversations, training, inference) of UniversalNER.

One :class:`InstructionExample` is one passage and all the entity-type questions asked about it. Each
:class:`Query` holds an entity type (natural language, e.g. ``"person"``) and its answer: the list of mention
strings, empty for a negative type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nerlib.data.io import json_records


@dataclass
class Query:
    entity_type: str
    answers: list[str] = field(default_factory=list)


@dataclass
class InstructionExample:
    passage: str
    queries: list[Query]
    dataset: str | None = None  # set for supervised data rendered with the dataset-specific template
    id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "record") -> "InstructionExample":
        """Build from a JSON record, checking every field's type; errors read ``where: field: problem``.

        ``passage`` a non-empty string, ``queries`` a list of ``{"entity_type": str, "answers": [str, ...]}``,
        ``dataset`` a string or null, ``id`` a string (a number is accepted and turned into text).
        """
        passage = require_passage(d, where)
        raw_queries = require(d, "queries", list, where)
        queries = []
        for i, q in enumerate(raw_queries):
            name = f"queries[{i}]"
            if not isinstance(q, dict):
                raise RecordError(f"{where}: {name}: expected an object, got {type(q).__name__}")
            entity_type = require(q, "entity_type", str, where, prefix=name)
            if not entity_type.strip():
                raise RecordError(f"{where}: {name}.entity_type: empty entity type")
            answers = string_list(q.get("answers", []), where, f"{name}.answers")
            queries.append(Query(entity_type, answers))
        dataset = d.get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            raise RecordError(f"{where}: dataset: expected a string or null, got {_kind(dataset)}")
        return cls(passage=passage, queries=queries, dataset=dataset, id=record_id(d, where))


class RecordError(ValueError):
    """A JSONL record with a missing field or a field of the wrong type; the message names file, line and field."""


def _kind(value: Any) -> str:
    """How a JSON value reads in an error message: its JSON type and a short repr."""
    names = {str: "a string", list: "a list", dict: "an object", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    text = repr(value)
    return f"{names.get(type(value), type(value).__name__)} ({text[:40]}{'...' if len(text) > 40 else ''})"


def require(d: dict, key: str, kind: type, where: str, prefix: str = "") -> Any:
    """``d[key]``, which must be present and of type ``kind`` (``str``, ``list``, ...); else :class:`RecordError`."""
    name = f"{prefix}.{key}" if prefix else key
    if key not in d:
        raise RecordError(f"{where}: {name}: missing field")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = {str: "a string", list: "a list", dict: "an object"}.get(kind, kind.__name__)
        raise RecordError(f"{where}: {name}: expected {expected}, got {_kind(value)}")
    return value


def require_passage(d: Any, where: str) -> str:
    """The non-empty ``passage`` of a JSON-object record (instruction examples and annotations share this shape);
    anything else is a :class:`RecordError` naming ``where`` and the field."""
    if not isinstance(d, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(d).__name__}")
    passage = require(d, "passage", str, where)
    if not passage.strip():
        raise RecordError(f"{where}: passage: empty passage")
    return passage


def string_list(value: Any, where: str, name: str) -> list[str]:
    """``value`` as a list of strings: a JSON list whose items are all strings (a bare string is an error, not a
    list of its characters)."""
    if not isinstance(value, list):
        raise RecordError(f"{where}: {name}: expected a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RecordError(f"{where}: {name}[{i}]: expected a string, got {_kind(item)}")
    return list(value)


def record_id(d: dict, where: str) -> str:
    """The optional ``id`` field as text (strings as they are, integers converted; anything else is an error)."""
    value = d.get("id", "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{where}: id: expected a string, got {_kind(value)}")
    return str(value)


def write_examples(examples: Iterable[InstructionExample], path: str | Path) -> Path:
    """Write examples as JSONL, one passage per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_examples(path: str | Path) -> list[InstructionExample]:
    """Read examples written by :func:`write_examples`; errors name the file and line."""
    path = Path(path)
    return [InstructionExample.from_dict(d, where=f"{path}:{n}") for n, d in json_records(path, blank_lines="skip")]
