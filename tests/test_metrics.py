"""Metrics against hand-computed values, the official parser's behaviour, and seqeval on random tags."""

import random

import pytest

from nerlib.metrics import normalize_answer, parse_answer, prf, score_answers, seqeval_f1, span_f1, string_f1


def test_prf_zero_denominators():
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "n_gold": 0, "n_pred": 0}
    assert prf(1, 2, 4)["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)


def test_span_f1_strict_hand_computed():
    gold = [[(0, 2, "PER"), (3, 4, "LOC")], [(1, 3, "ORG")], []]
    pred = [[(0, 2, "PER"), (3, 5, "LOC")], [(1, 3, "PER")], [(0, 1, "LOC")]]
    r = span_f1(gold, pred)
    # one exact match (PER 0-2); 3 gold, 4 predicted
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (1, 3, 4)
    assert r["precision"] == pytest.approx(0.25) and r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    assert r["per_type"]["PER"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "tp": 1,
                                    "n_gold": 1, "n_pred": 2}
    assert r["per_type"]["ORG"]["recall"] == 0.0 and r["per_type"]["ORG"]["n_pred"] == 0
    assert r["per_type"]["LOC"]["tp"] == 0 and r["per_type"]["LOC"]["n_pred"] == 2


def test_span_f1_partial_hand_computed():
    gold = [[(0, 2, "PER"), (3, 4, "LOC")], [(1, 3, "ORG")], []]
    pred = [[(0, 2, "PER"), (3, 5, "LOC")], [(1, 3, "PER")], [(0, 1, "LOC")]]
    r = span_f1(gold, pred, partial=True)
    # + 0.5 for LOC 3-5 overlapping LOC 3-4; PER 1-3 overlaps ORG (wrong type): nothing
    assert r["tp"] == 1.5
    assert r["precision"] == pytest.approx(1.5 / 4) and r["recall"] == pytest.approx(0.5)
    assert r["per_type"]["LOC"]["tp"] == 0.5


def test_span_f1_partial_each_gold_once_exact_first():
    gold = [[(0, 3, "PER")]]
    # the exact match takes the gold span, the overlapping prediction gets nothing
    assert span_f1(gold, [[(1, 2, "PER"), (0, 3, "PER")]], partial=True)["tp"] == 1.0
    # two overlapping predictions: only the first earns 0.5
    assert span_f1(gold, [[(0, 1, "PER"), (2, 3, "PER")]], partial=True)["tp"] == 0.5
    # touching but not overlapping (end exclusive): nothing
    assert span_f1([[(0, 2, "PER")]], [[(2, 3, "PER")]], partial=True)["tp"] == 0


def test_span_f1_duplicates_and_errors():
    r = span_f1([[(0, 1, "X")]], [[(0, 1, "X"), (0, 1, "X")]])
    assert (r["tp"], r["n_pred"]) == (1, 2)
    with pytest.raises(ValueError, match="1 gold sentences but 2 predicted"):
        span_f1([[]], [[], []])


def test_normalize_answer():
    assert normalize_answer("The  Beatles!") == "beatles"
    assert normalize_answer("A.I. an Theory") == "ai theory"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("Jean-Paul   Sartre") == "jeanpaul sartre"


@pytest.mark.parametrize(
    "text, items, ok",
    [
        ('["BERT", "ELMo"]', ["bert", "elmo"], True),
        ("  []  ", [], True),
        ('["BERT", "the BERT", "bert."]', ["bert"], True),  # normalised and de-duplicated
        ('["BERT"] and then ["GPT"]', ["bert"], True),  # cut at the first ]
        ('["a]b"]', [], False),  # the cut leaves invalid JSON
        ("BERT and ELMo", [], False),  # prose
        ('Answer: ["BERT"]', [], False),  # must start with [
        ('["BERT", "ELM', [], False),  # runaway list, never closed
        ("[1999, 2.5, true]", ["1999", "25", "true"], True),  # non-strings become text
        ('[["New", "York"], "Paris"]', [], False),  # the cut at the first ] breaks nested lists
        ('[{"x": 1}]', ['x 1'], True),
    ],
)
def test_parse_answer(text, items, ok):
    assert parse_answer(text) == (items, ok)


def test_parse_answer_without_normalisation():
    assert parse_answer('[" The BERT ", "The BERT"]', normalize=False) == (["The BERT"], True)


def test_string_f1_hand_computed():
    gold = [["New York", "Paris"], [], ["BERT"]]
    pred = [["new york", "York City", "Rome"], ["GPT"], ["bert", "BERT."]]
    r = string_f1(gold, pred)
    # query 1: 1 of 3 predicted; query 2: 0 of 1; query 3: de-duplicated to 1, matched
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (2, 3, 5)
    assert r["precision"] == pytest.approx(0.4) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(0.5)


def test_string_f1_partial():
    gold = [["New York City", "Paris"]]
    pred = [["York", "Paris", "city hall"]]
    r = string_f1(gold, pred, partial=True)
    # Paris exact (1), York shares a word with New York City (0.5), city hall: that gold is used up (0)
    assert r["tp"] == 1.5
    assert string_f1(gold, pred)["tp"] == 1
    with pytest.raises(ValueError, match="1 gold answers but 2 predicted"):
        string_f1(gold, pred * 2)


def test_score_answers_counts_parse_failures():
    r = score_answers(['["BERT"]', "[]", '["Paris"]'], ['["bert"]', "I do not know", '["Paris", "Rome"]'])
    assert (r["tp"], r["n_gold"], r["n_pred"], r["parse_failures"], r["n_queries"]) == (2, 2, 3, 1, 3)
    assert (r["missed_queries"], r["invented_queries"]) == (0, 0)  # the prose answer names nothing where gold is []
    r = score_answers(['["BERT"]', "[]"], ["[]", '["Rome"]'])
    assert (r["missed_queries"], r["invented_queries"]) == (1, 1)
    with pytest.raises(ValueError, match="gold answer 0"):
        score_answers(["oops"], ["[]"])


def _random_tags(rng, n, types=("PER", "LOC", "ORG")):
    return [rng.choice(["O", "O", "O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]) for _ in range(n)]


def test_seqeval_f1_agrees_with_seqeval_on_random_tags():
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 8))]
        gold = [_random_tags(rng, n) for n in lengths]
        pred = [_random_tags(rng, n) for n in lengths]
        ours = seqeval_f1(gold, pred)
        assert ours["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0), abs=1e-12)
        assert ours["precision"] == pytest.approx(precision_score(gold, pred, zero_division=0), abs=1e-12)
        assert ours["recall"] == pytest.approx(recall_score(gold, pred, zero_division=0), abs=1e-12)
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        for t, scores in ours["per_type"].items():
            if t in report:
                assert scores["f1"] == pytest.approx(report[t]["f1-score"], abs=1e-12)
                assert scores["n_gold"] == report[t]["support"]


def test_seqeval_f1_hand_computed_and_errors():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "I-LOC"]]  # a stray I-LOC still starts an entity
    assert seqeval_f1(gold, pred)["f1"] == 1.0
    with pytest.raises(ValueError, match="sentence 0 has 4 gold tags but 3"):
        seqeval_f1(gold, [["O", "O", "O"]])


