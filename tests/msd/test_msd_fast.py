"""The fast CPU trainer keeps the mathematics: length-grouped batches see every sentence once per epoch, padding
does not change a batch's loss, the frozen bottom builds no graph, teacher outputs are cached per dataset, and bf16
autocast agrees with fp32 within a stated tolerance."""

import random

import pytest
import torch

from nerlib.config import MSDSettings
from nerlib.data import tags
from nerlib.msd import features as F
from nerlib.msd import train as T
from nerlib.msd import variants as V
from nerlib.msd.losses import IGNORE, student_loss, teacher_loss
from nerlib.msd.model import MultiExitTokenClassifier
from nerlib.msd.tiny import tiny_encoder, tiny_tokenizer

torch.set_num_threads(1)

LABELS = tags.tag_names(["LOC", "MISC", "ORG", "PER"])
WORDS = ["John", "Maria", "lives", "in", "Paris", "Madrid", "works", "at", "Google", "."]
SENTS = [["John", "lives", "in", "Paris", "."], ["Maria", "works", "at", "Google", "."],
         ["Maria", "lives", "in", "Madrid", "and", "works", "at", "Google", "with", "John", "."], ["John"]]
TAGS = [["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-ORG", "O"],
        ["B-PER", "O", "O", "B-LOC", "O", "O", "O", "B-ORG", "O", "B-PER", "O"], ["B-PER"]]
L2I = {t: i for i, t in enumerate(LABELS)}


def _model(seed=0, dropout=0.0):
    tok = tiny_tokenizer(WORDS)
    encoder = tiny_encoder(len(tok), seed=seed)
    return MultiExitTokenClassifier.from_encoder(encoder, LABELS, 4, True, dropout=dropout), tok


def test_length_grouped_batches_cover_every_epoch_once_and_pad_less():
    rng = random.Random(0)
    lengths = [rng.randint(3, 64) for _ in range(203)]
    gen = F.length_grouped_batches(lengths, 8, seed=1, pool=5)
    for _ in range(3):  # three epochs: 25 full batches each, 203 % 8 = 3 sentences dropped per epoch
        epoch = [next(gen) for _ in range(25)]
        flat = [i for b in epoch for i in b]
        assert all(len(b) == 8 for b in epoch) and len(set(flat)) == len(flat) == 200
    same = F.length_grouped_batches(lengths, 8, seed=1, pool=5)
    again = F.length_grouped_batches(lengths, 8, seed=1, pool=5)
    assert [next(same) for _ in range(60)] == [next(again) for _ in range(60)]  # reproducible in the seed

    def mean_width(gen):
        return sum(max(lengths[i] for i in next(gen)) for _ in range(100)) / 100

    grouped = mean_width(F.length_grouped_batches(lengths, 8, seed=1, pool=25))
    plain = mean_width(F.endless_batches(len(lengths), 8, seed=1))
    assert grouped < 0.7 * plain  # far less padding
    # pool=1: each batch is a random sample, widths like plain random batches
    assert mean_width(F.length_grouped_batches(lengths, 8, seed=1, pool=1)) > 0.85 * plain
    with pytest.raises(ValueError, match="pool"):
        next(F.length_grouped_batches(lengths, 8, seed=1, pool=0))


def _pad_to(batch, width, pad_id):
    """A batch padded further to ``width`` (what random batches with a longer sentence would give)."""
    extra = width - batch["input_ids"].shape[1]
    return {"input_ids": torch.nn.functional.pad(batch["input_ids"], (0, extra), value=pad_id),
            "attention_mask": torch.nn.functional.pad(batch["attention_mask"], (0, extra), value=0),
            "labels": torch.nn.functional.pad(batch["labels"], (0, extra), value=IGNORE)}


def test_padding_width_does_not_change_teacher_or_student_loss():
    """The same sentences padded to their longest (grouped batches) or to 64 (a long neighbour in a random batch)
    give the same teacher loss, student loss and per-sentence outputs: padding is masked out."""
    model, tok = _model(seed=3)
    model.eval()
    feats = F.encode(SENTS[:2], tok, 64, TAGS[:2], L2I)
    tight = F.collate(feats, tok.pad_token_id)
    wide = _pad_to(tight, 64, tok.pad_token_id)
    probs, _ = T.teacher_outputs(_model(seed=5)[0], feats, tok.pad_token_id)
    with torch.no_grad():
        a = model(tight["input_ids"], tight["attention_mask"])
        b = model(wide["input_ids"], wide["attention_mask"])
        for x, y in zip(a.logits, b.logits):
            assert torch.allclose(x, y[:, : x.shape[1]], atol=1e-5)
        assert torch.allclose(a.cls, b.cls, atol=1e-5)
        for out, batch in ((a, tight), (b, wide)):
            out.t = teacher_loss(out.logits, batch["labels"], out.aux_weights)
            width = batch["input_ids"].shape[1]
            out.s = student_loss(out.logits, list(T.pad_probs(probs, width)), batch["labels"] != IGNORE,
                                 out.aux_weights)
    assert a.t.item() == pytest.approx(b.t.item(), abs=1e-6)
    assert a.s.item() == pytest.approx(b.s.item(), abs=1e-6)


