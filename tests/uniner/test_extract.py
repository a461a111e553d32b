"""Extraction on raw text: offsets equal the text, repeats, word boundaries, windows, the model path."""

from __future__ import annotations

import json

import pytest

from nerlib.uniner import extract as X


def _check_offsets(text: str, entities) -> None:
    for e in entities:
        assert text[e["start"]:e["end"]] == e["text"]


def test_locate_every_occurrence_at_word_boundaries():
    text = "Paris is not Parisian. Paris, Texas is far from Paris."
    assert X.locate(text, "Paris") == [(0, 5), (23, 28), (48, 53)]
    assert X.locate(text, "aris") == []
    assert X.locate("Joe's Diner and Joe 's Diner", "Joe 's Diner") == [(16, 28)]  # exact wins
    assert X.locate("We ate at Joe's Diner.", "Joe 's Diner") == [(10, 21)]  # tokenised spacing
    assert X.locate("the C++ language", "C++") == [(4, 7)]  # symbols at the edge need no boundary
    assert X.locate("visited NEW YORK", "New York") == [(8, 16)]  # case only as the last resort


def test_ground_answer_keeps_what_the_extractor_finds():
    passage = "We ate at Joe's Diner in NEW YORK with Ada ."
    assert X.ground_answer(passage, '["Joe \'s Diner", "New York", "Mars", "Ad"]') == '["Joe \'s Diner", "New York"]'
    assert X.ground_answer(passage, "[]") == "[]"
    assert X.ground_answer(passage, '["Mars"]') == "[]"
    assert X.ground_answer(passage, "Ada and Mars") == "Ada and Mars"  # not a list: left for the metric to count
    assert X.ground_answer(passage, ' ["Ada", "Ada"] and more') == '["Ada"]'  # parsed as the metric parses it


def test_answers_to_entities_offsets_repeats_nesting_and_unmatched():
    text = "Ada Lovelace met Charles Babbage in London. Later Ada Lovelace wrote notes in London and New York."
    types = ["person", "location", "programming language"]
    answers = ['["Ada Lovelace", "Charles Babbage", "Ada Lovelace"]', '["London", "New York", "York", "Mars"]',
               "no list here"]
    ents, unmatched = X.answers_to_entities(text, types, answers, offset=0)
    got = sorted((e.type, e.text, e.start) for e in ents)
    assert got == sorted([("person", "Ada Lovelace", 0), ("person", "Charles Babbage", 17),
                          ("person", "Ada Lovelace", 50), ("location", "London", 36), ("location", "London", 78),
                          ("location", "New York", 89)])
    assert unmatched == [{"type": "location", "text": "Mars"}]
    for e in ents:
        assert text[e.start:e.end] == e.text
    shifted, _ = X.answers_to_entities(text, types, answers, offset=100)
    assert {e.start for e in shifted} == {e.start + 100 for e in ents}


def test_windows_keep_exact_characters_and_budget():
    text = ("First sentence here. " * 3 + "A very long sentence " + "word " * 40 + "ends.  Last one!").strip()
    count = lambda s: len(s.split())  # noqa: E731
    pieces = X.windows(text, count, budget=8)
    assert len(pieces) > 3
    for offset, piece in pieces:
        assert text[offset:offset + len(piece)] == piece and count(piece) <= 8
    # every word of the text is in exactly one window
    assert "".join(p for _, p in pieces).replace(" ", "") == text.replace(" ", "")
    assert X.windows("short text", count, 8) == [(0, "short text")]
    assert X.windows("   ", count, 8) == []


def test_extractor_merges_windows_with_text_offsets(monkeypatch):
    """A fake model answer (what a trained student would say) exercises windowing, offsets and merging."""
    from uniner_tiny_lm import tiny_model, tiny_tokenizer

    def fake_answer(model, tokenizer, passage, types, **kwargs):
        assert len(tokenizer(passage, add_special_tokens=False)["input_ids"]) <= 40
        return [json.dumps([w for w in ("Paris", "Berlin") if w in passage]) if t == "location" else
                json.dumps(["Barack Obama"] if "Obama" in passage else []) for t in types]

    monkeypatch.setattr("nerlib.uniner.infer.answer", fake_answer)
    text = ("Barack Obama visited Paris and Berlin. " * 6).strip()
    ext = X.Extractor(tiny_model(), tiny_tokenizer(), max_new_tokens=8, max_passage_tokens=40)
    out = ext.extract(text, "person, location")
    _check_offsets(text, out["entities"])
    assert [e["text"] for e in out["entities"]] == ["Barack Obama", "Paris", "Berlin"] * 6
    assert [e["start"] for e in out["entities"]] == sorted(e["start"] for e in out["entities"])


