"""The empty-answer bias: margins and forced answers give exactly what decoding with the bias gives."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from uniner_tiny_lm import tiny_model, tiny_tokenizer

from nerlib.uniner import calibrate, infer
from nerlib.uniner.evaluate import EvalPassage, EvalQuery

torch.set_num_threads(1)

PASSAGES = ["Barack Obama visited Paris .", "The Apple company sells phones in Spain and Berlin ."]
TYPES = ["person", "location", "company", "city", "programming language", "country", "Dataset", "Text"]
NEW_TOKENS = 6


def biased_reference(model, tok, passage, types, decision, bias):
    """Decoding with the bias as a logits processor in ``model.generate``: the definition the margins must meet."""
    from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

    enc = infer.encode_prompts(tok, passage, types)
    ends, brackets = infer.stop_ids(tok)
    k = len(decision.before)

    class Bias(LogitsProcessor):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids, scores):
            new = input_ids[0, self.start:].tolist()
            if len(new) == k and new == list(decision.before):
                scores = scores.clone()
                scores[0, decision.token] -= bias
            return scores

    out = []
    for suffix in enc.suffixes:
        ids = torch.tensor([enc.prefix + suffix])
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             do_sample=False, num_beams=1, eos_token_id=sorted(ends), pad_token_id=sorted(ends)[0],
                             logits_processor=LogitsProcessorList([Bias(ids.shape[1])]),
                             stopping_criteria=StoppingCriteriaList([infer._stop_at_class()(brackets)]))
        new = gen[0, ids.shape[1]:].tolist()
        out.append(infer.decode_answer(tok, new[:-1] if new and new[-1] in ends else new))
    return out


def plain_ids(model, tok, passage, types):
    enc = infer.encode_prompts(tok, passage, types)
    ends, brackets = infer.stop_ids(tok)
    cache = infer.encode_prefix(model, enc.prefix)
    return infer.greedy_continue_batch(model, enc.suffixes, cache, len(enc.prefix), NEW_TOKENS, ends, brackets)


def test_the_decision_is_the_first_token_where_the_empty_answer_differs():
    tok = tiny_tokenizer()
    d = calibrate.empty_decision(tok)
    assert d.before == ()
    assert tok.convert_ids_to_tokens(d.token) == "Ġ["  # " []" is "Ġ[", "]"; a list of strings starts "Ġ[\""


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("step", [0, 1])
def test_biased_answers_equal_decoding_with_the_bias(seed, step):
    tok, model = tiny_tokenizer(), tiny_model(seed)
    ids = [a for p in PASSAGES for a in plain_ids(model, tok, p, TYPES)]
    # play "the empty answer" with what this random model says most often, at step 0 or, after that, at step 1
    first = Counter(a[0] for a in ids if a).most_common(1)[0][0]
    if step == 0:
        decision = calibrate.Decision((), first)
    else:
        second = Counter(a[1] for a in ids if len(a) > 1 and a[0] == first).most_common(1)[0][0]
        decision = calibrate.Decision((first,), second)
    changed = 0
    for passage in PASSAGES:
        plain = infer.answer_shared_prefix(model, tok, passage, TYPES, max_new_tokens=NEW_TOKENS)
        choices = calibrate.empty_margins(model, tok, passage, TYPES, NEW_TOKENS, max_bias=100.0,
                                          decision=decision)
        taken = [c["margin"] is not None and c["margin"] >= 0 for c in choices]
        assert taken == [a[:step + 1] == list(decision.before) + [decision.token]
                         for a in plain_ids(model, tok, passage, TYPES)]
        margins = sorted({c["margin"] for c in choices if c["margin"] is not None and c["margin"] >= 0})
        # every bias that changes a different set of answers: 0, between each two margins, above them all
        for bias in [0.0] + [(a + b) / 2 for a, b in zip(margins, margins[1:])] + [margins[-1] + 1 if margins else 1]:
            mine = [calibrate.biased_answer(a, c, bias) for a, c in zip(plain, choices)]
            assert mine == biased_reference(model, tok, passage, TYPES, decision, bias), (passage, bias)
            changed += sum(m != a for m, a in zip(mine, plain))
    assert changed > 0  # some bias changed some answer: the comparison is not vacuous


def test_answer_with_bias_is_plain_at_zero_and_changes_the_empty_answers():
    tok, model = tiny_tokenizer(), tiny_model(0)
    plain = infer.answer_shared_prefix(model, tok, PASSAGES[0], TYPES, max_new_tokens=NEW_TOKENS)
    assert calibrate.answer_with_bias(model, tok, PASSAGES[0], TYPES, 0.0, NEW_TOKENS) == plain
    choices = calibrate.empty_margins(model, tok, PASSAGES[0], TYPES, NEW_TOKENS, max_bias=1e9)
    biased = calibrate.answer_with_bias(model, tok, PASSAGES[0], TYPES, 1e9, NEW_TOKENS)
    for a, b, c in zip(plain, biased, choices):
        took = c["margin"] is not None and c["margin"] >= 0
        assert (b == c["forced"]) if took else (b == a)


def test_a_bias_beyond_the_recorded_one_is_refused_and_other_answers_stay():
    assert calibrate.biased_answer("[]", {"margin": 0.5, "forced": '["Paris"]'}, 1.0) == '["Paris"]'
    assert calibrate.biased_answer("[]", {"margin": 1.5, "forced": None}, 1.0) == "[]"  # margin above the bias
    assert calibrate.biased_answer('["x"]', {"margin": -2.0, "forced": None}, 5.0) == '["x"]'  # took another token
    assert calibrate.biased_answer('["x"]', {"margin": None, "forced": None}, 5.0) == '["x"]'
    with pytest.raises(ValueError, match="larger max_bias"):
        calibrate.biased_answer("[]", {"margin": 1.5, "forced": None}, 2.0)
    with pytest.raises(ValueError, match="no margin recorded for 1 answers"):
        calibrate.apply_bias({"a": "[]"}, {}, 1.0)
    with pytest.raises(ValueError, match="max_bias must be >= 0"):
        calibrate.empty_margins(None, None, "text", ["person"], max_bias=-1.0)


def curve_fixture():
    # four questions: two with gold mentions (the student said [] to both), two with gold []
    p = EvalPassage("Obama met Merkel in Paris .", [
        EvalQuery("q1", "person", '["Obama"]'), EvalQuery("q2", "city", '["Paris"]'),
        EvalQuery("q3", "company", "[]"), EvalQuery("q4", "country", "[]"),
    ])
    answers = {"q1": "[]", "q2": "[]", "q3": "[]", "q4": "[]"}
    choices = {  # margins 0.5 (right when forced), 1.5 (right when forced), 0.7 and 3 (wrong when forced)
        "q1": {"margin": 0.5, "forced": '["Obama"]'}, "q2": {"margin": 1.5, "forced": '["Paris"]'},
        "q3": {"margin": 0.7, "forced": '["Merkel"]'}, "q4": {"margin": 3.0, "forced": '["France"]'},
    }
    return {"d": [p]}, {"d": answers}, {"d": choices}


def test_bias_curve_scores_every_bias_and_the_choice_prefers_the_smaller_bias():
    passages, answers, choices = curve_fixture()
    curve = calibrate.bias_curve(passages, answers, choices, [0.0, 0.6, 1.0, 2.0, 4.0])
    # bias 0: nothing said, F1 0, both gold questions missed; 0.6: Obama (P 1, R 1/2: F1 2/3), one missed;
    # 1.0: Obama + Merkel (P 1/2, R 1/2: 1/2), one invented; 2.0: + Paris (P 2/3, R 1: 4/5); 4.0: + France (2/3)
    assert curve["f1"].tolist() == pytest.approx([0.0, 66.67, 50.0, 80.0, 66.67], abs=0.01)
    assert curve["missed_share"].tolist() == [100.0, 50.0, 50.0, 0.0, 0.0]
    assert curve["invented_share"].tolist() == [0.0, 0.0, 50.0, 50.0, 100.0]
    assert curve["empty_pred_share"].tolist() == [100.0, 75.0, 50.0, 25.0, 0.0]
    assert curve["changed_share"].tolist() == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert calibrate.choose_bias(curve) == 2.0
    tied = calibrate.bias_curve(passages, answers, choices, [2.5, 2.0, 0.0])  # 2.5 scores as 2.0 does
    assert calibrate.choose_bias(tied) == 2.0


def test_margins_are_cached_and_resumed(tmp_path):
    tok, model = tiny_tokenizer(), tiny_model(0)
    passages = [EvalPassage(p, [EvalQuery(f"{i}-{t}", t, "[]") for t in TYPES[:3]]) for i, p in enumerate(PASSAGES)]
    cache = tmp_path / "margins.jsonl"
    first = calibrate.predict_margins(model, tok, passages[:1], NEW_TOKENS, 100.0, cache, progress=False)
    assert len(cache.read_text().splitlines()) == 3
    both = calibrate.predict_margins(model, tok, passages, NEW_TOKENS, 100.0, cache, progress=False)
    assert {k: both[k] for k in first} == first and len(both) == 6
    assert len(cache.read_text().splitlines()) == 6  # the first passage was not asked again
    fresh = calibrate.predict_margins(model, tok, passages, NEW_TOKENS, 100.0, None, progress=False)
    assert fresh.keys() == both.keys()
    for k in both:  # without a cache: the same records (the first passage was asked in a batch of its own both times)
        assert fresh[k]["forced"] == both[k]["forced"]
        assert (fresh[k]["margin"] is None) == (both[k]["margin"] is None)
        assert fresh[k]["margin"] is None or fresh[k]["margin"] == pytest.approx(both[k]["margin"], abs=1e-5)
    cache.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"margins.jsonl:1: not a margin record"):
        calibrate.predict_margins(model, tok, passages, NEW_TOKENS, 100.0, cache, progress=False)


def test_forced_answers_are_scored_where_the_student_answered_empty():
    passages, answers, choices = curve_fixture()
    answers = {"d": {**answers["d"], "q2": '["Paris"]'}}  # q2 was answered: its forced answer does not count
    choices["d"]["q1"] = {"margin": 0.5, "forced": '["Obama", "Merkel"]'}  # one right mention of two
    out = calibrate.forced_answers(passages, answers, choices)
    # missed: q1 only (gold ["Obama"], forced ["Obama", "Merkel"]): P 1/2, R 1, F1 2/3, names a gold mention
    assert out["missed"] == 1 and out["precision"] == 50.0 and out["recall"] == 100.0
    assert out["f1"] == pytest.approx(200 / 3) and out["with_a_gold_mention"] == 100.0
    # gold-empty questions answered []: q3 and q4, both forced answers name something
    assert out["empty"] == 2 and out["invented"] == 100.0
    choices["d"]["q4"] = {"margin": 9.0, "forced": None}  # beyond max_bias: no forced answer, not counted
    assert calibrate.forced_answers(passages, answers, choices)["empty"] == 1