def test_official_gold_answers_all_parse(data_dir):
    import json

    n = 0
    with open(data_dir / "uniner_eval" / "CrossNER_AI.jsonl", encoding="utf-8") as f:
        for line in f:
            answer = json.loads(line)["conversations"][-1]["value"]
            items, ok = parse_answer(answer)
            assert ok, answer
            n += len(items)
    # 1809 test entities minus 181 misc, minus repeats of a mention within a passage and type, once normalised
    assert n == 1603


def test_bootstrap_f1_on_cases_with_known_distributions():
    from nerlib.metrics import bootstrap_f1

    assert bootstrap_f1([[(1.0, 1, 1)] * 5]) == (1.0, 1.0)  # every resample is perfect
    # two units, one right and one wrong: a resample scores 1 (p 1/4), 0.5 (p 1/2) or 0 (p 1/4)
    assert bootstrap_f1([[(1.0, 1, 1), (0.0, 1, 1)]]) == (0.0, 1.0)
    low, high = bootstrap_f1([[(1.0, 1, 1), (0.0, 1, 1)]], level=0.4)
    assert low == high == 0.5
    # the mean over two groups, one always perfect and one always wrong, is always 0.5
    assert bootstrap_f1([[(1.0, 1, 1)] * 3, [(0.0, 1, 1)] * 3]) == (0.5, 0.5)
    # units without gold or predictions count nothing; more units give a narrower interval
    few = bootstrap_f1([[(1.0, 2, 2), (0.0, 2, 2), (0.0, 0, 0)]], seed=1)
    many = bootstrap_f1([[(1.0, 2, 2), (0.0, 2, 2)] * 50], seed=1)
    assert few[1] - few[0] > many[1] - many[0] > 0 and many[0] < 0.25 < many[1]
    assert bootstrap_f1([[(1.0, 2, 2), (0.0, 2, 2)] * 50], seed=1) == many  # reproducible


def test_bootstrap_f1_rejects_empty_groups_and_bad_levels():
    from nerlib.metrics import bootstrap_f1

    with pytest.raises(ValueError, match="at least one unit"):
        bootstrap_f1([[(1.0, 1, 1)], []])
    with pytest.raises(ValueError, match="level"):
        bootstrap_f1([[(1.0, 1, 1)]], level=95)


def test_paired_bootstrap_difference_on_known_cases():
    from nerlib.metrics import bootstrap_f1, paired_bootstrap_difference

    same = [[(1.0, 2, 2), (0.0, 2, 2)] * 10]
    assert paired_bootstrap_difference(same, same) == (0.0, 0.0, 0.0)
    # a right everywhere, b wrong everywhere: the difference is 1 in every resample
    assert paired_bootstrap_difference([[(1.0, 1, 1)] * 4], [[(0.0, 1, 1)] * 4]) == (1.0, 1.0, 1.0)
    # passages of very different difficulty, a one half-point better on each hard passage: separately the two
    # intervals overlap, but on the same resampled passages a is always ahead, so the paired interval is above 0
    b = [[(0.0, 2, 2), (2.0, 2, 2)] * 20]
    a = [[(0.5, 2, 2), (2.0, 2, 2)] * 20]
    diff, low, high = paired_bootstrap_difference(a, b, seed=3)
    assert diff == pytest.approx((2.5 * 20 / 80) - (2.0 * 20 / 80)) and 0 < low <= diff <= high
    a_low, b_high = bootstrap_f1(a, seed=3)[0], bootstrap_f1(b, seed=3)[1]
    assert a_low < b_high  # the unpaired intervals overlap
    # two groups: the difference of the mean over groups
    diff, _, _ = paired_bootstrap_difference([[(1.0, 1, 1)], [(1.0, 1, 1)]], [[(1.0, 1, 1)], [(0.0, 1, 1)]])
    assert diff == 0.5


def test_paired_bootstrap_difference_needs_the_same_passages():
    from nerlib.metrics import paired_bootstrap_difference

    with pytest.raises(ValueError, match="same groups and units"):
        paired_bootstrap_difference([[(1.0, 1, 1)] * 3], [[(1.0, 1, 1)] * 2])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap_difference([[(1.0, 1, 1)]], [[(1.0, 1, 1)]], level=0)
