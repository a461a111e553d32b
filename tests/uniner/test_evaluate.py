"""Evaluation on the official files: grouping by passage, scoring against hand-computed values, resuming."""

from __future__ import annotations

import json

import pytest

from nerlib.uniner import evaluate as E
from nerlib.uniner import infer


def record(i, passage, etype, gold):
    return {"id": f"X_{i}", "conversations": [
        {"from": "human", "value": f"Text: {passage}"}, {"from": "gpt", "value": "I've read this text."},
        {"from": "human", "value": f"What describes {etype} in the text?"}, {"from": "gpt", "value": gold}]}


RECORDS = [
    record(0, "Obama visited Paris .", "person", '["Obama"]'),
    record(1, "Obama visited Paris .", "city", '["Paris"]'),
    record(2, "The Beatles played in New York .", "band", '["The Beatles"]'),
    record(3, "The Beatles played in New York .", "city", '["New York"]'),
    record(4, "A third passage .", "city", "[]"),
]
# answers of a fake model: exact (person), partial overlap or wrong (city), article-only difference (band),
# prose for the third passage (a parse failure)
FAKE = {"person": '["Obama"]', "city": '["York City"]', "band": '["Beatles"]'}


@pytest.fixture
def eval_path(tmp_path):
    path = tmp_path / "CrossNER_fake.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


@pytest.fixture
def fake_answer(monkeypatch):
    calls = []

    def answer(model, tokenizer, passage, types, **kwargs):
        calls.append(passage)
        return [FAKE[t] if passage != "A third passage ." else "There is no city." for t in types]

    monkeypatch.setattr(infer, "answer", answer)
    return calls


def test_records_are_grouped_by_passage_with_limit(eval_path):
    passages = E.read_eval_file(eval_path)
    assert [len(p.queries) for p in passages] == [2, 2, 1]
    assert passages[1].passage == "The Beatles played in New York ."
    assert [q.entity_type for q in passages[1].queries] == ["band", "city"]
    assert len(E.read_eval_file(eval_path, limit=2)) == 2


def test_scores_match_hand_computed_values(eval_path, fake_answer):
    passages = E.read_eval_file(eval_path)
    preds = E.predict(None, None, passages, progress=False)
    s = E.score(passages, preds)
    # gold: obama, paris, beatles, new york (4); predicted: obama, york city, beatles, york city (4)
    # strict tp: obama, beatles ("The" is an article) = 2 -> P = R = F1 = 0.5
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.5)
    # partial: "york city" shares "york" with "new york" in passage 2 -> +0.5; passage 1 "paris" no overlap
    assert s["partial_f1"] == pytest.approx(2.5 / 4)
    assert s["parse_failures"] == 1 and s["queries"] == 5 and s["passages"] == 3
    # per passage (tp, gold, pred): obama/paris (1, 2, 2), beatles/new york (1, 2, 2), the third passage (0, 0, 0)
    assert E.passage_counts(passages, preds) == [(1.0, 2, 2), (1.0, 2, 2), (0.0, 0, 0)]
    assert 0.0 <= s["f1_low"] <= s["f1"] <= s["f1_high"] <= 1.0


def test_missed_and_invented_questions_are_counted_per_question(eval_path):
    """The share of ``[]`` answers can match the gold's while the student errs both ways: here one answer names
    nothing where the gold names Paris (missed), one names something where the gold is ``[]`` (invented), and the
    prose answer names nothing (neither: it is a parse failure, and missed only where the gold names mentions)."""
    passages = E.read_eval_file(eval_path)
    preds = {"X_0": '["Obama"]', "X_1": "[]", "X_2": "no list", "X_3": '["New York"]', "X_4": '["Rome"]'}
    s = E.score(passages, preds)
    assert s["missed_questions"] == 2 and s["invented_questions"] == 1  # X_1 and X_2 (prose); X_4
    assert s["empty_predictions"] == 1 and s["empty_golds"] == 1  # equal shares, yet three questions wrong
    right = {"X_0": '["Obama"]', "X_1": '["Paris"]', "X_2": '["Beatles"]', "X_3": '["New York"]', "X_4": "[]"}
    assert E.score(passages, right)["missed_questions"] == 0 == E.score(passages, right)["invented_questions"]


