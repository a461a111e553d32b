"""Shared fixtures of the UniversalNER model-side tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from uniner_tiny_lm import tiny_model, tiny_tokenizer


@pytest.fixture
def tiny_student(tmp_path, monkeypatch) -> Path:
    """A tiny LLaMA and its tokenizer saved as a student folder, with a fresh cache and training on the CPU."""
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NERLIB_DEVICE", "cpu")
    folder = tmp_path / "tiny"
    tiny_model(0).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
