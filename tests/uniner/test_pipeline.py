"""The UniversalNER pipeline steps end to end on the tiny model: the untuned student's evaluation and the chapters'
train-then-evaluate, each cached (a second call trains and answers nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from uniner_tiny_lm import tiny_examples

from nerlib.config import UniNERSettings, cache_dir, get_profile
from nerlib.uniner import infer
from nerlib.uniner import pipeline as P
from nerlib.uniner.eval_data import eval_record

torch.set_num_threads(1)

PASSAGES = [("Barack Obama visited Paris .", {"person": ["Barack Obama"], "city": ["Paris"]}),
            ("Apple sells phones in Spain .", {"person": [], "city": []}),
            ("Berlin and Paris .", {"person": [], "city": ["Berlin", "Paris"]})]


@pytest.fixture
def eval_data(tmp_path, monkeypatch) -> Path:
    """A data folder whose only file is a 3-passage CrossNER AI evaluation file in the official format."""
    folder = tmp_path / "data" / "uniner_eval"
    folder.mkdir(parents=True)
    records = [eval_record(f"CrossNER_AI_{2 * i + j}", passage, t, mentions)
               for i, (passage, gold) in enumerate(PASSAGES) for j, (t, mentions) in enumerate(gold.items())]
    (folder / "CrossNER_AI.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "data"))
    return folder


def _settings(student: Path, **changes) -> UniNERSettings:
    return UniNERSettings(student=str(student), max_length=256, batch_size=2, grad_accum=1, max_steps=2, lora_r=4,
                          eval_domains=("ai",), eval_passages_per_domain=2, max_new_tokens=4, **changes)


def _no_answers(monkeypatch):
    monkeypatch.setattr(infer, "answer", lambda *a, **k: pytest.fail("a question was asked again"))


def test_evaluate_base_scores_the_untuned_student_and_reuses_its_predictions(tiny_student, eval_data, monkeypatch):
    profile = get_profile("smoke").replace(uniner=_settings(tiny_student, base_max_new_tokens=None))
    table = P.evaluate_base(profile, progress=False)
    assert table.index.tolist() == ["ai"]
    assert (table.loc["ai", "passages"], table.loc["ai", "queries"]) == (2, 4)  # the first 2 passages, 2 types each
    predictions = cache_dir() / "uniner" / "predictions" / "base-tiny-4-2" / "ai.jsonl"
    assert len(predictions.read_text().splitlines()) == 4
    _no_answers(monkeypatch)
    again = P.evaluate_base(profile, progress=False)
    assert again["f1"].equals(table["f1"]) and again["parse_failures"].equals(table["parse_failures"])


def test_evaluate_base_answers_within_its_own_budget(tiny_student, eval_data, monkeypatch):
    """``base_max_new_tokens`` bounds the untuned model's answers (prose until the budget runs out) apart from the
    tuned students' ``max_new_tokens``; its predictions are cached under that budget."""
    budgets = []
    real = P.evaluate_domains
    monkeypatch.setattr(P, "evaluate_domains", lambda *a, **k: budgets.append(a[4]) or real(*a, **k))
    profile = get_profile("smoke").replace(uniner=_settings(tiny_student, base_max_new_tokens=3))
    P.evaluate_base(profile, progress=False)
    assert budgets == [3] and P.base_budget(profile.uniner) == 3
    assert (cache_dir() / "uniner" / "predictions" / "base-tiny-3-2" / "ai.jsonl").is_file()
    assert P.base_budget(_settings(tiny_student, base_max_new_tokens=None)) == 4  # None: the students' budget


def test_train_and_evaluate_trains_once_then_loads_model_and_predictions(tiny_student, eval_data, monkeypatch):
    profile = get_profile("smoke")
    settings = _settings(tiny_student)
    table, record = P.train_and_evaluate(profile, settings, name="t", examples=tiny_examples(), progress=False)
    assert record["cached"] is False and record["global_step"] == 2
    assert Path(record["model_dir"]) == cache_dir() / "uniner" / f"t-{record['key']}"
    assert (Path(record["model_dir"]) / "adapter_config.json").is_file()
    assert table.index.tolist() == ["ai"] and table.loc["ai", "queries"] == 4
    monkeypatch.setattr(P, "fit", lambda *a, **k: pytest.fail("trained again"))
    _no_answers(monkeypatch)
    again, cached = P.train_and_evaluate(profile, settings, name="t", examples=tiny_examples(), progress=False)
    assert cached["cached"] is True and cached["key"] == record["key"] and cached["model_dir"] == record["model_dir"]
    assert again["f1"].equals(table["f1"])


def test_student_name_describes_the_training_settings():
    s = UniNERSettings(student="Qwen/Qwen2.5-0.5B", negative_sampling="uniform", supervised_datasets=())
    assert P.student_name(s) == "Qwen2.5-0.5B-uniform"
    mixed = UniNERSettings(negative_sampling="frequency", supervised_datasets=("conll2003_en",))
    assert P.student_name(mixed) == "smollm2-135m-frequency+supervised"
    assert P.student_name(mixed, "all_in_one") == "smollm2-135m-frequency+supervised-all-in-one"


def test_a_chapter_ablation_and_a_benchmark_with_the_same_settings_share_one_student(tiny_student, eval_data,
                                                                                     monkeypatch):
    """Chapter 4 replaces ``max_steps`` by ``ablation_max_steps`` and a benchmark sets its own evaluation domains;
    when the training settings come out equal, the second caller loads the first one's model and predictions."""
    profile = get_profile("smoke")
    chapter = _settings(tiny_student, ablation_max_steps=2, ablation_eval_passages=2)
    table, record = P.train_and_evaluate(profile, chapter, examples=tiny_examples(), progress=False)
    assert Path(record["model_dir"]).name.startswith(P.student_name(chapter) + "-")
    monkeypatch.setattr(P, "fit", lambda *a, **k: pytest.fail("trained again"))
    _no_answers(monkeypatch)
    bench = _settings(tiny_student, ablation_max_steps=99, ablation_eval_passages=None)
    again, cached = P.train_and_evaluate(profile, bench, examples=tiny_examples(), limit=2, progress=False)
    assert cached["cached"] is True and cached["model_dir"] == record["model_dir"]
    assert again["f1"].equals(table["f1"])


def test_validation_split_is_scored_into_its_own_prediction_folder(tiny_student, eval_data, monkeypatch):
    import pandas as pd

    seen = []
    monkeypatch.setattr(P, "evaluate_domains", lambda *a, **kw: seen.append(kw) or pd.DataFrame())
    profile = get_profile("smoke")
    settings = _settings(tiny_student)
    _, record = P.train_and_evaluate(profile, settings, examples=tiny_examples(), progress=False)
    P.train_and_evaluate(profile, settings, examples=tiny_examples(), split="validation", progress=False)
    test, valid = seen
    assert test["split"] == "test" and valid["split"] == "validation"
    assert Path(test["cache_dir"]).name.endswith(f"{record['key']}-per_type-4-2")  # test caches keep their names
    assert Path(valid["cache_dir"]).name == Path(test["cache_dir"]).name + "-validation"
