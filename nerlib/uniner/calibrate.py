"""Calibrating the empty answer: how much more than any other answer the student must prefer ``[]`` to say it.

The error analysis (chapters 3 and 4) shows that the student misses about four in ten questions whose gold names
mentions: it answers ``[]``. One number moves that prior without training again: a **bias** ``b`` subtracted
from the logit of the token at which the empty answer leaves every non-empty one (the :class:`Decision`: for
``smollm2`` the single token `` []``, which no non-empty list starts with). Greedy decoding with that bias
changes an answer only where the greedy answer took the decision token with a *margin* (its logit minus the best
other token's) below ``b``; there it takes the best other token instead and decodes greedily on from it: the
*forced* answer. Everything after the decision step is unbiased, so from each question's margin and forced answer,
:func:`apply_bias` gives the answers greedy decoding with any bias up to ``max_bias`` would give, without decoding
again (tested against decoding with the bias as a logits processor). So a whole curve of biases costs one pass,
and the bias is chosen on validation passages (:func:`choose_bias`), never on the test passages.

:func:`answer_with_bias` answers with a chosen bias (what an extractor uses); :func:`predict_margins` records the
margins and forced answers of an evaluation set (cached, resumable); :func:`bias_curve` scores every bias.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from nerlib.runs import AppendLog
from nerlib.uniner.conversations import Segment, answer_text, eos_string, tokenize_segments
from nerlib.uniner import infer


@dataclass(frozen=True)
class Decision:
    """Where the empty answer leaves the non-empty ones: after the tokens ``before`` (shared with a non-empty
    answer; usually none), the empty answer's next token is ``token``."""

    before: tuple[int, ...]
    token: int


@functools.lru_cache(maxsize=8)
def _empty_decision(tokenizer: Any, eos: str) -> Decision:
    def ids(mentions: list[str]) -> list[int]:
        return tokenize_segments([Segment(answer_text(mentions, eos), True)], tokenizer, leading_specials=False)[0]

    empty, other = ids([]), ids(["x"])
    k = 0
    while k < min(len(empty), len(other)) and empty[k] == other[k]:
        k += 1
    if k >= len(empty):
        raise ValueError(f"the empty answer's tokens {empty} are a prefix of a non-empty answer's {other}: "
                         "no token decides the empty answer")
    return Decision(tuple(empty[:k]), empty[k])


def empty_decision(tokenizer: Any, eos: str | None = None) -> Decision:
    """The :class:`Decision` of ``tokenizer``'s empty answer, found by tokenizing the answer turns ``[]`` and
    ``["x"]`` as training does and taking the first token where they differ."""
    return _empty_decision(tokenizer, eos_string(tokenizer, eos))


@torch.no_grad()
def _passage_margins(model: Any, tokenizer: Any, passage: str, entity_types: Sequence[str], max_new_tokens: int,
                     max_bias: float, eos: str | None, decision: Decision, dataset: str | None = None,
                     ) -> list[dict]:
    enc = infer.encode_prompts(tokenizer, passage, entity_types, dataset, eos)
    ends, brackets = infer.stop_ids(tokenizer, eos)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prefix_cache = infer.encode_prefix(model, enc.prefix)
    before = list(decision.before)
    tail = len(before) + 1
    logits, _, _, _ = infer.continue_batch(model, [s + before for s in enc.suffixes], prefix_cache,
                                           len(enc.prefix), pad, tail=tail)
    out, forced_rows, forced_first = [], [], []
    for i in range(len(entity_types)):
        greedy = logits[i].argmax(dim=-1).tolist()
        if greedy[:-1] != before:  # greedy decoding never reaches the decision step
            out.append({"margin": None, "forced": None})
            continue
        row = logits[i, -1].clone()
        chosen = row[decision.token].item()
        row[decision.token] = float("-inf")
        margin = chosen - row.max().item()
        out.append({"margin": margin, "forced": None})
        if 0 <= margin < max_bias:
            forced_rows.append(i)
            forced_first.append(int(row.argmax().item()))
    # the forced answers: from the best other token at the decision step on, plain greedy decoding
    todo = [(i, t) for i, t in zip(forced_rows, forced_first) if t not in ends and t not in brackets]
    rest = infer.greedy_continue_batch(
        model, [enc.suffixes[i] + before + [t] for i, t in todo], prefix_cache, len(enc.prefix),
        max_new_tokens - tail, ends, brackets, pad) if todo and max_new_tokens > tail else [[] for _ in todo]
    continued = {i: r for (i, _), r in zip(todo, rest)}
    for i, t in zip(forced_rows, forced_first):
        ids = before + ([] if t in ends else [t]) + continued.get(i, [])
        out[i]["forced"] = infer.decode_answer(tokenizer, ids)
    return out


