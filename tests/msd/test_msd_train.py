"""MSD training on tiny random encoders: features, teacher learning, the student never reading target tags,
frozen teacher and caching (resume: test_msd_resume.py)."""

import random

import pytest
import torch

from nerlib.config import MSDSettings
from nerlib.data import tags
from nerlib.msd import features as F
from nerlib.msd import predict as P
from nerlib.msd import runs as R
from nerlib.msd import train as T
from nerlib.msd import variants as V
from nerlib.msd.model import MultiExitTokenClassifier
from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

torch.set_num_threads(1)  # tiny models: threads only contend on a shared CPU

LABELS = tags.tag_names(["LOC", "MISC", "ORG", "PER"])
WORDS = ["John", "Maria", "lives", "in", "Paris", "Madrid", "works", "at", "Google", "."]
SENTS = [["John", "lives", "in", "Paris", "."], ["Maria", "works", "at", "Google", "."],
         ["Maria", "lives", "in", "Madrid", "."], ["John", "works", "at", "Google"]]
TAGS = [["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-ORG", "O"],
        ["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-ORG"]]


def _settings(**kw):
    base = dict(max_length=16, eval_max_length=32, batch_size=4, mmd_batch_size=4, teacher_steps=40,
                student_steps=6, teacher_lr=5e-3, student_lr=1e-3, eval_every=0, eval_batch_size=8,
                train_sentences=None, unlabeled_sentences=None, eval_sentences=None, freeze_layers=3)
    base.update(kw)
    return MSDSettings(**base)


def _model(multi_exit=True, seed=0):
    tok = tiny_tokenizer(WORDS)
    encoder = tiny_encoder(len(tok), seed=seed)
    return MultiExitTokenClassifier.from_encoder(encoder, LABELS, 4, multi_exit, dropout=0.0), tok


def test_encode_first_subwords_and_unlabelled_mask():
    tok = tiny_tokenizer(WORDS)
    feats = F.encode([["John", "xyz"]], tok, 16, [["B-PER", "B-MISC"]], {t: i for i, t in enumerate(LABELS)})
    # [CLS] John x ##y ##z [SEP]
    assert feats[0]["labels"] == [-100, LABELS.index("B-PER"), LABELS.index("B-MISC"), -100, -100, -100]
    unlabelled = F.encode([["John", "xyz"]], tok, 16)
    assert unlabelled[0]["labels"] == [-100, 0, 0, -100, -100, -100]
    with pytest.raises(ValueError, match="sentence 1.*unknown tag 'B-FOO'"):
        F.encode([["John"]], tok, 16, [["B-FOO"]], {t: i for i, t in enumerate(LABELS)}, where="x.jsonl")
    with pytest.raises(ValueError, match="1 tokens but 2 tags"):
        F.encode([["John"]], tok, 16, [["O", "O"]], {t: i for i, t in enumerate(LABELS)})


def test_collate_pads_and_repair_iob2():
    batch = F.collate([{"input_ids": [5, 6, 7], "labels": [-100, 1, -100]}, {"input_ids": [5], "labels": [-100]}], 0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 1, -100], [-100, -100, -100]]
    assert tags.repair_iob2(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"]) == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG"]


def test_seqeval_scores_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    s = P.seqeval_scores(gold, pred)
    assert s["precision"] == pytest.approx(50.0) and s["recall"] == pytest.approx(50.0) and s["f1"] == pytest.approx(50.0)
    assert s["per_type"]["PER"] == pytest.approx(100.0) and s["per_type"]["LOC"] == 0.0 and s["per_type"]["ORG"] == 0.0


def test_teacher_learns_toy_data():
    model, tok = _model()
    data = {"tokens": SENTS, "ner_tags": TAGS}
    log = T.train_teacher(model, tok, data, _settings(), progress=False)
    assert log.steps == 40 and log.losses[-1] < log.losses[0] / 4
    assert P.evaluate(model, tok, data, 32)["f1"] == pytest.approx(100.0)


def _teacher_and_student(seed=0):
    teacher, tok = _model(seed=1)
    T.train_teacher(teacher, tok, {"tokens": SENTS, "ner_tags": TAGS}, _settings(teacher_steps=10), progress=False)
    student, _ = _model(seed=2)
    return teacher, student, tok


