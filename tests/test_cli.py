"""The command line: every sub-command has help, `profile` prints the profile, errors are clear."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from nerlib import cli, config

LEAVES = [
    ["profile"],
    ["models", "list"],
    ["models", "prepare"],
    ["data", "show"],
    ["uniner", "annotate"],
    ["uniner", "build-data"],
    ["uniner", "train"],
    ["uniner", "evaluate"],
    ["msd", "train-teacher"],
    ["msd", "train-student"],
    ["msd", "ablation"],
    ["msd", "tsne"],
]


@pytest.mark.parametrize("words", [[]] + [w[:1] for w in LEAVES] + LEAVES, ids=lambda w: " ".join(w) or "top")
def test_help_of_every_command(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*words, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nerlib" + "".join(" " + w for w in words))


def test_every_leaf_is_wired_to_a_command_function():
    parser = cli.build_parser()
    for words in LEAVES:
        extra = ["conll2003_en"] if words == ["data", "show"] else []
        args = parser.parse_args([*words, *extra])
        assert callable(args.func) and args.func.__name__.startswith("cmd_")


def test_profile_prints_the_smoke_profile_as_json(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path))
    assert cli.main(["profile", "--profile", "smoke"]) == 0
    out = json.loads(capsys.readouterr().out)
    prof = out["profile"]
    assert prof["name"] == "smoke"
    assert prof["msd"]["teacher_steps"] == 2 and prof["msd"]["targets"] == ["conll2002_es", "conll2002_nl"]
    assert prof["uniner"]["eval_domains"] == ["ai", "music"]
    assert out["settings"]["NERLIB_DATA_DIR"] == str(tmp_path)


def test_profile_seed_override_and_output_file(capsys, tmp_path):
    target = tmp_path / "sub" / "profile.json"
    assert cli.main(["profile", "--profile", "gpu", "--seed", "7", "-o", str(target)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(target.read_text())
    assert printed == written
    assert written["profile"]["seed"] == 7
    assert written["profile"]["msd"]["encoder"] == "bert-base-multilingual-cased"


def test_profile_does_not_leak_into_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("NERLIB_PROFILE", "small")
    cli.main(["profile", "--profile", "smoke"])
    import os

    assert os.environ["NERLIB_PROFILE"] == "small"


def test_bad_profile_setting_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("NERLIB_PROFILE", "huge")
    assert cli.main(["profile"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("nerlib: error:") and "huge" in err and "smoke" in err


def test_unknown_command_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["distil-everything"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_library_module_names_the_module():
    with pytest.raises(cli.NotAvailableError, match=r"nerlib\.does_not_exist does not exist"):
        cli.library_function("nerlib.does_not_exist", "run", "demo")


def test_missing_library_function_names_the_function(monkeypatch):
    fake = types.ModuleType("nerlib_fake_step")
    fake.other = lambda: None
    monkeypatch.setitem(sys.modules, "nerlib_fake_step", fake)
    with pytest.raises(cli.NotAvailableError, match=r"nerlib_fake_step has no function run\(\)"):
        cli.library_function("nerlib_fake_step", "run", "demo")
    fake.run = lambda: 41 + 1
    assert cli.library_function("nerlib_fake_step", "run", "demo")() == 42


def test_not_available_step_exits_3_with_message(monkeypatch, capsys):
    def missing(module, name, command):
        raise cli.NotAvailableError(f"`nerlib {command}` is not available: test")

    monkeypatch.setattr(cli, "library_function", missing)
    assert cli.main(["msd", "tsne", "--profile", "smoke"]) == cli.EXIT_NOT_AVAILABLE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "`nerlib msd tsne` is not available" in captured.err


def test_step_result_is_written_as_json(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_tsne(profile, target, out_dir, progress):
        seen["profile"], seen["out_dir"], seen["target"] = profile.name, out_dir, target
        return {"silhouette": 0.25, "plot": out_dir / "tsne.png"}

    monkeypatch.setattr(cli, "library_function", lambda module, name, command: fake_tsne)
    out_file = tmp_path / "tsne.json"
    code = cli.main(["msd", "tsne", "--profile", "smoke", "--target", "conll2002_nl", "--out-dir", str(tmp_path / "run"),
                     "-o", str(out_file)])
    assert code == 0
    assert seen == {"profile": "smoke", "out_dir": tmp_path / "run", "target": "conll2002_nl"}
    result = json.loads(out_file.read_text())
    assert result == {"silhouette": 0.25, "plot": str(tmp_path / "run" / "tsne.png")}


def test_to_jsonable_handles_dataclasses_paths_and_tuples():
    from nerlib.config import DataSettings

    assert cli.to_jsonable({"a": (1, Path("x")), 2: DataSettings(1, 2, 3)}) == {
        "a": [1, "x"],
        "2": {"max_train_sentences": 1, "max_eval_sentences": 2, "show_examples": 3},
    }


def test_python_dash_m_runs_in_a_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "nerlib", "profile", "--profile", "smoke"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["profile"]["name"] == "smoke"


def test_msd_variant_choices_match_the_library():
    from nerlib.msd.variants import VARIANTS

    assert cli.MSD_VARIANTS == tuple(VARIANTS)


def test_build_data_without_annotations_says_what_to_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    assert cli.main(["uniner", "build-data", "--profile", "smoke"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no annotations at" in err and "nerlib uniner annotate" in err


def test_train_without_examples_says_what_to_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    assert cli.main(["uniner", "train", "--profile", "smoke"]) == cli.EXIT_USAGE
    assert "nerlib uniner build-data" in capsys.readouterr().err


def test_build_data_writes_examples_where_train_reads_them(monkeypatch, tmp_path, capsys):
    from nerlib.uniner.records import InstructionExample, Query, read_examples

    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    annotations = tmp_path / "runs" / "smoke" / "uniner_annotate" / "annotations.jsonl"
    annotations.parent.mkdir(parents=True)
    annotations.write_text("")
    made = [
        InstructionExample("Ada wrote code.", [Query("person", ["Ada"]), Query("city", [])]),
        InstructionExample("Paris .", [Query("location", ["Paris"])], dataset="conll2003_en"),
    ]
    calls = {}

    def fake(module, name, command):
        if name == "read_annotations":
            return lambda path: calls.setdefault("read", path) and []
        return lambda anns, settings, seed, progress: calls.setdefault("settings", settings) and made

    monkeypatch.setattr(cli, "library_function", fake)
    assert cli.main(["uniner", "build-data", "--profile", "smoke"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert calls["read"] == annotations
    assert out["passages"] == 2 and out["supervised_passages"] == 1
    assert out["queries"] == 3 and out["empty_answers"] == 1
    written = tmp_path / "runs" / "smoke" / "uniner_data" / "train.jsonl"
    assert out["examples"] == str(written)
    assert [ex.passage for ex in read_examples(written)] == ["Ada wrote code.", "Paris ."]


def test_ablation_table_becomes_json_and_markdown(monkeypatch, tmp_path, capsys):
    import pandas as pd

    def fake_ablation(profile, targets, seeds, rows, out_dir, progress, max_cells):
        assert targets == ["conll2002_es"] and max_cells == 1 and seeds is None
        assert rows == ("MSD", "w/o distillers", "w/o MMD^L", "w/o MMD^M", "w/o all", "direct transfer")
        return pd.DataFrame({"es": [61.5, 60.0]}, index=pd.Index(["MSD", "w/o all"], name="variant"))

    monkeypatch.setattr(cli, "library_function", lambda module, name, command: fake_ablation)
    run = tmp_path / "abl"
    assert cli.main(["msd", "ablation", "--profile", "smoke", "--target", "conll2002_es", "--max-cells", "1",
                     "--out-dir", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["table"] == [{"variant": "MSD", "es": 61.5}, {"variant": "w/o all", "es": 60.0}]
    assert "61.5" in (run / "ablation.md").read_text()


def test_msd_budget_flags_override_the_profile(monkeypatch, tmp_path, capsys):
    import pandas as pd

    seen = {}

    def fake_ablation(profile, targets, seeds, rows, out_dir, progress, max_cells):
        seen.update(msd=profile.msd, seeds=seeds, rows=rows)
        return pd.DataFrame({"es": [1.0]}, index=pd.Index(["MSD"], name="variant"))

    monkeypatch.setattr(cli, "library_function", lambda module, name, command: fake_ablation)
    assert cli.main(["msd", "ablation", "--profile", "smoke", "--student-steps", "750", "--student-lr", "2e-4",
                     "--eval-sentences", "500", "--rows", "MSD", "w/o all", "--seeds", "1", "2",
                     "--out-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    smoke = config.get_profile("smoke").msd
    assert seen["msd"].student_steps == 750 and seen["msd"].student_lr == 2e-4 and seen["msd"].eval_sentences == 500
    assert seen["msd"].teacher_steps == smoke.teacher_steps  # untouched settings keep the profile's value
    assert seen["seeds"] == [1, 2] and seen["rows"] == ["MSD", "w/o all"]


def test_msd_rows_and_variants_agree_with_the_library():
    from nerlib.msd.variants import ROWS, VARIANTS

    assert cli.MSD_ROWS == ROWS and set(cli.MSD_VARIANTS) == set(VARIANTS)
    fields = {f.name: f.type for f in dataclasses.fields(config.MSDSettings)}
    assert set(cli.MSD_BUDGET) <= set(fields)


def test_help_and_preflight_import_no_torch():
    """--help and the checks before a command stay fast (importing torch costs seconds), also with NERLIB_PROFILE
    unset: choosing the default profile looks for a GPU, which only a command that needs the profile does."""
    code = ("import sys; from nerlib import cli\n"
            "cli.preflight(cli.build_parser().parse_args(['data', 'show', 'conll2003_en']))\n"
            "try: cli.main(['msd', 'train-student', '--help'])\n"
            "except SystemExit as e: assert e.code == 0\n"
            "print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != config.PROFILE_ENV}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "[]"


def test_run_dir_is_the_library_layout(monkeypatch, tmp_path):
    from nerlib.runs import run_dir

    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path))
    args = cli.build_parser().parse_args(["msd", "tsne", "--profile", "smoke"])
    assert cli._run_dir(args, "msd_tsne", own=False) == run_dir("smoke", "msd_tsne", create=False)
    assert not (tmp_path / "runs" / "smoke" / "msd_tsne").exists()  # another step's folder is only located
    assert cli._run_dir(args, "msd_tsne") == tmp_path / "runs" / "smoke" / "msd_tsne"
    assert run_dir("smoke", "msd_tsne", create=False).is_dir()
    args.out_dir = str(tmp_path / "mine")
    assert cli._run_dir(args, "msd_tsne") == tmp_path / "mine" and (tmp_path / "mine").is_dir()


@pytest.mark.parametrize("words", [["uniner", "export", "--model", "m"], ["msd", "export", "--run", "r"]])
def test_both_exports_take_the_same_options(words):
    args = cli.build_parser().parse_args([*words, "--out", "d", "--push-to-hub", "me/x", "--scores", "s.json"])
    assert (args.out, args.push_to_hub, args.scores) == ("d", "me/x", "s.json")
