"""One type per mention: finding contested mentions, scoring them with the student's own probabilities, keeping
each under one type, and the false-positive breakdown, on hand-made answers and a tiny model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from nerlib.uniner import evaluate as E
from nerlib.uniner import infer
from nerlib.uniner import resolve as R
from nerlib.uniner.evaluate import EvalPassage, EvalQuery

from uniner_tiny_lm import tiny_model, tiny_tokenizer


def test_contested_normalises_counts_a_repeated_type_once_and_skips_unparsable_answers():
    answers = [("band", '["The Beatles", "Oasis"]'), ("musical artist", '["the Beatles."]'),
               ("band", '["Beatles"]'),  # the same type asked twice: still one type
               ("song", 'The Beatles wrote "Help".'),  # prose: not an answer
               ("person", '["Oasis", ""]')]
    assert R.contested(answers) == {"beatles": ["band", "musical artist"], "oasis": ["band", "person"]}
    assert R.contested([("band", "[]"), ("song", '["Help"]')]) == {}


def test_mention_span_and_drop_mention_on_escapes_and_absent_mentions():
    answer = '["Guns N\' Roses", "Sigur Rós", "Oasis"]'
    a, b = R.mention_span(answer, "sigur rós")
    assert answer[a:b] == "Sigur Rós"
    escaped = '["Sigur R\\u00f3s"]'  # written with an ASCII escape: found through the escaped form
    a, b = R.mention_span(escaped, "sigur rós")
    assert escaped[a:b] == "Sigur R\\u00f3s"
    assert R.mention_span(answer, "blur") is None and R.mention_span("no list", "oasis") is None
    assert R.drop_mention(answer, "oasis") == '["Guns N\' Roses", "Sigur Rós"]'
    assert R.drop_mention(answer, "blur") == answer  # untouched, not reformatted
    assert R.drop_mention("Oasis, I think", "oasis") == "Oasis, I think"


def test_mention_logprob_is_the_mean_next_token_logprob_of_the_mention_tokens():
    """Against log-probabilities computed one prefix at a time (no slicing shared with the code under test)."""
    model, tok = tiny_model(), tiny_tokenizer()
    passage, answer = "Barack Obama visited Paris and Berlin .", '["Paris", "Berlin"]'
    spans = [R.mention_span(answer, "paris"), R.mention_span(answer, "berlin")]
    got = R.mention_logprob(model, tok, passage, "location", answer, spans)
    enc = infer.encode_prompts(tok, passage, ["location"])
    prompt = enc.prefix + enc.suffixes[0]
    coded = tok(" " + answer, add_special_tokens=False, return_offsets_mapping=True)
    ids = prompt + coded["input_ids"]
    for (a, b), value in zip(spans, got):
        positions = [len(prompt) + i for i, (s, e) in enumerate(coded["offset_mapping"]) if s < b + 1 and e > a + 1]
        assert positions and "".join(tok.decode(ids[p]) for p in positions).strip(' "').startswith(answer[a:b][:3])
        with torch.no_grad():
            expected = [float(torch.log_softmax(model(input_ids=torch.tensor([ids[:p]])).logits[0, -1], -1)[ids[p]])
                        for p in positions]
        assert value == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_resolve_passage_keeps_each_contested_mention_under_its_most_confident_type(monkeypatch):
    confidence = {("band", "beatles"): -0.5, ("musical artist", "beatles"): -2.0,
                  ("band", "oasis"): -3.0, ("person", "oasis"): -1.0}

    def fake_logprob(model, tok, passage, entity_type, answer, spans, dataset=None, eos=None):
        return [confidence[(entity_type, R.normalize_answer(answer[a:b]))] for a, b in spans]

    monkeypatch.setattr(R, "mention_logprob", fake_logprob)
    answers = [("band", '["The Beatles", "Oasis"]'), ("musical artist", '["The Beatles", "Bob Dylan"]'),
               ("person", '["Oasis"]'), ("band", '["Oasis", "Blur"]'), ("song", "not a list")]
    out, record = R.resolve_passage(None, None, "p", answers)
    assert out == ['["The Beatles"]', '["Bob Dylan"]', '["Oasis"]', '["Blur"]', "not a list"]
    assert record["beatles"] == {"scores": {"band": -0.5, "musical artist": -2.0}, "kept": "band"}
    assert record["oasis"]["kept"] == "person"
    # nothing contested: the answers come back unchanged and no forward pass is made
    monkeypatch.setattr(R, "mention_logprob", lambda *a, **k: pytest.fail("scored without a contest"))
    assert R.resolve_passage(None, None, "p", [("band", '["Blur"]'), ("song", "[]")]) == (['["Blur"]', "[]"], {})


def test_a_mention_that_cannot_be_scored_is_left_everywhere(monkeypatch):
    monkeypatch.setattr(R, "mention_logprob", lambda *a, **k: [None])  # no token covers the span
    answers = [("band", '["Oasis"]'), ("person", '["Oasis"]')]
    out, record = R.resolve_passage(None, None, "p", answers)
    assert out == ['["Oasis"]', '["Oasis"]'] and record["oasis"]["kept"] is None


def _passage(queries):
    return EvalPassage("p", [EvalQuery(f"id{i}", t, gold) for i, (t, gold) in enumerate(queries)])


def test_type_confusions_counts_false_positives_that_are_gold_under_another_type():
    passage = _passage([("band", '["The Beatles"]'), ("musical artist", '["Bob Dylan"]'), ("song", "[]")])
    predictions = {"id0": '["Beatles", "Bob Dylan"]', "id1": '["The Beatles", "Bob Dylan"]', "id2": '["Help"]'}
    # pairs: beatles/band (tp), bob dylan/band (fp, gold as artist), beatles/artist (fp, gold as band),
    # bob dylan/artist (tp), help/song (fp, not gold anywhere); both mentions under two types
    assert R.type_confusions([passage], predictions) == {"predicted": 5, "false_positives": 3, "other_type": 2,
                                                         "multi_type_mentions": 2}


def test_evaluate_domains_scores_resolved_answers_and_caches_them(tmp_path, monkeypatch):
    path = tmp_path / "CrossNER_fake.jsonl"
    records = [{"id": f"X_{i}", "conversations": [
        {"from": "human", "value": "Text: The Beatles met Bob Dylan ."}, {"from": "gpt", "value": "I've read this text."},
        {"from": "human", "value": f"What describes {t} in the text?"}, {"from": "gpt", "value": gold}]}
        for i, (t, gold) in enumerate([("band", '["The Beatles"]'), ("musical artist", '["Bob Dylan"]')])]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setattr(E, "eval_file", lambda domain, split="test": path)
    monkeypatch.setattr(infer, "answer", lambda model, tok, passage, types, **kw: ['["The Beatles", "Bob Dylan"]'
                                                                                  for _ in types])
    # the student is more confident in the right type for both mentions
    right = {("band", "beatles"), ("musical artist", "bob dylan")}
    monkeypatch.setattr(R, "mention_logprob", lambda model, tok, passage, t, answer, spans, *a: [
        -0.1 if (t, R.normalize_answer(answer[s:e])) in right else -5.0 for s, e in spans])
    plain = E.evaluate_domains(None, None, ["ai"], cache_dir=tmp_path / "preds", progress=False)
    resolved = E.evaluate_domains(None, None, ["ai"], cache_dir=tmp_path / "preds", progress=False,
                                  resolve_types=True)
    assert plain.loc["ai", "precision"] == 50.0 and resolved.loc["ai", "f1"] == 100.0
    assert resolved.attrs["predictions"]["ai"] == {"X_0": '["The Beatles"]', "X_1": '["Bob Dylan"]'}
    cached = [json.loads(line) for line in (tmp_path / "preds" / "ai.resolved.jsonl").read_text().splitlines()]
    assert cached == [{"id": "X_0", "prediction": '["The Beatles"]'}, {"id": "X_1", "prediction": '["Bob Dylan"]'}]
    # the breakdown per domain reads the same passages back from the table's split and limit
    assert (plain.attrs["split"], plain.attrs["limit"]) == ("test", None)
    assert E.domain_confusions(plain).loc["ai"].to_dict() == {"predicted": 4, "false_positives": 2, "other_type": 2,
                                                              "multi_type_mentions": 2}
    assert E.domain_confusions(resolved).loc["ai"].to_dict() == {"predicted": 2, "false_positives": 0,
                                                                 "other_type": 0, "multi_type_mentions": 0}
    with pytest.raises(ValueError, match="attrs lack"):
        E.domain_confusions(pd.DataFrame({"f1": [50.0]}, index=["ai"]))
    # a second call reads the resolved answers back without scoring anything
    monkeypatch.setattr(R, "mention_logprob", lambda *a, **k: pytest.fail("resolved again"))
    again = E.evaluate_domains(None, None, ["ai"], cache_dir=tmp_path / "preds", progress=False, resolve_types=True)
    assert again.loc["ai", "f1"] == 100.0
