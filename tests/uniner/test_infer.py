"""Greedy answering: shared-prefix inference gives exactly the one-query-per-type answers."""

from __future__ import annotations

import pytest
import torch
from uniner_tiny_lm import tiny_model, tiny_tokenizer

from nerlib.uniner import conversations as conv
from nerlib.uniner import infer
from nerlib.uniner.records import InstructionExample, Query

torch.set_num_threads(1)

PASSAGES = [
    "Barack Obama visited Paris .",
    "The Apple company sells phones in Spain and Berlin .",
    "naïve café in Zürich .",
]
TYPES = ["person", "location", "company", "city", "programming language"]


def test_prompt_ids_equal_the_training_ids():
    tok = tiny_tokenizer()
    ex = InstructionExample(PASSAGES[0], [Query("person", ["Barack Obama"])])
    train = conv.encode_example(ex, tok, 512)
    enc = infer.encode_prompts(tok, PASSAGES[0], ["person"])
    prompt = enc.prefix + enc.suffixes[0]
    assert train.input_ids[: len(prompt)] == prompt
    assert tok.decode(prompt) == conv.inference_prompt(PASSAGES[0], "person")


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_prefix_answers_equal_per_query_answers(seed):
    tok, model = tiny_tokenizer(), tiny_model(seed)
    assert len({len(s) for s in infer.encode_prompts(tok, PASSAGES[0], TYPES).suffixes}) > 1  # padding is used
    for passage, stop in zip(PASSAGES, (False, True, False)):
        slow = infer.answer_per_query(model, tok, passage, TYPES, max_new_tokens=8, stop_at_bracket=stop)
        for batch in (True, False):
            fast = infer.answer_shared_prefix(model, tok, passage, TYPES, max_new_tokens=8,
                                              stop_at_bracket=stop, batch_queries=batch)
            assert fast == slow, (passage, batch)
        assert any(a for a in fast)  # a random model produces some text: the comparison is not vacuous


def test_generation_stops_at_bracket_eos_and_budget():
    tok, model = tiny_tokenizer(), tiny_model(3)
    enc = infer.encode_prompts(tok, PASSAGES[1], ["location"])
    prompt = enc.prefix + enc.suffixes[0]
    ends, _ = infer.stop_ids(tok, at_bracket=False)
    free = infer.generate_answer(model, prompt, 10, ends)
    assert len(free) == 10  # this random model says 10 tokens without an end: only the budget stopped it
    i = next(i for i in range(2, len(free)) if free[i] not in free[:i])  # a token first said at step i
    stop = frozenset([free[i]])
    assert infer.generate_answer(model, prompt, 10, ends | stop) == free[:i]  # an end token is dropped
    assert infer.generate_answer(model, prompt, 10, ends, stop) == free[: i + 1]  # a bracket token is kept
    assert infer.generate_answer(model, prompt, 4, ends) == free[:4]
    prefix_cache = infer.encode_prefix(model, enc.prefix)  # continuing from a passage's prefix cache: same ids
    assert infer.generate_answer(model, prompt, 10, ends, past_key_values=prefix_cache) == free


def test_generation_ignores_the_models_sampling_settings():
    tok, model = tiny_tokenizer(), tiny_model(3)
    prompt = sum(infer.encode_prompts(tok, PASSAGES[0], ["person"]).suffixes, [])
    ends, _ = infer.stop_ids(tok)
    plain = infer.generate_answer(model, prompt, 8, ends)
    model.generation_config.do_sample, model.generation_config.top_k = True, 5
    model.generation_config.repetition_penalty = 5.0
    assert infer.generate_answer(model, prompt, 8, ends) == plain


def test_overlong_prompt_is_refused_with_a_clear_message():
    tok, model = tiny_tokenizer(), tiny_model(0)
    long_passage = "Paris " * 600
    with pytest.raises(infer.PromptTooLong, match="exceeds the limit of 1024 tokens"):
        infer.answer_shared_prefix(model, tok, long_passage, ["city"], max_new_tokens=8)
    with pytest.raises(infer.PromptTooLong, match="max_new_tokens=8"):
        infer.answer_per_query(model, tok, PASSAGES[0], ["city"], max_new_tokens=8, max_length=20)


def test_all_in_one_answers_are_split_back_per_type(monkeypatch):
    assert infer.parse_pairs('[["Obama", "person"], ["Paris", "city"]]') == (
        [("Obama", "person"), ("Paris", "city")], True)
    assert infer.parse_pairs("no list here") == ([], False)
    tok, model = tiny_tokenizer(), tiny_model(0)
    monkeypatch.setattr(infer, "generate_answer", lambda *a, **k: tok(
        ' [["Obama", "person"], ["Paris", "city"], ["Berlin", "city"]]', add_special_tokens=False)["input_ids"])
    out = infer.answer(model, tok, PASSAGES[0], ["city", "person", "company"], variant="all_in_one")
    assert out == ['["Paris", "Berlin"]', '["Obama"]', "[]"]
