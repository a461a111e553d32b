"""The UniversalNER conversation format: instruction examples rendered as multi-turn text with a label mask.

The official code (universal-ner/universal-ner, FastChat's ``ie_as_qa`` template, separator style
``ADD_COLON_TWO`` with ``sep=" "`` and ``sep2="</s>"``) renders one passage and its type questions as::

    A virtual assistant answers questions from a user based on the provided text. USER: Text: {passage}
    ASSISTANT: I've read this text.</s>USER: What describes {type} in the text? ASSISTANT: ["a", "b"]</s>...

(one line in reality: every turn is separated by one space, every assistant turn ends with the end-of-sequence
string and the next ``USER:`` follows it directly). Answers are ``json.dumps(mentions, ensure_ascii=False)``.

We build the text as a list of :class:`Segment` pieces, each either *prompt* (label -100) or *assistant* (trained
on), and tokenize the pieces separately. The official training code also tokenizes turn by turn; doing the same at
inference (prefix and question tokenized separately, see :mod:`nerlib.uniner.infer`) guarantees that the ids the
model sees when answering are exactly the ids it was trained on. The assistant piece starts with the space that
follows ``ASSISTANT:``, so an inference prompt ends in ``ASSISTANT:`` and the model generates `` [...]``.

``</s>`` is LLaMA's end-of-sequence token; other students use their tokenizer's EOS string (``eos=None``).
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from nerlib.config import NerlibWarning
from nerlib.data.align import IGNORE_INDEX
from nerlib.uniner.records import InstructionExample, Query

SYSTEM = "A virtual assistant answers questions from a user based on the provided text."
READ_REPLY = "I've read this text."
#: The first user turn of the official template, before the passage.
PASSAGE_PREFIX = "Text: "
#: The per-type question of the official template (training, inference and the evaluation files).
QUESTION = "What describes {entity_type} in the text?"
_QUESTION_HEAD, _QUESTION_TAIL = QUESTION.split("{entity_type}")
USER = "USER"
ASSISTANT = "ASSISTANT"
#: Question of the all-types-in-one-query variant (our choice; the paper only says it is worse).
ALL_IN_ONE_QUESTION = (
    "Which entities of the types {types} are in the text? Answer with a list of [mention, type] pairs."
)


@dataclass(frozen=True)
class Segment:
    """A piece of a conversation's text; ``trainable`` pieces (assistant replies) carry the loss."""

    text: str
    trainable: bool


def first_user_turn(passage: str, dataset: str | None = None) -> str:
    """``Text: {passage}``, or the dataset-specific ``Dataset: {name} \\n Text: {passage}`` (paper, Fig. 3:
    the dataset name, a newline with a space either side, then the passage) for supervised data."""
    if dataset:
        return f"Dataset: {dataset} \n {PASSAGE_PREFIX}{passage}"
    return f"{PASSAGE_PREFIX}{passage}"


def question(entity_type: str) -> str:
    """The per-type question of the official template."""
    return QUESTION.format(entity_type=entity_type)


def parse_question(text: str) -> str | None:
    """The entity type asked by a :func:`question` text, or ``None`` when ``text`` is not one."""
    if text.startswith(_QUESTION_HEAD) and text.endswith(_QUESTION_TAIL):
        entity_type = text[len(_QUESTION_HEAD): len(text) - len(_QUESTION_TAIL)]
        return entity_type or None
    return None


def format_answer(mentions: Sequence[Any]) -> str:
    """A JSON list of mention strings (or pairs), as the official data writes it (non-ASCII kept)."""
    return json.dumps(list(mentions), ensure_ascii=False)


def prefix_text(passage: str, dataset: str | None = None, eos: str = "</s>") -> str:
    """Everything before the first question: system prompt, the passage turn and ``I've read this text.``."""
    return "".join(s.text for s in prefix_segments(passage, dataset, eos))


def prefix_segments(passage: str, dataset: str | None = None, eos: str = "</s>") -> list[Segment]:
    """The passage turn (prompt) and the fixed reply ``I've read this text.`` + EOS (trainable)."""
    return [
        Segment(f"{SYSTEM} {USER}: {first_user_turn(passage, dataset)} {ASSISTANT}:", False),
        Segment(f" {READ_REPLY}{eos}", True),
    ]


def question_text(entity_type: str) -> str:
    """The prompt piece of one question turn, ending in ``ASSISTANT:`` (what the model answers after)."""
    return f"{USER}: {question(entity_type)} {ASSISTANT}:"


def answer_text(mentions: Sequence[Any], eos: str = "</s>") -> str:
    """The assistant piece of one question turn: a space, the JSON list, the EOS string."""
    return f" {format_answer(mentions)}{eos}"