def empty_margins(model: Any, tokenizer: Any, passage: str, entity_types: Sequence[str], max_new_tokens: int = 64,
                  max_bias: float = 8.0, eos: str | None = None, decision: Decision | None = None,
                  dataset: str | None = None) -> list[dict]:
    """For each question about ``passage``: ``margin``, by how much (in logits) greedy decoding preferred the
    decision token over the best other one (``None`` where it never reaches the decision step; negative where it
    reaches it and takes another token), and ``forced``, the answer greedy decoding gives with the decision token
    barred at that step (only where ``0 <= margin < max_bias``, the answers a bias below ``max_bias`` changes;
    ``None`` elsewhere)."""
    if max_bias < 0:
        raise ValueError(f"max_bias must be >= 0, got {max_bias}")
    if not entity_types:
        return []
    return _passage_margins(model, tokenizer, passage, entity_types, max_new_tokens, max_bias, eos,
                            decision or empty_decision(tokenizer, eos), dataset)


def biased_answer(answer: str, choice: Mapping[str, Any], bias: float) -> str:
    """The answer greedy decoding gives with ``bias`` subtracted from the decision token's logit, from the
    unbiased ``answer`` and its :func:`empty_margins` record."""
    margin = choice.get("margin")
    if margin is None or not 0 <= margin < bias:
        return answer
    if choice.get("forced") is None:
        raise ValueError(f"bias {bias} changes an answer of margin {margin:.3f} whose forced answer was not "
                         "computed: record the margins with a larger max_bias")
    return choice["forced"]


def apply_bias(answers: Mapping[str, str], choices: Mapping[str, Mapping[str, Any]], bias: float) -> dict[str, str]:
    """Every answer (by record id) as greedy decoding with ``bias`` gives it; ``bias=0`` returns the answers."""
    missing = [rid for rid in answers if rid not in choices]
    if missing:
        raise ValueError(f"no margin recorded for {len(missing)} answers (first: {missing[0]})")
    return {rid: biased_answer(a, choices[rid], bias) for rid, a in answers.items()}


def answer_with_bias(model: Any, tokenizer: Any, passage: str, entity_types: Sequence[str], bias: float,
                     max_new_tokens: int = 64, eos: str | None = None, dataset: str | None = None,
                     max_length: int | None = None) -> list[str]:
    """Answer every type question about ``passage`` greedily with the empty answer's decision token ``bias``
    logits less likely (``bias=0``: the plain answers of :func:`nerlib.uniner.infer.answer`)."""
    plain = infer.answer_shared_prefix(model, tokenizer, passage, entity_types, dataset, max_new_tokens, eos,
                                       max_length)
    if bias == 0:
        return plain
    choices = empty_margins(model, tokenizer, passage, entity_types, max_new_tokens, bias, eos, dataset=dataset)
    return [biased_answer(a, c, bias) for a, c in zip(plain, choices)]


def _check_record(record: Any, where: str) -> None:
    if not (isinstance(record, dict) and isinstance(record.get("id"), str) and "margin" in record
            and "forced" in record):
        raise ValueError(f"{where}: not a margin record (expected {{'id': str, 'margin': ..., 'forced': ...}})")


def predict_margins(model: Any, tokenizer: Any, passages: Sequence[Any], max_new_tokens: int = 64,
                    max_bias: float = 8.0, cache: str | Path | None = None, progress: bool = True,
                    eos: str | None = None) -> dict[str, dict]:
    """:func:`empty_margins` of every question of the evaluation ``passages`` (:class:`EvalPassage`), by record id;
    with ``cache`` (a JSONL file, one per ``max_bias``) the records are appended as they are made and reused."""
    from tqdm.auto import tqdm

    log = AppendLog(cache, check=_check_record) if cache is not None else None
    done = {r["id"]: {"margin": r["margin"], "forced": r["forced"]} for r in log} if log is not None else {}
    decision = empty_decision(tokenizer, eos)
    for p in tqdm(passages, desc="margins", disable=not progress):
        todo = [q for q in p.queries if q.id not in done]
        if not todo:
            continue
        made = empty_margins(model, tokenizer, p.passage, [q.entity_type for q in todo], max_new_tokens, max_bias,
                             eos, decision)
        for q, c in zip(todo, made):
            done[q.id] = c
        if log is not None:
            log.append(*({"id": q.id, **c} for q, c in zip(todo, made)))
    return done


