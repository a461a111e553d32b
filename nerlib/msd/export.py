"""Export a trained MSD model as a standard ``AutoModelForTokenClassification`` folder (``nerlib msd export``).

MSD predicts with its last exit only: a linear head on the last layer's hidden states. That is exactly what a
``*ForTokenClassification`` model of the encoder's architecture computes (encoder without pooler, dropout, one
linear ``classifier``), so the export copies the encoder's weights and the last head into one, with ``id2label``
set from the tag names. The auxiliary exits (the short-channel distillers) only shape training and are dropped.
The result loads with ``AutoModelForTokenClassification.from_pretrained`` and ``transformers.pipeline(
"token-classification")``, and tags word for word as ``nerlib msd tag`` does on the run (tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nerlib.modelcard import DATA_LICENCES, model_card, push_to_hub, write_card


def to_token_classifier(model: Any) -> Any:
    """The ``*ForTokenClassification`` equivalent of a :class:`~nerlib.msd.model.MultiExitTokenClassifier`'s
    last exit (weights copied, evaluation mode)."""
    from transformers import AutoModelForTokenClassification

    if model.exit_layers[-1] != model.encoder.config.num_hidden_layers:
        raise ValueError("the last exit does not read the last layer: no token-classification equivalent")
    config = model.encoder.config.__class__.from_dict(model.encoder.config.to_dict())
    config.num_labels = len(model.labels)
    config.id2label = dict(enumerate(model.labels))
    config.label2id = {label: i for i, label in enumerate(model.labels)}
    config.architectures = None
    classifier_model = AutoModelForTokenClassification.from_config(config)
    base = getattr(classifier_model, classifier_model.base_model_prefix)
    missing, unexpected = base.load_state_dict(model.encoder.state_dict(), strict=False)
    missing = [k for k in missing if "pooler" not in k]
    if missing or unexpected:
        raise ValueError(f"encoder weights do not fit {type(base).__name__}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    head = classifier_model.classifier
    last = model.heads[-1]
    if not isinstance(head, torch.nn.Linear) or head.weight.shape != last.weight.shape:
        raise ValueError(f"{type(classifier_model).__name__}.classifier is not a linear layer of shape "
                         f"{tuple(last.weight.shape)}")
    with torch.no_grad():
        head.weight.copy_(last.weight)
        head.bias.copy_(last.bias)
    return classifier_model.eval()


def _base_model(encoder: str) -> str:
    """The hub name of the encoder (offline short names map to their hub model)."""
    from nerlib.models import SPECS

    return SPECS[encoder].hub if encoder in SPECS else encoder


def card_text(info: dict, labels: list[str], scores: dict | None = None) -> str:
    """The model card of an exported MSD run (``info``: the run's ``run.json``)."""
    settings = info.get("settings") or {}
    source = settings.get("source", "conll2003_en")
    role = info.get("role", "model")
    target = info.get("target")
    data = [source] + ([target] if target else [])
    licences = sorted({DATA_LICENCES.get(d, "see the dataset") for d in data})
    budget = {k: settings[k] for k in ("teacher_steps", "student_steps", "batch_size", "train_sentences",
                                       "unlabeled_sentences", "max_length") if k in settings}
    base = _base_model(str(info.get("encoder", "unknown")))
    types = sorted({t[2:] for t in labels if t != "O"})
    training = (f"- role: MSD {role}" + (f" for {target} (variant {info['variant'].get('name', info['variant'])})"
                                         if role == "student" and isinstance(info.get("variant"), dict) else "")
                + f"\n- encoder: `{info.get('encoder')}` (hub: `{base}`)\n- labelled source data: `{source}`"
                + (f"\n- unlabelled target text: `{target}` (its tags were never read)" if target else "")
                + f"\n- training data licences: {'; '.join(licences)}"
                + f"\n- profile: `{info.get('profile', settings.get('profile', 'unknown'))}`, budget: "
                + (json.dumps(budget) if budget else "unknown")
                + f"\n- selected step: {info.get('log', {}).get('best_step', 'n/a')} "
                  f"(dev F1 {info.get('log', {}).get('best_f1', 'n/a')})"
                + f"\n- entity types: {', '.join(types)} (IOB2 tags, the label of each word's first subword)")
    usage = (
        "```python\nfrom transformers import pipeline\nner = pipeline(\"token-classification\", model=\"THIS_FOLDER\","
        " aggregation_strategy=\"first\")\nner(\"La ministra viajó a Valparaíso .\")\n```\n\n"
        "The model was trained on CoNLL-style words (punctuation split off). For the same words and tags as "
        "training, split text the same way: `nerlib msd tag --model THIS_FOLDER --text \"...\"` does, and gives "
        "character offsets. Each word takes the label of its first subword.")
    return model_card(
        title=f"MSD {role}: cross-lingual NER ({', '.join(types)})", base_model=base,
        licence="other", datasets=data, tags=["token-classification", "msd", "cross-lingual"],
        summary=(("A token classifier distilled on unlabelled target-language text with MSD" if role == "student"
                  else "The source-language teacher of MSD, fine-tuned on labelled text")
                 + " (mixture of short-channel distillers, Ma et al., EMNLP 2022), exported from its last exit. "
                 "The licence is `other`: the model inherits the research-only terms of its training data "
                 f"({'; '.join(licences)})."),
        training=training, usage=usage, scores=scores, pipeline_tag="token-classification")


def export_model(model_dir: str | Path, out: str | Path, scores: dict | None = None,
                 push_to: str | None = None) -> dict:
    """Command-line entry (``nerlib msd export``): a run folder (or a saved MSD model folder) -> ``out`` with
    ``config.json`` (``id2label``), the weights, the tokenizer and ``README.md``; ``push_to`` uploads it."""
    from nerlib.msd.tag import Tagger

    tagger = Tagger.from_pretrained(model_dir, device="cpu")
    if tagger.kind == "exported":
        raise ValueError(f"{model_dir} is already an exported token classifier")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exported = to_token_classifier(tagger.model)
    exported.save_pretrained(out)
    tagger.tokenizer.save_pretrained(out)
    info = dict(tagger.info)
    if scores is None and isinstance(info.get("scores"), dict):
        scores = info["scores"]
    write_card(out, card_text(info, tagger.labels, scores))
    result = {"exported": str(out), "from": str(model_dir), "labels": tagger.labels,
              "architecture": type(exported).__name__}
    if push_to:
        result["hub"] = push_to_hub(out, push_to)
    return result


def write_run_folder(model: Any, info: dict, folder: str | Path) -> Path:
    """Write a trained MSD model as a run folder that :func:`nerlib.msd.runs.load_run` (and ``nerlib msd tag`` /
    ``export``) read: ``run.json`` (``info``, which names the encoder) and the model folder holding only the
    tensors that differ from the pretrained encoder (the heads, omega and every trained layer)."""
    from transformers import AutoModel

    from nerlib.msd.model import resolve_encoder
    from nerlib.msd.runs import write_run

    base = AutoModel.from_pretrained(resolve_encoder(str(info["encoder"])), add_pooling_layer=False).state_dict()
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if key.startswith("encoder."):
            ref = base.get(key[len("encoder."):])
            if ref is not None and ref.shape == value.shape and torch.equal(ref, value):
                continue
        state[key] = value
    return write_run(model, Path(folder), str(info["encoder"]), info, state)


__all__ = ["card_text", "export_model", "to_token_classifier", "write_run_folder"]
