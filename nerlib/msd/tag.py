"""Tagging raw text with a trained MSD model, and scoring one on any BIO dataset.

The MSD models were trained on CoNLL sentences: words split off their punctuation (``Paris`` ``,`` not
``Paris,``), English clitics apart (``Joe`` ``'s``, ``do`` ``n't``), abbreviations and numbers whole (``U.S.``,
``Dr.``, ``1,200.50``), hyphenated words whole (``Hewlett-Packard``). :func:`split_words` splits raw text that way
and keeps each word's character offsets, so predicted entities map back to the exact text.

:class:`Tagger` loads either kind of model folder:

* a run folder written by ``nerlib msd train-teacher`` / ``train-student`` (``run.json``; the last exit predicts);
* a folder saved by :meth:`~nerlib.msd.model.MultiExitTokenClassifier.save_pretrained` (``config.json`` of model
  type ``msd-multi-exit``);
* an exported ``AutoModelForTokenClassification`` folder (``nerlib msd export``).

Both paths label the first subword of each word and read tags the same way (an ``I-X`` that does not continue an
``X`` entity becomes ``B-X``), so an exported model tags word for word as the run it came from (tested).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from nerlib.data.tags import repair_iob2  # the decoding convention of training and evaluation

_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Sr", "Sra", "Srta", "Jr", "Inc", "Ltd", "Co", "Corp",
                  "vs", "etc", "Gen", "Gov", "Sen", "Rep", "Mt", "Av", "Avda", "Dña", "Dª", "Ud", "Uds")
_WORD = re.compile(
    r"(?:[^\W\d_]\.){2,}"                                           # U.S., e.g. (letters with dots)
    r"|(?:" + "|".join(_ABBREVIATIONS) + r")\.(?=\s|$)"              # Dr. Mr. Sra.
    r"|\d+(?:[.,:/]\d+)*"                                          # 1,200.50 12:30 3/4
    r"|\w+(?=n't\b)|n't\b"                                         # do n't
    r"|'(?:s|S|re|ve|ll|d|m|RE|VE|LL|D|M)\b"                       # 's 're
    r"|\w+(?:[-‐]\w+)*"                                            # words, hyphenated words
    r"|\.\.\.|--|[^\w\s]",                                         # ... -- and single punctuation
)
_SENTENCE_FINAL = {".", "!", "?", "..."}


def split_words(text: str) -> list[tuple[str, int, int]]:
    """CoNLL-style words of ``text`` with character offsets: ``[(word, start, end), ...]``, ``text[start:end] ==
    word``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def split_sentences(words: Sequence[str], max_words: int = 128) -> list[tuple[int, int]]:
    """``(start, end)`` word ranges of sentences (ending after ``.``/``!``/``?``), cut at ``max_words``."""
    out, start = [], 0
    for i, w in enumerate(words):
        if w in _SENTENCE_FINAL or i + 1 - start >= max_words:
            out.append((start, i + 1))
            start = i + 1
    if start < len(words):
        out.append((start, len(words)))
    return out


def first_subword_tags(model: Any, tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int = 512,
                       batch_size: int = 32) -> list[list[str]]:
    """Tags of an ``AutoModelForTokenClassification`` for word lists: the label of each word's first subword
    (words cut off by ``max_length`` get ``O``), IOB2-repaired."""
    labels = model.config.id2label
    out: list[list[str]] = []
    model.eval()
    for start in range(0, len(sentences), batch_size):
        chunk = [list(s) for s in sentences[start:start + batch_size]]
        enc = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            pred = model(**inputs).logits.argmax(-1).cpu()
        for row, words in enumerate(chunk):
            tags, seen = ["O"] * len(words), set()
            for pos, wid in enumerate(enc.word_ids(row)):
                if wid is not None and wid not in seen:
                    seen.add(wid)
                    tags[wid] = labels[int(pred[row, pos])]
            out.append(repair_iob2(tags))
    return out


def model_kind(folder: str | Path) -> str:
    """``run`` (a training run), ``msd`` (a saved multi-exit model) or ``exported`` (a token classifier)."""
    folder = Path(folder)
    if (folder / "run.json").is_file():
        return "run"
    from nerlib.msd.model import is_msd_folder

    if is_msd_folder(folder):
        return "msd"
    if (folder / "config.json").is_file():
        return "exported"
    raise FileNotFoundError(f"{folder}: not an MSD model folder (expected run.json from `nerlib msd train-*`, "
                            "an MSD model's config.json, or config.json from `nerlib msd export`)")


