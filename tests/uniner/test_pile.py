"""Recorded Pile-NER-type teacher data: regrouping SLIMER records, answer reconstruction, replay, conversations."""

import json
import os
import re
from pathlib import Path

import pytest

from nerlib.uniner.annotations import annotate, parse_tuples
from nerlib.uniner.pile import (
    SLIMER_FILES,
    conversation_to_example,
    HELD_OUT_PASSAGES,
    held_out_pile_ner,
    load_pile_ner_type,
    load_type_definitions,
    parse_conversation,
    read_definitions,
    read_slimer,
    reconstruct_answer,
    replay_teacher,
    short_definition,
    with_definitions,
)
from nerlib.uniner.records import InstructionExample, Query

P1 = 'Tim Cook said "hi" in Cupertino, California.'
P2 = "Nothing to see here."


def rec(pid, tag, passage, output):
    return {"doc_question_pairID": pid, "tagName": tag, "input": passage, "instruction": "...", "output": output}


def write(tmp_path, records, name="slimer.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


RECORDS = [
    rec("7:0", "location", P1, json.dumps(["California", "Cupertino"])),
    rec("7:1", "person", P1, json.dumps(["Tim Cook"])),
    rec("7:2", "gene", P1, "[]"),
    rec("9:0", "city", P2, "[]"),
]


def test_read_slimer_regroups_by_passage(tmp_path):
    anns = read_slimer(write(tmp_path, RECORDS))
    assert [a.id for a in anns] == ["pile-7", "pile-9"]
    # mentions in passage order, whatever the order of the records
    assert anns[0].entities == [("Tim Cook", "person"), ("Cupertino", "location"), ("California", "location")]
    assert anns[0].empty_types == ["gene"]
    assert anns[1].entities == [] and anns[1].empty_types == ["city"]
    assert len(read_slimer(write(tmp_path, RECORDS), limit=1)) == 1


def test_reconstructed_answer_is_the_papers_format_and_round_trips(tmp_path):
    (ann, _) = read_slimer(write(tmp_path, RECORDS))
    answer = reconstruct_answer(ann)
    assert answer == '[("Tim Cook", "person"), ("Cupertino", "location"), ("California", "location")]'
    assert parse_tuples(answer) == (ann.entities, "ok")
    tricky = type(ann)(P1, [('said "hi"', "quote"), ("a\\b", "path")])
    assert parse_tuples(reconstruct_answer(tricky)) == (tricky.entities, "ok")


def test_replay_teacher_runs_through_the_cleaning_pipeline(tmp_path):
    anns = read_slimer(write(tmp_path, RECORDS))
    results = list(replay_teacher(anns).annotate([a.passage for a in anns], progress=False))
    cleaned, report = annotate(results)
    assert [a.entities for a in cleaned] == [anns[0].entities, []]
    assert report.parsed_ok == 2 and report.kept == 3


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", r":2: invalid JSON"),
        (json.dumps({"doc_question_pairID": "1:0", "input": "x", "output": "[]"}), r":2: field 'tagName' missing"),
        (json.dumps(rec("1:0", "t", "x", "[oops")), r":2: field 'output' is not a JSON list"),
        (json.dumps(rec("1:0", "t", "x", '{"a": 1}')), r":2: field 'output' must be a JSON list"),
        (json.dumps(rec("7:5", "t", "another text", "[]")), r":2: field 'input' differs"),
    ],
)
def test_read_slimer_errors_name_file_line_field(tmp_path, bad, message):
    path = write(tmp_path, [RECORDS[0], bad])
    with pytest.raises(ValueError, match=message):
        read_slimer(path)


CONV = {
    "id": "ner_42",
    "conversations": [
        {"from": "human", "value": "Text: Tim Cook runs Apple."},
        {"from": "gpt", "value": "I've read this text."},
        {"from": "human", "value": "What describes person in the text?"},
        {"from": "gpt", "value": '["Tim Cook"]'},
        {"from": "human", "value": "What describes city in the text?"},
        {"from": "gpt", "value": "[]"},
        {"from": "human", "value": "What describes company in the text?"},
        {"from": "gpt", "value": '["Apple"]'},
    ],
}


