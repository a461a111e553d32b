"""Parsing teacher answers tolerantly, the paper's cleaning rules, statistics and instruction examples."""

from collections import Counter
from types import SimpleNamespace

import pytest

from nerlib.uniner.annotations import (
    Annotation,
    AnnotationReport,
    annotate,
    clean,
    head_tail,
    normalize_type,
    parse_tuples,
    plot_type_distribution,
    summary,
    to_example,
    type_counts,
)


@pytest.mark.parametrize(
    "text, pairs, status",
    [
        ('[("Tim Cook", "person"), ("Apple", "company")]', [("Tim Cook", "person"), ("Apple", "company")], "ok"),
        ('[["Tim Cook", "person"]]', [("Tim Cook", "person")], "ok"),  # JSON-style lists
        ("[]", [], "ok"),
        ('Sure! Here they are:\n[("Apple", "company")]\nHope this helps.', [("Apple", "company")], "ok"),
        ("[('O\\'Neil', 'person')]", [("O'Neil", "person")], "ok"),
        ('("Apple", "company")', [("Apple", "company")], "ok"),  # a lone tuple
        ('[{"entity": "Apple", "type": "company"}]', [("Apple", "company")], "ok"),
        # cut off mid-answer: the complete pairs are recovered
        ('[("Apple", "company"), ("Tim Cook", "person"), ("Cupert', [("Apple", "company"), ("Tim Cook", "person")],
         "recovered"),
        # unbalanced quote in one item, prose between items
        ('[("Apple", "company), ("Paris", "city")] and also ("Rome", "city")', [("Paris", "city"), ("Rome", "city")],
         "recovered"),
        ("I could not find any entities.", [], "failed"),
        ("[1, 2, 3]", [], "failed"),
    ],
)
def test_parse_tuples(text, pairs, status):
    assert parse_tuples(text) == (pairs, status)


def test_parse_tuples_non_string_fails():
    assert parse_tuples(None) == ([], "failed")


def test_normalize_type():
    assert normalize_type("  Programming_Language ") == "programming language"
    assert normalize_type('"Medical   Condition".') == "medical condition"
    assert normalize_type("PERSON") == "person"


def test_clean_drops_with_reasons():
    passage = "Tim Cook runs Apple in Cupertino."
    pairs = [
        ("Tim Cook", "Person"),
        ("Apple", "ORGANIZATION"),
        ("Google", "organization"),  # not in passage
        ("Cupertino", "none"),  # catch-all
        ("Cupertino", "MISC"),  # catch-all
        ("Apple", "  "),  # empty type
        ("  ", "city"),  # empty mention
        ("Tim Cook", "person"),  # duplicate after normalisation
        ("Cupertino", "city"),
    ]
    report = AnnotationReport()
    assert clean(pairs, passage, report) == [("Tim Cook", "person"), ("Apple", "organization"), ("Cupertino", "city")]
    assert report.pairs == 9 and report.kept == 3
    assert report.dropped == Counter(
        mention_not_in_passage=1, catch_all_type=2, empty_type=1, empty_mention=1, duplicate=1
    )


def test_mentions_must_match_case_exactly():
    assert clean([("apple", "company")], "Apple pie.") == []


def test_annotate_counts_everything():
    results = [
        SimpleNamespace(passage="Tim Cook runs Apple.", content='[("Tim Cook", "person"), ("Apple", "company")]', ok=True, id="a"),
        SimpleNamespace(passage="Rome.", content='[("Rome", "city"), ("Par', ok=True, id="b"),
        SimpleNamespace(passage="Nothing.", content="No entities here.", ok=True, id="c"),
        SimpleNamespace(passage="Lost.", content="", ok=False, id="d"),
        SimpleNamespace(passage="Empty.", content="[]", ok=True, id="e"),
    ]
    annotations, report = annotate(results)
    assert [a.id for a in annotations] == ["a", "b", "e"]
    assert annotations[0].entities == [("Tim Cook", "person"), ("Apple", "company")]
    assert annotations[2].entities == []
    d = report.as_dict()
    assert (d["passages"], d["teacher_failures"], d["parsed_ok"], d["parse_recovered"], d["parse_failed"]) == (5, 1, 2, 1, 1)
    assert (d["pairs"], d["kept"]) == (3, 3)
    assert report.examples_failed == ["No entities here."]


ANNS = [
    Annotation("p1", [("a", "person"), ("b", "person"), ("c", "city")]),
    Annotation("p2", [("d", "person"), ("e", "gene")]),
    Annotation("p3", []),
]


def test_type_counts_and_summary():
    assert type_counts(ANNS) == Counter(person=3, city=1, gene=1)
    s = summary(ANNS)
    assert (s["passages"], s["entities"], s["types"]) == (3, 5, 3)
    assert s["entities_per_passage"] == pytest.approx(5 / 3)
    assert s["types_per_passage"] == pytest.approx(4 / 3)


def test_head_tail_shares():
    counts = Counter({f"t{i}": 100 - i for i in range(100)})  # 100 types, 4950+100 = 5050 mentions
    rows = head_tail(counts)
    assert [r["types"] for r in rows] == [1, 9, 90]
    assert rows[0]["share"] == pytest.approx(100 / 5050)
    assert rows[1]["share"] == pytest.approx(sum(100 - i for i in range(1, 10)) / 5050)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["examples"] == ["t0"]


def test_plot_type_distribution():
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_type_distribution(Counter(person=10, city=3, gene=1), top=2)
    xs, ys = ax.lines[0].get_data()
    assert list(xs) == [1, 2, 3] and list(ys) == [10, 3, 1]
    assert [t.get_text() for t in ax.texts] == ["person", "city"]
    with pytest.raises(ValueError):
        plot_type_distribution(Counter())


def test_to_example_groups_dedups_and_adds_empty_types():
    ann = Annotation("p", [("a", "person"), ("c", "city"), ("b", "person"), ("a", "person")],
                     empty_types=["gene", "person"], id="x")
    ex = to_example(ann)
    assert ex.id == "x" and ex.dataset is None
    assert [(q.entity_type, q.answers) for q in ex.queries] == [
        ("person", ["a", "b"]), ("city", ["c"]), ("gene", []),
    ]
    assert [q.entity_type for q in to_example(ann, include_empty=False).queries] == ["person", "city"]


def test_annotations_round_trip_and_errors(tmp_path):
    from nerlib.uniner.annotations import read_annotations, write_annotations

    anns = [Annotation("a met b in c", [("a", "person"), ("b", "person"), ("c", "city")]),
            Annotation("d has e", [("d", "person"), ("e", "gene")], ["city"], id="x2"),
            Annotation("p3", [])]
    path = write_annotations(anns, tmp_path / "a.jsonl")
    assert read_annotations(path) == anns
    path.write_text(path.read_text() + '{"passage": "p", "entities": [["only one"]]}\n')
    with pytest.raises(ValueError, match=r"a\.jsonl:4: entities\[0\]: expected a \[mention, type\] pair"):
        read_annotations(path)
