"""The paper's real teacher data: ChatGPT annotations of Pile passages (Pile-NER-type), offline or from the hub.

Offline, ``$NERLIB_DATA_DIR/pile_ner_type/`` holds a small derived sample of Pile-NER-type in SLIMER's layout: one
record per (passage, entity type) with the teacher's mentions as a JSON list (``"[]"`` for a type asked but absent).
:func:`read_slimer` regroups the records into one :class:`~nerlib.uniner.annotations.Annotation` per passage, and
:func:`reconstruct_answer` writes the passage's mentions back in the paper's tuple format, so that the
:class:`~nerlib.uniner.teacher.ReplayTeacher` answers like ChatGPT did and the same parse/clean pipeline runs on it.

On the hub (Colab), ``Universal-NER/Pile-NER-type`` is in the conversation format of the paper's training data;
:func:`parse_conversation` reads it into the same annotations (or :func:`conversation_to_example` straight into an
:class:`~nerlib.uniner.records.InstructionExample`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from nerlib.config import data_dir, hub_unavailable
from nerlib.data.io import json_records
from nerlib.uniner.annotations import Annotation
from nerlib.uniner.conversations import PASSAGE_PREFIX, parse_question
from nerlib.uniner.records import InstructionExample, Query
from nerlib.uniner.teacher import ReplayTeacher

LOCAL_NAME = "pile_ner_type"
HUB_NAME = "Universal-NER/Pile-NER-type"
SLIMER_FILES = {
    False: "slimer_pileNER391_5pos5neg_FalseDef_validation.jsonl",
    True: "slimer_pileNER391_5pos5neg_TrueDef_validation.jsonl",
}
#: Passages at the end of the local sample that no training set reads: the open-type evaluation on text the
#: student never saw (:func:`held_out_pile_ner`; ``nerlib.uniner.evaluate.eval_file("pile_held_out")``). Only a
#: sample of at least twice as many passages gives them up (the course's has 882; a tiny test file keeps all).
HELD_OUT_PASSAGES = 200

#: The model name recorded with replayed answers (the paper's teacher).
TEACHER_MODEL = "gpt-3.5-turbo (recorded Pile-NER-type answers)"

_FIELDS = ("doc_question_pairID", "tagName", "input", "output")


def _order_by_position(passage: str, entities: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Mentions in order of first occurrence in the passage (mentions not found go last, in input order)."""
    def pos(item: tuple[int, tuple[str, str]]) -> tuple[int, int]:
        i, (mention, _) = item
        p = passage.find(mention)
        return (p if p >= 0 else len(passage) + 1, i)

    return [e for _, e in sorted(enumerate(entities), key=pos)]


def read_slimer(path: str | Path, limit: int | None = None) -> list[Annotation]:
    """Regroup a SLIMER-layout Pile-NER-type file into one annotation per passage (in file order).

    ``entities`` holds every (mention, type) of the passage, in passage order, uncleaned (the chapter's cleaning
    step decides what to drop); ``empty_types`` the types asked with an empty answer. ``limit`` keeps the first
    passages. Errors name the file, line and field.
    """
    path = Path(path)
    docs: dict[str, dict[str, Any]] = {}
    for n, rec in json_records(path, blank_lines="skip"):
        where = f"{path}:{n}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for name in _FIELDS:
            if not isinstance(rec.get(name), str):
                raise ValueError(f"{where}: field {name!r} missing or not a string")
        doc_id = rec["doc_question_pairID"].split(":", 1)[0]
        try:
            mentions = json.loads(rec["output"])
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: field 'output' is not a JSON list ({err.msg})") from None
        if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
            raise ValueError(f"{where}: field 'output' must be a JSON list of strings")
        doc = docs.setdefault(doc_id, {"passage": rec["input"], "entities": [], "empty": []})
        if doc["passage"] != rec["input"]:
            raise ValueError(f"{where}: field 'input' differs from earlier records of passage {doc_id}")
        entity_type = rec["tagName"]
        if mentions:
            doc["entities"].extend((m, entity_type) for m in mentions)
        elif entity_type not in doc["empty"]:
            doc["empty"].append(entity_type)
    out = []
    for doc_id, doc in docs.items():
        entities = _order_by_position(doc["passage"], doc["entities"])
        out.append(Annotation(doc["passage"], entities, empty_types=doc["empty"], id=f"pile-{doc_id}"))
        if limit is not None and len(out) >= limit:
            break
    return out


