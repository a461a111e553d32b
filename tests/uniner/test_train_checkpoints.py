"""UniversalNER training checkpoints and resume, by really interrupting a run of the chapters' cached training.

A callback raises after step 5 of an 8-step run (what a Colab disconnect does to a kernel); the next call of
``train_or_load`` with the same settings finds the checkpoints, continues from the newest one, trains only the
missing steps and ends at the same step count, with the same weights, as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from uniner_tiny_lm import tiny_examples

from nerlib.config import UniNERSettings, cache_dir, get_profile
from nerlib.uniner import pipeline as P

torch.set_num_threads(1)

EXAMPLES = tiny_examples()
STEPS, EVERY, CUT = 8, 2, 5


class Disconnect(Exception):
    """What a lost Colab runtime does to the training loop."""


def _callbacks(steps_seen: list[int], stop_after: int | None):
    from transformers import TrainerCallback

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            steps_seen.append(state.global_step)
            if stop_after is not None and state.global_step >= stop_after:
                raise Disconnect(f"runtime lost after step {state.global_step}")

    return [Watch()]


@pytest.fixture
def student(tiny_student, monkeypatch):
    """The tiny student's settings (see ``conftest.tiny_student``), and ``fit`` wrapped to add the watching
    callback."""
    settings = UniNERSettings(student=str(tiny_student), max_length=256, batch_size=1, grad_accum=1, learning_rate=5e-3,
                              max_steps=STEPS, lora_r=4)
    control = {"stop_after": None, "steps": []}
    real_fit = P.fit

    def fit(*args, **kwargs):
        return real_fit(*args, callbacks=_callbacks(control["steps"], control["stop_after"]), **kwargs)

    monkeypatch.setattr(P, "fit", fit)
    return settings, control


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def test_an_interrupted_run_resumes_from_the_newest_checkpoint(student):
    settings, control = student
    profile = get_profile("smoke")
    control["stop_after"] = CUT
    with pytest.raises(Disconnect):
        P.train_or_load(profile, EXAMPLES, name="cut", settings=settings, progress=False, save_steps=EVERY)
    folder = next((cache_dir() / "uniner").glob("cut-*"))
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (folder / "train_result.json").exists()
    assert control["steps"] == [1, 2, 3, 4, 5]

    control.update(stop_after=None, steps=[])
    resumed, _, record = P.train_or_load(profile, EXAMPLES, name="cut", settings=settings, progress=False,
                                         save_steps=EVERY)
    assert record["cached"] is False and record["resumed_from"] == "checkpoint-4"
    assert control["steps"] == [5, 6, 7, 8]  # only the missing steps: step 5 again, from checkpoint-4
    assert record["global_step"] == STEPS
    assert not list(folder.glob("checkpoint-*"))  # removed once the model is saved
    assert json.loads((folder / "train_result.json").read_text())["resumed_from"] == "checkpoint-4"

    control.update(steps=[])
    straight, _, srecord = P.train_or_load(profile, EXAMPLES, name="straight", settings=settings, progress=False,
                                           save_steps=EVERY)
    assert srecord["resumed_from"] is None and srecord["global_step"] == STEPS
    assert control["steps"] == list(range(1, STEPS + 1))
    a, b = _weights(resumed), _weights(straight)
    assert a and a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k

    control.update(steps=[])
    cached, _, crecord = P.train_or_load(profile, EXAMPLES, name="cut", settings=settings, progress=False,
                                         save_steps=EVERY)
    assert crecord["cached"] is True and control["steps"] == []


def test_a_finished_run_leaves_no_checkpoints_and_records_its_precision(student):
    settings, control = student
    _, _, record = P.train_or_load(get_profile("smoke"), EXAMPLES, name="done", settings=settings, progress=False,
                                   save_steps=EVERY)
    folder = next((cache_dir() / "uniner").glob("done-*"))
    assert not list(folder.glob("checkpoint-*")) and (folder / "adapter_config.json").exists()
    assert record["precision"] == "fp32" and record["resumed_from"] is None
    # the gpu profile's settings on this CPU: mixed precision allowed, the device says fp32 (no TrainingArguments error)
    gpu_like = dataclasses.replace(settings, bf16=True, max_steps=2)
    _, _, record = P.train_or_load(get_profile("smoke"), EXAMPLES, name="gpu-like", settings=gpu_like,
                                   progress=False)
    assert record["precision"] == "fp32" and record["global_step"] == 2


def test_command_line_resume_continues_the_newest_checkpoint(student, tmp_path):
    settings, control = student
    profile = get_profile("smoke").replace(uniner=settings)
    out = tmp_path / "run"
    control["stop_after"] = 3
    with pytest.raises(Disconnect):
        P.train(profile, out, EXAMPLES, save_steps=EVERY)
    control.update(stop_after=None, steps=[])
    result = P.train(profile, out, EXAMPLES, resume=True, save_steps=EVERY)
    assert result["resumed_from"] == "checkpoint-2" and result["global_step"] == STEPS
    assert control["steps"] == list(range(3, STEPS + 1))
