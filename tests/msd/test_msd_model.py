"""The multi-exit token classifier: exits, omega, freezing, save/load round trip."""

import pytest
import torch

from nerlib.msd.model import MultiExitTokenClassifier
from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

torch.set_num_threads(1)  # tiny models: threads only contend on a shared CPU

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _model(multi_exit=True, layers=6, first=4):
    tok = tiny_tokenizer(["John", "lives", "in", "Paris"])
    return MultiExitTokenClassifier.from_encoder(tiny_encoder(len(tok), layers=layers), LABELS, first, multi_exit), tok


def test_exits_and_shapes():
    model, tok = _model()
    assert model.exit_layers == [4, 5, 6]
    assert len(model.heads) == 3 and model.omega.shape == (2,)
    batch = tok(["John lives in Paris", "John"], padding=True, return_tensors="pt")
    out = model(batch["input_ids"], batch["attention_mask"])
    assert len(out.logits) == 3
    assert all(t.shape == (2, batch["input_ids"].shape[1], 5) for t in out.logits)
    assert out.cls.shape == (2, 32)
    # omega starts at zero: a uniform mixture over the two auxiliary exits
    assert torch.allclose(out.aux_weights, torch.tensor([0.5, 0.5]))
    assert len(model(batch["input_ids"], batch["attention_mask"], exits="last").logits) == 1


def test_last_exit_reads_last_layer():
    model, tok = _model()
    model.eval()
    batch = tok(["John lives in Paris"], return_tensors="pt")
    hidden = model.encoder(**batch, output_hidden_states=True).hidden_states
    out = model(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(out.logits[-1], model.heads[-1](hidden[6]), atol=1e-6)
    assert torch.allclose(out.logits[0], model.heads[0](hidden[4]), atol=1e-6)
    assert torch.allclose(out.cls, hidden[6][:, 0])


def test_single_head_baseline():
    model, _ = _model(multi_exit=False)
    assert model.exit_layers == [6] and len(model.heads) == 1 and model.omega.numel() == 0


def test_bad_first_exit_layer():
    with pytest.raises(ValueError, match="first_exit_layer"):
        _model(first=9)


def test_freeze_bottom():
    model, _ = _model()
    model.freeze_bottom(3)
    enc = model.encoder
    assert not any(p.requires_grad for p in enc.embeddings.parameters())
    for i, layer in enumerate(enc.encoder.layer):
        assert all(p.requires_grad == (i >= 3) for p in layer.parameters())
    assert model.omega.requires_grad and all(p.requires_grad for p in model.heads.parameters())
    with pytest.raises(ValueError):
        model.freeze_bottom(7)


def test_save_load_round_trip(tmp_path):
    model, tok = _model()
    with torch.no_grad():
        model.omega.copy_(torch.tensor([0.3, -1.0]))
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = MultiExitTokenClassifier.from_pretrained(tmp_path / "m").eval()
    assert loaded.labels == LABELS and loaded.exit_layers == [4, 5, 6]
    batch = tok(["John lives in Paris"], return_tensors="pt")
    a, b = model(**batch), loaded(**batch)
    for x, y in zip(a.logits, b.logits):
        assert torch.equal(x, y)
    assert torch.equal(loaded.omega, model.omega)


def test_from_pretrained_needs_labels_for_fresh_encoder(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        MultiExitTokenClassifier.from_pretrained(tmp_path)
