"""Training features of MSD: word lists to first-subword labelled token ids, padded batches, and batch orders.

Only the first subword of each word carries a label (:func:`nerlib.data.align.align_labels`); the rest and the
special tokens get ``-100``, which every loss ignores. Unlabelled target text gets the label ``0`` on first
subwords: it only marks the scored positions, so the loss mask comes from the tokenizer, never from gold tags.

Batches are grouped by length (:func:`length_grouped_batches`): shuffled pools sorted by length, then the batches
shuffled, so a batch pads to about its own sentences' length on the CPU without changing what each loss is.

:func:`collate` pads by hand rather than with ``transformers.DataCollatorForTokenClassification``: the tensors
would be the same, but the collator needs the tokenizer (here only its pad id travels) and pads through
``tokenizer.pad``, which is slower per batch.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

import torch

from nerlib.data.align import IGNORE_INDEX, align_labels


def encode(
    sentences: Sequence[Sequence[str]],
    tokenizer,
    max_length: int,
    tags: Sequence[Sequence[str]] | None = None,
    label2id: dict[str, int] | None = None,
    where: str = "data",
) -> list[dict]:
    """Tokenize word lists into features ``{input_ids, labels}``. With ``tags`` the first subword of every word
    carries its tag id; without (unlabelled target text) it carries ``0``, which only marks the position — so
    the loss mask comes from the tokenizer, never from gold tags. Sentences are cut at ``max_length``."""
    if tags is not None and len(tags) != len(sentences):
        raise ValueError(f"{where}: {len(sentences)} sentences but {len(tags)} tag lists")
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    features = []
    for i, sentence in enumerate(sentences):
        if tags is None:
            word_labels = [0] * len(sentence)
        else:
            if len(tags[i]) != len(sentence):
                raise ValueError(f"{where}: sentence {i + 1} has {len(sentence)} tokens but {len(tags[i])} tags")
            unknown = [t for t in tags[i] if t not in label2id]
            if unknown:
                raise ValueError(f"{where}: sentence {i + 1}, field ner_tags: unknown tag {unknown[0]!r}")
            word_labels = [label2id[t] for t in tags[i]]
        features.append({"input_ids": enc["input_ids"][i], "labels": align_labels(enc.word_ids(i), word_labels)})
    return features


def collate(features: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to one batch: ``input_ids``, ``attention_mask``, ``labels`` (-100 on padding)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        labels[i, :n] = torch.tensor(f["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def endless_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Indices of shuffled batches, epoch after epoch (a fresh permutation per epoch, reproducible in ``seed``)."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, pool: int = 50) -> Iterator[list[int]]:
    """Indices of batches of similar length, epoch after epoch, reproducible in ``seed``.

    Every epoch takes a fresh permutation (dropping the last ``n % batch_size`` indices, like
    :func:`endless_batches`), cuts it into pools of ``pool`` batches, sorts each pool by length and cuts it into
    batches, then shuffles the epoch's batches. Each sentence is seen once per epoch as before; a batch only pads
    to about its own sentences' length (the padding is masked out of every loss, so this changes which sentences
    share a batch, not what a batch's loss is). ``pool=1`` gives plain random batches.
    """
    if pool < 1:
        raise ValueError(f"length pool must be at least 1 batch, got {pool}")
    rng = random.Random(seed)
    n = len(lengths)
    size = min(batch_size, n)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        order = order[: n - n % size] if n >= size else order
        batches = []
        for start in range(0, len(order), pool * size):
            chunk = sorted(order[start : start + pool * size], key=lambda i: lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(batches)
        yield from batches


def batch_order(features: Sequence[dict], batch_size: int, seed: int, pool: int) -> Iterator[list[int]]:
    """The training batches: length-grouped (:func:`length_grouped_batches`, ``pool`` batches per sorted pool)."""
    return length_grouped_batches([len(f["input_ids"]) for f in features], batch_size, seed, pool)
