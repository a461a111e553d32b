"""Convert-once cache: a folder per model under ``cache_dir()/models``, created atomically under a file lock.

A conversion writes into a temporary sibling folder; only when it has finished (and verified) is a marker file
written and the folder renamed into place. An interrupted conversion therefore never leaves a half folder that looks
finished, and two processes converting at once wait for each other instead of corrupting the cache.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from nerlib.config import cache_dir

#: Written last inside a finished folder. Bump ``FORMAT_VERSION`` when a converter changes its output.
MARKER = "nerlib-conversion.json"
FORMAT_VERSION = 1


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' progress bars and info logs during a conversion (converters print their own stages)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # The GGUF reader uses a plain tqdm bar that ignores the switch above; silence it for the duration.
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:  # very old transformers or no gguf support: nothing to silence
            gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def portable_tokenizer_config(folder: Path, max_length: int | None = None) -> None:
    """Tidy ``tokenizer_config.json`` so transformers 4.x and 5.x load it the same way.

    transformers 5 writes ``TokenizersBackend``, a class 4.x does not have; ``PreTrainedTokenizerFast`` is the
    name both versions map to a plain ``tokenizer.json`` loader. Loading flags that leaked into the file are
    dropped, and ``model_max_length`` is set to the model's context when given.
    """
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for leaked in ("is_local", "local_files_only", "gguf_file"):
        config.pop(leaked, None)
    if max_length:
        config["model_max_length"] = int(max_length)
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def models_dir() -> Path:
    """``cache_dir()/models``, created on demand."""
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def preserved_random_state():
    """Run a block without touching the caller's random number generators (Python, NumPy, torch CPU).

    A conversion builds models from a config, which draws their initial weights from the global generators. Without
    this, the first use of a model on a machine (cache cold) would shift every draw after it, so a head initialised
    right after loading the encoder would differ between the first run and every later one from the same seed.
    """
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def read_marker(folder: Path) -> dict | None:
    """The marker of a finished conversion, or ``None`` if the folder is missing, unfinished or from an old format."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return marker if marker.get("format") == FORMAT_VERSION else None


def converted(name: str, convert: Callable[[Path], dict], source: str = "") -> Path:
    """The finished folder for ``name``, running ``convert(tmp_folder) -> info`` once if it is not there yet.

    ``info`` (timings, verification numbers) is stored in the marker together with ``source`` (what was converted,
    e.g. the package version). A stale folder (old format or different source) is replaced.
    """
    root = models_dir()
    final = root / name
    marker = read_marker(final)
    if marker is not None and marker.get("source") == source:
        return final
    with FileLock(str(root / f".{name}.lock")):
        marker = read_marker(final)  # another process may have finished while we waited
        if marker is not None and marker.get("source") == source:
            return final
        tmp = root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            start = time.perf_counter()
            with quiet_transformers(), preserved_random_state():
                info = convert(tmp)
            record = {"format": FORMAT_VERSION, "name": name, "source": source,
                      "seconds": round(time.perf_counter() - start, 1), **info}
            (tmp / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
            if final.exists():
                stale = root / f".{name}.stale-{os.getpid()}"
                final.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