def test_parse_conversation():
    ann = parse_conversation(CONV)
    assert ann.passage == "Tim Cook runs Apple." and ann.id == "ner_42"
    assert ann.entities == [("Tim Cook", "person"), ("Apple", "company")]
    assert ann.empty_types == ["city"]
    ex = conversation_to_example(CONV)
    assert [(q.entity_type, q.answers) for q in ex.queries] == [
        ("person", ["Tim Cook"]), ("company", ["Apple"]), ("city", []),
    ]


def test_parse_conversation_errors():
    with pytest.raises(ValueError, match="rec3: field 'conversations'"):
        parse_conversation({"id": 1}, where="rec3")
    bad = {"conversations": [{"value": "Text: x"}, {"value": "ok"}, {"value": "Who?"}, {"value": "[]"}]}
    with pytest.raises(ValueError, match="unexpected question"):
        parse_conversation(bad)
    bad = {"conversations": [{"value": "Text: x"}, {"value": "ok"}, {"value": "What describes a in the text?"},
                             {"value": "Apple"}]}
    with pytest.raises(ValueError, match="answer for 'a' is not a JSON list"):
        parse_conversation(bad)


def test_load_from_a_path(tmp_path):
    assert len(load_pile_ner_type(str(write(tmp_path, RECORDS)))) == 2


DATA = os.environ.get("NERLIB_DATA_DIR")


@pytest.mark.skipif(not DATA or not (Path(DATA) / "pile_ner_type").is_dir(), reason="course data not available")
def test_real_recorded_data():
    anns = load_pile_ner_type()
    held_out = held_out_pile_ner()
    assert len(anns) == 682 and len(held_out) == HELD_OUT_PASSAGES == 200  # MANIFEST: 882 passages in all
    n_records = sum(len({t for _, t in a.entities}) + len(a.empty_types) for a in anns + held_out)
    assert n_records == 1320  # MANIFEST: 1320 records
    assert not {a.passage for a in anns} & {a.passage for a in held_out}  # no training set reads the tail
    assert SLIMER_FILES[True] != SLIMER_FILES[False]
    assert len(load_pile_ner_type(limit=16)) == 16


def test_annotate_pipeline_step_with_replay(tmp_path, monkeypatch):
    from nerlib.config import get_profile
    from nerlib.uniner.annotations import read_annotations
    from nerlib.uniner.supervised import instruction_mixture
    from nerlib.uniner.pipeline import annotate

    folder = tmp_path / "data" / "pile_ner_type"
    folder.mkdir(parents=True)
    write(folder, RECORDS, name=SLIMER_FILES[False])
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "data"))
    profile = get_profile("smoke")
    summary = annotate(profile, out_dir=tmp_path / "run", progress=False)
    assert (summary["passages"], summary["parsed_ok"], summary["entities"], summary["types"]) == (2, 2, 3, 2)
    anns = read_annotations(tmp_path / "run" / "annotations.jsonl")
    assert [(a.id, a.empty_types) for a in anns] == [("pile-7", ["gene"]), ("pile-9", ["city"])]
    again = annotate(profile, out_dir=tmp_path / "run", progress=False)  # resumed entirely from the cache
    assert again["cached"] == 2
    settings = profile.uniner.__class__(supervised_datasets=(), negatives_per_passage=1)
    mix = instruction_mixture(anns, settings, seed=0, progress=False)
    assert [[q.entity_type for q in ex.queries] for ex in mix] == [
        ["person", "location", "gene"],  # no absent type left to sample: all known types are asked already
        ["city", "location"] if mix[1].queries[1].entity_type == "location" else ["city", "person"],
    ]


# ---------------------------------------------------------------------------------------------------------------
# Type definitions (the TrueDef file)
# ---------------------------------------------------------------------------------------------------------------


