"""One type per mention: resolve a student's type confusions after it has answered every question of a passage.

UniversalNER asks one question per entity type, independently, so nothing stops the student from naming the same
mention under several types (*The Beatles* as a ``band`` and as a ``musical artist``). CrossNER's gold gives each
mention one type, so every extra type is a false positive: in our small profile about half of the student's false
positives are gold mentions of another type (``benchmarks/uniner_type_resolution.py``). This post-processing step
keeps such a mention only under the type for which the student was most confident when it wrote it: the mean
log-probability of the mention's tokens in its own answer, teacher-forced (one forward pass per answer that holds a
contested mention). Answers without contested mentions, and answers that do not parse, are left as they are.

It is not part of the paper's method; it uses only the student's own probabilities (no gold, no tuned threshold).
Measured on the small profile's frequency student it *lowers* strict F1 (-1.5 on CrossNER's validation passages,
-0.9 on the test ones): the student picks the gold type for only about 60% of contested mentions, often the more
general one, and at F1 near 0.3 a lost true positive costs as much as six removed false positives. It is therefore
an option (``resolve_types``, ``Extractor(one_type_per_mention=True)``), off by default.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerlib.metrics import normalize_answer, parse_answer


def contested(answers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Mentions (normalised as the metric compares them) that a passage's answers give under more than one type:
    ``{mention: [type, ...]}`` in question order. ``answers``: ``(type, raw answer text)`` per question (a type
    may be asked twice; it still counts once).

    >>> contested([("band", '["The Beatles", "Oasis"]'), ("musical artist", '["the beatles"]'), ("song", '[]')])
    {'beatles': ['band', 'musical artist']}
    """
    seen: dict[str, list[str]] = {}
    for entity_type, text in answers:
        mentions, ok = parse_answer(text)
        for m in mentions if ok else ():
            if m and entity_type not in seen.setdefault(m, []):
                seen[m].append(entity_type)
    return {m: types for m, types in seen.items() if len(types) > 1}


def mention_span(answer: str, mention: str) -> tuple[int, int] | None:
    """Character span of the raw item whose normalised form is ``mention`` inside ``answer`` (a JSON list as the
    student wrote it), or ``None`` if it cannot be found.

    >>> mention_span('["Oasis", "The Beatles"]', "beatles")
    (11, 22)
    """
    items, ok = parse_answer(answer, normalize=False)
    for item in items if ok else ():
        if normalize_answer(item) != mention:
            continue
        for written in (json.dumps(item, ensure_ascii=False), json.dumps(item)):
            start = answer.find(written)
            if start >= 0:
                return start + 1, start + len(written) - 1
    return None