def test_predictions_cache_resumes(eval_path, fake_answer, tmp_path):
    passages = E.read_eval_file(eval_path)
    cache = tmp_path / "preds.jsonl"
    first = E.predict(None, None, passages[:2], cache=cache, progress=False)
    assert len(fake_answer) == 2
    second = E.predict(None, None, passages, cache=cache, progress=False)
    assert len(fake_answer) == 3  # only the new passage was answered
    assert {k: second[k] for k in first} == first


def test_real_official_file_reads(tmp_path):
    try:
        path = E.eval_file("ai")
    except FileNotFoundError:
        pytest.skip("NERLIB_DATA_DIR with uniner_eval not available")
    passages = E.read_eval_file(path, limit=3)
    assert len(passages) == 3
    assert passages[0].passage.startswith("Typical generative model approaches include naive Bayes")
    assert passages[0].queries[0].entity_type == "organization" and passages[0].queries[0].gold == "[]"
    assert len({q.entity_type for q in passages[0].queries}) == len(passages[0].queries)


def test_malformed_records_name_file_line_and_field(tmp_path):
    bad = dict(RECORDS[0])
    bad["conversations"] = RECORDS[0]["conversations"][:3]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'conversations'"):
        E.read_eval_file(path)
    q = json.loads(json.dumps(RECORDS[0]))
    q["conversations"][2]["value"] = "Who is it?"
    path.write_text(json.dumps(q) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: conversations\[2\]"):
        E.read_eval_file(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: invalid JSON"):
        E.read_eval_file(path)
    with pytest.raises(ValueError, match="unknown CrossNER domain"):
        E.eval_file("cooking")
    with pytest.raises(ValueError, match="no prediction for 5 records"):
        E.score(E.read_eval_file(_write(tmp_path, RECORDS)), {})


def _write(tmp_path, records):
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_plot_domains_draws_ours_with_intervals_beside_the_paper():
    import matplotlib
    import pandas as pd

    from nerlib.uniner.paper import TABLE3, paper_average

    matplotlib.use("Agg")
    table = pd.DataFrame({"f1": [20.0, 30.0, 25.0], "f1_low": [15.0, 24.0, 21.0], "f1_high": [26.0, 35.0, 29.0]},
                         index=pd.Index(["ai", "music", "average"], name="domain"))
    ax = E.plot_domains({"ours": table}, paper_rows=("UniNER-7B",))
    heights = [round(p.get_height(), 2) for p in ax.patches]
    assert heights[:3] == [20.0, 30.0, 25.0]
    assert heights[3:] == [53.5, 65.0, round((53.5 + 65.0) / 2, 2)]  # the paper's mean over the domains shown
    from matplotlib.container import BarContainer

    ours, theirs = [c for c in ax.containers if isinstance(c, BarContainer)]
    segments = ours.errorbar.lines[2][0].get_segments()
    assert [(seg[0][1], seg[1][1]) for seg in segments] == [(15.0, 26.0), (24.0, 35.0), (21.0, 29.0)]
    assert theirs.errorbar is None  # the paper's rows have no interval
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ai", "music", "average"]
    assert paper_average("UniNER-7B") == 60.0 and set(TABLE3["ChatGPT (teacher)"]) == set(E.DOMAINS)


def test_f1_difference_pairs_two_students_on_the_same_passages(eval_path, fake_answer, monkeypatch):
    import pandas as pd

    monkeypatch.setattr(E, "eval_file", lambda domain, split="test": eval_path)
    good = E.evaluate_domains(None, None, ["ai", "music"], progress=False)
    assert good.attrs["passage_counts"]["ai"] == [(1.0, 2, 2), (1.0, 2, 2), (0.0, 0, 0)]
    monkeypatch.setattr(infer, "answer", lambda model, tok, passage, types, **kw: ["[]" for _ in types])
    silent = E.evaluate_domains(None, None, ["ai", "music"], progress=False)
    assert silent.loc["average", "f1"] == 0.0
    assert silent.loc["average", "missed_share"] == 100.0 and silent.loc["average", "invented_share"] == 0.0
    # the good student scores F1 0.5 on each domain, the silent one 0: every resample draws passages where the good
    # one is ahead or level, so the paired interval lies in [0, 100] around the difference
    summary = E.averages({"good": good, "silent": silent, "ai only": good.loc[["ai"]]})
    assert list(summary.columns) == list(E.SUMMARY_COLUMNS) and list(summary.index) == ["good", "silent", "ai only"]
    assert summary.loc["good", "f1"] == good.loc["average", "f1"] and summary.loc["silent", "f1"] == 0.0
    assert summary.loc["ai only", "f1"] == good.loc["ai", "f1"]
    d = E.f1_difference(good, silent)
    assert d["difference"] == pytest.approx(good.loc["average", "f1"] - silent.loc["average", "f1"]) == 50.0
    assert 0 <= d["low"] <= d["difference"] <= d["high"] <= 100
    assert E.f1_difference(good, good) == {"difference": 0.0, "low": 0.0, "high": 0.0}
    with pytest.raises(ValueError, match="per-passage counts"):
        E.f1_difference(good, pd.DataFrame({"f1": [1.0]}))
    with pytest.raises(ValueError, match="different domains"):
        E.f1_difference(good, E.evaluate_domains(None, None, ["ai"], progress=False))


def test_grounded_scoring_drops_mentions_not_in_the_passage(eval_path, fake_answer, monkeypatch):
    """``ground_mentions``: "York City" occurs in neither passage, so both of its answers lose it; "Obama" and
    "Beatles" stay; the prose answer stays a parse failure. Strict P = 2/2, R = 2/4, F1 = 2/3 (raw: 0.5)."""
    monkeypatch.setattr(E, "eval_file", lambda domain, split="test": eval_path)
    raw = E.evaluate_domains(None, None, ["ai"], progress=False)
    grounded = E.evaluate_domains(None, None, ["ai"], progress=False, ground_mentions=True)
    assert raw.loc["ai", "f1"] == 50.0
    assert grounded.loc["ai", "precision"] == 100.0 and grounded.loc["ai", "recall"] == 50.0
    assert grounded.loc["ai", "f1"] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert grounded.loc["ai", "parse_failures"] == 1
    assert grounded.attrs["passage_counts"]["ai"] == [(1.0, 2, 1), (1.0, 2, 1), (0.0, 0, 0)]
    assert grounded.attrs["predictions"]["ai"]["X_1"] == "[]"  # the scored answers are the grounded ones
    # grounding empties both "York City" answers: 2 of the 4 questions with gold mentions are now missed
    assert raw.loc["ai", "missed_share"] == 0.0 and grounded.loc["ai", "missed_share"] == 50.0
    assert raw.loc["ai", "invented_share"] == 0.0  # the one gold-empty question got prose, which names nothing


def test_score_domains_scores_answers_already_made_as_evaluate_domains_does(eval_path, fake_answer, monkeypatch):
    monkeypatch.setattr(E, "eval_file", lambda domain, split="test": eval_path)
    made = E.evaluate_domains(None, None, ["ai", "music"], progress=False)
    passages = {d: E.read_eval_file(eval_path) for d in ("ai", "music")}
    again = E.score_domains(passages, made.attrs["predictions"], "test", None)
    columns = [c for c in made.columns if c != "seconds"]
    assert again[columns].equals(made[columns])
    assert again.attrs["passage_counts"] == made.attrs["passage_counts"] and again["seconds"].isna().all()
    silent = E.score_domains(passages, {d: {q.id: "[]" for p in ps for q in p.queries} for d, ps in passages.items()})
    assert silent.loc["average", "f1"] == 0.0 and silent.loc["average", "missed_share"] == 100.0
    assert E.f1_difference(made, silent)["difference"] == 50.0  # the tables pair as evaluate_domains' tables do
