"""Tag schemes and spans: IOB1 to IOB2, BIO tags to entity spans and back, spans to mention strings.

A *span* is ``(start, end, type)`` over token positions with ``end`` exclusive, e.g. tokens
``["Peter", "Blackburn", "visited", "Paris"]`` tagged ``B-PER I-PER O B-LOC`` hold the spans
``[(0, 2, "PER"), (3, 4, "LOC")]``.

Reading tags into spans follows the CoNLL ``conlleval`` convention that ``seqeval`` also uses (its default,
non-strict mode): an ``I-X`` that does not continue an ``X`` entity starts a new one. Model predictions are
often ill-formed in exactly this way, and gold files never are (the readers in :mod:`nerlib.data.io` reject such
gold sequences), so both sides are scored the way the literature scores them.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

Span = tuple[int, int, str]

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", None)``. Raises ``ValueError`` for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not etype:
        raise ValueError(f"invalid tag {tag!r}: expected 'O', 'B-<type>' or 'I-<type>'")
    return prefix, etype


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 tags (``B-`` only between two adjacent entities of the same type) to IOB2 (every entity
    starts with ``B-``). An ``I-X`` becomes ``B-X`` when the previous tag is ``O`` or of another type.

    >>> iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC']
    """
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        prefix, etype = split_tag(tag)
        if prefix == "I" and etype != prev_type:
            out.append(f"B-{etype}")
        else:
            out.append(tag)
        prev_type = etype
    return out


def tag_names(types: Iterable[str]) -> list[str]:
    """The IOB2 tag inventory of entity ``types``: ``O``, then ``B-`` and ``I-`` of each type in the order given
    (a stable order for label ids, the one :attr:`nerlib.data.registry.DatasetInfo.tag_names` uses).

    >>> tag_names(["LOC", "PER"])
    ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Predicted tags made well-formed IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X`` (the
    usual decoding convention; the spans are those :func:`bio_to_spans` reads). Unlike :func:`iob1_to_iob2` it
    does not validate the tag names: a model's label set is trusted.

    >>> repair_iob2(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"])
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-ORG']
    """
    out, previous = [], OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def invalid_iob2_position(tags: Sequence[str]) -> int | None:
    """Index of the first tag that breaks IOB2 (an unknown tag, or ``I-X`` not preceded by ``B-X``/``I-X``),
    or ``None`` when the sequence is valid IOB2. Used to validate gold files."""
    prev_type: str | None = None
    for i, tag in enumerate(tags):
        try:
            prefix, etype = split_tag(tag)
        except ValueError:
            return i
        if prefix == "I" and etype != prev_type:
            return i
        prev_type = etype
    return None


def bio_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans ``(start, end_exclusive, type)`` of a BIO tag sequence, in order.

    ``B-X`` always starts an entity; ``I-X`` continues an open ``X`` entity and otherwise starts a new one
    (conlleval/seqeval convention).

    >>> bio_to_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    [(0, 2, 'PER'), (3, 4, 'LOC'), (4, 5, 'LOC'), (5, 6, 'ORG')]
    """
    spans: list[Span] = []
    start: int | None = None
    cur: str | None = None
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        continues = prefix == "I" and etype == cur
        if start is not None and not continues:
            spans.append((start, i, cur))  # type: ignore[arg-type]
            start, cur = None, None
        if prefix in ("B", "I") and not continues:
            start, cur = i, etype
    if start is not None:
        spans.append((start, len(tags), cur))  # type: ignore[arg-type]
    return spans


def spans_to_bio(spans: Iterable[Span], n: int) -> list[str]:
    """IOB2 tags for ``n`` tokens holding ``spans``. Spans must lie inside ``[0, n)``, be non-empty and must not
    overlap (flat NER); otherwise ``ValueError`` names the offending span.

    >>> spans_to_bio([(0, 2, "PER"), (3, 4, "LOC")], 5)
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'O']
    """
    tags = [OUTSIDE] * n
    for span in sorted(spans):
        start, end, etype = span
        if not (0 <= start < end <= n):
            raise ValueError(f"span {span!r} is empty or outside a sentence of {n} tokens")
        if not isinstance(etype, str) or not etype:
            raise ValueError(f"span {span!r}: the type must be a non-empty string such as 'PER'")
        if any(t != OUTSIDE for t in tags[start:end]):
            raise ValueError(f"span {span!r} overlaps another span (nested entities are not supported)")
        tags[start] = f"B-{etype}"
        for i in range(start + 1, end):
            tags[i] = f"I-{etype}"
    return tags


def span_mentions(tokens: Sequence[str], spans: Iterable[Span]) -> list[tuple[str, str]]:
    """``(mention, type)`` for each span, the mention being its tokens joined by single spaces (the way the
    UniversalNER evaluation files write passages and answers).

    >>> span_mentions(["Peter", "Blackburn", "visited", "Paris"], [(0, 2, "PER"), (3, 4, "LOC")])
    [('Peter Blackburn', 'PER'), ('Paris', 'LOC')]
    """
    out = []
    for start, end, etype in spans:
        if not (0 <= start < end <= len(tokens)):
            raise ValueError(f"span {(start, end, etype)!r} is outside a sentence of {len(tokens)} tokens")
        out.append((" ".join(tokens[start:end]), etype))
    return out


def type_counts(tag_sequences: Iterable[Sequence[str]]) -> Counter:
    """How many entities of each type a collection of tag sequences holds (``Counter({"PER": 3, ...})``)."""
    counts: Counter = Counter()
    for tags in tag_sequences:
        counts.update(etype for _, _, etype in bio_to_spans(tags))
    return counts
