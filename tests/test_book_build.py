"""The book build's own logic (.ci/build_book.py) and the raw-TeX check of .ci/check_book.py, without building."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build_book = _load("build_book")
check_book = _load("check_book")


def test_each_profile_gets_its_own_cache_and_the_mode_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(build_book, "BUILD", tmp_path)
    smoke = yaml.safe_load(build_book.profile_config("smoke", force=False, mathjax=None).read_text())
    small = yaml.safe_load(build_book.profile_config("small", force=True, mathjax=tmp_path / "mj").read_text())
    assert smoke["execute"]["execute_notebooks"] == "cache"
    assert small["execute"]["execute_notebooks"] == "force"
    assert smoke["execute"]["cache"] != small["execute"]["cache"]  # a smoke build never shows small outputs
    assert smoke["execute"]["cache"].endswith("smoke")
    # offline MathJax: served from the site's _static, the rest of the configuration untouched
    assert small["sphinx"]["config"]["html_static_path"] == [str(tmp_path / "mj")]
    assert small["sphinx"]["config"]["mathjax_path"] == build_book.MATHJAX_ENTRY
    assert "mathjax_path" not in smoke["sphinx"]["config"]
    original = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert smoke["title"] == original["title"] and smoke["bibtex_bibfiles"] == original["bibtex_bibfiles"]


def test_chapter_lines_are_recognised():
    assert build_book.EXECUTED.match("/x/notebooks/ch01.ipynb: Executed notebook in 16.04 seconds [mystnb]")["seconds"] == "16.04"
    assert build_book.CACHED.match("/x/notebooks/ch01.ipynb: Using cached notebook: ID=3 [mystnb]")
    assert build_book.EXECUTING.match("/x/book/results.md: Executing notebook using local CWD [mystnb]")["page"] == "/x/book/results.md"


def test_raw_tex_is_a_problem_but_typeset_math_and_code_are_not():
    raw = check_book.parse_dom('<p><span class="math notranslate">\\(a+b\\)</span></p><div class="math">\\[x\\]</div>')
    assert len(raw.raw_tex) == 2
    assert [p.kind for p in check_book.content_problems("p.html", raw)] == ["tex"]
    typeset = check_book.parse_dom(
        '<p><span class="math"><mjx-container><mjx-math>a</mjx-math></mjx-container></span></p>'
        '<pre>print("\\\\(", "$$")</pre><code>\\[</code>'
    )
    assert typeset.raw_tex == []
    assert check_book.content_problems("p.html", typeset) == []
