"""nerlib.course: chapter setup, and the results/time tables the book pages include."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import pytest

from nerlib import course


def test_setup_returns_the_profile_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("NERLIB_PROFILE", "smoke")
    monkeypatch.setenv("NERLIB_SEED", "5")
    prof = course.setup()
    first = random.random()
    course.setup(verbose=False)
    assert random.random() == first  # seeded again: same stream
    assert prof.name == "smoke" and prof.seed == 5
    assert capsys.readouterr().out.startswith("profile=smoke seed=5")


def test_results_dir_follows_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("NERLIB_RESULTS_DIR", str(tmp_path))
    assert course.results_dir() == tmp_path
    monkeypatch.delenv("NERLIB_RESULTS_DIR")
    assert course.results_dir().parts[-2:] == ("benchmarks", "results")


def test_missing_results_say_not_yet_measured(tmp_path):
    assert course.results_markdown("msd*.md", tmp_path / "absent") == course.NOT_MEASURED
    assert course.results_markdown("msd*.md", tmp_path) == course.NOT_MEASURED


def test_results_tables_are_joined_in_name_order_and_empty_files_skipped(tmp_path):
    (tmp_path / "msd_b.md").write_text("| b |\n|---|\n| 2 |\n")
    (tmp_path / "msd_a.md").write_text("| a |\n|---|\n| 1 |\n")
    (tmp_path / "msd_empty.md").write_text("  \n")
    (tmp_path / "uniner.md").write_text("| u |")
    assert [name for name, _ in course.result_tables("msd*.md", tmp_path)] == ["msd_a.md", "msd_b.md"]
    text = course.results_markdown("msd*.md", tmp_path)
    assert text.index("| a |") < text.index("| b |")
    assert "benchmarks/results/msd_a.md" in text and "| u |" not in text


def test_chapter_times_table_rows(tmp_path):
    times = {
        "profiles": {
            "small": {
                "ch01_entities_and_scores": {"wall_s": 30.0, "peak_rss_mb": 1536.0, "ok": True},
                "ch06_msd_baseline": {"wall_s": 600.0, "peak_rss_mb": 3584.0, "ok": True,
                                      "trained": ["msd/teacher-1", "msd/student-2"]},
                "ch08_msd_mmd_ablation": {"wall_s": 60.0, "peak_rss_mb": 1024.0, "ok": True, "trained": []},
                "ch07_msd_distillers": {"wall_s": 5.0, "peak_rss_mb": 100.0, "ok": False, "error": "boom"},
            }
        }
    }
    lines = course.chapter_times_markdown(times, profiles=("small",)).splitlines()
    assert lines[0] == "| chapter | small: time | small: peak memory |"
    assert len(lines) == 2 + len(course.CHAPTERS)
    assert lines[2] == "| 1. Entities and scores | 30 s | 1.5 GiB |"
    assert lines[7] == "| 6. MSD: the cross-lingual baseline | 10.0 min (trained 2 models) | 3.5 GiB |"
    assert lines[9].endswith("| 60 s | 1.0 GiB |")  # a warm run: nothing trained, no note
    assert lines[8] == "| 7. MSD: short-channel distillers | failed |  |"
    assert lines[3] == "| 2. UniversalNER: teacher data | not yet measured |  |"


def test_chapter_times_file_missing_or_malformed(tmp_path):
    assert course.load_chapter_times(tmp_path) == {}
    (tmp_path / "chapter_times.json").write_text('{"profiles": \n  oops}')
    with pytest.raises(ValueError, match=r"chapter_times.json: line 2: invalid JSON"):
        course.load_chapter_times(tmp_path)
    (tmp_path / "chapter_times.json").write_text(json.dumps({"profiles": {}}))
    assert course.load_chapter_times(tmp_path) == {"profiles": {}}


def test_chapters_match_the_notebooks_that_exist():
    from pathlib import Path

    notebooks = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("ch*.ipynb")}
    assert notebooks <= {name for name, _ in course.CHAPTERS}


def test_notebook_text_has_no_control_characters():
    """A LaTeX command written into notebook JSON with one backslash becomes a control character (``\\times`` ->
    tab + "imes", ``\\frac`` -> form feed, ``\\beta`` -> backspace) and renders as garbage: none may be left."""
    root = Path(__file__).resolve().parents[1]
    bad = []
    for path in sorted(root.glob("notebooks/*.ipynb")) + sorted(root.glob("book/*.md")):
        text = path.read_text()
        cells = json.loads(text)["cells"] if path.suffix == ".ipynb" else [{"source": text}]
        for number, cell in enumerate(cells):
            source = "".join(cell["source"])
            for ch in "\t\b\f\r\v":
                if ch in source:
                    at = source.index(ch)
                    bad.append(f"{path.name} cell {number}: {source[max(0, at - 15):at + 10]!r}")
    assert not bad, bad


def test_source_markdown_shows_the_function_it_names():
    from nerlib.course import source_markdown
    from nerlib.runs import run_key

    text = source_markdown(run_key)
    assert text.startswith("`nerlib.runs.run_key`")
    assert "```python\ndef run_key(" in text and text.endswith("```")
    with pytest.raises(TypeError, match="function or class"):
        source_markdown(42)


def test_quiet_libraries_hides_library_warnings_but_not_nerlib_ones(tmp_path):
    from seqeval.metrics import f1_score

    from nerlib.runs import AppendLog

    log = tmp_path / "log.jsonl"
    log.write_text('{"a": 1}\n{"a": ')  # an interrupted write: nerlib warns that it skips the cut-off line
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        course.quiet_libraries()
        assert f1_score([["B-PER"]], [["O"]]) == 0.0  # seqeval: "F-score is ill-defined", a library warning
        warnings.warn_explicit("deprecated", FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils")
        assert list(AppendLog(log)) == [{"a": 1}]
        warnings.warn("a chapter's own warning")
    messages = [str(w.message) for w in seen]
    assert len(messages) == 2 and "cut-off last line" in messages[0] and messages[1] == "a chapter's own warning"


def test_nerlib_warnings_print_as_notes_and_others_still_warn(capsys):
    import warnings

    from nerlib import course
    from nerlib.config import NerlibWarning

    with warnings.catch_warnings(record=True) as caught:  # restores warnings.showwarning afterwards
        warnings.simplefilter("always")
        course.show_nerlib_warnings()
        course.show_nerlib_warnings()  # idempotent: one note per warning, not two
        warnings.warn("2 of 16 passages skipped", NerlibWarning)
        warnings.warn("something else", UserWarning)
    assert capsys.readouterr().out == "Note (nerlib): 2 of 16 passages skipped\n"
    assert [str(w.message) for w in caught] == ["something else"]  # other warnings keep Python's handling


def test_conversation_dataset_warns_with_nerlibs_category():
    import pytest

    from nerlib.config import NerlibWarning
    from nerlib.uniner.conversations import ConversationDataset
    from nerlib.uniner.records import InstructionExample, Query

    class Tok:  # a whitespace "tokenizer": one id per word
        eos_token = "</s>"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text.split())))}

    examples = [InstructionExample("short text", [Query("person", [])]),
                InstructionExample("word " * 500, [Query("person", [])])]
    with pytest.warns(NerlibWarning, match="1 of 2 passages skipped"):
        ds = ConversationDataset(examples, Tok(), 300)
    assert len(ds) == 1


def test_show_results_shows_a_linked_figure_as_an_image(tmp_path, monkeypatch):
    import IPython.display as D

    from nerlib import course

    shown = []
    monkeypatch.setattr(D, "display", lambda obj: shown.append(obj))
    (tmp_path / "msd_grid.md").write_text("| a |\n|---|\n| 1 |\n\n![The grid](msd_grid.png)\n")
    (tmp_path / "msd_grid.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    (tmp_path / "msd_other.md").write_text("| b |\n|---|\n| 2 |\n\n![Missing](gone.png)\n")
    course.show_results("msd_*.md", tmp_path)
    kinds = [type(o).__name__ for o in shown]
    assert kinds == ["Markdown", "Image", "Markdown"]  # the missing figure is skipped, not a broken link
    assert "![" not in shown[0].data and "Source: <code>benchmarks/results/msd_grid.md</code>" in shown[0].data
    assert shown[1].filename == str(tmp_path / "msd_grid.png")
