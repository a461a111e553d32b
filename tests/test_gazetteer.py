"""The memorising baseline used in chapter 1 and the plotting helpers it needs."""

import matplotlib

matplotlib.use("Agg")

import pytest

from nerlib.data.gazetteer import Gazetteer, gazetteer_scores
from nerlib.plots import bar_chart, grouped_bars, plot_type_distribution, tag_table


def test_gazetteer_fit_and_longest_match():
    tokens = [["New", "York", "is", "big"], ["New", "York", "Times", "."], ["York", "rises"], ["York", "again"]]
    tags = [["B-LOC", "I-LOC", "O", "O"], ["B-ORG", "I-ORG", "I-ORG", "O"], ["B-PER", "O"], ["B-LOC", "O"]]
    gaz = Gazetteer.fit(tokens, tags)
    # "York" was PER once and LOC once: the tie goes to the alphabetically first type
    assert gaz.entries == {("New", "York"): "LOC", ("New", "York", "Times"): "ORG", ("York",): "LOC"}
    assert gaz.max_words == 3
    assert gaz.spans(["The", "New", "York", "Times", "and", "New", "York", "York"]) == [
        (1, 4, "ORG"), (5, 7, "LOC"), (7, 8, "LOC")]
    assert Gazetteer.fit(tokens, tags, lowercase=True).spans(["new", "YORK"]) == [(0, 2, "LOC")]
    assert Gazetteer.fit([], []).spans(["a"]) == []


def test_gazetteer_scores_fits_on_train_and_scores_test(tmp_path):
    from nerlib.data import write_jsonl

    train = [{"tokens": ["New", "York", "Times"], "ner_tags": ["B-ORG", "I-ORG", "I-ORG"]},
             {"tokens": ["Paris", "."], "ner_tags": ["B-LOC", "O"]}, {"tokens": ["Oslo"], "ner_tags": ["B-LOC"]}]
    test = [{"tokens": ["The", "New", "York", "Times", "Paris"], "ner_tags": ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "B-LOC"]},
            {"tokens": ["oslo"], "ner_tags": ["B-LOC"]}]
    for split, rows in (("train", train), ("validation", test), ("test", test)):
        write_jsonl(rows, tmp_path / f"{split}.jsonl")
    r = gazetteer_scores(str(tmp_path), train_sentences=2)  # "Oslo" (third sentence) is not learnt
    assert r.predicted_tags == [["O", "B-ORG", "I-ORG", "I-ORG", "B-LOC"], ["O"]]
    assert r.gold_tags == [t["ner_tags"] for t in test]
    # 3 gold, 2 predicted: Paris matches; "New York Times" inside "The New York Times" earns 1/2 with partial credit
    assert r.f1() == {"strict": 0.4, "partial": 0.6}
    assert r.per_type_f1() == {"LOC": {"strict": pytest.approx(2 / 3), "partial": pytest.approx(2 / 3)},
                               "ORG": {"strict": 0.0, "partial": 0.5}}
    assert gazetteer_scores(str(tmp_path), lowercase=True).predicted_tags[1] == ["B-LOC"]


def test_tag_table_and_plots():
    table = tag_table(["EU", "rejects"], gold=["B-ORG", "O"])
    assert table.loc["gold"].tolist() == ["B-ORG", "O"] and table.loc["token"].tolist() == ["EU", "rejects"]
    with pytest.raises(ValueError, match="row 'gold' has 1 entries for 2 tokens"):
        tag_table(["EU", "rejects"], gold=["O"])
    ax = bar_chart({"a": 0.5, "b": 0.25})
    assert [p.get_width() for p in ax.patches] == [0.5, 0.25]
    ax = grouped_bars({"PER": {"strict": 0.5, "partial": 0.75}, "LOC": {"strict": 1.0}})
    assert sorted(p.get_height() for p in ax.patches) == [0.0, 0.5, 0.75, 1.0]
    fig = plot_type_distribution({"x": {"PER": 3, "LOC": 1}, "y": {"a": 2}}, names={"x": {"PER": "person"}})
    first = fig.axes[0]
    assert [t.get_text() for t in first.get_yticklabels()] == ["person", "LOC"]
    assert [p.get_width() for p in first.patches] == [0.75, 0.25]
    assert not fig.axes[2].axison  # the unused third panel is hidden
