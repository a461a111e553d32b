"""A memorising baseline: tag every word sequence that was an entity in the training data.

Not a method of either paper; chapter 1 uses it to have *real* predictions to score, and because its typical
mistakes (right words, wrong boundaries: "New York" inside "New York Times") show what partial-match F1 forgives.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from nerlib.data.registry import load
from nerlib.data.tags import Span, bio_to_spans, spans_to_bio
from nerlib.metrics import span_f1


@dataclass
class Gazetteer:
    """Entity strings (as token tuples) mapped to their most frequent type in the training data."""

    entries: dict[tuple[str, ...], str] = field(default_factory=dict)
    max_words: int = 0
    lowercase: bool = False

    @classmethod
    def fit(cls, tokens: Iterable[Sequence[str]], tags: Iterable[Sequence[str]], lowercase: bool = False) -> "Gazetteer":
        """Collect every gold entity mention; a mention seen with several types keeps the most frequent one
        (ties: the alphabetically first, for determinism)."""
        seen: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        for toks, tgs in zip(tokens, tags, strict=True):
            for start, end, etype in bio_to_spans(tgs):
                key = tuple(t.lower() if lowercase else t for t in toks[start:end])
                seen[key][etype] += 1
        entries = {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in seen.items()}
        return cls(entries, max((len(k) for k in entries), default=0), lowercase)

    def spans(self, tokens: Sequence[str]) -> list[Span]:
        """Greedy left-to-right longest match of known mentions."""
        toks = [t.lower() if self.lowercase else t for t in tokens]
        out: list[Span] = []
        i = 0
        while i < len(toks):
            for n in range(min(self.max_words, len(toks) - i), 0, -1):
                etype = self.entries.get(tuple(toks[i : i + n]))
                if etype is not None:
                    out.append((i, i + n, etype))
                    i += n
                    break
            else:
                i += 1
        return out


@dataclass(frozen=True)
class GazetteerScores:
    """A gazetteer's predictions on a test set and their strict and partial :func:`~nerlib.metrics.span_f1`."""

    strict: dict
    partial: dict
    gold_tags: list[list[str]]
    predicted_tags: list[list[str]]

    def f1(self, digits: int = 3) -> dict[str, float]:
        """Overall F1, strict and partial."""
        return {"strict": round(self.strict["f1"], digits), "partial": round(self.partial["f1"], digits)}

    def per_type_f1(self) -> dict[str, dict[str, float]]:
        """F1 of each gold or predicted type, strict and partial: ``{type: {"strict": f1, "partial": f1}}``."""
        return {t: {"strict": self.strict["per_type"][t]["f1"], "partial": self.partial["per_type"][t]["f1"]}
                for t in self.strict["per_type"]}


def gazetteer_scores(name: str, train_sentences: int | None = None, test_sentences: int | None = None,
                     lowercase: bool = False) -> GazetteerScores:
    """Fit a :class:`Gazetteer` on the first ``train_sentences`` training sentences of dataset ``name``, tag its
    first ``test_sentences`` test sentences and score the predictions (chapter 1's baseline; ``None``: all)."""
    train = load(name, "train", limit=train_sentences)
    test = load(name, "test", limit=test_sentences)
    gaz = Gazetteer.fit(train["tokens"], train["ner_tags"], lowercase=lowercase)
    gold = [bio_to_spans(tags) for tags in test["ner_tags"]]
    pred = [gaz.spans(tokens) for tokens in test["tokens"]]
    return GazetteerScores(span_f1(gold, pred), span_f1(gold, pred, partial=True), list(test["ner_tags"]),
                           [spans_to_bio(spans, len(tokens)) for spans, tokens in zip(pred, test["tokens"])])
