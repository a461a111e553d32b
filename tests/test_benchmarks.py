"""The benchmark scripts: they compile, answer --help, and their results files name no path of the machine."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.endswith("_common"))


def test_every_benchmark_compiles():
    for script in (ROOT / "benchmarks").glob("*.py"):
        compile(script.read_text(), str(script), "exec")  # a SyntaxError names the file and line


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_help(script):
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT / "benchmarks")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "usage:" in proc.stdout


def test_results_files_are_valid_and_hold_no_machine_paths():
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        text = path.read_text()
        json.loads(text)
        for root in (ROOT.parent, Path.home(), Path(tempfile.gettempdir())):  # where this checkout and user live
            assert str(root).rstrip("/") + "/" not in text, f"{path.name} names a machine path ({root})"
