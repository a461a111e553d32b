"""UniversalNER evaluation files from BIO data: the official CrossNER files reproduced, local files, label maps."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nerlib.uniner.eval_data import (
    eval_records_from_dataset,
    gold_mentions,
    make_eval,
    parse_label_map,
    write_eval_file,
)
from nerlib.uniner.evaluate import read_eval_file


def _key(record: dict) -> tuple:
    c = record["conversations"]
    return c[0]["value"], c[2]["value"], tuple(sorted(json.loads(c[3]["value"])))


def _official(data_dir, name):
    path = data_dir / "uniner_eval" / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reproduces_official_crossner_ai(data_dir, tmp_path):
    official = _official(data_dir, "CrossNER_AI")
    ours = eval_records_from_dataset("crossner_ai", "test")
    # same passages in the same order, same types per passage, same gold lists (as multisets)
    assert Counter(map(_key, ours)) == Counter(map(_key, official))
    order = lambda recs: list(dict.fromkeys(r["conversations"][0]["value"] for r in recs))  # noqa: E731
    assert order(ours) == order(official)
    # every official line is reproduced byte for byte after its id (the official type order is shuffled)
    path = write_eval_file(ours, tmp_path / "ai.jsonl")
    tail = lambda line: line[line.index('"conversations"'):]  # noqa: E731
    ours_lines = {tail(line) for line in path.read_text(encoding="utf-8").splitlines()}
    official_lines = (data_dir / "uniner_eval" / "CrossNER_AI.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(tail(line) in ours_lines for line in official_lines)
    assert [r["id"] for r in ours[:2]] == ["CrossNER_AI_0", "CrossNER_AI_1"]


def test_official_quirk_is_only_sentence_final_entities(data_dir):
    official = Counter(map(_key, _official(data_dir, "CrossNER_AI")))
    exact = Counter(map(_key, eval_records_from_dataset("crossner_ai", "test", official_quirk=False)))
    differ = exact - official
    assert sum(differ.values()) == 4  # measured: 4 AI sentences end with an entity
    for passage, _, gold in differ:
        assert any(passage.endswith(" " + m) or passage == m for m in gold)


def test_politics_differs_only_by_its_last_sentence(data_dir):
    official = Counter(map(_key, _official(data_dir, "CrossNER_politics")))
    ours = eval_records_from_dataset("crossner_politics", "test")
    extra = Counter(map(_key, ours)) - official
    assert not official - Counter(map(_key, ours))
    assert sum(extra.values()) == 8 and {p for p, _, _ in extra} == {ours[-1]["conversations"][0]["value"]}


def test_local_jsonl_and_conll_give_the_same_records(fixtures, tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "dev.txt").write_text((fixtures / "tiny.conll").read_text())
    a = eval_records_from_dataset(str(fixtures / "tiny.jsonl"), labels={"PER": "human being"})
    b = eval_records_from_dataset(str(tmp_path / "corpus"), split="validation", labels={"PER": "human being"})
    assert [r["conversations"] for r in a] == [r["conversations"] for r in b]
    questions = [r["conversations"][2]["value"] for r in a[:4]]
    assert questions == [f"What describes {t} in the text?" for t in ("location", "miscellaneous", "organization",
                                                                        "human being")]
    by_q = {(r["conversations"][0]["value"][len("Text: "):], r["conversations"][2]["value"]): r["conversations"][3]["value"]
            for r in a}
    assert by_q[("Peter Blackburn", "What describes human being in the text?")] == '["Peter Blackburn"]'
    assert by_q[("EU rejects German call", "What describes organization in the text?")] == '["EU"]'
    assert a[0]["id"] == "tiny_0" and len(a) == 3 * 4
    # the file reads back through the evaluation reader, grouped by passage
    passages = read_eval_file(write_eval_file(a, tmp_path / "tiny.jsonl"))
    assert [p.passage for p in passages] == ["EU rejects German call", "Peter Blackburn", "BRUSSELS"]


def test_underscores_become_spaces_and_bad_maps_fail(tmp_path):
    path = tmp_path / "mit.jsonl"
    path.write_text(json.dumps({"tokens": ["cheap", "Joe", "'s", "Diner"],
                                "ner_tags": ["B-Price", "B-Restaurant_Name", "I-Restaurant_Name",
                                             "I-Restaurant_Name"]}) + "\n")
    recs = eval_records_from_dataset(str(path))
    assert [r["conversations"][2]["value"] for r in recs] == [
        "What describes Price in the text?", "What describes Restaurant Name in the text?"]
    assert recs[1]["conversations"][3]["value"] == '["Joe \'s Diner"]'
    with pytest.raises(ValueError, match="Cuisine"):
        eval_records_from_dataset(str(path), labels={"Cuisine": "cuisine"})
    assert parse_label_map("Restaurant_Name=restaurant name, Price=price") == {
        "Restaurant_Name": "restaurant name", "Price": "price"}
    with pytest.raises(ValueError, match="Price"):
        parse_label_map("Price")
    with pytest.raises(FileNotFoundError, match="neither a registered dataset"):
        eval_records_from_dataset(str(tmp_path / "nope"))


def test_gold_mentions_quirk():
    tokens, tags = ["A", "met", "B", "C"], ["B-PER", "O", "B-PER", "I-PER"]
    assert gold_mentions(tokens, tags) == {"PER": ["A", "B C"]}
    assert gold_mentions(tokens, tags, official_quirk=True) == {"PER": ["A"]}


def test_make_eval_summary(fixtures, tmp_path):
    out = make_eval(str(fixtures / "tiny.jsonl"), tmp_path / "x" / "e.jsonl", labels="PER=person")
    assert out["records"] == 12 and out["distinct_passages"] == 3 and out["non_empty_golds"] == 4
    assert "person" in out["types"] and (tmp_path / "x" / "e.jsonl").is_file()
