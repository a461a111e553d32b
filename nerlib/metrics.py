"""How NER is scored: span F1 (strict or partial), the UniversalNER answer parser and string F1, and
entity-level F1 on BIO tags (agreeing with ``seqeval``).

* **Span F1** compares ``(start, end, type)`` spans sentence by sentence. Micro precision = matched / predicted,
  recall = matched / gold, F1 their harmonic mean. With ``partial=True`` a prediction of the right type that
  overlaps a still-unmatched gold span earns 0.5 (exact matches are credited first, then overlaps greedily, and
  each gold span at most once).
* **String F1** is UniversalNER's metric: the model answers each "What describes *type* in the text?" query with
  a JSON list of mention strings; answers are parsed (:func:`parse_answer`), normalised SQuAD-style
  (:func:`normalize_answer`), de-duplicated, and a predicted string counts when it equals a gold string of the
  same query. Counts are summed over all queries (micro).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any, Sequence

from nerlib.data.tags import Span, bio_to_spans

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def prf(tp: float, n_gold: int, n_pred: int) -> dict:
    """Precision, recall and F1 from counts (0.0 where a denominator is 0)."""
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "n_gold": n_gold, "n_pred": n_pred}


def _match_spans(gold: Sequence[Span], pred: Sequence[Span], partial: bool) -> list[tuple[Span, float]]:
    """Credit of every predicted span of one sentence: 1 for an exact match, 0.5 for a same-type overlap with a
    gold span left unmatched (``partial`` only), else 0. Each gold span is credited at most once."""
    gold_left = list(gold)
    credit = [0.0] * len(pred)
    for i, p in enumerate(pred):  # exact matches first
        if p in gold_left:
            gold_left.remove(p)
            credit[i] = 1.0
    if partial:
        for i, (ps, pe, pt) in enumerate(pred):
            if credit[i]:
                continue
            for g in gold_left:
                gs, ge, gt = g
                if gt == pt and ps < ge and gs < pe:
                    gold_left.remove(g)
                    credit[i] = 0.5
                    break
    return list(zip(pred, credit))


def _check_spans(sentences: object, name: str) -> list[list[Span]]:
    """Sentences of spans as lists of ``(start, end, type)`` tuples; spans read back from JSON (lists) become
    tuples, so they compare equal to tuple spans. Anything else raises ``TypeError``/``ValueError`` naming
    ``name[i][j]``: a span needs integer ``0 <= start < end`` and a string type."""
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise TypeError(f"{name} must be a list of sentences (lists of spans), got {type(sentences).__name__}")
    out = []
    for i, spans in enumerate(sentences):
        if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence):
            raise TypeError(f"{name}[{i}] must be a list of (start, end, type) spans, got {type(spans).__name__}")
        sentence = []
        for j, span in enumerate(spans):
            if isinstance(span, (str, bytes)) or not isinstance(span, Sequence) or len(span) != 3:
                raise TypeError(f"{name}[{i}][{j}] must be a (start, end, type) span, got {span!r}")
            start, end, label = span
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
            if not ints or not isinstance(label, str):
                raise TypeError(f"{name}[{i}][{j}] must be (int start, int end, str type), got {span!r}")
            if start < 0 or end <= start:
                raise ValueError(f"{name}[{i}][{j}] = {tuple(span)!r}: a span needs 0 <= start < end (end exclusive)")
            sentence.append((start, end, label))
        out.append(sentence)
    return out


def span_f1(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], partial: bool = False) -> dict:
    """Micro precision/recall/F1 over sentences of gold and predicted spans, plus ``per_type`` (same keys).

    ``gold[i]`` and ``pred[i]`` are the spans ``(start, end_exclusive, type)`` of sentence ``i``. A sentence may
    repeat a span; each copy must then be matched separately.

    >>> r = span_f1([[(0, 2, "PER"), (3, 4, "LOC")]], [[(0, 2, "PER"), (3, 5, "LOC")]])
    >>> r["precision"], r["recall"]
    (0.5, 0.5)
    >>> span_f1([[(0, 2, "PER"), (3, 4, "LOC")]], [[(0, 2, "PER"), (3, 5, "LOC")]], partial=True)["f1"]
    0.75
    """
    gold, pred = _check_spans(gold, "gold"), _check_spans(pred, "pred")
    if len(gold) != len(pred):
        raise ValueError(f"span_f1: {len(gold)} gold sentences but {len(pred)} predicted sentences")
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g, p in zip(gold, pred):
        n_gold.update(t for _, _, t in g)
        n_pred.update(t for _, _, t in p)
        for (_, _, t), c in _match_spans(list(g), list(p), partial):
            tp[t] += c
    result = prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values()))
    result["per_type"] = {t: prf(tp[t], n_gold[t], n_pred[t]) for t in sorted(set(n_gold) | set(n_pred))}
    return result


def seqeval_f1(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision/recall/F1 (+ ``per_type``) on BIO tag sequences, as ``seqeval``'s default
    mode and ``conlleval`` compute it (ill-formed ``I-`` tags start entities; see :func:`bio_to_spans`)."""
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"seqeval_f1: {len(gold_tags)} gold sentences but {len(pred_tags)} predicted sentences")
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags)):
        if len(g) != len(p):
            raise ValueError(f"seqeval_f1: sentence {i} has {len(g)} gold tags but {len(p)} predicted tags")
    return span_f1([bio_to_spans(g) for g in gold_tags], [bio_to_spans(p) for p in pred_tags])


