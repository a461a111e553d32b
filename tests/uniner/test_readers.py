"""Bad input to the UniversalNER readers (issue 13): every field's type is checked, errors name the file, line and
field, and the append-only prediction cache survives exotic line separators and a cut-off last line."""

from __future__ import annotations

import json
import warnings

import pytest

from nerlib.uniner import evaluate as E
from nerlib.uniner.annotations import Annotation, read_annotations, write_annotations
from nerlib.uniner.records import InstructionExample, Query, read_examples, write_examples


def _jsonl(path, *records, raw: str = ""):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + raw, encoding="utf-8")
    return path


GOOD_EXAMPLE = {"passage": "BERT and ELMo", "queries": [{"entity_type": "model", "answers": ["BERT", "ELMo"]}]}


# ------------------------------------------------------------------------------------------ instruction examples


def test_answers_as_a_string_is_an_error_not_a_list_of_letters(tmp_path):
    bad = {"passage": "BERT is a model", "queries": [{"entity_type": "model", "answers": "BERT"}]}
    path = _jsonl(tmp_path / "train.jsonl", GOOD_EXAMPLE, bad)
    with pytest.raises(ValueError, match=r"train\.jsonl:2: queries\[0\]\.answers: expected a list of strings, "
                                         r"got a string \('BERT'\)"):
        read_examples(path)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"passage": None, "queries": []}, r":1: passage: expected a string, got null"),
        ({"queries": []}, r":1: passage: missing field"),
        ({"passage": "x", "queries": {"entity_type": "a"}}, r":1: queries: expected a list, got an object"),
        ({"passage": "x", "queries": [{"entity_type": 3, "answers": []}]}, r":1: queries\[0\]\.entity_type: expected"),
        ({"passage": "x", "queries": [{"entity_type": "a", "answers": ["x", 7]}]}, r":1: queries\[0\]\.answers\[1\]"),
        ({"passage": "x", "queries": [], "dataset": 5}, r":1: dataset: expected a string or null"),
        ({"passage": "x", "queries": [], "id": ["a"]}, r":1: id: expected a string"),
        (["not", "an", "object"], r":1: expected a JSON object, got list"),
    ],
)
def test_example_fields_are_type_checked(tmp_path, record, message):
    path = _jsonl(tmp_path / "ex.jsonl", record)
    with pytest.raises(ValueError, match=r"ex\.jsonl" + message):
        read_examples(path)


def test_examples_keep_exotic_line_separators_inside_strings(tmp_path):
    passage = "one\u2028two\u2029three\x85four\x0bfive"
    ex = InstructionExample(passage, [Query("thing", ["two\u2029three"])], id="s1")
    path = write_examples([ex, InstructionExample("next", [Query("x", [])])], tmp_path / "ex.jsonl")
    assert "\u2028" in path.read_text(encoding="utf-8")  # written raw (ensure_ascii=False), not escaped
    got = read_examples(path)
    assert [e.passage for e in got] == [passage, "next"]
    assert got[0].queries[0].answers == ["two\u2029three"]


def test_examples_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD_EXAMPLE).encode() + b"\r\n")
    assert read_examples(path)[0].passage == "BERT and ELMo"


def test_examples_not_utf8_name_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    latin1 = '{"passage": "Málaga", "queries": []}\n'.encode("latin-1")
    path.write_bytes(json.dumps(GOOD_EXAMPLE).encode() + b"\n" + latin1)
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: not UTF-8 text \(byte 0xe1 at column 15\)"):
        read_examples(path)


# ------------------------------------------------------------------------------------------------- annotations


def test_empty_types_as_a_string_is_an_error(tmp_path):
    path = _jsonl(tmp_path / "ann.jsonl", {"passage": "Ada wrote code", "entities": [["Ada", "person"]],
                                           "empty_types": "person"})
    with pytest.raises(ValueError, match=r"ann\.jsonl:1: empty_types: expected a list of strings, got a string"):
        read_annotations(path)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"passage": None, "entities": []}, r":1: passage: expected a string, got null"),
        ({"passage": "  ", "entities": []}, r":1: passage: empty passage"),
        ({"passage": "Ada", "entities": "Ada"}, r":1: entities: expected a list, got a string"),
        ({"passage": "Ada", "entities": [["Ada", "person", "x"]]}, r":1: entities\[0\]: expected a \[mention, type\]"),
        ({"passage": "Ada", "entities": [["Ada", None]]}, r":1: entities\[0\]: expected a \[mention, type\]"),
        ({"passage": "Ada", "entities": [], "empty_types": [1]}, r":1: empty_types\[0\]: expected a string"),
    ],
)
def test_annotation_fields_are_type_checked(tmp_path, record, message):
    path = _jsonl(tmp_path / "ann.jsonl", record)
    with pytest.raises(ValueError, match=r"ann\.jsonl" + message):
        read_annotations(path)