def test_student_trains_frozen_teacher_and_frozen_bottom():
    teacher, student, tok = _teacher_and_student()
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    log = T.train_student(student, teacher, tok, SENTS, SENTS[::-1], _settings(), V.Variant(), progress=False)
    assert log.steps == 6
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())
    assert all(p.grad is None for p in teacher.parameters())
    after = student.state_dict()
    assert torch.equal(after["encoder.encoder.layer.0.attention.self.query.weight"],
                       s_before["encoder.encoder.layer.0.attention.self.query.weight"])
    assert not torch.equal(after["encoder.encoder.layer.5.attention.self.query.weight"],
                           s_before["encoder.encoder.layer.5.attention.self.query.weight"])
    assert not torch.equal(after["omega"], s_before["omega"])  # the aux distillation loss moves omega


def test_mmd_l_gradient_reaches_student_encoder():
    teacher, student, tok = _teacher_and_student()
    feats = F.encode(SENTS, tok, 16)
    _, anchor = T.teacher_outputs(teacher, feats, tok.pad_token_id)
    batch = F.collate(feats, tok.pad_token_id)
    student.freeze_bottom(3)
    cls = student(batch["input_ids"], batch["attention_mask"]).cls
    from nerlib.msd.losses import mmd2

    mmd2(anchor, cls).backward()
    assert student.encoder.encoder.layer[5].output.dense.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.heads.parameters())  # MMD does not touch the classifiers
    assert anchor.grad_fn is None


def test_student_distillation_from_single_head_teacher_works():
    teacher, tok = _model(multi_exit=False, seed=1)
    T.train_teacher(teacher, tok, {"tokens": SENTS, "ner_tags": TAGS}, _settings(), progress=False)
    student, _ = _model(multi_exit=False, seed=2)
    T.train_student(student, teacher, tok, SENTS, SENTS, _settings(student_steps=60, student_lr=5e-3),
                    V.Variant(False, False, False), progress=False)
    assert P.predict_tags(student, tok, SENTS) == P.predict_tags(teacher, tok, SENTS)


def test_student_exits_must_match():
    teacher, tok = _model(multi_exit=True)
    student, _ = _model(multi_exit=False)
    with pytest.raises(ValueError, match="exits"):
        T.train_student(student, teacher, tok, SENTS, SENTS, _settings(), V.Variant(), progress=False)


@pytest.fixture()
def tiny_world(tmp_path, monkeypatch):
    """A tiny encoder folder, a cache dir, and fake datasets behind nerlib.data.load."""
    tok = tiny_tokenizer(WORDS)
    enc_dir = tmp_path / "enc"
    tiny_encoder(len(tok), seed=3).save_pretrained(enc_dir)
    tok.save_pretrained(enc_dir)
    monkeypatch.setenv("NERLIB_CACHE_DIR", str(tmp_path / "cache"))
    data = {"train": {"tokens": SENTS, "ner_tags": TAGS}, "validation": {"tokens": SENTS, "ner_tags": TAGS}}
    calls = []

    def fake_load(name, split, limit):
        calls.append((name, split))
        return data[split]

    monkeypatch.setattr(R, "_load", fake_load)
    monkeypatch.setattr(R, "_labels_for", lambda source: LABELS)
    return {"settings": _settings(encoder=str(enc_dir), teacher_steps=4, student_steps=4), "data": data,
            "calls": calls}


def test_student_never_reads_target_tags(tiny_world):
    """Scrambling the target tags leaves the trained student bit-identical."""
    s = tiny_world["settings"]
    first, _ = R.cached_student(s, "conll2002_es", "MSD", seed=7, progress=False)
    first_state = {k: v.clone() for k, v in first.state_dict().items()}
    # scramble every tag the fake loader returns, then retrain the student from scratch in a fresh cache
    rng = random.Random(0)
    tiny_world["data"]["train"] = {"tokens": SENTS, "ner_tags": [[rng.choice(LABELS) for _ in t] for t in TAGS]}
    import os
    os.environ["NERLIB_CACHE_DIR"] = os.environ["NERLIB_CACHE_DIR"] + "-2"
    # the teacher also trains on the (scrambled) train split of the fake loader: keep its tags as before
    teacher_tags = TAGS

    def load(name, split, limit):
        if name == s.source and split == "train":
            return {"tokens": SENTS, "ner_tags": teacher_tags}
        return tiny_world["data"][split]

    R._load = load  # monkeypatch restores the original at teardown
    second, _ = R.cached_student(s, "conll2002_es", "MSD", seed=7, progress=False)
    for k, v in first_state.items():
        assert torch.equal(v, second.state_dict()[k]), k


