"""The ablation grid: the table from hand-made records, resume after an interruption, a budget of new cells."""

import json

import pandas as pd
import pytest
import torch

from nerlib.config import get_profile
from nerlib.msd import ablation as A

torch.set_num_threads(1)


def _rec(row, target, seed, f1):
    return {"row": row, "target": target, "seed": seed, "f1": f1}


def test_table_means_over_seeds_and_average():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_es", 2, 64.0),
            _rec("MSD", "conll2002_nl", 1, 70.0), _rec("w/o all", "conll2002_es", 1, 50.0)]
    t = A.ablation_table(recs, ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"])
    assert t.loc["MSD", "es"] == 62.0 and t.loc["MSD", "nl"] == 70.0 and t.loc["MSD", "avg"] == 66.0
    assert t.loc["w/o all", "es"] == 50.0 and pd.isna(t.loc["w/o all", "nl"]) and pd.isna(t.loc["w/o all", "avg"])
    assert t.loc["MSD", "seeds"] == 2
    assert "es (paper)" in t.columns and "avg (paper)" in t.columns
    assert A.msd_gain(t) is None  # w/o all has no average yet


def test_markdown_leaves_missing_cells_blank():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_nl", 1, 70.0), _rec("w/o all", "conll2002_es", 1, 50.0)]
    text = A.ablation_markdown(A.ablation_table(recs, ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"]))
    assert "nan" not in text and "None" not in text
    row = next(line for line in text.splitlines() if line.startswith("| w/o all"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["w/o all", "50", "", ""]  # es measured; nl and the average not run


def test_msd_gain():
    recs = [_rec(r, t, 1, f) for r, f in (("MSD", 66.0), ("w/o all", 61.5)) for t in ("conll2002_es",)]
    assert A.msd_gain(A.ablation_table(recs, ["conll2002_es"], ["MSD", "w/o all"])) == 4.5


def test_grid_resumes_and_respects_budget(tmp_path, monkeypatch):
    calls = []

    def fake_cell(profile, target, row, seed, progress=True):
        calls.append((target, row, seed))
        return {"target": target, "row": row, "seed": seed, "f1": 10.0 * len(calls), "precision": 0, "recall": 0}

    monkeypatch.setattr(A, "evaluate_cell", fake_cell)
    prof = get_profile("smoke")
    t1 = A.run_ablation(prof, ["conll2002_es"], [1], ["MSD", "w/o all"], tmp_path, progress=False, max_cells=1)
    assert calls == [("conll2002_es", "MSD", 1)] and pd.isna(t1.loc["w/o all", "es"]) and t1.loc["MSD", "es"] == 10.0
    t2 = A.run_ablation(prof, ["conll2002_es"], [1], ["MSD", "w/o all"], tmp_path, progress=False)
    assert calls[1:] == [("conll2002_es", "w/o all", 1)]  # the finished cell was not redone
    assert t2.loc["MSD", "es"] == 10.0 and t2.loc["w/o all", "es"] == 20.0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["row"] == "MSD"


def test_bad_rows_and_bad_log(tmp_path):
    with pytest.raises(ValueError, match="unknown ablation rows"):
        A.run_ablation(get_profile("smoke"), ["conll2002_es"], [1], ["MSD", "w/o teacher"], tmp_path)
    (tmp_path / "results.jsonl").write_text('{"key": "a", "row": "MSD"}\nnot json\n')
    with pytest.raises(ValueError, match=r"results.jsonl:2: invalid JSON"):
        A.run_ablation(get_profile("smoke"), ["conll2002_es"], [1], ["MSD"], tmp_path)


def test_paper_columns_come_from_table_1():
    # every row of the table has the paper's es and nl numbers (checked against the source in test_msd_paper.py)
    assert set(A.PAPER_F1) == set(A.ROWS)
    assert A.PAPER_F1["MSD"]["es"] == 81.92 and A.PAPER_F1["w/o all"]["nl"] == 81.31
    assert A._lang("wikiann_nl") not in A.PAPER_F1["MSD"]  # WikiAnn Dutch is not in the paper: blank, not invented


def test_experiments_switch_source_and_targets():
    prof = A.experiment(get_profile("smoke"), "wikiann")
    assert prof.msd.source == "wikiann_en" and prof.msd.targets == ("wikiann_nl",)
    assert prof.msd.max_length == get_profile("smoke").msd.max_length  # everything else unchanged
    with pytest.raises(ValueError, match="unknown experiment"):
        A.experiment(prof, "conll-de")
    from nerlib.data import registry
    for spec in A.EXPERIMENTS.values():  # every dataset named exists, with the same label set as its source
        for target in spec["targets"]:
            assert registry.get(target).labels == registry.get(spec["source"]).labels


def test_per_seed_table_and_paired_gains():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_nl", 1, 70.0),
            _rec("MSD", "conll2002_es", 2, 64.0), _rec("MSD", "conll2002_nl", 2, 66.0),
            _rec("w/o all", "conll2002_es", 1, 58.0), _rec("w/o all", "conll2002_nl", 1, 69.0),
            _rec("w/o all", "conll2002_es", 2, 61.0)]  # seed 2 of w/o all lacks nl
    t = A.per_seed_table(recs, ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"])
    assert list(t.index) == [("MSD", 1), ("MSD", 2), ("w/o all", 1), ("w/o all", 2)]
    assert t.loc[("MSD", 1), "avg"] == 65.0 and t.loc[("MSD", 2), "avg"] == 65.0
    assert t.loc[("w/o all", 1), "avg"] == 63.5 and pd.isna(t.loc[("w/o all", 2), "avg"])
    assert pd.isna(t.loc[("w/o all", 2), "nl"])
    assert A.paired_gains(recs, ["conll2002_es", "conll2002_nl"]) == {1: 1.5}  # seed 2 is not paired on both
    assert A.paired_gains(recs, ["conll2002_es"]) == {1: 2.0, 2: 3.0}
    assert "nan" not in A.ablation_markdown(t)


def test_part_gains_pairs_msd_with_each_row_by_seed_and_target():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_nl", 1, 70.0),
            _rec("MSD", "conll2002_nl", 2, 66.0),
            _rec("w/o MMD^M", "conll2002_nl", 1, 69.0), _rec("w/o MMD^M", "conll2002_nl", 2, 67.0),
            _rec("w/o MMD^M", "conll2002_es", 2, 50.0),  # no MSD cell to pair with
            _rec("w/o all", "conll2002_es", 1, 58.0), _rec("w/o all", "conll2002_nl", 1, 69.0)]
    g = A.part_gains(recs, ["conll2002_es", "conll2002_nl"]).set_index(["variant", "column"])
    assert g.loc[("w/o MMD^M", "nl"), "per_seed"] == {1: 1.0, 2: -1.0} and g.loc[("w/o MMD^M", "nl"), "mean"] == 0.0
    assert ("w/o MMD^M", "es") not in g.index and ("w/o MMD^M", "avg") not in g.index  # never paired on es
    assert g.loc[("w/o all", "avg"), "per_seed"] == {1: 1.5}  # as paired_gains
    assert g.loc[("w/o all", "es"), "n"] == 1 and ("w/o distillers", "nl") not in g.index
    assert A.part_gains([], ["conll2002_es"]).empty


def test_ablation_records_reads_the_log_without_training(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "evaluate_cell", lambda *a, **k: pytest.fail("must not train"))
    prof = get_profile("smoke")
    lines = [{"key": A._cell_key(prof, "conll2002_es", "MSD", s), **_rec("MSD", "conll2002_es", s, 50.0 + s)}
             for s in (1, 2)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    recs = A.ablation_records(prof, ["conll2002_es"], [2, 3], ["MSD", "w/o all"], tmp_path)
    assert [(r["seed"], r["f1"]) for r in recs] == [(2, 52.0)]


def test_complete_seeds_need_every_row_on_every_target():
    targets, rows = ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"]
    recs = [_rec(r, t, 1, 50.0) for r in rows for t in targets]  # seed 1: the whole grid
    recs += [_rec("MSD", t, 2, 50.0) for t in targets] + [_rec("w/o all", "conll2002_es", 2, 50.0)]  # seed 2: one cell short
    recs += [_rec("MSD", "conll2002_es", 3, 50.0)] * 4  # seed 3: as many records as a full grid, but one cell repeated
    assert A.complete_seeds(recs, targets, rows) == [1]
    assert A.complete_seeds(recs, ["conll2002_es"], rows) == [1, 2]


def test_mean_interval_is_the_student_t_interval():
    mean, low, high = A.mean_interval([1.0, 2.0, 3.0])
    # sd 1, t(0.975, df 2) = 4.302653: half width 4.302653 / sqrt(3) = 2.484138
    assert mean == 2.0 and low == pytest.approx(2.0 - 2.484138, abs=1e-6) and high == pytest.approx(4.484138, abs=1e-6)
    assert A.mean_interval([5.0]) == (5.0, 5.0, 5.0)
    assert A.mean_interval([2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="at least one value"):
        A.mean_interval([])


def test_cell_stats_mean_std_and_seed_count():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_nl", 1, 70.0),
            _rec("MSD", "conll2002_es", 2, 64.0), _rec("MSD", "conll2002_nl", 2, 66.0),
            _rec("w/o all", "conll2002_es", 1, 58.0), _rec("w/o all", "conll2002_nl", 1, 69.0),
            _rec("w/o all", "conll2002_es", 2, 61.0)]
    s = A.cell_stats(recs, ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"])
    assert s.loc[("MSD", "es")].to_dict() == {"n": 2, "mean": 62.0, "std": 2.83}
    assert s.loc[("MSD", "avg")].to_dict() == {"n": 2, "mean": 65.0, "std": 0.0}
    assert s.loc[("w/o all", "nl"), "n"] == 1 and pd.isna(s.loc[("w/o all", "nl"), "std"])
    assert s.loc[("w/o all", "avg"), "n"] == 1  # seed 2 lacks nl, so it has no average


def test_plot_ablation_draws_ours_with_error_bars_and_the_papers_numbers():
    import matplotlib

    matplotlib.use("Agg")
    recs = [_rec(row, t, seed, f1) for row, base in (("MSD", 60.0), ("w/o all", 55.0)) for seed in (1, 2)
            for t, f1 in (("conll2002_es", base + seed), ("conll2002_nl", base + 10 + seed))]
    s = A.cell_stats(recs, ["conll2002_es", "conll2002_nl"], ["MSD", "w/o all"])
    ax = A.plot_ablation(s, ["conll2002_es", "conll2002_nl"])
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert heights == [56.5, 61.5, 61.5, 66.5, 66.5, 71.5]  # es, nl, avg for each of the two rows
    marks = {round(float(y), 2) for coll in ax.collections if hasattr(coll, "get_offsets")
             for _, y in coll.get_offsets()}
    assert {81.92, 85.11, 77.82, 81.31} <= marks  # Table 1's es and nl for MSD and w/o all
    assert [t.get_text() for t in ax.get_xticklabels()] == ["es", "nl", "avg"]


def test_cell_stats_markdown_writes_mean_sd_and_seeds():
    recs = [_rec("MSD", "conll2002_es", 1, 60.0), _rec("MSD", "conll2002_es", 2, 64.0),
            _rec("w/o all", "conll2002_es", 1, 58.0)]
    md = A.cell_stats_markdown(A.cell_stats(recs, ["conll2002_es"], ["MSD", "w/o all", "w/o MMD^L"]))
    lines = md.splitlines()
    assert "62.00 ± 2.83 (2)" in lines[2] and lines[2].startswith("| MSD")
    assert "58.00 (1)" in lines[3] and "±" not in lines[3]
    assert lines[4].replace(" ", "") == "|w/oMMD^L|||"  # never ran: blank, not nan


def test_a_cell_records_the_machine_and_time_its_model_was_trained_with(monkeypatch):
    """Runs trained on different processors or thread counts differ by about a point: each cell says where its
    model was trained (from the run's own record, which may be older than the cell)."""
    run = {"log": {"seconds": 12.5, "best_step": 7}, "machine": "Some CPU, 2 cores, CPU kernels AVX512, 1 torch thread"}
    monkeypatch.setattr(A, "cached_student", lambda s, target, row, seed, progress: ("student", run))
    monkeypatch.setattr(A, "cached_teacher", lambda *a, **k: pytest.fail("a student row loaded a teacher"))
    monkeypatch.setattr(A, "load_tokenizer", lambda name: "tokenizer")
    monkeypatch.setattr(A, "_load", lambda target, split, n: ["sentence"])
    monkeypatch.setattr(A, "evaluate", lambda model, *a, **k: {"f1": 50.0, "precision": 40.0, "recall": 66.7})
    cell = A.evaluate_cell(get_profile("smoke"), "conll2002_es", "MSD", 42, progress=False)
    assert cell["trained_on"] == run["machine"] and cell["train_seconds"] == 12.5 and cell["best_step"] == 7
    assert (cell["row"], cell["seed"], cell["f1"], cell["per_type"]) == ("MSD", 42, 50.0, {})