def test_mentions_not_in_the_passage_are_dropped_and_counted(tmp_path):
    path = _jsonl(tmp_path / "ann.jsonl",
                  {"passage": "Ada wrote code", "entities": [["Ada", "person"], ["Bob", "person"]]},
                  {"passage": "Paris is big", "entities": [["Rome", "city"], ["Paris", "city"]], "id": "p2"})
    with pytest.warns(UserWarning, match=r"dropped 2 mention\(s\) that do not occur in their passage "
                                         r"\(first: .*ann\.jsonl:1: entities\[1\] \('Bob'\)\)"):
        got = read_annotations(path)
    assert got == [Annotation("Ada wrote code", [("Ada", "person")]), Annotation("Paris is big", [("Paris", "city")],
                                                                                 id="p2")]
    with pytest.raises(ValueError, match=r"ann\.jsonl:1: entities\[1\]: mention 'Bob' does not occur"):
        read_annotations(path, missing_mentions="error")


def test_written_annotations_read_back_without_warnings(tmp_path):
    anns = [Annotation("Ada\u2028Lovelace wrote", [("Ada\u2028Lovelace", "person")], ["city"], id="a1")]
    path = write_annotations(anns, tmp_path / "ann.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_annotations(path) == anns


def test_build_data_rejects_bad_annotations_before_writing(tmp_path, capsys, monkeypatch):
    from nerlib import cli

    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    path = _jsonl(tmp_path / "ann.jsonl", {"passage": "Ada wrote code", "entities": [["Ada", "person"]],
                                           "empty_types": "person"})
    code = cli.main(["uniner", "build-data", "--profile", "smoke", "--annotations", str(path),
                     "--out-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("nerlib: error: ") and "ann.jsonl:1: empty_types: expected a list of strings" in err
    assert not (tmp_path / "data" / "train.jsonl").exists()


def test_pile_conversation_answer_must_be_a_list_of_strings():
    from nerlib.uniner.pile import parse_conversation

    turns = ["Text: Ada wrote code", "I've read this text.", "What describes person in the text?", '[["Ada"]]']
    record = {"conversations": [{"from": "human", "value": v} for v in turns]}
    with pytest.raises(ValueError, match=r"rec: answer for 'person' is not a JSON list of strings"):
        parse_conversation(record, where="rec")


# ---------------------------------------------------------------------------------------------- evaluation files


def _eval_record(rid, passage, entity_type, gold):
    return {"id": rid, "conversations": [
        {"from": "human", "value": f"Text: {passage}"}, {"from": "gpt", "value": "I've read this text."},
        {"from": "human", "value": f"What describes {entity_type} in the text?"}, {"from": "gpt", "value": gold}]}


def test_duplicate_ids_in_an_evaluation_file_are_an_error(tmp_path):
    path = _jsonl(tmp_path / "CrossNER_AI.jsonl", _eval_record("7", "BERT is a model", "model", '["BERT"]'),
                  _eval_record("8", "BERT is a model", "person", "[]"),
                  _eval_record("7", "ELMo came first", "model", '["ELMo"]'))
    with pytest.raises(ValueError, match=r"CrossNER_AI\.jsonl:3: id: duplicate record id '7' \(first at "
                                         r".*CrossNER_AI\.jsonl:1\)"):
        E.read_eval_file(path)


def test_duplicate_ids_in_a_json_array_evaluation_file(tmp_path):
    path = tmp_path / "CrossNER_AI.json"
    path.write_text("\ufeff" + json.dumps([_eval_record("1", "A b", "x", "[]"), _eval_record("1", "C d", "x", "[]")]),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"record 2: id: duplicate record id '1'"):
        E.read_eval_file(path)


def test_evaluation_file_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "CrossNER_AI.json"
    text = json.dumps([_eval_record("1", "A b", "x", "[]"), _eval_record("2", "Málaga", "x", "[]")], indent=1,
                      ensure_ascii=False)
    path.write_bytes(text.encode("latin-1"))
    line = text[: text.index("Málaga")].count("\n") + 1
    with pytest.raises(ValueError, match=rf"CrossNER_AI\.json:{line}: not UTF-8 text \(byte 0xe1\)"):
        E.read_eval_file(path)
    (tmp_path / "e.jsonl").write_bytes(json.dumps(_eval_record("1", "A", "x", "[]")).encode() + b"\n\xff\n")
    with pytest.raises(ValueError, match=r"e\.jsonl:2: not UTF-8 text"):
        E.read_eval_file(tmp_path / "e.jsonl")


def test_evaluation_record_id_must_be_text(tmp_path):
    path = _jsonl(tmp_path / "ev.jsonl", _eval_record(["7"], "BERT is a model", "model", '["BERT"]'))
    with pytest.raises(ValueError, match=r"ev\.jsonl:1: id: expected a string"):
        E.read_eval_file(path)


# ----------------------------------------------------------------------------------------------- prediction cache


@pytest.fixture
def fake_answer(monkeypatch):
    """``nerlib.uniner.infer.answer`` replaced by a recorder that answers with a U+2028 inside the string."""
    asked = []

    def answer(model, tokenizer, passage, types, **kwargs):
        asked.append((passage, list(types)))
        return [f'["{passage.split()[0]}\u2028x"]' for _ in types]

    import nerlib.uniner.infer as infer

    monkeypatch.setattr(infer, "answer", answer)
    return asked


PASSAGES = [E.EvalPassage("Ada wrote", [E.EvalQuery("1", "person", '["Ada"]')]),
            E.EvalPassage("Bob sang", [E.EvalQuery("2", "person", '["Bob"]'), E.EvalQuery("3", "song", "[]")])]


def test_prediction_with_u2028_resumes(tmp_path, fake_answer):
    cache = tmp_path / "pred.jsonl"
    first = E.predict(None, None, PASSAGES, cache=cache, progress=False)
    assert first["1"] == '["Ada\u2028x"]'
    assert "\u2028" in cache.read_text(encoding="utf-8")
    fake_answer.clear()
    again = E.predict(None, None, PASSAGES, cache=cache, progress=False)
    assert again == first and fake_answer == []  # everything came from the cache


def test_truncated_last_prediction_line_is_redone(tmp_path, fake_answer):
    cache = tmp_path / "pred.jsonl"
    E.predict(None, None, PASSAGES, cache=cache, progress=False)
    text = cache.read_text(encoding="utf-8")
    cache.write_text(text[: text.rindex('{"id": "3"') + 12], encoding="utf-8")  # killed mid-write
    fake_answer.clear()
    with pytest.warns(UserWarning, match=r"pred\.jsonl:3: ignoring a cut-off last line"):
        got = E.predict(None, None, PASSAGES, cache=cache, progress=False)
    assert fake_answer == [("Bob sang", ["song"])]  # only the lost record is asked again
    assert set(got) == {"1", "2", "3"}
    lines = cache.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and [json.loads(line)["id"] for line in lines[:-1]] == ["1", "2", "3"]
    fake_answer.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert E.predict(None, None, PASSAGES, cache=cache, progress=False) == got
    assert fake_answer == []


def test_bad_prediction_record_names_file_and_line(tmp_path):
    cache = _jsonl(tmp_path / "pred.jsonl", {"id": "1", "prediction": "[]"}, {"id": "2", "prediction": ["BERT"]})
    with pytest.raises(ValueError, match=r"pred\.jsonl:2: not a prediction record"):
        E.predict(None, None, [], cache=cache, progress=False)
    cache.write_text('{"id": "1", "prediction": "[]"}\nnot json\n{"id": "2", "prediction": "[]"}\n')
    with pytest.raises(ValueError, match=r"pred\.jsonl:2: invalid JSON"):  # only the LAST line may be cut off
        E.predict(None, None, [], cache=cache, progress=False)