def mention_logprob(model: Any, tokenizer: Any, passage: str, entity_type: str, answer: str,
                    spans: Sequence[tuple[int, int]], dataset: str | None = None,
                    eos: str | None = None) -> list[float | None]:
    """Mean log-probability of the answer tokens that overlap each character span of ``answer``, teacher-forced
    after the inference prompt for ``entity_type`` (one forward pass for all spans). ``None`` for a span that no
    token covers."""
    import torch

    from nerlib.uniner.infer import encode_prompts

    enc = encode_prompts(tokenizer, passage, [entity_type], dataset, eos)
    prompt = enc.prefix + enc.suffixes[0]
    text = " " + answer  # the student wrote the answer after "ASSISTANT:" and a space; decoding stripped it
    coded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([prompt + list(coded["input_ids"])], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
    logprobs = torch.log_softmax(logits, -1).gather(1, ids[0, len(prompt):, None])[:, 0]
    out: list[float | None] = []
    for a, b in spans:
        a, b = a + 1, b + 1  # the leading space
        picked = [i for i, (s, e) in enumerate(coded["offset_mapping"]) if s < b and e > a]
        out.append(float(logprobs[picked].mean()) if picked else None)
    return out


def drop_mention(answer: str, mention: str) -> str:
    """``answer`` without the items whose normalised form is ``mention``, rewritten as a JSON list; unchanged if
    it does not parse or does not name the mention.

    >>> drop_mention('["The Beatles", "Oasis"]', "beatles")
    '["Oasis"]'
    """
    items, ok = parse_answer(answer, normalize=False)
    kept = [i for i in items if normalize_answer(i) != mention]
    return json.dumps(kept, ensure_ascii=False) if ok and len(kept) < len(items) else answer


def resolve_passage(model: Any, tokenizer: Any, passage: str, answers: Sequence[tuple[str, str]],
                    dataset: str | None = None, eos: str | None = None) -> tuple[list[str], dict]:
    """The answers (``(type, raw answer)`` per question, as in :func:`contested`) with every contested mention
    kept only under its most confident type, in question order; and a record of the decisions
    (``{mention: {"scores": {type: logprob}, "kept": type}}``). A mention that cannot be located or scored under
    one of its types is left everywhere (``"kept": None``)."""
    out = [text for _, text in answers]
    disputes = contested(answers)
    if not disputes:
        return out, {}
    scores: dict[str, dict[str, float | None]] = {m: dict.fromkeys(types) for m, types in disputes.items()}
    # each mention is scored in the first answer of each of its types that names it (a type asked twice is
    # scored once); one forward pass per answer, for all the contested mentions it holds
    where: dict[int, list[tuple[str, tuple[int, int]]]] = {}
    for mention, types in disputes.items():
        for entity_type in types:
            for i, (t, text) in enumerate(answers):
                span = mention_span(text, mention) if t == entity_type else None
                if span is not None:
                    where.setdefault(i, []).append((mention, span))
                    break
    for i, found in where.items():
        entity_type, text = answers[i]
        values = mention_logprob(model, tokenizer, passage, entity_type, text, [s for _, s in found], dataset, eos)
        for (mention, _), value in zip(found, values):
            scores[mention][entity_type] = value
    record = {}
    for mention, by_type in scores.items():
        if any(v is None for v in by_type.values()):
            record[mention] = {"scores": by_type, "kept": None}
            continue
        kept = max(disputes[mention], key=lambda t: by_type[t])  # first of equals, in question order
        out = [drop_mention(text, mention) if t != kept and t in by_type else text
               for (t, _), text in zip(answers, out)]
        record[mention] = {"scores": {t: round(v, 4) for t, v in by_type.items()}, "kept": kept}
    return out, record


def resolve_predictions(model: Any, tokenizer: Any, passages: Sequence[Any], predictions: dict[str, str],
                        cache: str | Path | None = None, progress: bool = True,
                        eos: str | None = None) -> dict[str, str]:
    """:func:`resolve_passage` over evaluation passages (``EvalPassage``; ``predictions`` by record id, as
    :func:`nerlib.uniner.evaluate.predict` returns them). With ``cache`` (a JSONL file), each passage's resolved
    answers are appended as they are made and reused on the next call, like the predictions themselves."""
    from tqdm.auto import tqdm

    from nerlib.runs import AppendLog

    log = AppendLog(cache) if cache is not None else None
    done = {r["id"]: r["prediction"] for r in log} if log is not None else {}
    out = dict(predictions)
    for p in tqdm(passages, desc="resolving types", disable=not progress):
        if all(q.id in done for q in p.queries):
            out.update({q.id: done[q.id] for q in p.queries})
            continue
        resolved, _ = resolve_passage(model, tokenizer, p.passage,
                                      [(q.entity_type, predictions[q.id]) for q in p.queries], eos=eos)
        rows = [{"id": q.id, "prediction": a} for q, a in zip(p.queries, resolved)]
        out.update({r["id"]: r["prediction"] for r in rows})
        if log is not None:
            log.append(*rows)
    return out


def type_confusions(passages: Sequence[Any], predictions: dict[str, str]) -> dict[str, int]:
    """Where the false positives come from, per passage and normalised as the metric compares: ``predicted``
    (mention, type) pairs, ``false_positives``, ``other_type`` (false positives whose mention is gold under
    another type of the passage: a type confusion, what :func:`resolve_passage` can remove) and
    ``multi_type_mentions`` (mentions the student gave under more than one type)."""
    counts = dict.fromkeys(("predicted", "false_positives", "other_type", "multi_type_mentions"), 0)
    for p in passages:
        gold: dict[str, set[str]] = {}
        for q in p.queries:
            for m in parse_answer(q.gold)[0]:
                gold.setdefault(m, set()).add(q.entity_type)
        pairs = {(m, q.entity_type) for q in p.queries for m in parse_answer(predictions[q.id])[0]}
        counts["predicted"] += len(pairs)
        wrong = [(m, t) for m, t in pairs if t not in gold.get(m, ())]
        counts["false_positives"] += len(wrong)
        counts["other_type"] += sum(m in gold for m, _ in wrong)
        types_per_mention = Counter(m for m, _ in pairs)
        counts["multi_type_mentions"] += sum(n > 1 for n in types_per_mention.values())
    return counts
