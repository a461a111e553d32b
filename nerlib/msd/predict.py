"""Prediction and scoring of MSD models: IOB2 tags from any exit, entity-level seqeval scores, per-exit F1.

Every word takes the prediction of its first subword; words cut off by ``max_length`` get ``O`` (evaluate at a
length that cuts nothing: ``eval_max_length``). Predicted tags are repaired to IOB2
(:func:`nerlib.data.tags.repair_iob2`), the decoding convention of training, evaluation and ``nerlib msd tag``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from nerlib.data.align import IGNORE_INDEX
from nerlib.data.tags import repair_iob2
from nerlib.metrics import seqeval_f1
from nerlib.msd.features import collate, encode
from nerlib.msd.model import MultiExitTokenClassifier, model_device


def predict_tags(
    model: MultiExitTokenClassifier,
    tokenizer,
    sentences: Sequence[Sequence[str]],
    max_length: int = 512,
    batch_size: int = 32,
    progress: bool = False,
    exit_index: int = -1,
) -> list[list[str]]:
    """IOB2 tags for every word from the head ``exit_index`` (default the last, the model's prediction; other
    indices read the short-channel exits, shallow first)."""
    return predict_exits(model, tokenizer, sentences, max_length, batch_size, progress, [exit_index])[exit_index]


@torch.no_grad()
def predict_exits(
    model: MultiExitTokenClassifier,
    tokenizer,
    sentences: Sequence[Sequence[str]],
    max_length: int = 512,
    batch_size: int = 32,
    progress: bool = False,
    exit_indices: Sequence[int] | None = None,
) -> dict[int, list[list[str]]]:
    """Tags from several heads in one pass over the data: ``{exit index: tags per sentence}`` (default: all)."""
    model.eval()
    n_exits = len(model.exit_layers)
    indices = list(range(n_exits)) if exit_indices is None else list(exit_indices)
    last_only = all(i in (-1, n_exits - 1) for i in indices)
    features = encode(sentences, tokenizer, max_length)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out: dict[int, list] = {i: [None] * len(features) for i in indices}
    device = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc="predict", disable=not progress):
        idx = order[start : start + batch_size]
        batch = collate([features[i] for i in idx], tokenizer.pad_token_id)
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       exits="last" if last_only else "all").logits
        logits = [x.float().cpu() for x in logits]  # read values on the CPU
        positions = [(batch["labels"][row] != IGNORE_INDEX).nonzero().flatten() for row in range(len(idx))]
        for k in indices:
            pred = (logits[-1] if last_only else logits[k]).argmax(-1)
            for row, i in enumerate(idx):
                tags = [model.labels[j] for j in pred[row, positions[row]].tolist()]
                out[k][i] = repair_iob2(tags + ["O"] * (len(sentences[i]) - len(tags)))
    return out


def seqeval_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision/recall/F1 (x100) and ``per_type`` F1 (x100), as seqeval computes them
    (:func:`nerlib.metrics.seqeval_f1`)."""
    scores = seqeval_f1([list(g) for g in gold], [list(p) for p in pred])
    out = {k: (100 * v if k in ("precision", "recall", "f1") else v) for k, v in scores.items() if k != "per_type"}
    out["per_type"] = {t: 100 * v["f1"] for t, v in scores.get("per_type", {}).items()}
    return out


def evaluate(model: MultiExitTokenClassifier, tokenizer, dataset, max_length: int = 512, batch_size: int = 32,
             progress: bool = False, exit_index: int = -1) -> dict:
    """seqeval scores (x100) of one head (default the last) on a dataset with ``tokens`` and ``ner_tags``."""
    pred = predict_tags(model, tokenizer, dataset["tokens"], max_length, batch_size, progress, exit_index)
    return seqeval_scores(dataset["ner_tags"], pred)


def evaluate_exits(model: MultiExitTokenClassifier, tokenizer, dataset, max_length: int = 512,
                   batch_size: int = 32) -> dict[int, float]:
    """F1 of every exit, keyed by its layer number: how much NER each depth of the encoder already knows."""
    preds = predict_exits(model, tokenizer, dataset["tokens"], max_length, batch_size)
    return {layer: seqeval_scores(dataset["ner_tags"], preds[i])["f1"] for i, layer in enumerate(model.exit_layers)}
