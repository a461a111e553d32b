"""The benchmark scripts: each says what it measures and how to run it, answers --help without running anything,
and their results files name no path of the machine and keep the format the book reads."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.stem != "common")


def first_line(script: Path) -> str:
    doc = ast.get_docstring(ast.parse(script.read_text(), str(script)))  # a SyntaxError names the file and line
    assert doc, f"{script.name}: no module docstring"
    return doc.splitlines()[0]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_docstring_says_what_it_measures_and_how_to_run_it(script):
    line = first_line(script)
    assert len(line.split()) >= 6 and line[-1] in ".?", f"{script.name}: the first line should be a sentence: {line!r}"
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert re.search(rf"^\s+(\S+=\S+ )*\S*python benchmarks/{re.escape(script.name)}\b", doc, re.M), (
        f"{script.name}: no usage line (an indented `python benchmarks/{script.name} ...`)")


def test_help_describes_each_script_and_runs_nothing(tmp_path):
    """All scripts at once (each imports torch, seconds apiece); a cache folder that stays absent shows that none
    started to work."""
    cache = tmp_path / "cache"
    env = {**os.environ, "NERLIB_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = {s: subprocess.Popen([sys.executable, str(s), "--help"], cwd=BENCHMARKS, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in SCRIPTS}
    failures = []
    for script, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0 or not out.startswith("usage:"):
            failures.append(f"{script.name}: exit {proc.returncode}\n{err[-1500:]}")
        elif first_line(script) not in " ".join(out.split()):
            failures.append(f"{script.name}: --help does not show the docstring's first line")
    assert not failures, "\n".join(failures)
    assert not cache.exists()


def _common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return common


def test_common_writes_json_and_markdown_with_a_provenance_footer(tmp_path, monkeypatch):
    common = _common()
    from nerlib.uniner.evaluate import DOMAIN_FILES

    assert common.DOMAINS == tuple(DOMAIN_FILES) == ("ai", "literature", "music", "politics", "science")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    prov = common.provenance("small", passages=3)
    assert set(prov) == {"command", "git_commit", "profile", "date", "machine", "passages"}
    table = common.markdown_table([{"f1": 0.5, "name": "ai"}], ["name", "f1"])
    json_path, md_path = common.write("demo", {"provenance": prov, "rows": [1]}, table)
    assert json.loads(json_path.read_text()) == {"provenance": prov, "rows": [1]}
    md = md_path.read_text()
    assert md.startswith("| name | f1 |\n|---|---|\n| ai | 0.50 |\n\nMeasured with `python ")
    assert f"at commit `{prov['git_commit']}`, profile `small`, {prov['date']}, {prov['machine']}.\n" in md
    # the command is recorded so that it can be pasted back: an argument with a space keeps its quotes
    monkeypatch.setattr(common.sys, "argv", [str(common.ROOT / "benchmarks" / "demo.py"), "--runs", "cold model cache"])
    assert common.provenance("small")["command"] == "python benchmarks/demo.py --runs 'cold model cache'"


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_results_files_are_valid_and_hold_no_machine_paths():
    for path in (BENCHMARKS / "results").glob("*.json"):
        text = path.read_text()
        data = json.loads(text)
        for root in (ROOT.parent, Path.home(), Path(tempfile.gettempdir())):  # where this checkout and user live
            assert str(root).rstrip("/") + "/" not in text, f"{path.name} names a machine path ({root})"
        # wherever the checkout that wrote it lived: no value is an absolute path
        absolute = [s for s in _strings(data) if s.startswith("/")]
        assert not absolute, f"{path.name} names a machine path: {absolute[0]}"


def test_train_summary_keeps_the_model_folder_by_name_only():
    common = _common()
    record = {"global_step": 3, "log_history": [{"loss": 1.0}], "output_dir": "/somewhere/out",
              "model_dir": "/home/someone/.cache/nerlib/uniner/smollm2-135m-none-0123"}
    assert common.train_summary(record) == {"global_step": 3, "model_dir": "smollm2-135m-none-0123"}


def test_domain_scores_and_their_table_cells():
    import pandas as pd

    common = _common()
    row = pd.Series({"f1": 26.24, "f1_low": 21.0, "f1_high": 31.46, "partial_f1": 28.5, "empty_pred_share": 40.2,
                     "empty_gold_share": 79.0, "parse_failures": 3.0, "queries": 260.0, "seconds": 9.0})
    scores = common.domain_scores(row)
    assert scores == {"f1": 26.24, "f1_low": 21.0, "f1_high": 31.46, "partial_f1": 28.5, "empty_pred_share": 40.2,
                      "empty_gold_share": 79.0, "parse_failures": 3, "queries": 260}
    cells = common.score_cells(scores)
    assert cells == "26.2 | 21.0-31.5 | 28.5 | 40% | 79% | - | - | 3 | 260"  # a row without the error shares
    assert len(cells.split(" | ")) == len(common.SCORE_HEADER.split(" | "))
    both = common.domain_scores(pd.concat([row, pd.Series({"missed_share": 30.4, "invented_share": float("nan")})]))
    assert both["missed_share"] == 30.4 and common.score_cells(both) == "26.2 | 21.0-31.5 | 28.5 | 40% | 79% | 30% | - | 3 | 260"


def test_crossner_options_give_the_profiles_passages_unless_told(monkeypatch):
    import argparse

    import torch

    common = _common()
    parser = argparse.ArgumentParser()
    common.crossner_arguments(parser, split="validation")
    args = parser.parse_args(["--domains", "ai", "music", "--passages", "0"])
    assert (args.domains, args.split, args.threads) == (["ai", "music"], "validation", 1)
    with pytest.raises(SystemExit):
        parser.parse_args(["--split", "train"])
    monkeypatch.setenv("NERLIB_PROFILE", "smoke")
    threads = torch.get_num_threads()
    try:
        profile, limit = common.crossner_setup(args)
        assert profile.name == "smoke" and limit is None  # --passages 0: every passage
        assert common.crossner_setup(parser.parse_args([]))[1] == profile.uniner.eval_passages_per_domain
        assert common.crossner_setup(parser.parse_args(["--passages", "3"]))[1] == 3
    finally:
        torch.set_num_threads(threads)
    bare = argparse.ArgumentParser()
    common.crossner_arguments(bare, split=None)  # a script with its own --splits
    assert not hasattr(bare.parse_args([]), "split")


def test_domain_rows_and_their_markdown_table():
    import pandas as pd

    common = _common()
    table = pd.DataFrame({"f1": [26.24, 30.0], "f1_low": [21.0, 25.0], "f1_high": [31.46, 35.0],
                          "partial_f1": [28.5, 31.0], "empty_pred_share": [40.2, 50.0], "empty_gold_share": [79.0, 80.0],
                          "parse_failures": [3.0, 0.0], "queries": [260.0, 100.0]}, index=["ai", "average"])
    rows = common.domain_rows(table, strategy="none")
    assert [(r["strategy"], r["domain"], r["f1"]) for r in rows] == [("none", "ai", 26.24), ("none", "average", 30.0)]
    assert list(rows[0])[:2] == ["strategy", "domain"]  # labels first, as the results files keep them
    md = common.scores_markdown(rows, ["strategy", "domain"], ["negatives", "domain"]).splitlines()
    assert md[0] == f"| negatives | domain | {common.SCORE_HEADER} |"
    assert md[1] == "|---|---|" + "---|" * 9
    assert md[2] == "| none | ai | 26.2 | 21.0-31.5 | 28.5 | 40% | 79% | - | - | 3 | 260 |" and len(md) == 4


def test_comparison_pairs_against_the_first_or_each_before():
    common = _common()
    assert common.comparison_pairs(["a", "b", "c"]) == [("b", "a"), ("c", "a")]
    assert common.comparison_pairs(["none", "uniform", "frequency"], against="each") == [
        ("uniform", "none"), ("frequency", "none"), ("frequency", "uniform")]
    assert common.comparison_pairs(["only"]) == [] and common.comparison_pairs(["only"], against="each") == []
    with pytest.raises(ValueError, match="twice"):
        common.comparison_pairs(["a", "b", "a"])
    with pytest.raises(ValueError, match="against"):
        common.comparison_pairs(["a", "b"], against="last")
    assert common.comparison_pairs(["a", "a+", "b", "b+"], [("a+", "a"), ("b+", "b")]) == [("a+", "a"), ("b+", "b")]
    with pytest.raises(ValueError, match="pairs of the labels"):
        common.comparison_pairs(["a", "b"], [("a", "c")])


def test_time_breakdown_of_a_training_step_adds_up():
    """The throughput benchmark's profile of one step, on a tiny LLaMA with LoRA: the shares cover the whole step,
    the matrix multiplies are found and counted, and LoRA's dropout shows up as random-number time."""
    sys.path.insert(0, str(ROOT / "tests" / "uniner"))
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from uniner_tiny_lm import tiny_model, tiny_tokenizer

        import uniner_train_throughput as bench
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.path.remove(str(ROOT / "tests" / "uniner"))
    from nerlib.config import UniNERSettings
    from nerlib.uniner.records import InstructionExample, Query
    from nerlib.uniner.train import prepare_model

    model = prepare_model(tiny_model(), lora=True, lora_r=2, lora_dropout=0.5)
    examples = [InstructionExample("Tim Cook visited Paris.", [Query("person", ["Tim Cook"]), Query("city", [])])]
    out = bench.time_breakdown(model, tiny_tokenizer(), examples, UniNERSettings(max_length=64))
    shares = out["shares_percent"]
    assert set(shares) == {"matrix multiplies", "dropout masks (random numbers)", "attention kernel",
                           "softmax and loss", "other"}
    assert abs(sum(shares.values()) - 100) < 0.5
    assert shares["matrix multiplies"] > 0 and shares["dropout masks (random numbers)"] > 0
    assert out["matmul_gflop_per_step"] >= 0 and out["matmul_gflops"] > 0 and out["tokens"] > 5


