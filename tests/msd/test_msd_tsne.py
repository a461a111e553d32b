"""t-SNE features and separability numbers on synthetic and tiny-model features."""

import numpy as np
import pytest
import torch

from nerlib.msd import tsne as S
from nerlib.msd.model import MultiExitTokenClassifier
from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

torch.set_num_threads(1)


def test_separability_separated_vs_mixed():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 5))
    far = rng.normal(loc=4.0, size=(40, 5))
    same = rng.normal(size=(40, 5))
    apart, mixed = S.language_separability(a, far), S.language_separability(a, same)
    assert apart["probe_accuracy"] == pytest.approx(1.0)
    assert mixed["probe_accuracy"] < 0.75
    assert apart["mmd2"] > 10 * mixed["mmd2"] > 0


def test_separability_needs_enough_points():
    with pytest.raises(ValueError, match="at least 5"):
        S.language_separability(np.zeros((3, 2)), np.zeros((10, 2)))


def test_tsne_shape_and_determinism():
    x = np.random.default_rng(1).normal(size=(20, 6)).astype(np.float32)
    a, b = S.tsne_2d(x, seed=3), S.tsne_2d(x, seed=3)
    assert a.shape == (20, 2) and np.allclose(a, b)
    with pytest.raises(ValueError):
        S.tsne_2d(x[:2])


def test_cls_features_and_panels():
    tok = tiny_tokenizer(["hello", "world", "hola", "mundo"])
    model = MultiExitTokenClassifier.from_encoder(tiny_encoder(len(tok)), ["O", "B-X", "I-X"], 4)
    src = [["hello", "world"]] * 6 + [["world"]] * 6
    tgt = [["hola", "mundo"]] * 6 + [["mundo"]] * 6
    feats = S.cls_features(model, tok, src, batch_size=5)
    assert feats.shape == (12, 32)
    batch = tok([" ".join(src[0])], return_tensors="pt")
    with torch.no_grad():
        direct = model.encoder(**batch).last_hidden_state[0, 0].numpy()
    assert np.allclose(feats[0], direct, atol=1e-5)
    panels, scores = S.compare_models({"tiny": model}, tok, src, tgt)
    assert panels["tiny"][0].shape == (12, 2) and panels["tiny"][1].shape == (12, 2)
    assert set(scores["tiny"]) == {"mmd2", "probe_accuracy"}
    fig = S.plot_tsne(panels, scores=scores)
    assert len(fig.axes) == 1 and "probe acc" in fig.axes[0].get_title()


def test_mean_features_average_the_real_tokens_only():
    tok = tiny_tokenizer(["hello", "world", "hola", "mundo"])
    model = MultiExitTokenClassifier.from_encoder(tiny_encoder(len(tok)), ["O", "B-X", "I-X"], 4).eval()
    sentences = [["hello", "world", "hola"], ["mundo"]]
    feats = S.mean_features(model, tok, sentences, batch_size=2)  # the second sentence is padded in its batch
    assert feats.shape == (2, 32)
    for row, words in enumerate(sentences):
        with torch.no_grad():
            alone = model.encoder(**tok([" ".join(words)], return_tensors="pt")).last_hidden_state[0].mean(0)
        assert np.allclose(feats[row], alone.numpy(), atol=1e-5)
