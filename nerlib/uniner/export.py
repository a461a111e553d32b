"""Export a trained UniversalNER student as a plain causal LM folder (``nerlib uniner export``).

A LoRA student is its base model plus low-rank updates ``B A`` on some linear layers. ``peft``'s
``merge_and_unload`` adds ``B A`` (scaled) into those weights and returns the base architecture, so the export is
an ordinary ``AutoModelForCausalLM`` folder (weights, config, tokenizer) that needs neither ``peft`` nor ``nerlib``
and answers as the adapter did (greedy decoding, tested on a tiny model). A fully fine-tuned student is copied as
it is. The folder gets a hub model card with the prompt template, the training data and its licence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nerlib.modelcard import model_card, push_to_hub, write_card

PILE_NER = "Universal-NER/Pile-NER-type"


def merged_model(folder: str | Path, base: str | None = None) -> tuple[Any, Any, bool]:
    """(model without adapters, tokenizer, whether a LoRA adapter was merged) of a trained folder."""
    from nerlib.uniner.train import load_trained

    model, tokenizer = load_trained(folder, base)
    merged = hasattr(model, "merge_and_unload")
    if merged:
        model = model.merge_and_unload()
    return model.eval(), tokenizer, merged


def _base_name(folder: Path, model: Any) -> str:
    name = ""
    config = folder / "adapter_config.json"
    if config.is_file():
        name = json.loads(config.read_text()).get("base_model_name_or_path") or ""
    name = name or getattr(model.config, "_name_or_path", "") or "unknown"
    try:
        from nerlib.models import SPECS
    except ImportError:  # pragma: no cover
        return name
    if name in SPECS:
        return SPECS[name].hub
    for spec in SPECS.values():  # a converted offline model: its folder is named after the short name
        if spec.name in str(name):
            return spec.hub
    return name


def card_text(folder: Path, base: str, record: dict | None, scores: dict | None, merged: bool) -> str:
    """The model card of an exported student."""
    from nerlib.uniner.conversations import inference_prompt

    record = record or {}
    budget = {k: record[k] for k in ("global_step", "examples", "tokens_seen", "seconds", "precision")
              if k in record}
    settings = record.get("settings") or {}
    budget.update({k: settings[k] for k in ("max_steps", "batch_size", "grad_accum", "learning_rate", "lora_r",
                                            "max_passages") if k in settings})
    supervised = list(settings.get("supervised_datasets", [])) if isinstance(settings, dict) else []
    datasets = [PILE_NER] + supervised
    template = inference_prompt("{passage}", "{entity type}", eos="</s>")
    training = (
        f"- base model: `{base}`; {'LoRA adapter merged into the weights' if merged else 'full fine-tuning'}\n"
        f"- data: ChatGPT annotations of Pile passages in the style of `{PILE_NER}` (licence **CC BY-NC 4.0**: "
        "non-commercial use only; the model inherits it)" + (f", plus {', '.join(supervised)}" if supervised else "")
        + f"\n- profile: `{record.get('profile', 'unknown')}`"
        + f", budget: {json.dumps(budget) if budget else 'unknown'}\n"
        "- method: UniversalNER targeted distillation (Zhou et al., ICLR 2024), conversation format with one "
        "question per entity type")
    usage = (
        "The prompt (one question per entity type; generate greedily and read the JSON list up to the first `]`):\n\n"
        f"```text\n{template}\n```\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "model = AutoModelForCausalLM.from_pretrained(\"THIS_FOLDER\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")\n```\n\n"
        "With `nerlib`, character offsets for any types: `nerlib uniner extract --model THIS_FOLDER --types "
        "\"person,organization\" --text \"...\"` (the prefix is encoded once for all types).")
    return model_card(
        title="UniversalNER student: open-type NER by instruction tuning", base_model=base, licence="cc-by-nc-4.0",
        datasets=datasets, tags=["text-generation", "universal-ner", "open-type-ner"],
        summary=("A small causal LM that answers \"What describes <entity type> in the text?\" with a JSON list of "
                 "mentions, for entity types given in natural language at inference time."),
        training=training, usage=usage, scores=scores, pipeline_tag="text-generation")


def export_model(model_dir: str | Path, out: str | Path, base: str | None = None, scores: dict | None = None,
                 push_to: str | None = None, profile: str | None = None, settings: dict | None = None) -> dict:
    """Command-line entry (``nerlib uniner export``): a trained folder (LoRA adapter or full model) -> ``out``,
    a plain ``AutoModelForCausalLM`` folder with tokenizer and ``README.md``; ``push_to`` uploads it.
    ``profile`` and ``settings`` (the training settings, e.g. ``dataclasses.asdict(profile.uniner)``) go into the
    card when the training record does not hold them."""
    folder = Path(model_dir)
    model, tokenizer, merged = merged_model(folder, base)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = None
    if (folder / "train_result.json").is_file():
        record = json.loads((folder / "train_result.json").read_text())
    record = {**(record or {}), **({"profile": profile} if profile else {}),
              **({"settings": settings} if settings else {})}
    if scores is None and (folder / "scores.json").is_file():
        scores = json.loads((folder / "scores.json").read_text())
        scores = scores if all(isinstance(v, (int, float, str)) for v in scores.values()) else None
    base_name = _base_name(folder, model)
    write_card(out, card_text(folder, base_name, record, scores, merged))
    result = {"exported": str(out), "from": str(folder), "merged_lora": merged, "base_model": base_name}
    if push_to:
        result["hub"] = push_to_hub(out, push_to)
    return result


__all__ = ["card_text", "export_model", "merged_model"]
