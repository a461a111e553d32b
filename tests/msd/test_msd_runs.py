"""Run folders: the model folder of ``save_pretrained`` holding only the trained tensors, plus ``run.json``; the
earlier format (``trainable.pt`` + ``run.json``) of runs cached before still loads."""

import json

import torch
from msd_tiny_run import LABELS, make_run
from safetensors.torch import load_file
from transformers import AutoModel

from nerlib.config import machine_summary
from nerlib.msd.model import MSDConfig, MultiExitTokenClassifier
from nerlib.msd.runs import load_run, save_run
from nerlib.msd.train import TrainLog, trainable_state

torch.set_num_threads(1)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key, value in sa.items():
        assert torch.equal(value.cpu(), sb[key].cpu()), key


def test_from_encoder_keeps_the_pretrained_weights(tmp_path):
    run = make_run(tmp_path)
    encoder = AutoModel.from_pretrained(tmp_path / "encoder", add_pooling_layer=False)
    model = MultiExitTokenClassifier.from_encoder(str(tmp_path / "encoder"), LABELS)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, model.encoder.state_dict()[key]), key
    assert isinstance(model.config, MSDConfig) and model.config.labels == LABELS and run.is_dir()


def test_run_folder_is_a_compact_model_folder(tmp_path):
    make_run(tmp_path)
    model, info = load_run(tmp_path / "run")
    model.freeze_bottom(3)
    folder = save_run(model, tmp_path / "again", info["encoder"], TrainLog(steps=3), {"role": "teacher"})
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "run.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "msd-multi-exit" and config["encoder"] == info["encoder"]
    stored = load_file(folder / "model.safetensors")
    assert set(stored) == set(trainable_state(model))  # no copy of the frozen encoder
    assert "encoder.embeddings.word_embeddings.weight" not in stored and "heads.0.weight" in stored
    again, again_info = load_run(folder)
    assert again_info["role"] == "teacher" and again_info["log"]["steps"] == 3
    assert again_info["machine"] == machine_summary()  # which runs can be compared bit for bit
    _same_weights(model, again)


def test_full_save_pretrained_round_trip(tmp_path):
    model, _ = load_run(make_run(tmp_path))
    model.save_pretrained(tmp_path / "full")
    _same_weights(model, MultiExitTokenClassifier.from_pretrained(tmp_path / "full"))
    _same_weights(model, AutoModel.from_pretrained(tmp_path / "full"))  # the model type is registered


def test_legacy_run_folder_still_loads(tmp_path):
    """A folder as runs were cached before (``trainable.pt`` + ``run.json``) loads to the same model."""
    make_run(tmp_path)
    model, _ = load_run(tmp_path / "run")
    model.freeze_bottom(3)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(trainable_state(model), legacy / "trainable.pt")
    info = {"encoder": str(tmp_path / "encoder"), "labels": model.labels, "first_exit_layer": 4, "multi_exit": True,
            "log": {"steps": 2}, "role": "student"}
    (legacy / "run.json").write_text(json.dumps(info))
    loaded, loaded_info = load_run(legacy)
    assert loaded_info == info
    _same_weights(model, loaded)