def test_cache_reuses_trained_models(tiny_world):
    s = tiny_world["settings"]
    model, info = R.cached_student(s, "conll2002_nl", "w/o all", seed=1, progress=False)
    n_calls = len(tiny_world["calls"])
    again, info2 = R.cached_student(s, "conll2002_nl", "w/o all", seed=1, progress=False)
    assert len(tiny_world["calls"]) == n_calls  # nothing reloaded or retrained
    assert info2["variant"] == {"distillers": False, "mmd_m": False, "mmd_l": False}
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_control_row_distils_the_multi_exit_teachers_last_exit(tiny_world):
    """'w/o all, multi-exit teacher': a single-head student learning from MSD's own teacher (no single-head teacher
    is trained), so MSD minus this row holds the teacher fixed."""
    from nerlib.msd.variants import VARIANTS

    s = tiny_world["settings"]
    control = VARIANTS["w/o all, multi-exit teacher"]
    model, info = R.cached_student(s, "conll2002_nl", control, seed=1, progress=False)
    assert model.multi_exit is False and info["variant"]["multi_exit_teacher"] is True
    teachers = sorted(p.name for p in R.msd_dir().glob("teacher-*"))
    assert teachers == [f"teacher-{R.teacher_key(s, True, 1, s.source)}"]
    assert R.student_key(s, "conll2002_nl", control, 1) != R.student_key(s, "conll2002_nl", VARIANTS["w/o all"], 1)


# Resuming after a real interruption: tests/msd/test_msd_resume.py


def test_evaluate_exits_reads_each_head():
    model, tok = _model()
    model.eval()
    data = {"tokens": SENTS, "ner_tags": TAGS}
    with torch.no_grad():  # make exit 0 predict B-PER everywhere, the others O everywhere
        for i, head in enumerate(model.heads):
            head.weight.zero_()
            head.bias.zero_()
            head.bias[LABELS.index("B-PER" if i == 0 else "O")] = 5.0
    scores = P.evaluate_exits(model, tok, data)
    assert set(scores) == {4, 5, 6} and scores[5] == 0.0 and scores[6] == 0.0
    # exit 4: 19 predicted B-PER entities, 4 of them gold (of 8 gold): P=4/19, R=4/8
    p, r = 4 / 19, 4 / 8
    assert scores[4] == pytest.approx(100 * 2 * p * r / (p + r))


def test_loop_with_dev_evaluations_returns_the_best_dev_state():
    """With ``eval_every > 0`` the loop ends on the weights of the best dev evaluation, not the last step."""
    model, tok = _model()
    model.freeze_bottom(3)
    settings = _settings(eval_every=2, teacher_steps=6)
    feats = F.encode(SENTS, tok, 16, TAGS, model.label2id)
    step_loss = T.teacher_step_loss(model, feats, tok.pad_token_id, settings, F.endless_batches(len(feats), 2, 0))
    scores, states = iter([10.0, 30.0, 20.0]), {}

    def dev_eval():  # called after steps 2, 4 and 6: record the weights each score belongs to
        states[len(states) * 2 + 2] = {k: v.clone() for k, v in T.trainable_state(model).items()}
        return next(scores)

    log = T._loop(model, step_loss, 6, settings, 5e-3, dev_eval, None, "teacher", False)
    assert log.dev == [(2, 10.0), (4, 30.0), (6, 20.0)] and log.best_step == 4 and log.best_f1 == 30.0
    assert not all(torch.equal(v, states[6][k]) for k, v in states[4].items())  # training moved on after step 4
    final = T.trainable_state(model)
    for k, v in states[4].items():
        assert torch.equal(final[k], v), k
