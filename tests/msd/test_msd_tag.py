"""Tagging raw text with an MSD model: CoNLL-style words with offsets, both model kinds, dataset evaluation."""

from __future__ import annotations

import json

import pytest
from msd_tiny_run import LABELS, make_run

from nerlib.msd.tag import Tagger, evaluate_dataset, split_sentences, split_words

TEXT = "La ministra viajó a Valparaíso con Aguas del Pacífico. El Ayuntamiento de Sevilla y la Universidad de Granada."


def test_split_words_conll_style_with_offsets():
    text = "Joe's Diner didn't open in the U.S. at 12:30, said Dr. Smith (Hewlett-Packard)..."
    words = split_words(text)
    assert [w for w, _, _ in words] == ["Joe", "'s", "Diner", "did", "n't", "open", "in", "the", "U.S.", "at",
                                        "12:30", ",", "said", "Dr.", "Smith", "(", "Hewlett-Packard", ")", "..."]
    assert all(text[a:b] == w for w, a, b in words)
    assert [w for w, _, _ in split_words("¿Qué dijo Lucía?")] == ["¿", "Qué", "dijo", "Lucía", "?"]
    assert split_sentences(["A", "b", ".", "C", "!", "d"]) == [(0, 3), (3, 5), (5, 6)]
    assert split_sentences(["w"] * 5, max_words=2) == [(0, 2), (2, 4), (4, 5)]


def test_tag_raw_text_offsets_and_consistency(tmp_path):
    tagger = Tagger.from_pretrained(make_run(tmp_path), device="cpu")
    assert tagger.kind == "run" and tagger.labels == LABELS
    out = tagger.tag(TEXT)
    assert out["tokens"][:5] == ["La", "ministra", "viajó", "a", "Valparaíso"] and len(out["tags"]) == len(out["tokens"])
    assert set(out["tags"]) <= set(LABELS) and len(set(out["tags"])) > 2
    assert out["entities"], "the decisive random heads tag something"
    for e in out["entities"]:
        assert TEXT[e["start"]:e["end"]] == e["text"] and e["type"] in {"LOC", "MISC", "ORG", "PER"}
    # per sentence, the same as tagging the sentence's words directly
    first = out["tokens"].index(".") + 1
    assert tagger.tag_words([out["tokens"][:first]])[0] == out["tags"][:first]
    json.dumps(out)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an MSD model folder"):
        Tagger.from_pretrained(tmp_path)


def test_evaluate_dataset_and_label_mismatch(tmp_path, fixtures):
    run = make_run(tmp_path)
    scores = evaluate_dataset(run, str(fixtures / "tiny.jsonl"), device="cpu")
    assert scores["sentences"] == 3
    for kind in ("strict", "partial"):
        assert 0 <= scores[kind]["f1"] <= 100 and set(scores[kind]) >= {"precision", "recall", "f1", "per_type"}
    assert scores["partial"]["f1"] >= scores["strict"]["f1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["Rust"], "ner_tags": ["B-programlang"]}) + "\n")
    with pytest.raises(ValueError, match=r"\['programlang'\].*\['LOC', 'MISC', 'ORG', 'PER'\]"):
        evaluate_dataset(run, str(bad), device="cpu")


def test_registry_label_sets_must_be_equal_local_files_may_be_a_subset(tmp_path, data_dir):
    run = make_run(tmp_path)
    with pytest.raises(ValueError, match=r"wikiann_en.*\['LOC', 'ORG', 'PER'\].*\['LOC', 'MISC', 'ORG', 'PER'\]"):
        evaluate_dataset(run, "wikiann_en", limit=2, device="cpu")
    only_per = tmp_path / "per.jsonl"
    only_per.write_text(json.dumps({"tokens": ["Ana", "Sol"], "ner_tags": ["B-PER", "I-PER"]}) + "\n")
    assert evaluate_dataset(run, str(only_per), device="cpu")["sentences"] == 1