# ----------------------------------------------------------------------------------------------------------------
# Type definitions (the ``TrueDef`` file): the paper's definition-based variant of the data
# ----------------------------------------------------------------------------------------------------------------

_DEFINITION_LINE = re.compile(r"^DEFINITION:\s*(.+?)\s*$", re.M)
_VERBS = ("refers to|refer to|denotes|represents|represent|encompasses|includes|include|describes|signifies|"
          "indicates|identifies|pertains to|involves|comprises|means|is|are")


def read_definitions(path: str | Path) -> dict[str, str]:
    """``{entity type: definition sentence}`` from a SLIMER-layout file whose instructions carry a
    ``DEFINITION: ...`` line (the ``TrueDef`` file). A type defined twice keeps its first definition. Errors name
    the file, line and field."""
    path = Path(path)
    out: dict[str, str] = {}
    for n, rec in json_records(path, blank_lines="skip"):
        where = f"{path}:{n}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for name in ("tagName", "instruction"):
            if not isinstance(rec.get(name), str):
                raise ValueError(f"{where}: field {name!r} missing or not a string")
        found = _DEFINITION_LINE.search(rec["instruction"])
        if found is None:
            raise ValueError(f"{where}: field 'instruction' has no 'DEFINITION: ...' line (is this the TrueDef file?)")
        out.setdefault(rec["tagName"], found.group(1))
    return out


def load_type_definitions(source: str = LOCAL_NAME) -> dict[str, str]:
    """The definitions of the recorded sample's types: ``source`` a SLIMER-layout file with definitions, or
    ``"pile_ner_type"`` for the ``TrueDef`` file under ``$NERLIB_DATA_DIR`` (the hub's Pile-NER-type has none)."""
    path = Path(source)
    if source == LOCAL_NAME:
        folder = data_dir()
        if folder is None:
            raise FileNotFoundError("type definitions come from the local TrueDef file: set NERLIB_DATA_DIR to the "
                                    "course data folder")
        path = folder / LOCAL_NAME / SLIMER_FILES[True]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (is NERLIB_DATA_DIR the course data folder?)")
    return read_definitions(path)


def short_definition(entity_type: str, sentence: str) -> str:
    """What a definition says the type *is*, as a noun phrase to ask about: ``"TREATMENT refers to medical
    procedures, therapies, ..."`` gives ``"medical procedures, therapies, ..."`` (the subject, an "in the context of
    NER" aside, a hedge such as "typically" and the verb are dropped, and the final full stop). A sentence of
    another shape is kept whole, without its full stop."""
    text = sentence.strip()
    text = re.sub(r"^in the context of (?:NER|named entity recognition),?\s*", "", text, flags=re.I)
    pattern = (r"^" + re.escape(entity_type) + r"\b(?:\s*\([^)]*\))?"
               r"(?:,?\s+in (?:the )?(?:context of )?(?:NER|named entity recognition)(?: context)?,?)?"
               r"(?:\s+(?:typically|generally|usually|often|commonly))?\s+(?:" + _VERBS + r")\s+(.+)$")
    found = re.match(pattern, text, flags=re.I | re.S)
    phrase = found.group(1) if found else text
    return phrase.rstrip().rstrip(".").rstrip()