def test_extractor_one_type_per_mention_keeps_the_more_confident_type(monkeypatch):
    from uniner_tiny_lm import tiny_model, tiny_tokenizer

    from nerlib.uniner import resolve

    monkeypatch.setattr("nerlib.uniner.infer.answer", lambda model, tok, passage, types, **kw:
                        ['["Paris", "Barack Obama"]' for _ in types])  # every mention under both types
    sure = {("person", "barack obama"), ("location", "paris")}
    monkeypatch.setattr(resolve, "mention_logprob", lambda model, tok, passage, t, answer, spans, *a: [
        -0.1 if (t, resolve.normalize_answer(answer[s:e])) in sure else -3.0 for s, e in spans])
    text = "Barack Obama visited Paris."
    both = X.Extractor(tiny_model(), tiny_tokenizer()).extract(text, "person, location")["entities"]
    assert len(both) == 4  # each mention under both types
    one = X.Extractor(tiny_model(), tiny_tokenizer(), one_type_per_mention=True).extract(text, "person, location")
    assert [(e["type"], e["text"]) for e in one["entities"]] == [("person", "Barack Obama"), ("location", "Paris")]


def test_extractor_runs_a_real_tiny_model_from_a_folder(tmp_path):
    from uniner_tiny_lm import tiny_model, tiny_tokenizer

    tiny_model().save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    ext = X.Extractor.from_pretrained(tmp_path / "m", device="cpu", max_new_tokens=6)
    text = "Barack Obama visited Paris and Berlin . The Apple company sells phones in Spain ."
    out = ext.extract(text, ["person", "location"])
    assert out["text"] == text and isinstance(out["entities"], list)
    _check_offsets(text, out["entities"])


def test_types_and_inputs(tmp_path):
    assert X.parse_types(" person, organization,,person , programming language") == [
        "person", "organization", "programming language"]
    with pytest.raises(ValueError, match="no entity types"):
        X.parse_types(" , ")
    (tmp_path / "a.txt").write_text("one text\n\nsecond text\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x y"}\n{"id": 2}\n')
    assert X.input_texts(input=tmp_path / "a.txt") == ["one text", "second text"]
    with pytest.raises(ValueError, match="b.jsonl:2: field 'text'"):
        X.input_texts(input=tmp_path / "b.jsonl")
    with pytest.raises(ValueError, match="exactly one"):
        X.input_texts()


def test_demo_texts_are_there():
    texts = X.demo_texts()
    assert len(texts) >= 3 and all(len(t) > 100 for t in texts.values())


def test_read_texts_splits_on_newlines_only(tmp_path):
    from nerlib.uniner.extract import read_texts

    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffOne text\u2028with a line separator\n\nSecond text\n".encode("utf-8"))
    assert list(read_texts(path)) == ["One text\u2028with a line separator", "Second text"]


def test_extractor_with_an_empty_bias_answers_as_the_calibrated_decoder(monkeypatch):
    from uniner_tiny_lm import tiny_model, tiny_tokenizer

    from nerlib.uniner import calibrate

    calls = []
    real = calibrate.answer_with_bias

    def spy(model, tok, passage, types, bias, *args, **kwargs):
        calls.append(bias)
        return real(model, tok, passage, types, bias, *args, **kwargs)

    monkeypatch.setattr(calibrate, "answer_with_bias", spy)
    text, types = "Barack Obama visited Paris .", ["person", "location"]
    plain = X.Extractor(tiny_model(), tiny_tokenizer(), max_new_tokens=6).extract(text, types)
    assert calls == []  # no bias: the plain answers, no margins computed
    X.Extractor(tiny_model(), tiny_tokenizer(), max_new_tokens=6, empty_bias=2.0).extract(text, types)
    assert calls == [2.0]
    assert X.Extractor(tiny_model(), tiny_tokenizer(), max_new_tokens=6, empty_bias=0.0).extract(text, types) == plain
    with pytest.raises(ValueError, match="empty_bias must be >= 0"):
        X.Extractor(tiny_model(), tiny_tokenizer(), empty_bias=-1.0)