def normalize_answer(s: str) -> str:
    """SQuAD normalisation as in UniversalNER: lower-case, drop punctuation, drop the articles a/an/the,
    collapse whitespace.

    >>> normalize_answer("  The Beatles' (band)")
    'beatles band'
    """
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _as_text(item: object) -> str:
    """An answer item as text: strings as they are, numbers/booleans/null via ``str`` (so ``[1999]`` still
    matches a gold ``"1999"``), objects as compact JSON. (Nested lists cannot occur: the cut at the first ``]``
    leaves them unparsable, as in the official parser.)"""
    if isinstance(item, str):
        return item
    if isinstance(item, (int, float, bool)) or item is None:
        return str(item)
    return json.dumps(item, ensure_ascii=False)


def parse_answer(text: str, normalize: bool = True) -> tuple[list[str], bool]:
    """Parse a model's answer to one UniversalNER query into ``(mentions, parsed_ok)``.

    Behaves as the official parser: the answer (after stripping surrounding whitespace, which the official
    regex does not do) must start with ``[``; it is cut at the first ``]`` and read as JSON. Anything else
    (prose, an unclosed list, invalid JSON, a non-list) yields ``([], False)``; the flag lets callers count
    format failures, which the official script silently scores as empty answers. Items are normalised with
    :func:`normalize_answer` (unless ``normalize=False``) and de-duplicated in order; non-string items become
    text (see ``_as_text``) where the official parser would give up on the whole answer.

    >>> parse_answer('["Gaussian mixture model", "the BERT"] and more')
    (['gaussian mixture model', 'bert'], True)
    >>> parse_answer("The entities are BERT and ELMo.")
    ([], False)
    """
    match = re.match(r"\[[^\]]*\]", text.strip())
    if not match:
        return [], False
    try:
        items = json.loads(match.group())
    except json.JSONDecodeError:
        return [], False
    out: list[str] = []
    for item in items:
        s = _as_text(item)
        s = normalize_answer(s) if normalize else s.strip()
        if s not in out:
            out.append(s)
    return out, True


def _dedupe_normalized(items: Sequence[str], name: str) -> list[str]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        # a bare string would be scored letter by letter: "Paris" against "Spain" shares four letters
        raise TypeError(f"string_f1: {name} must be a list of strings, got {type(items).__name__} {items!r:.60}")
    out: list[str] = []
    for j, s in enumerate(items):
        if not isinstance(s, str):
            raise TypeError(f"string_f1: {name}[{j}] must be a string, got {s!r}")
        n = normalize_answer(s)
        if n not in out:
            out.append(n)
    return out


def string_f1(gold_lists: Sequence[Sequence[str]], pred_lists: Sequence[Sequence[str]], partial: bool = False) -> dict:
    """UniversalNER's micro string F1 over queries: ``gold_lists[i]`` and ``pred_lists[i]`` are the mention
    strings answering query ``i``. Both sides are normalised and de-duplicated; a prediction counts 1 when it
    equals a gold string. With ``partial=True`` a prediction left unmatched earns 0.5 when it shares at least one
    word with a gold string left unmatched (greedily, each gold string at most once).

    >>> string_f1([["New York", "Paris"]], [["new york", "York City", "Rome"]])["f1"]
    0.4
    >>> string_f1([["New York", "Paris"]], [["new york", "York City", "Rome"]], partial=True)["tp"]
    1.0
    """
    for name, lists in (("gold_lists", gold_lists), ("pred_lists", pred_lists)):
        if isinstance(lists, (str, bytes)) or not isinstance(lists, Sequence):
            raise TypeError(f"string_f1: {name} must be a list of lists of strings, got {type(lists).__name__}")
    if len(gold_lists) != len(pred_lists):
        raise ValueError(f"string_f1: {len(gold_lists)} gold answers but {len(pred_lists)} predicted answers")
    tp = 0.0
    n_gold = n_pred = 0
    for i, (gold, pred) in enumerate(zip(gold_lists, pred_lists)):
        g, p = _dedupe_normalized(gold, f"gold_lists[{i}]"), _dedupe_normalized(pred, f"pred_lists[{i}]")
        n_gold += len(g)
        n_pred += len(p)
        gold_left = list(g)
        unmatched = []
        for s in p:
            if s in gold_left:
                gold_left.remove(s)
                tp += 1.0
            else:
                unmatched.append(s)
        if partial:
            for s in unmatched:
                words = set(s.split())
                for gs in gold_left:
                    if words & set(gs.split()):
                        gold_left.remove(gs)
                        tp += 0.5
                        break
    return prf(tp, n_gold, n_pred)