def conversation_segments(
    example: InstructionExample, eos: str = "</s>", order: Sequence[int] | None = None
) -> list[Segment]:
    """All pieces of one passage's conversation; ``order`` permutes the queries (default: as given)."""
    order = range(len(example.queries)) if order is None else order
    segments = prefix_segments(example.passage, example.dataset, eos)
    for i in order:
        q = example.queries[i]
        segments += [Segment(question_text(q.entity_type), False), Segment(answer_text(q.answers, eos), True)]
    return segments


def render(example: InstructionExample, eos: str = "</s>", order: Sequence[int] | None = None) -> str:
    """The conversation as one string (for reading; training tokenizes :func:`conversation_segments`)."""
    return "".join(s.text for s in conversation_segments(example, eos, order))


def inference_prompt(passage: str, entity_type: str, dataset: str | None = None, eos: str = "</s>") -> str:
    """The official one-question prompt (``preprocess_instance`` with the last answer left open)."""
    return prefix_text(passage, dataset, eos) + question_text(entity_type)


def all_in_one_example(example: InstructionExample) -> tuple[str, list[list[str]]]:
    """The all-types-in-one-query variant: one question naming every type, answered by ``[mention, type]``
    pairs (type-major: in the order of the queries, then of the mentions). Returns (question, pairs)."""
    types = [q.entity_type for q in example.queries]
    pairs = [[m, q.entity_type] for q in example.queries for m in q.answers]
    return ALL_IN_ONE_QUESTION.format(types=", ".join(types)), pairs


def all_in_one_segments(example: InstructionExample, eos: str = "</s>") -> list[Segment]:
    """Pieces of the all-in-one conversation: the same prefix, then the single question and its pairs."""
    text, pairs = all_in_one_example(example)
    return prefix_segments(example.passage, example.dataset, eos) + [
        Segment(f"{USER}: {text} {ASSISTANT}:", False),
        Segment(answer_text(pairs, eos), True),
    ]


# ----------------------------------------------------------------------------------------------- tokenization


