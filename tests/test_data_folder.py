"""The top-level data/ folder: what the library reads from it, and that installed copies carry it."""

from __future__ import annotations

from pathlib import Path

from nerlib.data import registry
from nerlib.uniner.extract import DEMO_TEXTS_DIR, demo_texts

ROOT = Path(__file__).resolve().parents[1]


def test_registry_reads_the_names_file_of_data_folder():
    assert registry.NATURAL_NAMES_FILE.resolve() == (ROOT / "data" / "labels" / "natural_names.tsv").resolve()
    names = registry.read_natural_names()
    assert names["programlang"] == "program language" and names["PER"] == "person"
    assert registry.get("crossner_ai").natural["organisation"] == "organization"


def test_names_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "names.tsv"
    bad.write_text("# comment\nPER\tperson\nbroken line\n")
    try:
        registry.read_natural_names(bad)
    except ValueError as err:
        assert f"{bad}:3" in str(err)
    else:
        raise AssertionError("a line without a tab must be rejected")


def test_package_links_and_manifest_ship_the_data_in_wheels():
    """nerlib/data/{labels,texts} link to data/, and MANIFEST.in includes them, so `pip install git+...` (a
    wheel, not a checkout) still finds the label names and the demo texts."""
    for name in ("labels", "texts"):
        link = ROOT / "nerlib" / "data" / name
        assert link.resolve() == (ROOT / "data" / name).resolve()
        assert f"recursive-include nerlib/data/{name}" in (ROOT / "MANIFEST.in").read_text()
    assert DEMO_TEXTS_DIR.resolve() == (ROOT / "data" / "texts").resolve()


def test_demo_texts_are_the_courses_own():
    texts = demo_texts()
    assert {"software", "music", "politics", "science", "spanish_news"} <= set(texts)
