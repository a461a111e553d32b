"""A tiny tokenizer and causal LM built in memory for the UniversalNER model-side tests (no downloads)."""

from __future__ import annotations

import functools

from nerlib.uniner.conversations import SYSTEM, question_text

CORPUS = [
    SYSTEM,
    "USER: Text: ASSISTANT: I've read this text.</s>",
    question_text("person"),
    question_text("location"),
    'Barack Obama visited Paris and Berlin . The Apple company sells phones in Spain .',
    '["Barack Obama"] ["Paris", "Berlin"] [] ["Apple"] Dataset: conll2003 \n Text:',
    "Which entities of the types are in the text? Answer with a list of [mention, type] pairs.",
    "naïve café Zürich — ünïcödé",
]


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on a few sentences, with <s>, </s> and <pad> special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_model(seed: int = 0, layers: int = 2):
    """A randomly initialised 2-layer LLaMA with the tiny tokenizer's vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def tiny_examples():
    """Four short teacher-style passages whose words the tiny tokenizer knows: the training tests' data."""
    from nerlib.uniner.records import InstructionExample, Query

    return [
        InstructionExample("Barack Obama visited Paris .", [Query("person", ["Barack Obama"]), Query("city", ["Paris"])]),
        InstructionExample("Apple sells phones in Spain .", [Query("company", ["Apple"]), Query("person", [])]),
        InstructionExample("Berlin and Paris .", [Query("city", ["Berlin", "Paris"])]),
        InstructionExample("Obama met Apple .", [Query("person", ["Obama"]), Query("company", ["Apple"])]),
    ]
