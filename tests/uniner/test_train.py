"""Training on a tiny LLaMA: the loss falls, LoRA leaves base weights alone, resuming reproduces a straight run."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from uniner_tiny_lm import tiny_examples, tiny_model, tiny_tokenizer

from nerlib.config import UniNERSettings, machine_summary
from nerlib.uniner import pipeline as P
from nerlib.uniner import train as T
from nerlib.uniner.conversations import ConversationDataset
from nerlib.uniner.records import InstructionExample, Query

torch.set_num_threads(1)

EXAMPLES = tiny_examples()
SETTINGS = UniNERSettings(max_length=256, batch_size=2, grad_accum=1, learning_rate=5e-3, max_steps=20)


def mean_loss(model, tok) -> float:
    ds = ConversationDataset(EXAMPLES, tok, 256, shuffle_queries=False)
    batch = T.make_collator(tok)([ds[i] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def test_collator_pads_ids_and_labels():
    tok = tiny_tokenizer()
    batch = T.make_collator(tok)([
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, tok.pad_token_id, tok.pad_token_id]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_lora_adapts_the_attention_and_mlp_projections():
    model = T.prepare_model(tiny_model(), lora=True, lora_r=4)
    adapted = {name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters()
               if ".lora_A." in name}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_full_fine_tuning_lowers_the_loss(tmp_path):
    tok, model = tiny_tokenizer(), tiny_model(0)
    before = mean_loss(model, tok)
    model = T.prepare_model(model, lora=False)
    result = T.fit(model, tok, EXAMPLES, tmp_path / "full", SETTINGS, seed=0, progress=False)
    after = mean_loss(model, tok)
    assert result.global_step == 20 and result.tokens_seen > 0 and result.tokens_per_second > 0
    assert result.machine == machine_summary()
    assert after < before - 1.0, (before, after)
    assert (tmp_path / "full" / "config.json").exists()


def test_lora_trains_adapters_and_leaves_base_weights_unchanged(tmp_path):
    tok, model = tiny_tokenizer(), tiny_model(0)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    before = mean_loss(model, tok)
    peft_model = T.prepare_model(model, lora=True, lora_r=4)
    lora_before = {k: v.clone() for k, v in peft_model.named_parameters() if "lora_B" in k}
    T.fit(peft_model, tok, EXAMPLES, tmp_path / "lora", dataclasses.replace(SETTINGS, learning_rate=2e-2),
          seed=0, progress=False)
    after = mean_loss(peft_model, tok)
    assert after < before, (before, after)
    changed = [k for k, v in peft_model.named_parameters() if "lora_B" in k and not torch.equal(v, lora_before[k])]
    assert changed
    after_base = {k.replace(".base_layer", ""): v for k, v in peft_model.get_base_model().state_dict().items()
                  if "lora_" not in k}
    assert after_base.keys() == base.keys()
    for k, v in base.items():
        assert torch.equal(after_base[k], v), k
    assert (tmp_path / "lora" / "adapter_config.json").exists()


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path):
    tok = tiny_tokenizer()
    s = dataclasses.replace(SETTINGS, max_steps=4)
    straight = T.prepare_model(tiny_model(0), lora=False)
    T.fit(straight, tok, EXAMPLES, tmp_path / "a", s, seed=0, save_steps=2, progress=False)
    assert (tmp_path / "a" / "checkpoint-2").is_dir()
    resumed = T.prepare_model(tiny_model(0), lora=False)
    res = T.fit(resumed, tok, EXAMPLES, tmp_path / "a", s, seed=0, save_steps=2, progress=False,
                resume=str(tmp_path / "a" / "checkpoint-2"))
    assert res.global_step == 4
    for (k, v), (_, w) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(v, w, atol=1e-6), k
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        T.fit(T.prepare_model(tiny_model(0), lora=False), tok, EXAMPLES, tmp_path / "empty", s, resume=True,
              progress=False)


def test_train_or_load_caches_by_settings_and_data(tiny_student):
    from nerlib.config import get_profile

    profile = get_profile("smoke")
    s = dataclasses.replace(SETTINGS, student=str(tiny_student), max_steps=2, lora_r=4)
    m1, _, rec1 = P.train_or_load(profile, EXAMPLES, name="t", settings=s, progress=False)
    m2, _, rec2 = P.train_or_load(profile, EXAMPLES, name="t", settings=s, progress=False)
    assert (rec1["cached"], rec2["cached"]) == (False, True) and rec1["key"] == rec2["key"]
    assert rec1["model_dir"] == rec2["model_dir"] and rec1["model_dir"].endswith(f"t-{rec1['key']}")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(m1(ids).logits, m2(ids).logits, atol=1e-5)
    assert T.run_key(s, EXAMPLES[:2], 42, "per_type") != T.run_key(s, EXAMPLES, 42, "per_type")
    assert T.run_key(dataclasses.replace(s, lora_r=8), EXAMPLES, 42, "per_type") != rec1["key"]
    # evaluation and chapter-ablation settings do not change what is trained, so they leave the key alone
    unchanged = dataclasses.replace(s, eval_passages_per_domain=3, ablation_max_steps=7, ablation_eval_passages=2,
                                    max_new_tokens=5, base_max_new_tokens=9)
    assert T.run_key(unchanged, EXAMPLES, 42, "per_type") == rec1["key"]


def test_ddp_under_accelerate_launch_splits_batches_across_processes(tmp_path):
    """The multi-GPU path (``accelerate launch``, DDP) on two CPU processes with the gloo backend: both ranks train
    one model together (world size 2, each step consumes one example per rank) and the adapter is saved once."""
    import json
    import os
    import subprocess
    import sys

    from nerlib.uniner.records import write_examples

    tiny_model(0).save_pretrained(tmp_path / "model")
    tiny_tokenizer().save_pretrained(tmp_path / "model")
    write_examples(EXAMPLES * 2, tmp_path / "train.jsonl")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "nerlib.uniner.pipeline",
           "--profile", "smoke", "--student", str(tmp_path / "model"), "--examples", str(tmp_path / "train.jsonl"),
           "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    start = proc.stdout.index('{\n  "output_dir"')  # the result JSON, printed by rank 0 only, after the log lines
    result = json.loads(proc.stdout[start:proc.stdout.index("\n}", start) + 2])
    assert proc.stdout.count('"world_size"') == 1
    assert result["world_size"] == 2 and result["examples"] == 8
    assert result["global_step"] == 2 and result["tokens_seen"] > 0  # smoke: 2 steps, batch 1 per process
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())  # saved at the end
    epochs = [h["epoch"] for h in state["log_history"] if "loss" in h]
    assert epochs == [0.25, 0.5]  # 2 ranks x 1 example per step over 8 examples: a quarter epoch per step


def test_run_key_value_is_pinned():
    """Trained students are cached under ``<name>-<run_key>``: the key of a fixed input must never change, or every
    cached student on disk would be trained again. (Changed once on purpose: the chapter-ablation settings left the
    key, so that a chapter and a benchmark training the same student share it.)"""
    examples = [
        InstructionExample("Obama met Apple .", [Query("person", ["Obama"]), Query("company", [])], id="a"),
        InstructionExample("Ada wrote code .", [Query("person", ["Ada"])], dataset="conll2003_en"),
    ]
    s = UniNERSettings(student="smollm2-135m", max_length=256, lora_r=4, max_steps=3)
    assert T.run_key(s, examples, 42, "per_type") == "daff7462d54fcc32"
    assert T.run_key(s, examples, 7, "all_in_one") == "3995f8229694818d"
