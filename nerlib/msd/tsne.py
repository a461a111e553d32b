"""Seeing the domains (Ma et al., EMNLP 2022, Figure 2): [CLS] features of source and target sentences, projected
with t-SNE, for the baseline and for MSD side by side, plus numbers that say the same thing as the picture.

A picture alone can mislead (t-SNE distorts distances and depends on its perplexity), so every plot comes with two
measured numbers: the squared MMD between the source and target feature sets (:func:`~nerlib.msd.losses.mmd2`,
the same estimator MSD minimises) and the cross-validated accuracy of a linear probe telling the two languages
apart (0.5 = indistinguishable, 1.0 = perfectly separated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from nerlib.config import Profile, cache_dir
from nerlib.device import to_device
from nerlib.msd.features import collate, encode
from nerlib.msd.losses import mmd2
from nerlib.models import load_tokenizer
from nerlib.msd.model import MultiExitTokenClassifier, model_device
from nerlib.msd.runs import _load, cached_student, cached_teacher


@torch.no_grad()
def cls_features(model: MultiExitTokenClassifier, tokenizer, sentences: Sequence[Sequence[str]],
                 max_length: int = 128, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """The last layer's first-token ([CLS]) vector of every sentence, ``[N, hidden]`` float32 (eval mode).

    Batches go to the device the model is on; the vectors come back to the CPU before NumPy."""
    model.eval()
    device = model_device(model)
    features = encode(sentences, tokenizer, max_length)
    out = []
    for start in tqdm(range(0, len(features), batch_size), desc="[CLS] features", disable=not progress):
        batch = to_device(collate(features[start : start + batch_size], tokenizer.pad_token_id), device)
        out.append(model(batch["input_ids"], batch["attention_mask"], exits="last").cls.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.encoder.config.hidden_size), dtype=np.float32)


@torch.no_grad()
def mean_features(model: MultiExitTokenClassifier, tokenizer, sentences: Sequence[Sequence[str]],
                  max_length: int = 128, batch_size: int = 32) -> np.ndarray:
    """The mean of the last layer over all tokens of every sentence (padding left out), ``[N, hidden]`` float32.

    An alternative to :func:`cls_features` (chapter 9's exercise): MSD aligns only the [CLS] vector, so comparing
    the two features shows whether the rest of the sentence representation moved too."""
    model.eval()
    device = model_device(model)
    features = encode(sentences, tokenizer, max_length)
    out = []
    for start in range(0, len(features), batch_size):
        batch = to_device(collate(features[start : start + batch_size], tokenizer.pad_token_id), device)
        hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        out.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())  # back from the GPU before NumPy
    return torch.cat(out).numpy() if out else np.zeros((0, model.encoder.config.hidden_size), dtype=np.float32)


def tsne_2d(features: np.ndarray, seed: int = 42, perplexity: float = 30.0) -> np.ndarray:
    """A 2-D t-SNE embedding of the rows (perplexity capped below the number of points, PCA initialisation)."""
    from sklearn.manifold import TSNE

    if len(features) < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {len(features)}")
    perplexity = min(perplexity, (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def language_separability(source: np.ndarray, target: np.ndarray, seed: int = 42, folds: int = 5) -> dict:
    """How far apart two feature sets are: ``mmd2`` (multi-kernel Gaussian, as in training) and the mean
    ``folds``-fold accuracy of a logistic-regression probe predicting the language from standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(source) < folds or len(target) < folds:
        raise ValueError(f"need at least {folds} vectors per language, got {len(source)} and {len(target)}")
    x = np.concatenate([source, target])
    y = np.array([0] * len(source) + [1] * len(target))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    acc = cross_val_score(probe, x, y, cv=cv).mean()
    mmd = mmd2(torch.as_tensor(source, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)).item()
    return {"mmd2": float(mmd), "probe_accuracy": float(acc)}


def plot_tsne(panels: dict[str, tuple[np.ndarray, np.ndarray]], labels: tuple[str, str] = ("source", "target"),
              scores: dict[str, dict] | None = None):
    """One t-SNE panel per model: ``panels[name] = (source_2d, target_2d)``, coloured by language; the panel
    title carries the separability numbers when ``scores`` is given. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (name, (src, tgt)) in zip(axes[0], panels.items()):
        ax.scatter(src[:, 0], src[:, 1], s=8, alpha=0.6, label=labels[0])
        ax.scatter(tgt[:, 0], tgt[:, 1], s=8, alpha=0.6, label=labels[1])
        title = name
        if scores and name in scores:
            title += f"\nMMD² {scores[name]['mmd2']:.3f}, probe acc {scores[name]['probe_accuracy']:.2f}"
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def compare_models(models: dict[str, MultiExitTokenClassifier], tokenizer, source: Sequence[Sequence[str]],
                   target: Sequence[Sequence[str]], max_length: int = 128, batch_size: int = 32, seed: int = 42,
                   progress: bool = False) -> tuple[dict, dict]:
    """[CLS] features of the same source and target sentences under each model; returns ``(panels, scores)``
    ready for :func:`plot_tsne` (t-SNE is fitted on source and target together, per model)."""
    panels, scores = {}, {}
    for name, model in models.items():
        src = cls_features(model, tokenizer, source, max_length, batch_size, progress)
        tgt = cls_features(model, tokenizer, target, max_length, batch_size, progress)
        scores[name] = language_separability(src, tgt, seed)
        xy = tsne_2d(np.concatenate([src, tgt]), seed)
        panels[name] = (xy[: len(src)], xy[len(src) :])
    return panels, scores


def run_tsne(profile: Profile, target: str | None = None, out_dir: str | Path | None = None,
             progress: bool = True) -> dict:
    """Figure 2 for one target language: the cached single-head baseline (direct transfer) and the cached MSD
    student, ``tsne_sentences`` test sentences per language. Saves ``tsne_<target>.png`` in ``out_dir`` and returns
    the separability numbers and the figure path."""
    s = profile.msd
    target = target or s.targets[0]
    baseline, _ = cached_teacher(s, multi_exit=False, seed=profile.seed, target=target, progress=progress)
    student, _ = cached_student(s, target, "MSD", seed=profile.seed, progress=progress)
    tokenizer = load_tokenizer(s.encoder)
    source = _load(s.source, "test", s.tsne_sentences)["tokens"]
    target_text = _load(target, "test", s.tsne_sentences)["tokens"]
    models = {"baseline (single head)": baseline, "MSD student": student}
    panels, scores = compare_models(models, tokenizer, source, target_text, s.max_length, s.eval_batch_size,
                                    profile.seed, progress)
    out = Path(out_dir) if out_dir is not None else cache_dir() / "msd" / "tsne"
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_tsne(panels, (s.source, target), scores)
    path = out / f"tsne_{target}.png"
    fig.savefig(path, dpi=120)
    return {"target": target, "sentences_per_language": s.tsne_sentences, "scores": scores, "figure": str(path)}
