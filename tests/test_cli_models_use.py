"""The commands that use trained models: msd tag|export|evaluate, --out-dir run folders, --source/--target,
uniner extract|export|make-eval|evaluate --eval-file/--dataset (tiny models built from a config)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nerlib import cli

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE / "msd"), str(HERE / "uniner")]

from msd_tiny_run import make_run  # noqa: E402
from uniner_tiny_lm import tiny_model, tiny_tokenizer  # noqa: E402

TEXT = "La ministra viajó a Valparaíso con Aguas del Pacífico. El Ayuntamiento de Sevilla y la Universidad de Granada."


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
def teacher_run(tmp_path, monkeypatch):
    """`msd train-teacher` with the training replaced by a tiny model (the command's own code runs)."""
    from nerlib.msd.runs import load_run

    model, info = load_run(make_run(tmp_path / "tiny"))
    seen = {}

    def fake_teacher(settings, multi_exit=True, seed=42, target=None, progress=True):
        seen["settings"] = settings
        return model, {**info, "role": "teacher"}

    monkeypatch.setattr("nerlib.msd.runs.cached_teacher", fake_teacher)
    return seen


@pytest.fixture
def source_folder(tmp_path, fixtures) -> Path:
    """A local data folder with the three splits (the tiny CoNLL fixture)."""
    folder = tmp_path / "my_corpus"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text((fixtures / "tiny.jsonl").read_text())
    return folder


def test_msd_out_dir_tag_export_evaluate(teacher_run, source_folder, tmp_path, capsys, fixtures):
    run = tmp_path / "teacher"
    assert cli.main(["msd", "train-teacher", "--profile", "smoke", "--no-eval", "--source", str(source_folder),
                     "--target", str(source_folder), "--out-dir", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_dir"] == str(run) and (run / "run.json").is_file() and (run / "model.safetensors").is_file()
    assert teacher_run["settings"].source == str(source_folder)
    assert teacher_run["settings"].targets == (str(source_folder),)

    assert cli.main(["msd", "tag", "--model", str(run), "--text", TEXT]) == 0
    (tagged,) = _lines(capsys)
    assert tagged["tokens"][-1] == "." and len(tagged["tags"]) == len(tagged["tokens"])
    for e in tagged["entities"]:
        assert TEXT[e["start"]:e["end"]] == e["text"]

    assert cli.main(["msd", "export", "--run", str(run), "--out", str(tmp_path / "export")]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "BertForTokenClassification"
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": TEXT}) + "\n" + json.dumps({"text": "Sevilla ."}) + "\n")
    assert cli.main(["msd", "tag", "--model", str(tmp_path / "export"), "--input", str(texts)]) == 0
    lines = _lines(capsys)
    assert len(lines) == 2 and lines[0]["tags"] == tagged["tags"]  # the export tags as the run

    assert cli.main(["msd", "evaluate", "--model", str(tmp_path / "export"), "--dataset",
                     str(fixtures / "tiny.jsonl"), "-o", str(tmp_path / "scores.json")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"strict", "partial"} <= set(scores) and "per_type" in scores["strict"]
    # the measured scores go into the card of an export
    assert cli.main(["msd", "export", "--run", str(run), "--out", str(tmp_path / "export2"), "--scores",
                     str(tmp_path / "scores.json")]) == 0
    card = (tmp_path / "export2" / "README.md").read_text()
    assert f"| tiny strict F1 | {scores['strict']['f1']} |" in card


def test_msd_source_folder_missing_split_is_a_clear_error(teacher_run, tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "test.jsonl").write_text('{"tokens": ["A"], "ner_tags": ["B-PER"]}\n')
    code = cli.main(["msd", "train-teacher", "--profile", "smoke", "--no-eval", "--source", str(tmp_path / "half")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and "half" in err and "train" in err


def test_msd_evaluate_label_mismatch_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["Rust"], "ner_tags": ["B-programlang"]}) + "\n")
    code = cli.main(["msd", "evaluate", "--model", str(make_run(tmp_path)), "--dataset", str(bad)])
    assert code == cli.EXIT_USAGE and "programlang" in capsys.readouterr().err


@pytest.fixture
def student(tmp_path) -> Path:
    folder = tmp_path / "student"
    tiny_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def test_uniner_extract_text_and_input(student, tmp_path, capsys):
    text = "Barack Obama visited Paris and Berlin . The Apple company sells phones in Spain ."
    assert cli.main(["uniner", "extract", "--model", str(student), "--types", "person,location", "--text", text,
                     "--max-new-tokens", "6"]) == 0
    (out,) = _lines(capsys)
    assert out["text"] == text
    for e in out["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and e["type"] in ("person", "location")
    (tmp_path / "in.txt").write_text("Paris .\nBerlin .\n")
    assert cli.main(["uniner", "extract", "--model", str(student), "--types", "location", "--input",
                     str(tmp_path / "in.txt"), "--max-new-tokens", "4"]) == 0
    assert [o["text"] for o in _lines(capsys)] == ["Paris .", "Berlin ."]
    assert cli.main(["uniner", "extract", "--model", str(student), "--types", "x"]) == cli.EXIT_USAGE
    assert "exactly one of --text or --input" in capsys.readouterr().err
    # with one type per mention, no span carries two types
    assert cli.main(["uniner", "extract", "--model", str(student), "--types", "person,location", "--text", text,
                     "--max-new-tokens", "6", "--one-type-per-mention"]) == 0
    (out,) = _lines(capsys)
    spans = [(e["start"], e["end"]) for e in out["entities"]]
    assert len(spans) == len(set(spans))
    # an empty-answer bias runs the calibrated decoder; a negative one is refused before any work
    assert cli.main(["uniner", "extract", "--model", str(student), "--types", "person,location", "--text", text,
                     "--max-new-tokens", "6", "--empty-bias", "2.5"]) == 0
    (out,) = _lines(capsys)
    for e in out["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]
    with pytest.raises(SystemExit):
        cli.main(["uniner", "extract", "--model", str(student), "--types", "x", "--text", "y", "--empty-bias", "-1"])
    assert "is not a number >= 0" in capsys.readouterr().err


def test_uniner_make_eval_and_evaluate(student, tmp_path, capsys, fixtures):
    target = tmp_path / "eval.jsonl"
    assert cli.main(["uniner", "make-eval", "--dataset", str(fixtures / "tiny.jsonl"), "-o", str(target),
                     "--labels", "MISC=miscellaneous entity"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 12 and "miscellaneous entity" in summary["types"] and target.is_file()

    assert cli.main(["uniner", "evaluate", "--profile", "smoke", "--model", str(student), "--eval-file",
                     str(target), "--out-dir", str(tmp_path / "ev")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["queries"] == 12 and set(scores["per_type"]) == {"location", "miscellaneous entity",
                                                                  "organization", "person"}
    for v in [scores, *scores["per_type"].values()]:
        assert 0 <= v["f1"] <= 100 and 0 <= v["partial_f1"] <= 100
    assert (tmp_path / "ev" / "scores.json").is_file()

    assert cli.main(["uniner", "evaluate", "--profile", "smoke", "--model", str(student), "--dataset",
                     str(fixtures / "tiny.jsonl"), "--labels", "PER=human", "--limit", "2"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["passages"] == 2 and "human" in scores["per_type"]


def test_uniner_export_full_model_copies_and_writes_a_card(student, tmp_path, capsys):
    assert cli.main(["uniner", "export", "--model", str(student), "--out", str(tmp_path / "exp")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["merged_lora"] is False
    assert (tmp_path / "exp" / "README.md").read_text().startswith("---\nbase_model:")