class Tagger:
    """An MSD model (run, saved or exported folder) that tags word lists and raw text."""

    def __init__(self, model: Any, tokenizer: Any, kind: str, max_length: int = 512, batch_size: int = 32,
                 info: dict | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_length = max_length
        self.batch_size = batch_size
        self.info = info or {}

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: Any = None, **kwargs: Any) -> "Tagger":
        """Load ``folder`` (see :func:`model_kind`) on ``device`` (default :func:`nerlib.device.get_device`)."""
        from nerlib.device import get_device

        folder = Path(folder)
        kind = model_kind(folder)
        info: dict = {}
        if kind == "exported":
            from transformers import AutoModelForTokenClassification, AutoTokenizer

            model = AutoModelForTokenClassification.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            from nerlib.models import load_tokenizer
            from nerlib.msd.runs import load_run

            if kind == "run":
                model, info = load_run(folder)
                encoder = info["encoder"]
            else:
                from nerlib.msd.model import MultiExitTokenClassifier

                model = MultiExitTokenClassifier.from_pretrained(folder)
                encoder = str(folder) if (folder / "tokenizer_config.json").is_file() else model.config.encoder
            tokenizer = load_tokenizer(str(encoder))
        device = device if hasattr(device, "type") else get_device(device)
        return cls(model.to(device).eval(), tokenizer, kind, info=info, **kwargs)

    @property
    def labels(self) -> list[str]:
        """The tag names, index = class id."""
        if self.kind == "exported":
            return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        return list(self.model.labels)

    @property
    def entity_types(self) -> list[str]:
        """The entity types the model tags (``PER``, ``LOC``, ...)."""
        return sorted({t[2:] for t in self.labels if t != "O"})

    def tag_words(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """IOB2 tags for every word of every sentence (the last exit for MSD models)."""
        if not sentences:
            return []
        if self.kind == "exported":
            return first_subword_tags(self.model, self.tokenizer, sentences, self.max_length, self.batch_size)
        from nerlib.msd.predict import predict_tags

        return [list(t) for t in predict_tags(self.model, self.tokenizer, [list(s) for s in sentences],
                                              self.max_length, self.batch_size)]

    def tag(self, text: str) -> dict:
        """``{"text", "tokens", "tags", "entities": [{"type", "text", "start", "end"}]}`` for raw ``text``
        (split into CoNLL-style words and sentences; offsets index ``text``)."""
        from nerlib.data.tags import bio_to_spans

        words = split_words(text)
        tokens = [w for w, _, _ in words]
        tags: list[str] = []
        for a, b in split_sentences(tokens):
            tags += self.tag_words([tokens[a:b]])[0]
        entities = []
        for start, end, etype in bio_to_spans(tags):
            s, e = words[start][1], words[end - 1][2]
            entities.append({"type": etype, "text": text[s:e], "start": s, "end": e})
        return {"text": text, "tokens": tokens, "tags": tags, "entities": entities}

    __call__ = tag


def tag_texts(model: str | Path, texts: Iterable[str], **kwargs: Any) -> Iterator[dict]:
    """Command-line entry (``nerlib msd tag``): one result per text."""
    tagger = Tagger.from_pretrained(model, **kwargs)
    for t in texts:
        yield tagger.tag(t)


def _percent(scores: dict) -> dict:
    out = {k: round(100 * v, 2) for k, v in scores.items() if k in ("precision", "recall", "f1")}
    if "per_type" in scores:
        out["per_type"] = {t: _percent(v) for t, v in scores["per_type"].items()}
    return out


def evaluate_dataset(model: str | Path, dataset: str, split: str = "test", limit: int | None = None,
                     **kwargs: Any) -> dict:
    """Command-line entry (``nerlib msd evaluate``): strict (seqeval) and partial (overlap) precision, recall and
    F1 in percent, per type, of a model folder on a registry dataset or a local JSONL/CoNLL file or folder. The
    dataset's types must be the model's (a local file's may be a subset): a mismatch raises naming both sets."""
    from nerlib.data.tags import bio_to_spans
    from nerlib.metrics import span_f1
    from nerlib.uniner.eval_data import read_bio

    tagger = Tagger.from_pretrained(model, **kwargs)
    name, examples, info = read_bio(dataset, split, limit)
    from nerlib.data.registry import REGISTRY

    model_types = set(tagger.entity_types)
    data_types = set(info.labels)  # a local folder: the types its files hold (a test split may miss a rare one)
    if not data_types <= model_types or (str(dataset) in REGISTRY and data_types != model_types):
        raise ValueError(f"dataset {name!r} ({split}) has entity types {sorted(data_types)} but the model {model} "
                         f"tags {sorted(model_types)}: the label sets must agree")
    gold = [ex["ner_tags"] for ex in examples]
    pred = tagger.tag_words([ex["tokens"] for ex in examples])
    gold_spans = [bio_to_spans(g) for g in gold]
    pred_spans = [bio_to_spans(p) for p in pred]
    return {"model": str(model), "dataset": name, "split": split, "sentences": len(examples),
            "strict": _percent(span_f1(gold_spans, pred_spans)),
            "partial": _percent(span_f1(gold_spans, pred_spans, partial=True))}


__all__ = ["Tagger", "evaluate_dataset", "first_subword_tags", "model_kind", "repair_iob2", "split_sentences",
           "split_words", "tag_texts"]