def test_committed_msd_cell_log_matches_the_small_profile_grid():
    """The MSD ablation keeps its finished cells in ``benchmarks/results/msd_ablation_cells`` (machine caches do not
    survive a session). Each cell's key hashes the MSD settings: if the small profile's settings change, the cells
    no longer count as this grid's, and the table would silently lose them."""
    from nerlib.config import get_profile
    from nerlib.msd.ablation import ROWS, ablation_records

    log = BENCHMARKS / "results" / "msd_ablation_cells"
    lines = (log / "results.jsonl").read_text().splitlines()
    records = ablation_records(get_profile("small"), None, [42, 43, 44], ROWS, out_dir=log)
    assert records, "no committed cell belongs to the small profile's grid: were the MSD settings changed?"
    seed_42 = {(r["row"], r["target"]) for r in records if r["seed"] == 42}
    assert seed_42 >= {("MSD", "conll2002_es"), ("w/o all", "conll2002_nl")}
    assert all(0 <= json.loads(line)["f1"] <= 100 for line in lines)


def test_reproducibility_compares_snapshots_losses_and_f1(tmp_path):
    """The reproducibility benchmark's comparison, on two hand-made runs: equal runs are bit-equal, a run whose
    weights moved by 0.25 at step 10 only and whose second loss differs is reported so."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import reproducibility as bench
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert bench.snapshots(100) == [1, 10, 100] and bench.snapshots(12) == [1, 10, 12] and bench.snapshots(1) == [1]
    weights = {"w": torch.tensor([1.0, -2.0]), "empty": torch.zeros(0)}
    for name, moved, losses, f1 in (("a", 0.0, [2.0, 1.5, 1.0], 50.0), ("b", 0.25, [2.0, 1.25, 1.0], 49.0)):
        (tmp_path / name).mkdir()
        for step in bench.snapshots(10):
            shift = moved if step == 10 else 0.0
            save_file({"w": weights["w"] + shift, "empty": weights["empty"]},
                      str(tmp_path / name / f"step-{step}.safetensors"))
        (tmp_path / name / "run.json").write_text(json.dumps({"losses": losses, "seconds": 1.0, "f1": {"en": f1},
                                                               "machine": name}))
    same = bench.compare(tmp_path / "a", tmp_path / "a", 10)
    assert same["bit_equal"] and same["max_abs_weight_diff"] == {1: 0.0, 10: 0.0}
    assert same["first_loss_differs_at_step"] is None and same["f1_diff"] == {"en": 0.0}
    other = bench.compare(tmp_path / "a", tmp_path / "b", 10)
    assert not other["bit_equal"] and other["max_abs_weight_diff"] == {1: 0.0, 10: 0.25}
    assert other["first_loss_differs_at_step"] == 2 and other["f1_diff"] == {"en": -1.0} and other["machine"] == "b"
    with pytest.raises(ValueError, match="differently named"):
        bench.weight_difference({"w": weights["w"]}, {"v": weights["w"]})