def bias_curve(passages: Mapping[str, Sequence[Any]], answers: Mapping[str, Mapping[str, str]],
               choices: Mapping[str, Mapping[str, Mapping[str, Any]]], biases: Sequence[float]) -> "Any":
    """Score the answers of every domain at every bias: a ``pandas.DataFrame`` with one row per bias and the
    average over domains of strict F1, the share of ``[]`` answers, the missed and invented shares (percent, as
    :func:`nerlib.uniner.evaluate.evaluate_domains` reports them) and the share of answers the bias changed."""
    import pandas as pd

    from nerlib.metrics import score_answers

    def percent(part: int, whole: int) -> float:
        return 100 * part / whole if whole else float("nan")

    rows = []
    for b in biases:
        per_domain = []
        for domain, ps in passages.items():
            biased = apply_bias(answers[domain], choices[domain], b)
            queries = [q for p in ps for q in p.queries]
            preds = [biased[q.id] for q in queries]
            s = score_answers([q.gold for q in queries], preds)
            empty_golds = sum(q.gold.strip() == "[]" for q in queries)
            per_domain.append({
                "f1": 100 * s["f1"],
                "empty_pred_share": percent(sum(a.strip() == "[]" for a in preds), len(queries)),
                "missed_share": percent(s["missed_queries"], len(queries) - empty_golds),
                "invented_share": percent(s["invented_queries"], empty_golds),
                "changed_share": percent(sum(biased[q.id] != answers[domain][q.id] for q in queries), len(queries)),
            })
        rows.append({"bias": b, **pd.DataFrame(per_domain).mean().round(2).to_dict()})
    return pd.DataFrame(rows).set_index("bias")


def forced_answers(passages: Mapping[str, Sequence[Any]], answers: Mapping[str, Mapping[str, str]],
                   choices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict:
    """How right the student's second choice is where it answered ``[]``: over all domains, the questions answered
    ``[]`` that have a forced answer, split by the gold. ``missed`` (the gold names mentions): how many, and the
    strict precision, recall and F1 (percent) of their forced answers against the gold, and the percent whose
    forced answer names at least one gold mention; ``empty`` (the gold is ``[]``): how many, and the percent whose
    forced answer names something (an invention at any bias that flips it). If a bias is to fix the misses, the
    forced answers of the missed questions must be mostly right."""
    from nerlib.metrics import parse_answer, score_answers

    golds, forced, empty, invented = [], [], 0, 0
    for domain, ps in passages.items():
        for q in (q for p in ps for q in p.queries):
            c = choices[domain].get(q.id, {})
            if answers[domain][q.id].strip() != "[]" or c.get("forced") is None:
                continue
            if q.gold.strip() == "[]":
                empty += 1
                invented += bool(parse_answer(c["forced"])[0])
            else:
                golds.append(q.gold)
                forced.append(c["forced"])
    s = score_answers(golds, forced) if golds else {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    hits = sum(bool(set(parse_answer(f)[0]) & set(parse_answer(g)[0])) for g, f in zip(golds, forced))
    return {"missed": len(golds), "precision": 100 * s["precision"], "recall": 100 * s["recall"],
            "f1": 100 * s["f1"], "with_a_gold_mention": 100 * hits / len(golds) if golds else float("nan"),
            "empty": empty, "invented": 100 * invented / empty if empty else float("nan")}


def choose_bias(curve: "Any") -> float:
    """The bias of highest average strict F1 on ``curve`` (a :func:`bias_curve` of validation passages); among
    equal scores the smallest bias, so the answers change no more than needed."""
    best = curve["f1"].max()
    return float(min(b for b, f in curve["f1"].items() if f == best))




def plot_bias_curve(curves: Mapping[str, Any], chosen: float | None = None, axes: Any = None) -> Any:
    """Strict F1 (left) and the missed and invented shares (right) against the bias, one line per
    :func:`bias_curve` in ``curves`` (label -> curve), with the ``chosen`` bias marked. Returns the two axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = ["-", "--", ":", "-."]
    for i, (label, curve) in enumerate(curves.items()):
        style = styles[i % len(styles)]
        axes[0].plot(curve.index, curve["f1"], style, marker=".", label=label)
        axes[1].plot(curve.index, curve["missed_share"], style, color="tab:red", label=f"missed, {label}")
        axes[1].plot(curve.index, curve["invented_share"], style, color="tab:blue", label=f"invented, {label}")
    for ax in axes:
        if chosen is not None:
            ax.axvline(chosen, color="grey", lw=1)
        ax.set_xlabel("bias against the empty answer (logits)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("average strict F1 (%)")
    axes[1].set_ylabel("% of questions")
    axes[0].set_title("Strict F1 by bias" + (f" (chosen: {chosen:g})" if chosen is not None else ""))
    axes[1].set_title("Questions missed (gold has mentions) and invented (gold [])")
    return axes


__all__ = ["Decision", "answer_with_bias", "apply_bias", "bias_curve", "biased_answer", "choose_bias",
           "empty_decision", "empty_margins", "forced_answers", "plot_bias_curve", "predict_margins"]
