"""UniversalNER export: the LoRA student merged into a plain causal LM answers exactly as the adapter did."""

from __future__ import annotations

import json

import pytest
import torch
from uniner_tiny_lm import tiny_model, tiny_tokenizer

from nerlib.uniner.export import export_model
from nerlib.uniner.extract import Extractor
from nerlib.uniner.infer import answer
from nerlib.uniner.train import load_trained, prepare_model

PASSAGE = "Barack Obama visited Paris and Berlin . The Apple company sells phones in Spain ."
TYPES = ["person", "location", "company"]


@pytest.fixture
def adapter(tmp_path):
    """A tiny base model folder and a LoRA adapter on it with random (non-zero) updates."""
    base = tmp_path / "base"
    tiny_model().save_pretrained(base)
    tiny_tokenizer().save_pretrained(base)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = prepare_model(AutoModelForCausalLM.from_pretrained(base), lora=True, lora_r=4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    tiny_tokenizer().save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "train_result.json").write_text(json.dumps({"global_step": 48, "examples": 96}))
    return tmp_path / "adapter"


def test_merged_export_answers_as_the_adapter(adapter, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lora, tok = load_trained(adapter)
    assert hasattr(lora, "merge_and_unload")
    result = export_model(adapter, tmp_path / "export")
    assert result["merged_lora"] is True
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    plain_tok = AutoTokenizer.from_pretrained(tmp_path / "export")
    assert not any("lora" in n for n, _ in plain.named_parameters())

    ids = torch.tensor([tok(PASSAGE)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, lora(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    before = answer(lora, tok, PASSAGE, TYPES, max_new_tokens=12)
    after = answer(plain, plain_tok, PASSAGE, TYPES, max_new_tokens=12)
    assert after == before
    # the adapter matters: the base model alone answers differently, so the equality above is not trivial
    base, base_tok = load_trained(tmp_path / "base")
    assert answer(base, base_tok, PASSAGE, TYPES, max_new_tokens=12) != before
    # the extractor accepts either folder and finds the same entities
    a = Extractor.from_pretrained(adapter, device="cpu", max_new_tokens=12).extract(PASSAGE, TYPES)
    b = Extractor.from_pretrained(tmp_path / "export", device="cpu", max_new_tokens=12).extract(PASSAGE, TYPES)
    assert a == b


def test_model_card(adapter, tmp_path):
    export_model(adapter, tmp_path / "export")
    card = (tmp_path / "export" / "README.md").read_text()
    header = card.split("---")[1]
    assert 'license: "cc-by-nc-4.0"' in header and "Universal-NER/Pile-NER-type" in header
    assert "base_model:" in header and "tags:" in header
    assert "What describes {entity type} in the text? ASSISTANT:" in card and "CC BY-NC 4.0" in card
    assert '"global_step": 48' in card and "from_pretrained" in card
