"""Greedy answering of UniversalNER questions, one query per type or with a shared passage prefix.

The official code asks one question per (passage, type): the prompt repeats the whole passage each time, so a
passage with ten types is encoded ten times. Answers are short (often ``[]``: three tokens) while the prompt is
hundreds of tokens, so nearly all the time goes into re-reading the passage. :func:`answer_shared_prefix` encodes
the prefix (system prompt, passage, ``I've read this text.``) once, keeps its key/value cache and, for each type,
continues from a copy of that cache with just the question. Because both paths tokenize the prefix and the
question separately (:mod:`nerlib.uniner.conversations`), they feed the model the same token ids, and greedy
decoding gives the same answers (tested); only the work differs.

Generation stops at the end-of-sequence token, at the first token containing ``]`` (the answer list is closed;
the official parser reads up to the first ``]`` anyway, and runaway lists were the only parse failures we saw),
or after ``max_new_tokens``. One question at a time decodes with ``model.generate`` (:func:`generate_answer`, the
``]`` stop as a stopping criterion); all questions of a passage at once use our own batch decoder
(:func:`greedy_continue_batch`), which ``generate`` cannot do from a shared prefix cache.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from nerlib.uniner.conversations import eos_string, prefix_segments, question_text, tokenize_segments, Segment


class PromptTooLong(ValueError):
    """A passage whose prompt plus the answer budget does not fit in the model's context."""


@dataclass(frozen=True)
class EncodedPrompt:
    """A passage prefix and the question suffixes, tokenized separately (so both paths see the same ids)."""

    prefix: list[int]
    suffixes: list[list[int]]


def encode_prompts(
    tokenizer: Any,
    passage: str,
    entity_types: Sequence[str],
    dataset: str | None = None,
    eos: str | None = None,
) -> EncodedPrompt:
    """Token ids of the prefix (with the tokenizer's BOS, if any) and of each question turn."""
    eos = eos_string(tokenizer, eos)
    prefix, _ = tokenize_segments(prefix_segments(passage, dataset, eos), tokenizer)
    suffixes = [
        tokenize_segments([Segment(question_text(t), False)], tokenizer, leading_specials=False)[0]
        for t in entity_types
    ]
    return EncodedPrompt(prefix, suffixes)


@functools.lru_cache(maxsize=8)
def _bracket_ids(tokenizer: Any) -> frozenset[int]:
    vocab = tokenizer.get_vocab()
    out = set()
    for token, idx in vocab.items():
        if "]" in token:
            out.add(idx)
    return frozenset(out)


def stop_ids(tokenizer: Any, eos: str | None = None, at_bracket: bool = True) -> tuple[frozenset[int], frozenset[int]]:
    """(end ids, bracket ids): generation ends before an end id and after a bracket id (kept in the answer)."""
    ends = set()
    if tokenizer.eos_token_id is not None:
        ends.add(tokenizer.eos_token_id)
    if eos is not None:
        ids = tokenizer(eos, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            ends.add(ids[0])
    return frozenset(ends), (_bracket_ids(tokenizer) if at_bracket else frozenset())


def check_length(model: Any, prompt_tokens: int, max_new_tokens: int, max_length: int | None, what: str) -> None:
    """Refuse prompts that leave no room for the answer: nothing is cut silently."""
    limit = max_length or getattr(model.config, "max_position_embeddings", None)
    if limit is not None and prompt_tokens + max_new_tokens > limit:
        raise PromptTooLong(
            f"{what}: prompt of {prompt_tokens} tokens + max_new_tokens={max_new_tokens} exceeds the limit of "
            f"{limit} tokens; split the passage into shorter windows or raise max_length"
        )


@functools.lru_cache(maxsize=1)
def _stop_at_class() -> type:
    from transformers import StoppingCriteria

    class StopAt(StoppingCriteria):
        """Stop once the last generated token is one of ``ids`` (the token itself is kept)."""

        def __init__(self, ids: frozenset[int]) -> None:
            self.ids = torch.tensor(sorted(ids))

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            return torch.isin(input_ids[:, -1], self.ids.to(input_ids.device))

    return StopAt


@torch.no_grad()
def generate_answer(
    model: Any,
    input_ids: Sequence[int],
    max_new_tokens: int,
    end_ids: frozenset[int],
    bracket_ids: frozenset[int] = frozenset(),
    past_key_values: Any = None,
) -> list[int]:
    """Greedy ``model.generate`` of one answer: the new ids, without the end token, stopping after a bracket id
    (kept) or ``max_new_tokens``. ``past_key_values`` may hold the first tokens of ``input_ids`` already (a copy of
    a passage's prefix cache); it is extended in place. Sampling, beams and penalties are off whatever the model's
    generation config says, so the answer is the plain argmax decoding :func:`greedy_continue_batch` computes."""
    from transformers import StoppingCriteriaList

    ids = torch.tensor([list(input_ids)], device=model.device)
    ends = sorted(end_ids)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        past_key_values=past_key_values,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        eos_token_id=ends or None,
        pad_token_id=ends[0] if ends else 0,
        stopping_criteria=StoppingCriteriaList([_stop_at_class()(bracket_ids)]) if bracket_ids else None,
    )
    new = out[0, ids.shape[1]:].tolist()
    return new[:-1] if new and new[-1] in end_ids else new


