"""UniversalNER models follow the library's device and precision rule wherever they are made or loaded.

``get_device`` is patched to return the ``meta`` device (a real device object, not the CPU): every model the code
hands out must have its weights there, which only happens if the code passed that device to ``.to``. CUDA itself
is absent here; its branch is checked by recording the ``.to`` call and the ``TrainingArguments`` the code builds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from uniner_tiny_lm import tiny_model, tiny_tokenizer

from nerlib.config import UniNERSettings, get_profile
from nerlib.uniner import pipeline as P
from nerlib.uniner import train as T

META = torch.device("meta")


def _on(model, device) -> bool:
    params = list(model.parameters())
    return bool(params) and all(p.device == device for p in params)


@pytest.fixture
def on_meta(monkeypatch):
    monkeypatch.setattr(T, "get_device", lambda name=None: META)


@pytest.fixture
def saved(tmp_path):
    """A full tiny model folder and a LoRA adapter folder over it."""
    base = tmp_path / "base"
    tiny_model(0).save_pretrained(base)
    tiny_tokenizer().save_pretrained(base)
    peft_model = T.prepare_model(tiny_model(0), lora=True, lora_r=4)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    return base, adapter


def test_load_trained_puts_full_models_and_adapters_on_the_device(on_meta, saved):
    base, adapter = saved
    model, _ = T.load_trained(base)
    assert _on(model, META) and not model.training and model.config.use_cache
    model, _ = T.load_trained(adapter, base=str(base))
    assert _on(model, META) and any("lora_" in n for n, _ in model.named_parameters())


def test_cached_path_of_train_or_load_returns_the_model_on_the_device(monkeypatch, tmp_path, saved):
    base, _ = saved
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    settings = UniNERSettings(student=str(base), max_length=256, batch_size=1, grad_accum=1, max_steps=1, lora_r=4)
    from nerlib.uniner.records import InstructionExample, Query

    examples = [InstructionExample("Obama met Apple .", [Query("person", ["Obama"])])]
    monkeypatch.setenv("NERLIB_DEVICE", "cpu")
    _, _, first = P.train_or_load(get_profile("smoke"), examples, name="dev", settings=settings, progress=False)
    assert first["cached"] is False
    monkeypatch.setattr(P, "get_device", lambda name=None: META)
    model, _, again = P.train_or_load(get_profile("smoke"), examples, name="dev", settings=settings, progress=False)
    assert again["cached"] is True and _on(model, META)


def test_base_model_evaluation_runs_on_the_device(on_meta, monkeypatch, tmp_path):
    handed = []
    monkeypatch.setattr(P, "load_student", lambda name, lora=True, **kw: (tiny_model(0), tiny_tokenizer()))
    monkeypatch.setattr(P, "evaluate_domains", lambda model, *a, **kw: handed.append(model) or _table())
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    assert P.evaluate_base(get_profile("smoke"), progress=False).index.tolist() == ["ai"]
    P.evaluate(get_profile("smoke"), model="some-hub-model")
    assert len(handed) == 2 and all(_on(m, META) and not m.training for m in handed)


def test_evaluate_of_a_trained_folder_runs_on_the_device(on_meta, monkeypatch, saved):
    base, adapter = saved
    handed = []
    monkeypatch.setattr(P, "evaluate_domains", lambda model, *a, **kw: handed.append(model) or _table())
    P.evaluate(get_profile("smoke").replace(uniner=UniNERSettings(student=str(base))), model=str(adapter))
    assert len(handed) == 1 and _on(handed[0], META)


def _table():
    import pandas as pd

    return pd.DataFrame([{"domain": "ai", "f1": 0.0}]).set_index("domain")


class _Spy(torch.nn.Module):
    """Records ``.to`` calls instead of moving (there is no GPU here)."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"use_cache": False})()
        self.calls = []

    def to(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self


@pytest.mark.parametrize(("gpu_precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float32)],
                         ids=["A100: bf16", "T4: fp32 (fp16 could overflow)"])
def test_inference_on_cuda_uses_the_gpus_dtype(monkeypatch, gpu_precision, dtype):
    cuda = torch.device("cuda")
    monkeypatch.setattr(T, "get_device", lambda name=None: cuda)
    monkeypatch.setattr(T, "precision_for", lambda device=None: gpu_precision)
    spy = _Spy()
    assert T.ready_for_inference(spy) is spy
    assert spy.calls == [((cuda, dtype), {})] and spy.config.use_cache and not spy.training


@pytest.mark.parametrize("device", ["mps", "cpu"])
def test_inference_elsewhere_is_fp32(monkeypatch, device):
    """A bf16 checkpoint (Gemma 3) is not left in bf16 on a CPU or MPS: fp32 unless CPU bf16 is asked for."""
    monkeypatch.delenv("NERLIB_CPU_BF16", raising=False)
    spy = _Spy()
    T.ready_for_inference(spy, torch.device(device))
    assert spy.calls == [((torch.device(device), torch.float32), {})]


def test_inference_on_a_cpu_with_bf16_asked_for(monkeypatch):
    monkeypatch.setenv("NERLIB_CPU_BF16", "1")
    monkeypatch.setattr("nerlib.device.cpu_supports_bf16", lambda: True)
    assert T.inference_dtype("cpu") is torch.bfloat16
    monkeypatch.setattr("nerlib.device.cpu_supports_bf16", lambda: False)
    assert T.inference_dtype("cpu") is torch.float32


@pytest.fixture
def recorded_arguments(monkeypatch):
    """``TrainingArguments`` replaced by a recorder (fp16 cannot be validated on a machine without CUDA)."""
    import transformers

    seen = {}

    real = transformers.TrainingArguments

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    Recorder.__init__.__signature__ = __import__("inspect").signature(real.__init__)  # warmup_ratio lookup
    monkeypatch.setattr(transformers, "TrainingArguments", Recorder)
    return seen


GPU = get_profile("gpu").uniner


@pytest.mark.parametrize(
    ("capability", "bf16", "fp16"), [((7, 5), False, True), ((8, 0), True, False)], ids=["T4", "A100"],
)
def test_gpu_profile_precision_comes_from_the_gpu(monkeypatch, recorded_arguments, tmp_path, capability, bf16, fp16):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    T.training_arguments(GPU, tmp_path, 0, device=torch.device("cuda"))
    assert (recorded_arguments["bf16"], recorded_arguments["fp16"]) == (bf16, fp16)
    assert recorded_arguments["use_cpu"] is False and recorded_arguments["dataloader_pin_memory"] is True


def test_gpu_profile_on_a_cpu_runtime_trains_in_fp32(monkeypatch, tmp_path):
    """A Colab CPU runtime with the gpu profile: the real TrainingArguments accept it (bf16 would raise here)."""
    from transformers import TrainingArguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("NERLIB_DEVICE", raising=False)
    monkeypatch.delenv("NERLIB_CPU_BF16", raising=False)
    with pytest.raises(ValueError, match="bf16"):
        TrainingArguments(output_dir=str(tmp_path), bf16=True)  # what the profile's flag used to ask for
    args = T.training_arguments(GPU, tmp_path, 0)
    assert (args.bf16, args.fp16, args.use_cpu) == (False, False, True)
    assert T.training_precision(GPU, torch.device("cpu")) == "fp32"


def test_mixed_precision_needs_fp32_master_weights():
    assert T.training_dtype("bf16") is torch.float32 and T.training_dtype("fp16") is torch.float32
    assert T.training_dtype("fp32") is torch.float32  # not the checkpoint's own dtype (bf16 for Gemma 3)
    with pytest.raises(ValueError, match="precision"):
        T.training_dtype("int8")
    small = dataclasses.replace(GPU, bf16=False)
    assert T.training_precision(small, torch.device("cuda")) == "fp32"  # the small profile never mixes


def test_a_bf16_checkpoint_trains_and_answers_in_fp32(tmp_path, monkeypatch):
    """transformers loads a checkpoint in its saved dtype; a bf16 one (as the offline Gemma 3 folder is) must still
    give fp32 master weights for training and fp32 answers on this CPU."""
    from nerlib.uniner.extract import Extractor

    monkeypatch.delenv("NERLIB_CPU_BF16", raising=False)
    monkeypatch.setenv("NERLIB_DEVICE", "cpu")
    folder = tmp_path / "bf16-lm"
    tiny_model().to(torch.bfloat16).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    model, _ = T.load_student(str(folder), lora=True, lora_r=2)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    trained, _ = T.load_trained(adapter, base=str(folder))
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    untuned = Extractor.from_pretrained(str(folder))
    assert {p.dtype for p in untuned.model.parameters()} == {torch.float32}
    assert not untuned.model.training and untuned.model.config.use_cache