def score_answers(gold_texts: Sequence[str], pred_texts: Sequence[str], partial: bool = False) -> dict:
    """Score raw answers as the official UniversalNER script does: parse both sides with :func:`parse_answer`,
    then :func:`string_f1`. Adds ``parse_failures`` (predictions that were not a JSON list), ``n_queries``,
    ``missed_queries`` (the gold names mentions, the prediction none) and ``invented_queries`` (the gold names none,
    the prediction some); a gold answer that does not parse is a data error and raises ``ValueError`` naming its
    index."""
    if len(gold_texts) != len(pred_texts):
        raise ValueError(f"score_answers: {len(gold_texts)} gold answers but {len(pred_texts)} predictions")
    golds, preds, failures = [], [], 0
    for i, (g, p) in enumerate(zip(gold_texts, pred_texts)):
        gold, ok = parse_answer(g)
        if not ok:
            raise ValueError(f"score_answers: gold answer {i} is not a JSON list: {g!r}")
        pred, ok = parse_answer(p)
        failures += not ok
        golds.append(gold)
        preds.append(pred)
    result = string_f1(golds, preds, partial=partial)
    result.update(parse_failures=failures, n_queries=len(gold_texts),
                  missed_queries=sum(bool(g) and not p for g, p in zip(golds, preds)),
                  invented_queries=sum(bool(p) and not g for g, p in zip(golds, preds)))
    return result


def _resampled_mean_f1(systems: Sequence[Sequence[Sequence[tuple[float, int, int]]]], n_resamples: int,
                       seed: int) -> list[Any]:
    """Micro F1 per group, averaged over groups, for ``n_resamples`` resamples of the units of every group: one
    array per system, all systems scored on the *same* draws (so differences between them are paired)."""
    import numpy as np

    first = systems[0]
    if not first or any(len(group) == 0 for group in first):
        raise ValueError("bootstrap: every group needs at least one unit")
    for other in systems[1:]:
        if [len(g) for g in other] != [len(g) for g in first]:
            raise ValueError("bootstrap: paired systems must have the same groups and units (the same passages), "
                             f"got {[len(g) for g in first]} and {[len(g) for g in other]} units per group")
    rng = np.random.default_rng(seed)
    out = [np.zeros(n_resamples) for _ in systems]
    for d in range(len(first)):
        draws = rng.integers(0, len(first[d]), size=(n_resamples, len(first[d])))
        for f1s, counts in zip(out, systems):
            tp, n_gold, n_pred = (np.asarray(counts[d], dtype=float)[draws].sum(axis=1)).T  # units x (tp, gold, pred)
            with np.errstate(divide="ignore", invalid="ignore"):
                f1s += np.where(n_gold + n_pred > 0, 2 * tp / (n_gold + n_pred), 0.0)
    return [f1s / len(first) for f1s in out]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"bootstrap: level must be between 0 and 1, got {level}")


def bootstrap_f1(
    counts: Sequence[Sequence[tuple[float, int, int]]],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of micro F1 over resampled units (passages), as ``(low, high)`` in [0, 1].

    ``counts[d]`` holds one ``(tp, n_gold, n_pred)`` per unit of group ``d`` (a CrossNER domain); each resample draws
    every group's units with replacement and scores micro F1 per group. With one group the interval is that group's
    F1; with several it is the interval of their mean F1 (the average row of a results table). Units are whole
    passages because a passage's questions share its text and are not independent. Reproducible in ``seed``."""
    import numpy as np

    _check_level(level)
    (f1s,) = _resampled_mean_f1([counts], n_resamples, seed)
    low, high = np.quantile(f1s, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_bootstrap_difference(
    counts_a: Sequence[Sequence[tuple[float, int, int]]],
    counts_b: Sequence[Sequence[tuple[float, int, int]]],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean-over-groups F1 of system a minus system b on the same units, with a paired percentile bootstrap
    interval: ``(difference, low, high)`` in [-1, 1].

    Both systems answered the same passages, so each resample draws the same passages for both; the interval is
    then that of the *difference*, much narrower than two separate intervals when the systems err on the same
    passages. An interval above 0 says a beats b on passages like these (not on other domains or other seeds)."""
    import numpy as np

    _check_level(level)
    a, b = _resampled_mean_f1([counts_a, counts_b], n_resamples, seed)
    low, high = np.quantile(a - b, [(1 - level) / 2, (1 + level) / 2])
    return _mean_f1(counts_a) - _mean_f1(counts_b), float(low), float(high)


def _mean_f1(counts: Sequence[Sequence[tuple[float, int, int]]]) -> float:
    """Micro F1 of each group's summed units, averaged over groups (the statistic the bootstrap resamples)."""
    total = 0.0
    for group in counts:
        tp = sum(u[0] for u in group)
        n = sum(u[1] + u[2] for u in group)
        total += 2 * tp / n if n > 0 else 0.0
    return total / len(counts)
