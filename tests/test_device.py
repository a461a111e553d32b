"""One device rule (CUDA > MPS > CPU, ``$NERLIB_DEVICE`` overrides) and precision from the device, with the CUDA and
MPS checks patched (this machine has neither); and the MSD t-SNE features following the model's device."""

from __future__ import annotations

import contextlib
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nerlib import device as D


@pytest.fixture
def hardware(monkeypatch):
    """Patch what torch reports: ``hardware(cuda=True, mps=False, capability=(7, 5), count=1)``."""
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    monkeypatch.delenv(D.CPU_BF16_ENV, raising=False)

    def set_(cuda: bool = False, mps: bool = False, capability=(8, 0), count: int = 1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(D, "_mps_available", lambda: mps)

    return set_


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_cuda_before_mps_before_cpu(hardware, cuda, mps, expected):
    hardware(cuda=cuda, mps=mps)
    assert D.get_device() == torch.device(expected)


def test_setting_overrides_the_rule(hardware, monkeypatch):
    hardware(cuda=True, mps=True, count=2)
    monkeypatch.setenv(D.DEVICE_ENV, "cpu")
    assert D.get_device() == torch.device("cpu")
    monkeypatch.setenv(D.DEVICE_ENV, "cuda:1")
    assert D.get_device() == torch.device("cuda", 1)
    monkeypatch.setenv(D.DEVICE_ENV, "MPS")
    assert D.get_device() == torch.device("mps")
    monkeypatch.setenv(D.DEVICE_ENV, "auto")
    assert D.get_device() == torch.device("cuda")
    assert D.get_device("cpu") == torch.device("cpu")  # an explicit name beats the setting


@pytest.mark.parametrize(
    ("value", "message"),
    [("cuda", "no CUDA GPU"), ("cuda:3", "no CUDA GPU"), ("mps", "MPS is not available"), ("tpu", "not a device"),
     ("meta", "runs on cpu, cuda or mps")],
)
def test_a_device_this_machine_lacks_is_an_error_naming_the_setting(hardware, monkeypatch, value, message):
    hardware(cuda=False, mps=False)
    monkeypatch.setenv(D.DEVICE_ENV, value)
    with pytest.raises(ValueError, match=message) as err:
        D.get_device()
    assert D.DEVICE_ENV in str(err.value)


def test_cuda_index_beyond_the_gpus_present(hardware, monkeypatch):
    hardware(cuda=True, count=1)
    monkeypatch.setenv(D.DEVICE_ENV, "cuda:1")
    with pytest.raises(ValueError, match="only 1 CUDA"):
        D.get_device()


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((8, 9), "bf16"), ((9, 0), "bf16")],
    ids=["T4", "V100", "A100", "L4", "H100"],
)
def test_gpu_precision_follows_compute_capability(hardware, capability, expected):
    hardware(cuda=True, capability=capability)
    assert D.precision_for() == expected
    assert D.precision_for(torch.device("cuda")) == expected


def test_cpu_and_mps_train_in_fp32_unless_cpu_bf16_is_asked_and_present(hardware, monkeypatch):
    hardware(cuda=False, mps=True)
    assert D.precision_for("mps") == "fp32"
    assert D.precision_for("cpu") == "fp32"
    monkeypatch.setenv(D.CPU_BF16_ENV, "1")
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: False)
    assert D.precision_for("cpu") == "fp32"  # asked for, but this CPU would only emulate it
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: True)
    assert D.precision_for("cpu") == "bf16"
    monkeypatch.setenv(D.CPU_BF16_ENV, "maybe")
    with pytest.raises(ValueError, match=D.CPU_BF16_ENV):
        D.precision_for("cpu")


def test_autocast_is_a_no_op_in_fp32_and_casts_otherwise():
    assert isinstance(D.autocast("cpu", "fp32"), contextlib.nullcontext)
    layer = torch.nn.Linear(4, 4)
    with D.autocast("cpu", "bf16"):
        out = layer(torch.ones(1, 4))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32  # master weights stay fp32


def test_to_device_moves_nested_batches_and_leaves_other_values():
    meta = torch.device("meta")
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "extra": [torch.zeros(2), ("x", torch.ones(1))],
             "n": 3}
    moved = D.to_device(batch, meta)
    assert moved["input_ids"].device == meta and moved["extra"][0].device == meta
    assert moved["extra"][1][0] == "x" and moved["extra"][1][1].device == meta and moved["n"] == 3


def test_device_setting_is_restored(monkeypatch):
    monkeypatch.setenv(D.DEVICE_ENV, "cpu")
    with D.device_setting("mps"):
        assert os.environ[D.DEVICE_ENV] == "mps"
    assert os.environ[D.DEVICE_ENV] == "cpu"


# ------------------------------------------------------------------------------------------- MSD t-SNE features


class _GPUTensor:
    """Stands for a [CLS] tensor on a GPU: NumPy cannot read it; only ``.cpu()`` gives a real tensor."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value
        self.moved = False

    def float(self) -> "_GPUTensor":
        return self

    def cpu(self) -> torch.Tensor:
        self.moved = True
        return self.value

    def numpy(self):
        raise TypeError("can't convert cuda tensor to numpy; use Tensor.cpu() first")


def test_cls_features_send_batches_to_the_model_device_and_come_back_to_the_cpu(monkeypatch):
    from nerlib.msd import tsne as S
    from nerlib.msd.tiny import tiny_tokenizer

    gpu = SimpleNamespace(type="cuda", name="the model's device")  # a device object the batches must reach
    tok = tiny_tokenizer(["hello", "world", "hola"])
    seen, outputs = [], []

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.encoder = SimpleNamespace(config=SimpleNamespace(hidden_size=3))

        def parameters(self, recurse=True):
            yield SimpleNamespace(device=gpu)

        def forward(self, input_ids, attention_mask, exits="last"):
            assert input_ids == ("on", gpu) and attention_mask == ("on", gpu)
            outputs.append(_GPUTensor(torch.full((2, 3), float(len(outputs)))))
            return SimpleNamespace(cls=outputs[-1])

    def to_device(batch, device):
        seen.append(device)
        return {k: ("on", device) for k in batch}

    monkeypatch.setattr(S, "to_device", to_device)
    features = S.cls_features(Model(), tok, [["hello"], ["world"], ["hola"], ["hello", "world"]], batch_size=2)
    assert seen == [gpu, gpu]
    assert all(o.moved for o in outputs)
    assert isinstance(features, np.ndarray) and features.shape == (4, 3)
    assert features[:2].tolist() == [[0.0] * 3] * 2 and features[2:].tolist() == [[1.0] * 3] * 2
