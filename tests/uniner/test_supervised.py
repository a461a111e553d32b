"""Supervised instruction data from BIO datasets: queries for every label, the dataset field, the held-out guard."""

import os
from pathlib import Path

import pytest

from nerlib.config import get_profile
from nerlib.uniner.supervised import (
    check_not_held_out, held_out_names, sentence_to_example, supervised_examples,
)

NATURAL = {"PER": "person", "ORG": "organization", "LOC": "location", "MISC": "miscellaneous"}
LABELS = ("LOC", "MISC", "ORG", "PER")


def test_sentence_to_example_asks_every_label():
    tokens = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "and", "German", "beef", "."]
    tags = ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O", "B-MISC", "O", "O"]
    ex = sentence_to_example(tokens, tags, "conll2003_en", NATURAL, LABELS, id="s0")
    assert ex.passage == "EU rejects German call to boycott British lamb and German beef ."
    assert ex.dataset == "conll2003_en" and ex.id == "s0"
    assert [(q.entity_type, q.answers) for q in ex.queries] == [
        ("location", []),
        ("miscellaneous", ["German", "British"]),  # in order, de-duplicated
        ("organization", ["EU"]),
        ("person", []),
    ]


def test_multi_token_mentions():
    ex = sentence_to_example(["Peter", "Blackburn", "in", "New", "York"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"],
                             "wikiann_en", NATURAL, ("LOC", "ORG", "PER"))
    assert [q.answers for q in ex.queries] == [["New York"], [], ["Peter Blackburn"]]


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        sentence_to_example(["a", "b"], ["O"], "d", NATURAL, LABELS, id="s1")
    with pytest.raises(ValueError, match="entity type 'GENE' is not a label"):
        sentence_to_example(["a"], ["B-GENE"], "d", NATURAL, LABELS)


@pytest.mark.parametrize("name", ["crossner_ai", "crossner_music", "DFKI-SLT/cross_ner", "mit_movie", "uniner_eval"])
def test_held_out_data_is_refused(name):
    with pytest.raises(ValueError, match="held out .*crossner_ai"):
        check_not_held_out(name)
    with pytest.raises(ValueError, match="held out"):
        supervised_examples(name)


def test_training_sets_are_allowed():
    held_out = held_out_names()
    for name in ("conll2003_en", "wikiann_en", "conll2002_es", "Universal-NER/Pile-NER-type"):
        assert check_not_held_out(name) is None and name not in held_out
    for profile in ("smoke", "small", "gpu"):  # every profile's supervised mixture passes the guard
        datasets = get_profile(profile).uniner.supervised_datasets
        assert datasets and all(check_not_held_out(name) is None for name in datasets)


DATA = os.environ.get("NERLIB_DATA_DIR")


@pytest.mark.skipif(not DATA or not (Path(DATA) / "conll2003_en").is_dir(), reason="course data not available")
def test_real_conll_and_wikiann():
    conll = supervised_examples("conll2003_en", limit=5, progress=False)
    assert len(conll) == 5 and all(ex.dataset == "conll2003_en" for ex in conll)
    assert conll[0].passage == "EU rejects German call to boycott British lamb ."
    assert [(q.entity_type, q.answers) for q in conll[0].queries] == [
        ("location", []), ("miscellaneous", ["German", "British"]), ("organization", ["EU"]), ("person", []),
    ]
    wiki = supervised_examples("wikiann_en", limit=3, progress=False)
    assert [q.entity_type for q in wiki[0].queries] == ["location", "organization", "person"]
