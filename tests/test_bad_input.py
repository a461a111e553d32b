"""Bad input and bad settings (issue 13): readers, metrics, NERLIB_* variables and command-line arguments give a
clear error (naming the file, line, field, variable or argument) or the right result, never a silent wrong one, and
a failing command exits non-zero before doing any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerlib import cli, config
from nerlib.data.io import DataFormatError, end_with_newline, json_records, read_conll, read_jsonl
from nerlib.metrics import span_f1, string_f1

REPO = Path(__file__).resolve().parents[1]


# -------------------------------------------------------------------------------------------------------- readers


def test_conll_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.conll"
    path.write_bytes(b"\xef\xbb\xbfJohn B-PER\nlives O\n\nParis B-LOC\n")
    got = read_conll(path)
    assert got[0]["tokens"] == ["John", "lives"]  # not '\ufeffJohn'
    assert got[1] == {"tokens": ["Paris"], "ner_tags": ["B-LOC"]}


def test_conll_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("John B-PER\n\nMálaga B-LOC\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.conll:3: not UTF-8 text \(byte 0xe1 at column 2\)"):
        read_conll(path)


def test_jsonl_bom_crlf_and_exotic_separators(tmp_path):
    tokens = ["a\u2028b", "c\u2029d", "e\x85f", "g"]
    path = tmp_path / "x.jsonl"
    line = json.dumps({"tokens": tokens, "ner_tags": ["O", "B-PER", "I-PER", "O"]}, ensure_ascii=False)
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\r\n" + line.encode() + b"\n")
    got = read_jsonl(path)
    assert [ex["tokens"] for ex in got] == [tokens, tokens]
    assert "\u2028".join(["x", "y"]).splitlines() == ["x", "y"]  # what the old cache reader did to such a line


def test_jsonl_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["\xff"], "ner_tags": ["O"]}\n')
    with pytest.raises(DataFormatError, match=r"x\.jsonl:2: not UTF-8 text \(byte 0xff at column 14\)"):
        read_jsonl(path)


def test_json_records_cut_off_last_line_only_in_caches(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"cache\.jsonl:3: invalid JSON"):
        list(json_records(path))
    with pytest.warns(UserWarning, match=r"cache\.jsonl:3: ignoring a cut-off last line"):
        assert list(json_records(path, truncated_tail="skip")) == [(1, {"a": 1}), (2, {"a": 2})]
    end_with_newline(path)  # before appending: the partial line is removed ...
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"a": 2}\n'
    path.write_text('{"a": 1}\n{"a": 2}', encoding="utf-8")
    end_with_newline(path)  # ... a complete last record only gets its newline
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"a": 2}\n'


def test_ablation_log_with_a_cut_off_last_line_resumes(tmp_path):
    from nerlib.msd import ablation as A

    log = tmp_path / "results.jsonl"
    log.write_text('{"key": "k1", "row": "MSD", "f1": 1.0}\n{"key": "k2", "ro', encoding="utf-8")
    with pytest.warns(UserWarning, match="cut-off last line"):
        assert list(A._done(log)) == ["k1"]


# -------------------------------------------------------------------------------------------------------- metrics


def test_string_f1_refuses_a_string_where_a_list_is_expected():
    with pytest.raises(TypeError, match=r"gold_lists\[0\] must be a list of strings, got str 'Paris'"):
        string_f1(["Paris"], ["Spain"])
    with pytest.raises(TypeError, match=r"pred_lists\[0\] must be a list of strings"):
        string_f1([["Paris"]], ["Paris"])
    with pytest.raises(TypeError, match=r"gold_lists must be a list of lists of strings"):
        string_f1("Paris", "Spain")
    assert string_f1([["Paris"]], [["Spain"]])["f1"] == 0.0
    assert string_f1([("Paris",)], [["paris"]])["f1"] == 1.0  # tuples of strings are lists of strings


def test_span_f1_spans_from_json_score_like_tuples():
    gold = [[(0, 2, "PER"), (3, 4, "LOC")]]
    pred = json.loads(json.dumps(gold))  # [[[0, 2, "PER"], [3, 4, "LOC"]]]
    assert pred[0][0] == [0, 2, "PER"]
    assert span_f1(gold, pred)["f1"] == 1.0
    assert span_f1(pred, gold, partial=True)["f1"] == 1.0


@pytest.mark.parametrize("span, message", [
    ((3, 1, "PER"), r"pred\[0\]\[0\] = \(3, 1, 'PER'\): a span needs 0 <= start < end"),
    ((-1, 1, "PER"), r"a span needs 0 <= start < end"),
])
def test_span_f1_rejects_spans_ending_before_they_start(span, message):
    with pytest.raises(ValueError, match=message):
        span_f1([[(0, 2, "PER")]], [[span]])


def test_span_f1_rejects_malformed_spans():
    with pytest.raises(TypeError, match=r"gold\[0\]\[0\] must be a \(start, end, type\) span"):
        span_f1([[(0, 2)]], [[]])
    with pytest.raises(TypeError, match=r"gold\[0\]\[0\] must be \(int start, int end, str type\)"):
        span_f1([[(0.0, 2, "PER")]], [[]])


# ------------------------------------------------------------------------------------------------------- settings


def test_seed_setting_must_be_an_integer(monkeypatch, capsys):
    monkeypatch.setenv("NERLIB_SEED", "abc")
    with pytest.raises(config.SettingError, match=r"NERLIB_SEED='abc' is not an integer seed"):
        config.get_profile("smoke")
    assert cli.main(["profile"]) == 2
    assert capsys.readouterr().err == "nerlib: error: NERLIB_SEED='abc' is not an integer seed\n"
    monkeypatch.setenv("NERLIB_SEED", "-3")
    with pytest.raises(config.SettingError, match=r"NERLIB_SEED='-3': a seed must be between 0 and 2\*\*32 - 1"):
        config.get_profile("smoke")
    monkeypatch.setenv("NERLIB_SEED", " 7 ")
    assert config.get_profile("smoke").seed == 7


@pytest.mark.parametrize("name, value, message", [
    ("NERLIB_THREADS", "two", "NERLIB_THREADS='two' must be a positive integer"),
    ("NERLIB_THREADS", "0", "NERLIB_THREADS='0' must be a positive integer"),
    ("NERLIB_DEVICE", "gpu", "NERLIB_DEVICE='gpu' is not a device"),
    ("NERLIB_CPU_BF16", "maybe", "NERLIB_CPU_BF16='maybe': use 1 or 0"),
    ("NERLIB_PROFILE", "huge", "NERLIB_PROFILE='huge' is not a profile"),
    ("NERLIB_DATA_DIR", "/no/such/folder", "NERLIB_DATA_DIR='/no/such/folder' is not a folder"),
])
def test_bad_settings_name_the_variable_before_work(name, value, message, no_work, monkeypatch, capsys):
    monkeypatch.setenv(name, value)
    assert cli.main(["models", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nerlib: error: {message}") and err.count("\n") == 1


def _run(args, env_changes, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NERLIB_")}
    env.update(env_changes)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "nerlib", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def test_cache_dir_below_a_file_is_one_clear_line(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _run(["profile", "--profile", "smoke"], {"NERLIB_CACHE_DIR": str(tmp_path / "file" / "cache")})
    assert proc.returncode == 2
    assert proc.stderr == (f"nerlib: error: NERLIB_CACHE_DIR='{tmp_path}/file/cache': cannot create the folder "
                           f"{tmp_path}/file/cache: {tmp_path}/file is a file\n")
    assert proc.stdout == ""


def test_output_below_a_file_fails_before_work(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "library_function", lambda *a: pytest.fail("the command ran"))
    code = cli.main(["models", "list", "-o", str(tmp_path / "file" / "out.json")])
    assert code == 2
    assert capsys.readouterr().err == (f"nerlib: error: --output {tmp_path}/file/out.json: cannot create the "
                                       f"folder {tmp_path}/file: {tmp_path}/file is a file\n")
    assert cli.main(["profile", "-o", str(tmp_path)]) == 2  # a folder is not a file name
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_out_dir_below_a_file_fails_before_work(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "library_function", lambda *a: pytest.fail("the command ran"))
    assert cli.main(["msd", "tsne", "--profile", "smoke", "--out-dir", str(tmp_path / "file" / "run")]) == 2
    assert "nerlib: error: --out-dir" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ arguments


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Any library function reached means the command started working: fail the test."""
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "library_function", lambda module, name, command: lambda *a, **k: pytest.fail(
        f"{command} started work"))


