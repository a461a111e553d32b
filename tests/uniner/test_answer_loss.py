"""The answer-only loss: the output layer runs only where a label is, and the loss, its gradients and training
with it equal the model's own causal-LM loss and the plain Trainer."""

from __future__ import annotations

import torch
from uniner_tiny_lm import tiny_examples, tiny_model, tiny_tokenizer

from nerlib.config import UniNERSettings
from nerlib.uniner import train as T
from nerlib.uniner.conversations import ConversationDataset

torch.set_num_threads(1)

EXAMPLES = tiny_examples()


def _batch():
    tok = tiny_tokenizer()
    ds = ConversationDataset(EXAMPLES, tok, 256, shuffle_queries=False)
    return T.make_collator(tok)([ds[i] for i in range(len(ds))])


def test_logit_positions_are_the_positions_before_labelled_tokens():
    labels = torch.tensor([[-100, -100, 7, 8, -100, -100],
                           [-100, -100, -100, -100, -100, 9]])
    assert T.logit_positions(labels).tolist() == [1, 2, 4]  # predict tokens 2, 3 (row 0) and 5 (row 1)
    assert T.logit_positions(torch.full((2, 4), -100)).tolist() == []


def test_answer_loss_equals_the_models_own_loss_and_gradients():
    batch = _batch()
    assert T.logit_positions(batch["labels"]).numel() < batch["labels"].shape[1] / 2  # most positions carry no loss
    grads = []
    for own in (True, False):
        model = tiny_model(0).train()
        torch.manual_seed(1)  # dropout is 0 in the tiny LLaMA, but keep both passes identical anyway
        loss = model(**batch).loss if own else T.answer_loss(model, batch)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (own_loss, own_grads), (ours, our_grads) = grads
    assert torch.allclose(own_loss, ours, atol=1e-6, rtol=1e-6)
    for name, g in own_grads.items():
        assert torch.allclose(g, our_grads[name], atol=1e-6, rtol=1e-5), name


def test_answer_loss_divides_by_the_accumulated_token_count():
    batch = _batch()
    model = tiny_model(0)
    n = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        mean = T.answer_loss(model, batch)
        assert torch.allclose(T.answer_loss(model, batch, num_items_in_batch=torch.tensor(2 * n)), mean / 2)


def test_training_with_the_answer_loss_matches_the_plain_trainer(tmp_path):
    tok = tiny_tokenizer()
    settings = UniNERSettings(max_length=256, batch_size=2, grad_accum=2, learning_rate=5e-3, max_steps=3)
    weights = []
    for answer_only in (True, False):
        model = T.prepare_model(tiny_model(0), lora=False)
        result = T.fit(model, tok, EXAMPLES, tmp_path / str(answer_only), settings, seed=0, progress=False,
                       answer_logits_only=answer_only)
        assert result.global_step == 3
        weights.append((result.train_loss, {n: p.detach().clone() for n, p in model.named_parameters()}))
    (loss_a, a), (loss_b, b) = weights
    assert abs(loss_a - loss_b) < 1e-5
    assert max((a[n] - b[n]).abs().max().item() for n in a) < 1e-5
    assert any((a[n] - tiny_model(0).state_dict()[n]).abs().max() > 1e-4 for n in a)  # it did train


def test_bf16_autocast_loss_and_gradients_agree_with_fp32():
    """CPU bf16 autocast ($NERLIB_CPU_BF16=1) keeps fp32 weights; its loss is within 2% of fp32 and its gradients
    point the same way (cosine > 0.99) on the tiny model. (bf16 keeps 8 bits of mantissa: about 0.4% per value.)"""
    batch = _batch()
    out = []
    for bf16 in (False, True):
        model = tiny_model(0).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = T.answer_loss(model, batch)
        loss.backward()
        out.append((float(loss), torch.cat([p.grad.flatten() for p in model.parameters()])))
        assert all(p.dtype == torch.float32 for p in model.parameters())
    (fp32, g32), (bf16, g16) = out
    assert abs(bf16 - fp32) / fp32 < 0.02
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.99


def test_cpu_bf16_is_asked_for_by_the_environment(monkeypatch):
    from nerlib import device as D

    small = UniNERSettings()
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: True)
    monkeypatch.delenv("NERLIB_CPU_BF16", raising=False)
    assert T.training_precision(small, torch.device("cpu")) == "fp32"
    monkeypatch.setenv("NERLIB_CPU_BF16", "1")
    assert T.training_precision(small, torch.device("cpu")) == "bf16"
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: False)
    assert T.training_precision(small, torch.device("cpu")) == "fp32"  # emulated bf16 would be slower