def test_teacher_outputs_do_not_depend_on_batching_and_are_cached(tmp_path, monkeypatch):
    teacher, tok = _model(seed=1)
    feats = F.encode(SENTS, tok, 64)
    probs, cls = T.teacher_outputs(teacher, feats, tok.pad_token_id, batch_size=3, cache=tmp_path)
    for i, f in enumerate(feats):  # one sentence at a time, no padding at all
        alone, alone_cls = T.teacher_outputs(teacher, [f], tok.pad_token_id)
        assert probs[i].shape == (3, len(f["input_ids"]), len(LABELS))
        assert torch.allclose(probs[i], alone[0], atol=1e-5) and torch.allclose(cls[i], alone_cls[0], atol=1e-5)
    assert len(list(tmp_path.glob("teacher-outputs-*.pt"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(teacher, "forward", boom)
    again, again_cls = T.teacher_outputs(teacher, feats, tok.pad_token_id, cache=tmp_path)
    assert all(torch.equal(x, y) for x, y in zip(probs, again)) and torch.equal(cls, again_cls)


def test_frozen_bottom_builds_no_autograd_graph():
    model, tok = _model()
    model.freeze_bottom(3)
    batch = F.collate(F.encode(SENTS, tok, 64), tok.pad_token_id)
    hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           output_hidden_states=True).hidden_states
    assert all(h.grad_fn is None and not h.requires_grad for h in hidden[:4])  # embeddings + layers 1-3
    assert all(h.requires_grad for h in hidden[4:])
    out = model(batch["input_ids"], batch["attention_mask"], exits="none")
    assert out.logits == [] and out.cls.shape == (4, 32)


def _step_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(0)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad and p.grad is not None])
    return loss.item(), grads


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_bf16_autocast_agrees_with_fp32(role):
    """Tolerance: loss within 0.5% relative, gradient within 2% relative L2 error, cosine > 0.9995 (measured on
    this tiny model: loss 0.01%, gradient 0.2-0.3%). bf16 keeps 8 bits of mantissa (relative rounding 0.4%) in the
    autocast matmuls; weights, losses and the optimiser stay fp32."""
    model, tok = _model(seed=2)
    model.freeze_bottom(3)
    model.eval()  # no dropout: both precisions see the same function (gradients flow in eval mode too)
    s = MSDSettings(max_length=64, batch_size=4, mmd_batch_size=2)
    feats = F.encode(SENTS, tok, 64, TAGS, L2I)
    results = {}
    for precision in ("fp32", "bf16"):
        if role == "teacher":
            fn = T.teacher_step_loss(model, feats, tok.pad_token_id, s, iter([[0, 1, 2, 3]]), precision)
        else:
            teacher, _ = _model(seed=7)
            tgt = F.encode(SENTS, tok, 64)
            probs, cls = T.teacher_outputs(teacher, tgt, tok.pad_token_id)
            fn = T.student_step_loss(model, tgt, probs, tgt, cls, tok.pad_token_id, s, V.Variant(),
                                     iter([[0, 1, 2, 3]]), iter([[2, 0]]), precision)
        results[precision] = _step_grads(model, fn)
    (loss32, g32), (loss16, g16) = results["fp32"], results["bf16"]
    assert loss16 == pytest.approx(loss32, rel=5e-3)
    assert (g16 - g32).norm() / g32.norm() < 2e-2
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.9995
    assert loss16 != loss32 or not torch.equal(g16, g32)  # bf16 really ran (else the test proves nothing)


def test_teacher_step_trains_on_grouped_batches():
    model, tok = _model(seed=0)
    s = MSDSettings(max_length=64, batch_size=2, teacher_steps=30, teacher_lr=5e-3, eval_every=0, length_pool=2,
                    freeze_layers=3, warmup_ratio=0.0)
    log = T.train_teacher(model, tok, {"tokens": SENTS, "ner_tags": TAGS}, s, progress=False)
    assert log.steps == 30 and log.losses[-1] < log.losses[0] / 3