@pytest.mark.parametrize("argv, message", [
    (["msd", "train-teacher", "--teacher-steps", "-5"], "argument --teacher-steps: -5: use a positive number of steps"),
    (["msd", "train-teacher", "--teacher-steps", "0"], "argument --teacher-steps: 0: use a positive number of steps"),
    (["msd", "ablation", "--train-sentences", "0"], "argument --train-sentences: 0 is not a positive integer"),
    (["msd", "train-student", "--batch-size", "0"], "argument --batch-size: 0 is not a positive integer"),
    (["msd", "ablation", "--batch-size", "x"], "argument --batch-size: invalid positive integer value: 'x'"),
    (["msd", "ablation", "--student-lr=-1e-4"], "argument --student-lr: -1e-4 is not a positive number"),
    (["msd", "ablation", "--max-cells", "-1"], "argument --max-cells: -1 is negative"),
    (["data", "show", "conll2003_en", "--limit", "-2"], "argument --limit: -2 is negative"),
    (["profile", "--seed", "-1"], "argument --seed: -1: a seed must be between 0 and 2**32 - 1"),
])
def test_bad_numbers_are_rejected_before_work(argv, message, no_work, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_steps_minus_one_still_means_train_by_epochs(no_work, capsys, monkeypatch):
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    seen = {}
    monkeypatch.setattr(cli, "library_function", lambda *a: lambda s, **k: seen.setdefault("s", s) and (None, {}))
    assert cli.main(["msd", "train-teacher", "--profile", "smoke", "--teacher-steps", "-1", "--no-eval"]) == 0
    assert seen["s"].teacher_steps == -1


def test_budget_checks_in_the_library():
    from nerlib.msd.checks import check_budget

    smoke = config.get_profile("smoke").msd
    for change, message in ((dict(teacher_steps=-5), r"msd\.teacher_steps=-5: use a positive number of steps"),
                            (dict(train_sentences=0), r"msd\.train_sentences=0: use a positive number of sentences"),
                            (dict(batch_size=0), r"msd\.batch_size=0: must be a positive number")):
        with pytest.raises(ValueError, match=message):
            check_budget(smoke.__class__(**{**smoke.__dict__, **change}))


def test_ablation_unknown_target_fails_before_work(no_work, capsys):
    assert cli.main(["msd", "ablation", "--profile", "smoke", "--target", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nerlib: error: unknown target dataset 'nosuch'; known: conll2003_en,")


def test_run_ablation_checks_targets_before_training(tmp_path, monkeypatch):
    from nerlib.msd import ablation as A

    monkeypatch.setattr(A, "evaluate_cell", lambda *a, **k: pytest.fail("a cell started"))
    with pytest.raises(ValueError, match="unknown target dataset 'nosuch'"):
        A.run_ablation(config.get_profile("smoke"), ["nosuch"], [1], ["MSD"], tmp_path)
    prof = A.with_settings(config.get_profile("smoke"), student_steps=0)
    with pytest.raises(ValueError, match=r"msd\.student_steps=0"):
        A.run_ablation(prof, ["conll2002_es"], [1], ["MSD"], tmp_path)


def test_tsne_unknown_target_fails_before_work(no_work, capsys):
    assert cli.main(["msd", "tsne", "--profile", "smoke", "--target", "nosuch"]) == 2
    assert "nerlib: error: unknown target dataset 'nosuch'" in capsys.readouterr().err


def test_unknown_student_target_fails_before_the_teacher_trains(no_work, capsys):
    assert cli.main(["msd", "train-student", "--profile", "smoke", "--target", "conll2002_es",
                     "--target", "conll2002_xx"]) == 2
    assert "unknown target dataset 'conll2002_xx'" in capsys.readouterr().err


def test_missing_local_target_file_fails_before_work(no_work, capsys, monkeypatch, tmp_path):
    data = tmp_path / "data"
    for name, splits in (("conll2003_en", ("train", "validation", "test")), ("conll2002_es", ("test",))):
        (data / name).mkdir(parents=True)
        for split in splits:
            (data / name / f"{split}.jsonl").write_text('{"tokens": ["a"], "ner_tags": ["O"]}\n')
    monkeypatch.setenv("NERLIB_DATA_DIR", str(data))
    assert cli.main(["msd", "train-student", "--profile", "smoke", "--target", "conll2002_es"]) == 2
    assert f"target dataset 'conll2002_es': {data}/conll2002_es/train.jsonl not found" in capsys.readouterr().err


def test_student_target_sharing_no_label_with_the_source_is_an_error(no_work, capsys, monkeypatch):
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    assert cli.main(["msd", "train-student", "--profile", "smoke", "--target", "crossner_ai"]) == 2
    err = capsys.readouterr().err
    assert "source 'conll2003_en' and target 'crossner_ai' share no entity type" in err
    assert "source types ['LOC', 'MISC', 'ORG', 'PER']" in err and "'programlang'" in err


def test_partial_label_overlap_is_a_warning_listing_shared_types(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "library_function", lambda *a: lambda *x, **k: (None, {"steps": 2}))
    assert cli.main(["msd", "train-student", "--profile", "smoke", "--target", "wikiann_nl", "--no-eval"]) == 0
    err = capsys.readouterr().err
    assert ("nerlib: warning: source 'conll2003_en' and target 'wikiann_nl' share only the types "
            "['LOC', 'ORG', 'PER'] (source only: ['MISC'], target only: none)") in err


def test_models_prepare_unknown_name_fails(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert cli.main(["models", "prepare", "nosuch-model"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["prepared"]["nosuch-model"].startswith(
        "error: model 'nosuch-model' is not an offline short name (me5-small, minilm-l6, smollm2-135m, gemma-3-270m)")
    assert captured.err == "nerlib: error: could not prepare nosuch-model\n"
    assert cli.main(["models", "prepare", "./no/such/folder"]) == 2
    assert "model folder './no/such/folder' does not exist" in capsys.readouterr().out


def test_prepare_a_name_the_hub_does_not_know(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants, errors

    from nerlib.models import prepare

    def missing(name):
        err = errors.RepositoryNotFoundError.__new__(errors.RepositoryNotFoundError)  # no HTTP response to build
        err.args = (f"404: {name}",)
        raise err

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", missing)
    with pytest.raises(ValueError, match=r"unknown model 'nosuch-model': not an offline short name .* not a local "
                                         r"folder, and no such model on the Hugging Face hub"):
        prepare("nosuch-model")


def test_hub_without_network_or_data_folder_is_one_clear_line(tmp_path):
    proc = _run(["data", "show", "conll2003_en", "--limit", "1"],
                {"NERLIB_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "nerlib: error: cannot reach the Hugging Face hub for dataset 'conll2003_en' (eriktks/conll2003) "
        "(ConnectionError): set NERLIB_DATA_DIR to the course data folder to work offline, or connect to the internet")
    assert "Traceback" not in proc.stderr


def test_train_rejects_bad_examples_before_loading_a_model(tmp_path, monkeypatch, capsys):
    import nerlib.uniner.pipeline as T

    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(T, "load_student", lambda *a, **k: pytest.fail("a model was loaded"))
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"passage": "BERT is a model", "queries": [{"entity_type": "model",
                                                                           "answers": "BERT"}]}) + "\n")
    assert cli.main(["uniner", "train", "--profile", "smoke", "--examples", str(path),
                     "--out-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"nerlib: error: {path}:1: queries[0].answers: expected a list of strings, "
                                       "got a string ('BERT')\n")


def test_genuine_bugs_keep_their_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))

    def buggy(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(cli, "library_function", lambda *a: buggy)
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["models", "list"])
