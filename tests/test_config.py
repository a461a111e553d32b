"""Profiles are data chosen by one setting; bad settings fail clearly."""

import dataclasses

import pytest

from nerlib import config


def test_profile_env_selects_profile(monkeypatch):
    monkeypatch.setenv("NERLIB_PROFILE", "smoke")
    assert config.get_profile().name == "smoke"
    monkeypatch.setenv("NERLIB_PROFILE", " GPU ")
    assert config.get_profile().name == "gpu"


def test_default_profile_without_gpu_is_small(monkeypatch):
    monkeypatch.delenv("NERLIB_PROFILE", raising=False)
    monkeypatch.setattr(config, "_has_cuda", lambda: False)
    assert config.get_profile().name == "small"
    monkeypatch.setattr(config, "_has_cuda", lambda: True)
    assert config.get_profile().name == "gpu"


def test_unknown_profile_names_the_setting(monkeypatch):
    monkeypatch.setenv("NERLIB_PROFILE", "huge")
    with pytest.raises(ValueError, match="NERLIB_PROFILE='huge'"):
        config.get_profile()


def test_profiles_scale_monotonically():
    smoke, small, gpu = (config.get_profile(n) for n in config.PROFILES)
    assert smoke.msd.train_sentences < small.msd.train_sentences
    assert gpu.msd.train_sentences is None  # the full data
    assert smoke.uniner.eval_passages_per_domain < small.uniner.eval_passages_per_domain
    # The gpu profile uses the papers' hub models, never the offline short names.
    assert gpu.msd.encoder == "bert-base-multilingual-cased"
    assert "/" in gpu.uniner.student


def test_profiles_are_frozen_data():
    prof = config.get_profile("small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.seed = 3  # type: ignore[misc]
    assert prof.replace(seed=3).seed == 3 and prof.seed == 42


def test_seed_override(monkeypatch):
    monkeypatch.setenv("NERLIB_SEED", "7")
    assert config.get_profile("smoke").seed == 7


def test_data_dir_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("NERLIB_DATA_DIR", raising=False)
    assert config.data_dir() is None
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path))
    assert config.data_dir() == tmp_path
    monkeypatch.setenv("NERLIB_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="NERLIB_DATA_DIR"):
        config.data_dir()


def test_cache_dir_created(monkeypatch, tmp_path):
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "c"))
    assert config.cache_dir().is_dir()


def test_set_seed_reproducible():
    import numpy as np
    import torch

    config.set_seed(5)
    a = (torch.rand(3), np.random.rand(3))
    config.set_seed(5)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all()


def test_machine_summary_names_the_kernels_and_threads():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = config.machine_summary()
        torch.set_num_threads(2)
        two = config.machine_summary()
    finally:
        torch.set_num_threads(before)
    kernels = f"CPU kernels {torch.backends.cpu.get_cpu_capability()}"
    assert kernels in one and one.endswith(", 1 torch thread") and two.endswith(", 2 torch threads")
    assert f"torch {torch.__version__}" in one and "\n" not in one


def test_threads_setting(monkeypatch):
    import torch

    from nerlib.course import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("NERLIB_THREADS", raising=False)
        assert set_threads() is None and torch.get_num_threads() == before
        monkeypatch.setenv("NERLIB_THREADS", "1")
        assert set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("NERLIB_THREADS", "zero")
        with pytest.raises(ValueError, match="NERLIB_THREADS='zero'"):
            set_threads()
    finally:
        torch.set_num_threads(before)