def def_rec(tag, definition):
    instruction = (f"Extract the Named Entities of type {tag.upper()} from the text chunk you have read.\n"
                   f"DEFINITION: {definition}\nGUIDELINES: none.\nReturn a JSON list.")
    return {**rec("1:0", tag, P1, "[]"), "instruction": instruction}


@pytest.mark.parametrize(("entity_type", "sentence", "short"), [
    ("treatment", "TREATMENT refers to medical procedures or therapies.", "medical procedures or therapies"),
    ("name", "NAME in the context of named entity recognition refers to proper nouns.", "proper nouns"),
    ("issue", "In the context of NER, ISSUE refers to a specific problem.", "a specific problem"),
    ("section", "SECTION typically refers to a distinct division of a text.", "a distinct division of a text"),
    ("behavior", "BEHAVIOR in the NER context refers to actions or habits.", "actions or habits"),
    ("author", "AUTHOR identifies individuals who write.", "individuals who write"),
    ("body part", "BODY PART represents anatomical components.", "anatomical components"),
    ("odd", "Something else entirely.", "Something else entirely"),  # another shape: kept whole
])
def test_short_definition_keeps_what_the_type_is(entity_type, sentence, short):
    assert short_definition(entity_type, sentence) == short


def test_read_definitions_takes_the_definition_line(tmp_path):
    path = write(tmp_path, [def_rec("person", "PERSON refers to people."), def_rec("person", "PERSON is other."),
                            def_rec("city", "CITY denotes towns.")])
    assert read_definitions(path) == {"person": "PERSON refers to people.", "city": "CITY denotes towns."}


@pytest.mark.parametrize(("record", "message"), [
    ({**def_rec("city", "x"), "instruction": "no definition here"}, ":2: field 'instruction' has no 'DEFINITION"),
    ({"tagName": "city"}, ":2: field 'instruction' missing"),
    ("[1, 2]", ":2: expected a JSON object"),
])
def test_read_definitions_names_the_bad_line(tmp_path, record, message):
    path = write(tmp_path, [def_rec("person", "PERSON refers to people."), record])
    with pytest.raises(ValueError, match=re.escape(message)):
        read_definitions(path)


def test_with_definitions_renames_questions_not_answers():
    examples = [InstructionExample(P1, [Query("person", ["Tim Cook"]), Query("gene", [])], id="a"),
                InstructionExample("EU: x", [Query("person", ["x"])], dataset="conll2003_en", id="b")]
    definitions = {"person": "PERSON refers to human beings.", "gene": "GENE denotes units of heredity."}
    out = with_definitions(examples, definitions)
    assert [(q.entity_type, q.answers) for q in out[0].queries] == [("human beings", ["Tim Cook"]),
                                                                    ("units of heredity", [])]
    assert out[1].queries[0].entity_type == "person"  # supervised data keeps its dataset's labels
    assert examples[0].queries[0].entity_type == "person" and out[0].id == "a"  # inputs untouched
    assert with_definitions(examples, {})[0].queries[0].entity_type == "person"  # no definition: the name
    assert [q.entity_type for q in with_definitions(examples, definitions, share=0.0)[0].queries] == ["person", "gene"]
    half = [q.entity_type for ex in with_definitions(examples * 200, definitions, share=0.5, seed=3)
            for q in ex.queries if ex.dataset is None]
    assert 0.4 < sum(t in ("human beings", "units of heredity") for t in half) / len(half) < 0.6
    with pytest.raises(ValueError, match="share"):
        with_definitions(examples, definitions, share=1.5)


@pytest.mark.skipif(not DATA or not (Path(DATA) / "pile_ner_type").is_dir(), reason="course data not available")
def test_every_recorded_type_has_a_short_definition():
    definitions = load_type_definitions()
    types = {t for a in load_pile_ner_type() for t in a.types}
    assert len(types - set(definitions)) <= 1  # the TrueDef file lacks at most one type of the FalseDef file
    shorts = [short_definition(t, s) for t, s in definitions.items()]
    assert all(s and not s.endswith(".") for s in shorts)
    assert sum(s.lower().startswith(t.lower()) for t, s in zip(definitions, shorts)) == 0  # the subject is gone