def eos_string(tokenizer: Any, eos: str | None = None) -> str:
    """The end-of-turn string: ``eos`` when given, else the tokenizer's EOS token."""
    if eos is not None:
        return eos
    if getattr(tokenizer, "eos_token", None) is None:
        raise ValueError("the tokenizer has no eos_token: pass eos= explicitly (e.g. '</s>')")
    return tokenizer.eos_token


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids a tokenizer puts before a text by itself (LLaMA and Gemma: BOS; GPT-2 style BPE: none)."""
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    bos = getattr(tokenizer, "bos_token_id", None)
    return [bos] if bos is not None and ids and ids[0] == bos else []


def tokenize_segments(
    segments: Sequence[Segment], tokenizer: Any, leading_specials: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids and labels (the ids on trainable pieces, -100 elsewhere); pieces are tokenized separately.
    ``leading_specials`` puts the tokenizer's BOS first (set it for the start of a conversation only)."""
    input_ids = list(leading_special_ids(tokenizer)) if leading_specials else []
    labels = [IGNORE_INDEX] * len(input_ids)
    for seg in segments:
        ids = tokenizer(seg.text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if seg.trainable else [IGNORE_INDEX] * len(ids)
    return input_ids, labels


@dataclass
class EncodedConversation:
    """One tokenized conversation; ``kept`` queries fitted in ``max_length``, ``dropped`` did not."""

    input_ids: list[int]
    labels: list[int]
    kept: int
    dropped: int


def encode_example(
    example: InstructionExample,
    tokenizer: Any,
    max_length: int,
    eos: str | None = None,
    order: Sequence[int] | None = None,
) -> EncodedConversation:
    """Tokenize one conversation, dropping whole trailing queries that would exceed ``max_length`` (never cutting
    a turn: a conversation cut before its answers has no loss tokens and makes the loss NaN).

    Raises ``ValueError`` when not even the passage turn and its reply fit."""
    eos = eos_string(tokenizer, eos)
    order = list(range(len(example.queries))) if order is None else list(order)
    input_ids, labels = tokenize_segments(prefix_segments(example.passage, example.dataset, eos), tokenizer)
    if len(input_ids) > max_length:
        raise ValueError(
            f"example {example.id or '<no id>'}: the passage turn alone is {len(input_ids)} tokens, "
            f"over max_length={max_length}; shorten the passage (passage_tokens) or raise max_length"
        )
    kept = 0
    for i in order:
        q = example.queries[i]
        turn = [Segment(question_text(q.entity_type), False), Segment(answer_text(q.answers, eos), True)]
        ids, labs = tokenize_segments(turn, tokenizer, leading_specials=False)
        if len(input_ids) + len(ids) > max_length:
            break
        input_ids += ids
        labels += labs
        kept += 1
    return EncodedConversation(input_ids, labels, kept, len(order) - kept)


def encode_all_in_one(
    example: InstructionExample, tokenizer: Any, max_length: int, eos: str | None = None
) -> EncodedConversation:
    """Tokenize the all-in-one variant; an example that does not fit raises (its single answer cannot be cut)."""
    eos = eos_string(tokenizer, eos)
    input_ids, labels = tokenize_segments(all_in_one_segments(example, eos), tokenizer)
    if len(input_ids) > max_length:
        raise ValueError(
            f"example {example.id or '<no id>'}: all-in-one conversation is {len(input_ids)} tokens, "
            f"over max_length={max_length}"
        )
    return EncodedConversation(input_ids, labels, len(example.queries), 0)


def query_order(n_queries: int, seed: int, epoch: int, index: int) -> list[int]:
    """A permutation of the queries that depends only on (seed, epoch, index): reproducible reshuffling."""
    order = list(range(n_queries))
    random.Random(f"{seed}:{epoch}:{index}").shuffle(order)
    return order


@dataclass
class ConversationStats:
    """What happened to the data while encoding: nothing is dropped without being counted here."""

    examples: int = 0
    skipped_too_long: list[str] = field(default_factory=list)
    queries_dropped: int = 0


class ConversationDataset:
    """A torch-style dataset of tokenized conversations that reshuffles each passage's queries every epoch.

    ``__getitem__`` orders the queries with an rng seeded by (seed, epoch, index); :func:`nerlib.uniner.train.fit`
    calls :meth:`set_epoch` at the start of every epoch through a Trainer callback.
    Passages whose passage turn alone exceeds ``max_length`` are skipped with a warning and listed in
    ``stats.skipped_too_long``. ``variant="all_in_one"`` renders the single-question variant instead.
    """

    def __init__(
        self,
        examples: Sequence[InstructionExample],
        tokenizer: Any,
        max_length: int,
        seed: int = 42,
        eos: str | None = None,
        shuffle_queries: bool = True,
        variant: str = "per_type",
    ) -> None:
        if variant not in ("per_type", "all_in_one"):
            raise ValueError(f"variant must be 'per_type' or 'all_in_one', got {variant!r}")
        self.tokenizer, self.max_length, self.seed = tokenizer, max_length, seed
        self.eos = eos_string(tokenizer, eos)
        self.shuffle_queries, self.variant = shuffle_queries, variant
        self.epoch = 0
        self.stats = ConversationStats()
        self.examples: list[InstructionExample] = []
        for ex in examples:
            if not ex.queries:
                raise ValueError(f"example {ex.id or '<no id>'} has no queries")
            try:
                self._encode(ex, list(range(len(ex.queries))))
            except ValueError as err:
                self.stats.skipped_too_long.append(str(err))
                continue
            self.examples.append(ex)
        self.stats.examples = len(self.examples)
        if self.stats.skipped_too_long:
            warnings.warn(
                f"{len(self.stats.skipped_too_long)} of {len(examples)} passages skipped: longer than "
                f"max_length={max_length} (see .stats.skipped_too_long)",
                NerlibWarning,
                stacklevel=2,
            )
        if not self.examples:
            raise ValueError("no example fits in max_length; nothing to train on")

    def _encode(self, ex: InstructionExample, order: list[int]) -> EncodedConversation:
        if self.variant == "all_in_one":
            return encode_all_in_one(ex, self.tokenizer, self.max_length, self.eos)
        return encode_example(ex, self.tokenizer, self.max_length, self.eos, order)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose query order ``__getitem__`` uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        ex = self.examples[index]
        n = len(ex.queries)
        order = query_order(n, self.seed, self.epoch, index) if self.shuffle_queries else list(range(n))
        enc = self._encode(ex, order)
        self.stats.queries_dropped += enc.dropped
        return {"input_ids": enc.input_ids, "attention_mask": [1] * len(enc.input_ids), "labels": enc.labels}


def assistant_texts(input_ids: Sequence[int], labels: Sequence[int], tokenizer: Any) -> list[str]:
    """Decode each run of labelled tokens: what the loss is computed on (for showing and testing the mask)."""
    runs: list[list[int]] = []
    prev = False
    for tok, lab in zip(input_ids, labels):
        on = lab != IGNORE_INDEX
        if on:
            if not prev:
                runs.append([])
            runs[-1].append(lab)
        prev = on
    return [tokenizer.decode(r) for r in runs]


__all__ = [
    "ALL_IN_ONE_QUESTION", "ASSISTANT", "ConversationDataset", "ConversationStats", "EncodedConversation",
    "IGNORE_INDEX", "PASSAGE_PREFIX", "QUESTION", "Query", "READ_REPLY", "SYSTEM", "Segment", "USER",
    "all_in_one_example", "all_in_one_segments", "answer_text", "assistant_texts", "conversation_segments",
    "encode_all_in_one", "encode_example", "eos_string", "first_user_turn", "format_answer", "inference_prompt",
    "leading_special_ids", "parse_question", "prefix_segments", "prefix_text", "query_order", "question",
    "question_text",
    "render", "tokenize_segments",
]