def new_cache(model: Any) -> Any:
    """An empty key/value cache for ``model``."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # older transformers
        return DynamicCache()


def decode_answer(tokenizer: Any, ids: Sequence[int]) -> str:
    """The answer text of generated ids (special tokens dropped, surrounding space stripped)."""
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def answer_per_query(
    model: Any,
    tokenizer: Any,
    passage: str,
    entity_types: Sequence[str],
    dataset: str | None = None,
    max_new_tokens: int = 64,
    eos: str | None = None,
    max_length: int | None = None,
    stop_at_bracket: bool = True,
) -> list[str]:
    """The official way: one full prompt per type, each decoded from scratch."""
    enc = encode_prompts(tokenizer, passage, entity_types, dataset, eos)
    ends, brackets = stop_ids(tokenizer, eos, stop_at_bracket)
    answers = []
    for t, suffix in zip(entity_types, enc.suffixes):
        check_length(model, len(enc.prefix) + len(suffix), max_new_tokens, max_length, f"passage {passage[:40]!r}")
        ids = generate_answer(model, enc.prefix + suffix, max_new_tokens, ends, brackets)
        answers.append(decode_answer(tokenizer, ids))
    return answers


def encode_prefix(model: Any, prefix: Sequence[int]) -> Any:
    """Run the passage prefix once; its key/value cache is what every question continues from."""
    with torch.no_grad():
        return model(
            input_ids=torch.tensor([list(prefix)], device=model.device),
            past_key_values=new_cache(model),
            use_cache=True,
        ).past_key_values


@torch.no_grad()
def continue_batch(
    model: Any,
    suffixes: Sequence[Sequence[int]],
    prefix_cache: Any,
    prefix_len: int,
    pad_id: int = 0,
    tail: int = 1,
) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
    """Feed every suffix after a copy of the passage's prefix cache, in one right-padded batch (each row keeps its
    own positions and mask). Returns (the next-token logits at each row's last ``tail`` positions, shape
    ``(rows, tail, vocabulary)``, the extended cache, the attention mask, each row's next position): the start of
    :func:`greedy_continue_batch`, and what :mod:`nerlib.uniner.calibrate` reads the empty answer's margin from."""
    k = len(suffixes)
    device = model.device
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(k)
    lengths = [len(s) for s in suffixes]
    width = max(lengths)
    ids = torch.full((k, width), pad_id, dtype=torch.long, device=device)
    suffix_mask = torch.zeros((k, width), dtype=torch.long, device=device)
    for i, suf in enumerate(suffixes):
        ids[i, : len(suf)] = torch.tensor(list(suf), device=device)
        suffix_mask[i, : len(suf)] = 1
    mask = torch.cat([torch.ones((k, prefix_len), dtype=torch.long, device=device), suffix_mask], dim=1)
    positions = prefix_len + torch.arange(width, device=device).expand(k, width)
    result = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    rows = torch.arange(k, device=device).unsqueeze(1)
    last = torch.tensor([[n - tail + j for j in range(tail)] for n in lengths], device=device)
    logits = result.logits[rows, last]
    next_pos = torch.tensor([prefix_len + n for n in lengths], device=device)
    return logits, result.past_key_values, mask, next_pos


@torch.no_grad()
def greedy_continue_batch(
    model: Any,
    suffixes: Sequence[Sequence[int]],
    prefix_cache: Any,
    prefix_len: int,
    max_new_tokens: int,
    end_ids: frozenset[int],
    bracket_ids: frozenset[int] = frozenset(),
    pad_id: int = 0,
) -> list[list[int]]:
    """All questions of a passage at once: the prefix cache is repeated once per question, the questions are
    right-padded, and each row keeps its own positions (``position_ids``) and mask, so every row computes what
    :func:`generate_answer` computes for it alone; the rows decode in lock-step until all have stopped."""
    k = len(suffixes)
    device = model.device
    logits, cache, mask, next_pos = continue_batch(model, suffixes, prefix_cache, prefix_len, pad_id)
    logits = logits[:, -1]
    outputs: list[list[int]] = [[] for _ in range(k)]
    active = [True] * k
    for step in range(max_new_tokens):
        chosen = logits.argmax(dim=-1).tolist()
        for i, tok in enumerate(chosen):
            if not active[i]:
                continue
            if tok in end_ids:
                active[i] = False
                continue
            outputs[i].append(tok)
            if tok in bracket_ids:
                active[i] = False
        if not any(active) or step == max_new_tokens - 1:
            break
        feed = torch.tensor([[t if a else pad_id] for t, a in zip(chosen, active)], device=device)
        mask = torch.cat([mask, torch.ones((k, 1), dtype=torch.long, device=device)], dim=1)
        result = model(input_ids=feed, attention_mask=mask, position_ids=next_pos.unsqueeze(1),
                       past_key_values=cache, use_cache=True)
        cache = result.past_key_values
        logits = result.logits[:, -1]
        next_pos = next_pos + 1
    return outputs


def answer_shared_prefix(
    model: Any,
    tokenizer: Any,
    passage: str,
    entity_types: Sequence[str],
    dataset: str | None = None,
    max_new_tokens: int = 64,
    eos: str | None = None,
    max_length: int | None = None,
    stop_at_bracket: bool = True,
    batch_queries: bool = True,
) -> list[str]:
    """Encode the passage prefix once, then answer every type from its key/value cache: all questions in one
    batch (``batch_queries``, the fast path on a CPU, where a decoding step costs about the same for one row or
    ten) or one after another from a copy of the cache."""
    if not entity_types:
        return []
    enc = encode_prompts(tokenizer, passage, entity_types, dataset, eos)
    ends, brackets = stop_ids(tokenizer, eos, stop_at_bracket)
    longest = max(len(s) for s in enc.suffixes)
    check_length(model, len(enc.prefix) + longest, max_new_tokens, max_length, f"passage {passage[:40]!r}")
    prefix_cache = encode_prefix(model, enc.prefix)
    if batch_queries:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = greedy_continue_batch(model, enc.suffixes, prefix_cache, len(enc.prefix), max_new_tokens, ends,
                                    brackets, pad)
        return [decode_answer(tokenizer, i) for i in ids]
    return [
        decode_answer(tokenizer, generate_answer(model, enc.prefix + suffix, max_new_tokens, ends, brackets,
                                                 past_key_values=copy.deepcopy(prefix_cache)))
        for suffix in enc.suffixes
    ]


def parse_pairs(text: str) -> tuple[list[tuple[str, str]], bool]:
    """Read an all-in-one answer (a JSON list of ``[mention, type]`` pairs); (pairs, parsed_ok)."""
    import json

    start = text.find("[")
    try:
        items = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        return [], False
    pairs = [(str(i[0]), str(i[1])) for i in items if isinstance(i, list) and len(i) == 2]
    return pairs, len(pairs) == len(items)


def answer_all_in_one(
    model: Any,
    tokenizer: Any,
    passage: str,
    entity_types: Sequence[str],
    dataset: str | None = None,
    max_new_tokens: int = 128,
    eos: str | None = None,
    max_length: int | None = None,
) -> list[str]:
    """The all-types-in-one-query variant: one question listing every type, one answer of ``[mention, type]``
    pairs (generation stops at EOS only: the pairs contain ``]``). The pairs are split back into one JSON list
    per type, so the variant is scored exactly like the per-type answers; an unparsable answer gives the raw
    text for every type (counted as parse failures)."""
    import json

    from nerlib.uniner.conversations import ALL_IN_ONE_QUESTION, USER, ASSISTANT

    eos_s = eos_string(tokenizer, eos)
    prefix, _ = tokenize_segments(prefix_segments(passage, dataset, eos_s), tokenizer)
    q = f"{USER}: {ALL_IN_ONE_QUESTION.format(types=', '.join(entity_types))} {ASSISTANT}:"
    suffix = tokenize_segments([Segment(q, False)], tokenizer, leading_specials=False)[0]
    check_length(model, len(prefix) + len(suffix), max_new_tokens, max_length, f"passage {passage[:40]!r}")
    ends, _ = stop_ids(tokenizer, eos, at_bracket=False)
    text = decode_answer(tokenizer, generate_answer(model, prefix + suffix, max_new_tokens, ends))
    pairs, ok = parse_pairs(text)
    if not ok:
        return [text] * len(entity_types)
    return [json.dumps([m for m, t in pairs if t == et], ensure_ascii=False) for et in entity_types]


def answer(
    model: Any,
    tokenizer: Any,
    passage: str,
    entity_types: Sequence[str],
    shared_prefix: bool = True,
    **kwargs: Any,
) -> list[str]:
    """Answer every type question about one passage (shared-prefix by default; same answers either way;
    ``variant="all_in_one"`` asks one question for all types instead)."""
    if kwargs.pop("variant", "per_type") == "all_in_one":
        return answer_all_in_one(model, tokenizer, passage, entity_types, **kwargs)
    fn = answer_shared_prefix if shared_prefix else answer_per_query
    return fn(model, tokenizer, passage, entity_types, **kwargs)


__all__ = [
    "EncodedPrompt", "PromptTooLong", "answer", "answer_all_in_one", "answer_per_query", "parse_pairs", "answer_shared_prefix", "check_length",
    "continue_batch", "decode_answer", "encode_prefix", "encode_prompts", "generate_answer", "greedy_continue_batch", "new_cache",
    "stop_ids",
]