def test_type_definitions_need_the_local_file(tmp_path, monkeypatch):
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="NERLIB_DATA_DIR"):
        load_type_definitions()
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_type_definitions(str(tmp_path / "missing.jsonl"))
    path = write(tmp_path, [def_rec("city", "CITY denotes towns.")])
    assert load_type_definitions(str(path)) == {"city": "CITY denotes towns."}


def _local_sample(tmp_path, monkeypatch, n_passages):
    folder = tmp_path / "data" / "pile_ner_type"
    folder.mkdir(parents=True)
    records = [rec(f"{i}:0", "city" if i % 2 else "person", f"Passage {i} about Tim Cook in Paris .",
                   json.dumps(["Paris"] if i % 2 else []) if i % 3 else json.dumps(["Tim Cook", "Tim Cook"]))
               for i in range(n_passages)]
    write(folder, records, name=SLIMER_FILES[False])
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))


def test_the_tail_of_a_full_local_sample_is_held_out_of_training(tmp_path, monkeypatch):
    _local_sample(tmp_path, monkeypatch, 2 * HELD_OUT_PASSAGES + 10)
    train, held_out = load_pile_ner_type(), held_out_pile_ner()
    assert len(train) == HELD_OUT_PASSAGES + 10 and len(held_out) == HELD_OUT_PASSAGES
    assert train[-1].passage.startswith(f"Passage {HELD_OUT_PASSAGES + 9} ")
    assert held_out[0].passage.startswith(f"Passage {HELD_OUT_PASSAGES + 10} ")
    assert load_pile_ner_type(limit=5) == train[:5] and len(load_pile_ner_type(limit=10_000)) == len(train)


def test_a_small_local_sample_keeps_every_passage(tmp_path, monkeypatch):
    _local_sample(tmp_path, monkeypatch, 2 * HELD_OUT_PASSAGES - 1)
    assert len(load_pile_ner_type()) == 2 * HELD_OUT_PASSAGES - 1
    with pytest.raises(ValueError, match="none is held out"):
        held_out_pile_ner()


def test_held_out_passages_as_an_open_type_evaluation_file(tmp_path, monkeypatch):
    from nerlib.uniner.eval_data import eval_records_from_annotations
    from nerlib.uniner.evaluate import OPEN_DOMAIN, eval_file, read_eval_file

    _local_sample(tmp_path, monkeypatch, 2 * HELD_OUT_PASSAGES)
    passages = read_eval_file(eval_file(OPEN_DOMAIN))
    assert len(passages) == HELD_OUT_PASSAGES
    first = passages[0]  # passage 200: 200 % 3 != 0 and even -> "person" asked, teacher found none
    assert first.passage.startswith("Passage 200 ") and [(q.entity_type, q.gold) for q in first.queries] == [
        ("person", "[]")]
    third = passages[4]  # passage 204 = 3 * 68: a mention repeated by the teacher is asked once
    assert [(q.entity_type, json.loads(q.gold)) for q in third.queries] == [("person", ["Tim Cook"])]
    with pytest.raises(ValueError, match="test split only"):
        eval_file(OPEN_DOMAIN, "validation")
    from nerlib.uniner.annotations import Annotation

    ann = Annotation("Ada met Bob in Rome .", [("Ada", "person"), ("Rome", "city"), ("Bob", "person")], ["date"])
    records = eval_records_from_annotations([ann], "X")
    assert [(r["id"], r["conversations"][2]["value"], r["conversations"][3]["value"]) for r in records] == [
        ("X_0", "What describes person in the text?", '["Ada", "Bob"]'),
        ("X_1", "What describes city in the text?", '["Rome"]'),
        ("X_2", "What describes date in the text?", "[]")]