def with_definitions(
    examples: Sequence[InstructionExample], definitions: dict[str, str], share: float = 1.0, seed: int = 0
) -> list[InstructionExample]:
    """The definition-based variant of instruction data (the paper's Pile-NER-definition): each question asks
    about :func:`short_definition` of its type instead of the type's name, for a ``share`` of the questions (drawn
    with ``seed``; 1.0 = all of them). Types without a definition, and supervised examples (``dataset`` set),
    keep their names. Returns new examples; the inputs are not modified."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    rng = random.Random(seed)
    out = []
    for ex in examples:
        queries = []
        for q in ex.queries:
            definition = definitions.get(q.entity_type) if ex.dataset is None else None
            use = definition is not None and (share >= 1.0 or rng.random() < share)
            name = short_definition(q.entity_type, definition) if use else q.entity_type
            queries.append(Query(name, list(q.answers)))
        out.append(dataclasses.replace(ex, queries=queries))
    return out


def reconstruct_answer(annotation: Annotation) -> str:
    """The passage's mentions as the teacher's answer string: ``[("mention", "type"), ...]``.

    Strings are quoted with JSON escapes, which Python's literal syntax reads back identically.
    """
    items = [f"({json.dumps(m, ensure_ascii=False)}, {json.dumps(t, ensure_ascii=False)})"
             for m, t in annotation.entities]
    return "[" + ", ".join(items) + "]"


def replay_teacher(annotations: Sequence[Annotation], model: str = TEACHER_MODEL, cache: Any = None) -> ReplayTeacher:
    """A teacher that answers each recorded passage with its reconstructed ChatGPT answer."""
    return ReplayTeacher({a.passage: reconstruct_answer(a) for a in annotations}, model=model, cache=cache)


def attach_recorded(annotations: Iterable[Annotation], recorded: Sequence[Annotation]) -> list[Annotation]:
    """Give cleaned annotations the id and the recorded negatives (types asked with an empty answer, minus any
    type now present) of the recorded passage they came from. Modifies and returns ``annotations``."""
    by_passage = {a.passage: a for a in recorded}
    out = list(annotations)
    for a in out:
        rec = by_passage.get(a.passage)
        if rec is not None:
            a.id = a.id or rec.id
            a.empty_types = [t for t in rec.empty_types if t not in a.types]
    return out


# ----------------------------------------------------------------------------------------------------------------
# The hub's conversation format
# ----------------------------------------------------------------------------------------------------------------


def _turns(record: dict, where: str) -> list[str]:
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ValueError(f"{where}: field 'conversations' missing or empty")
    values = []
    for i, turn in enumerate(conv):
        value = turn.get("value") if isinstance(turn, dict) else None
        if not isinstance(value, str):
            raise ValueError(f"{where}: conversations[{i}] has no string 'value'")
        values.append(value)
    return values


def parse_conversation(record: dict, where: str = "record") -> Annotation:
    """One Pile-NER-type conversation (``Text: ...`` / ``I've read this text.`` / ``What describes T in the
    text?`` / ``["m1", ...]`` ...) as an annotation: mentions per type, empty answers as ``empty_types``."""
    turns = _turns(record, where)
    if not turns[0].startswith(PASSAGE_PREFIX):
        raise ValueError(f"{where}: first turn should start with {PASSAGE_PREFIX!r}, got {turns[0][:40]!r}")
    passage = turns[0][len(PASSAGE_PREFIX):]
    entities: list[tuple[str, str]] = []
    empty: list[str] = []
    for q, a in zip(turns[2::2], turns[3::2]):
        entity_type = parse_question(q)
        if entity_type is None:
            raise ValueError(f"{where}: unexpected question {q[:60]!r}")
        try:
            answers = json.loads(a)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: answer for {entity_type!r} is not a JSON list: {a[:60]!r}") from None
        # numbers are read as their text (a year, a count); lists, objects and null are not mentions
        if not isinstance(answers, list) or not all(isinstance(m, (str, int, float)) and not isinstance(m, bool)
                                                    for m in answers):
            raise ValueError(f"{where}: answer for {entity_type!r} is not a JSON list of strings: {a[:60]!r}")
        if answers:
            entities.extend((str(m), entity_type) for m in answers)
        else:
            empty.append(entity_type)
    return Annotation(passage, entities, empty_types=empty, id=str(record.get("id", "")))


def conversation_to_example(record: dict, where: str = "record") -> InstructionExample:
    """A conversation straight into an instruction example (types and answers exactly as recorded)."""
    ann = parse_conversation(record, where)
    by_type: dict[str, list[str]] = {}
    for m, t in ann.entities:
        by_type.setdefault(t, []).append(m)
    queries = [Query(t, answers) for t, answers in by_type.items()] + [Query(t, []) for t in ann.empty_types]
    return InstructionExample(passage=ann.passage, queries=queries, id=ann.id)


# ----------------------------------------------------------------------------------------------------------------
# One entry point for the chapter
# ----------------------------------------------------------------------------------------------------------------


def _local_slimer(folder: Path, definitions: bool = False) -> list[Annotation]:
    """Every passage of the local SLIMER sample under the data folder ``folder``."""
    local = folder / LOCAL_NAME / SLIMER_FILES[definitions]
    if not local.is_file():
        raise FileNotFoundError(f"{local} not found (is NERLIB_DATA_DIR the course data folder?)")
    return read_slimer(local)


def _split_held_out(annotations: list[Annotation]) -> tuple[list[Annotation], list[Annotation]]:
    """(training passages, held-out passages) of the local sample: see :data:`HELD_OUT_PASSAGES`."""
    if len(annotations) < 2 * HELD_OUT_PASSAGES:
        return annotations, []
    return annotations[:-HELD_OUT_PASSAGES], annotations[-HELD_OUT_PASSAGES:]


def held_out_pile_ner() -> list[Annotation]:
    """The local sample's last :data:`HELD_OUT_PASSAGES` passages, which :func:`load_pile_ner_type` never returns
    for training: open-type questions (the teacher's types, including the ones it was asked and found absent) on
    text no student of the course has seen. Needs ``$NERLIB_DATA_DIR`` (the hub's full data has no such split)."""
    folder = data_dir()
    if folder is None:
        raise FileNotFoundError("the held-out Pile-NER-type passages need NERLIB_DATA_DIR (the course data folder "
                                "with pile_ner_type/)")
    held_out = _split_held_out(_local_slimer(folder))[1]
    if not held_out:
        raise ValueError(f"the local Pile-NER-type sample in {folder / LOCAL_NAME} has fewer than "
                         f"{2 * HELD_OUT_PASSAGES} passages: none is held out")
    return held_out


def load_pile_ner_type(
    source: str = LOCAL_NAME, limit: int | None = None, definitions: bool = False
) -> list[Annotation]:
    """Recorded teacher annotations, one per passage.

    ``source`` is ``"pile_ner_type"`` (the local SLIMER sample under ``$NERLIB_DATA_DIR``; the hub when that
    setting is absent), a path to a SLIMER-layout file, or a hub dataset name (``Universal-NER/Pile-NER-type``).
    ``definitions`` picks the local file whose SLIMER instructions carry type definitions (same answers).
    The local sample's last :data:`HELD_OUT_PASSAGES` passages are never returned (:func:`held_out_pile_ner`).
    """
    path = Path(source)
    if path.is_file():
        return read_slimer(path, limit)
    if source == LOCAL_NAME:
        folder = data_dir()
        if folder is not None:
            training = _split_held_out(_local_slimer(folder, definitions))[0]
            return training if limit is None else training[:limit]
        source = HUB_NAME
    from nerlib.data.registry import hub_dataset  # the hub's parquet conversion if the repo were a script

    split = "train" if limit is None else f"train[:{limit}]"
    try:
        ds = hub_dataset(source, None, split)
    except ConnectionError as err:  # offline or no network, and no local copy: say what to do
        raise hub_unavailable(f"the teacher data {source!r}", err) from err
    return [parse_conversation(rec, where=f"{source}[{i}]") for i, rec in enumerate(ds)]
