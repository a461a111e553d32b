"""Golden tests of the UniversalNER conversation format and its label mask."""

from __future__ import annotations

import pytest
from uniner_tiny_lm import tiny_tokenizer

from nerlib.uniner import conversations as conv
from nerlib.uniner.records import InstructionExample, Query

EX = InstructionExample(
    passage="Barack Obama visited Paris .",
    queries=[Query("person", ["Barack Obama"]), Query("location", ["Paris"]), Query("company", [])],
    id="ex1",
)


def test_inference_prompt_is_the_official_string_byte_for_byte():
    expected = (
        "A virtual assistant answers questions from a user based on the provided text. USER: Text: "
        "Barack Obama visited Paris . ASSISTANT: I've read this text.</s>USER: What describes person in the "
        "text? ASSISTANT:"
    )
    assert conv.inference_prompt(EX.passage, "person") == expected


def test_render_full_conversation_and_answers():
    text = conv.render(EX)
    assert text == (
        "A virtual assistant answers questions from a user based on the provided text. USER: Text: "
        "Barack Obama visited Paris . ASSISTANT: I've read this text.</s>"
        'USER: What describes person in the text? ASSISTANT: ["Barack Obama"]</s>'
        'USER: What describes location in the text? ASSISTANT: ["Paris"]</s>'
        "USER: What describes company in the text? ASSISTANT: []</s>"
    )
    assert conv.render(EX, order=[2, 0, 1]).endswith('ASSISTANT: ["Paris"]</s>')


def test_answers_keep_non_ascii_and_custom_eos():
    assert conv.format_answer(["Zürich", "café"]) == '["Zürich", "café"]'
    assert conv.answer_text([], eos="<|im_end|>") == " []<|im_end|>"


def test_dataset_specific_template():
    assert conv.first_user_turn("A B .", "conll2003") == "Dataset: conll2003 \n Text: A B ."
    ex = InstructionExample("A B .", [Query("person", [])], dataset="conll2003")
    assert "USER: Dataset: conll2003 \n Text: A B . ASSISTANT:" in conv.render(ex)


def test_label_mask_covers_exactly_the_assistant_turns():
    tok = tiny_tokenizer()
    enc = conv.encode_example(EX, tok, max_length=512)
    assert enc.kept == 3 and enc.dropped == 0
    assert len(enc.input_ids) == len(enc.labels)
    assert conv.assistant_texts(enc.input_ids, enc.labels, tok) == [
        " I've read this text.</s>", ' ["Barack Obama"]</s>', ' ["Paris"]</s>', " []</s>"
    ]
    # the whole sequence decodes back to the rendered string (after the BOS the tokenizer adds: none here)
    assert tok.decode(enc.input_ids) == conv.render(EX)
    # labels equal the ids wherever they are not masked
    assert all(lab in (-100, i) for i, lab in zip(enc.input_ids, enc.labels))


def test_prefix_ids_are_a_prefix_of_the_training_ids():
    tok = tiny_tokenizer()
    enc = conv.encode_example(EX, tok, max_length=512)
    prefix, _ = conv.tokenize_segments(conv.prefix_segments(EX.passage, None, "</s>"), tok)
    assert enc.input_ids[: len(prefix)] == prefix


def test_all_in_one_variant():
    q, pairs = conv.all_in_one_example(EX)
    assert q == (
        "Which entities of the types person, location, company are in the text? "
        "Answer with a list of [mention, type] pairs."
    )
    assert pairs == [["Barack Obama", "person"], ["Paris", "location"]]
    tok = tiny_tokenizer()
    enc = conv.encode_all_in_one(EX, tok, 512)
    assert conv.assistant_texts(enc.input_ids, enc.labels, tok)[1] == (
        ' [["Barack Obama", "person"], ["Paris", "location"]]</s>'
    )


def test_overlong_conversations_drop_trailing_queries_never_cut_a_turn():
    tok = tiny_tokenizer()
    full = conv.encode_example(EX, tok, max_length=512)
    first_two = conv.encode_example(
        InstructionExample(EX.passage, EX.queries[:2]), tok, max_length=512
    )
    limit = len(first_two.input_ids) + 3  # room for two queries, not for the third
    assert limit < len(full.input_ids)
    enc = conv.encode_example(EX, tok, max_length=limit)
    assert (enc.kept, enc.dropped) == (2, 1)
    assert enc.input_ids == first_two.input_ids
    prefix_only = conv.encode_example(EX, tok, max_length=len(conv.tokenize_segments(
        conv.prefix_segments(EX.passage), tok)[0]))
    assert prefix_only.kept == 0
    assert any(lab != -100 for lab in prefix_only.labels)  # "I've read this text." still carries loss
    with pytest.raises(ValueError, match="ex1.*over max_length=5"):
        conv.encode_example(EX, tok, max_length=5)


def test_dataset_reshuffles_per_epoch_reproducibly_and_never_has_zero_loss_tokens():
    tok = tiny_tokenizer()
    long_ex = InstructionExample("word " * 400, [Query("person", [])], id="long")
    many = InstructionExample(EX.passage, [Query(f"type{i}", [str(i)]) for i in range(8)], id="many")
    with pytest.warns(UserWarning, match="1 of 3 passages skipped"):
        ds = conv.ConversationDataset([EX, long_ex, many], tok, max_length=300, seed=1)
    assert len(ds) == 2 and "long" in ds.stats.skipped_too_long[0]
    orders = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[1]
        assert sum(lab != -100 for lab in item["labels"]) > 0
        answers = conv.assistant_texts(item["input_ids"], item["labels"], tok)[1:]
        orders.append(tuple(answers))
        assert sorted(answers) == sorted(f' ["{i}"]</s>' for i in range(8))
    assert len(set(orders)) > 1  # the order changes across epochs
    ds.set_epoch(2)
    assert tuple(conv.assistant_texts(ds[1]["input_ids"], ds[1]["labels"], tok)[1:]) == orders[2]
    assert conv.query_order(8, 1, 2, 1) == conv.query_order(8, 1, 2, 1)


def test_malformed_inputs():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="no queries"):
        conv.ConversationDataset([InstructionExample("x", [], id="e")], tok, 64)
    with pytest.raises(ValueError, match="variant"):
        conv.ConversationDataset([EX], tok, 64, variant="bogus")

    class NoEos:
        eos_token = None

    with pytest.raises(ValueError, match="eos"):
        conv.eos_string(NoEos())


def test_question_is_written_once_and_parsed_back():
    assert conv.parse_question(conv.question("programming language")) == "programming language"
    assert conv.parse_question("What describes  in the text?") is None
    assert conv.parse_question("Which persons are in the text?") is None
    assert conv.first_user_turn("Ada wrote .") == conv.PASSAGE_PREFIX + "Ada wrote ."
