"""Instruction-tune a causal student on UniversalNER conversations with ``transformers.Trainer`` (+ ``peft`` LoRA).

One training example is one passage with all its type questions (:class:`~nerlib.uniner.conversations.
ConversationDataset`, queries reshuffled each epoch); the loss covers the assistant turns only. LoRA or full
fine-tuning; offline students (``smollm2-135m``, ``gemma-3-270m``) resolve to local folders through
:func:`nerlib.models.resolve`, hub names (``Qwen/Qwen2.5-0.5B``) load from the hub on a GPU (gradient
checkpointing from the profile).

Device and precision follow the library's rule (:mod:`nerlib.device`): CUDA, else MPS, else the CPU
(``$NERLIB_DEVICE`` overrides); where a profile allows mixed precision (``bf16=True``, the gpu profile) the device
picks it: bf16 on Ampere and newer GPUs, fp16 with a loss scaler on older ones (a T4), fp32 on a CPU or MPS. Mixed
precision trains fp32 master weights under autocast. Models loaded for inference (:func:`load_trained`,
:func:`ready_for_inference`) go to the same device.

The training steps are in :mod:`nerlib.uniner.pipeline`: ``train_or_load`` (the chapters: cached by
:func:`run_key`, checkpoints every :data:`SAVE_STEPS` steps, resumes by itself after an interruption) and ``train``
(``nerlib uniner train``; ``--resume`` continues from the newest checkpoint). Several GPUs: the same code runs
under ``accelerate`` (``Trainer`` picks up the distributed environment)::

    accelerate launch --num_processes 4 -m nerlib.uniner.pipeline --examples train.jsonl --output-dir runs/uniner
    accelerate launch --config_file fsdp.yaml -m nerlib.uniner.pipeline --examples train.jsonl --output-dir runs/uniner

(DDP by default; FSDP through an accelerate config file with ``distributed_type: FSDP``). This course's machines
have no GPU; the same DDP path runs on CPU processes (gloo), which the tests use to check it::

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m nerlib.uniner.pipeline ...

FSDP and bf16 on several GPUs are untested here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nerlib import models
from nerlib.config import UniNERSettings, machine_summary
from nerlib.device import Precision, get_device, precision_for
from nerlib.runs import run_key as _run_key
from nerlib.uniner.conversations import IGNORE_INDEX, ConversationDataset
from nerlib.uniner.records import InstructionExample

def load_student(
    name: str,
    lora: bool = True,
    lora_r: int = 16,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.05,
    dtype: Any = None,
    gradient_checkpointing: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM (offline short name, hub name or folder) and wrap it in LoRA when ``lora``.

    ``dtype`` defaults to float32 whatever the checkpoint holds: training keeps fp32 master weights (mixed precision
    is autocast's job), and a bf16 checkpoint (Gemma 3, Qwen2.5) would otherwise train in pure bf16, which loses
    small updates and runs emulated, several times slower, on a CPU without native bf16."""
    import torch
    from transformers import AutoModelForCausalLM

    path = models.resolve(name)
    tokenizer = models.load_tokenizer(path, pad=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return prepare_model(model, lora, lora_r, lora_alpha, lora_dropout, gradient_checkpointing), tokenizer


def prepare_model(
    model: Any,
    lora: bool = True,
    lora_r: int = 16,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.05,
    gradient_checkpointing: bool = False,
) -> Any:
    """Turn off the generation cache for training; add LoRA adapters (alpha defaults to 2r) when ``lora``, on every
    linear layer of the decoder blocks (peft's ``"all-linear"``: the attention and MLP projections of llama, gemma
    and qwen students; never the LM head)."""
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha or 2 * lora_r,
        lora_dropout=lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def make_collator(tokenizer: Any) -> Any:
    """Pads ``input_ids`` with the pad token and ``labels`` with -100 (transformers' seq2seq collator)."""
    from transformers import DataCollatorForSeq2Seq

    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos_token)")
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")


#: Steps between checkpoints of :func:`train_or_load` (a Colab disconnect loses at most this many).
SAVE_STEPS = 100


def training_precision(settings: UniNERSettings, device: Any = None) -> Precision:
    """fp32, unless the settings allow mixed precision (``bf16=True``, the gpu profile): then the device's
    precision (:func:`nerlib.device.precision_for`: bf16 on Ampere+, fp16 on older GPUs, fp32 on MPS). On the CPU
    bf16 autocast is the user's choice, ``$NERLIB_CPU_BF16=1`` (with native bf16 instructions), in any profile."""
    import torch

    device = torch.device(get_device() if device is None else device)
    if not settings.bf16 and device.type != "cpu":
        return "fp32"
    return precision_for(device)  # on the CPU: bf16 only when $NERLIB_CPU_BF16 asks and the CPU has it


def training_dtype(precision: Precision) -> Any:
    """The dtype to load a student in for training: float32 in every case, the master weights of mixed precision
    (fp16 weights would break the loss scaler, bf16 ones lose small updates) and of fp32 runs alike."""
    import torch

    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    return torch.float32


def inference_dtype(device: Any) -> Any:
    """The dtype for answering questions on ``device``: bf16 where it is native (Ampere and newer GPUs; a CPU with
    bf16 instructions when ``$NERLIB_CPU_BF16=1``), else fp32: fp16 can overflow in models trained in bf16, and a
    bf16 checkpoint (Gemma 3) kept in bf16 on a CPU without native bf16 would answer several times slower."""
    import torch

    return torch.bfloat16 if precision_for(torch.device(device)) == "bf16" else torch.float32


def ready_for_inference(model: Any, device: Any = None) -> Any:
    """``model`` on ``device`` (default :func:`nerlib.device.get_device`), in :func:`inference_dtype`, with its
    generation cache on and in eval mode."""
    device = get_device() if device is None else device
    model = model.to(device, inference_dtype(device))
    model.config.use_cache = True
    return model.eval()


def logit_positions(labels: Any) -> Any:
    """The positions whose logits predict a labelled token: ``i`` such that ``labels[:, i + 1]`` is not ignored in
    some row of the batch (a causal LM's logits at ``i`` predict token ``i + 1``). Most positions of a conversation
    are the passage and the questions, which carry no loss, so the output layer (a 49k x 576 matrix for SmolLM2)
    need only run at these."""
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().flatten()


def answer_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
    """The causal-LM loss of ``model`` on ``inputs`` (token cross-entropy on the labelled tokens, as the model's own
    loss computes it), with the output layer run only at :func:`logit_positions` (``logits_to_keep``). Divided by
    ``num_items_in_batch`` (the labelled tokens of the whole accumulated batch) when given, else by this batch's."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    positions = logit_positions(labels)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**model_inputs, logits_to_keep=positions).logits.float()
    targets = labels[:, positions + 1]
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                            reduction="sum")
    if num_items_in_batch is None:
        return total / (targets != IGNORE_INDEX).sum().clamp(min=1)
    return total / num_items_in_batch


def _answer_loss_trainer() -> Any:
    from transformers import Trainer

    class AnswerLossTrainer(Trainer):
        """A ``Trainer`` whose loss is :func:`answer_loss`: the same loss, without the output layer at positions
        that carry none."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            if return_outputs:  # evaluation with outputs: the model's own full forward pass
                return super().compute_loss(model, inputs, True, num_items_in_batch)
            loss = answer_loss(model, inputs, num_items_in_batch)
            # already divided over the whole accumulated batch when its token count is known
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            return loss

    return AnswerLossTrainer


def _epoch_callback() -> Any:
    from transformers import TrainerCallback

    class EpochCallback(TrainerCallback):
        """Tell the conversation dataset which epoch starts, so it reshuffles each passage's queries."""

        def __init__(self, dataset: ConversationDataset) -> None:
            self.dataset = dataset

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.dataset.set_epoch(int(state.epoch or 0))

    return EpochCallback


def training_arguments(
    settings: UniNERSettings,
    output_dir: str | Path,
    seed: int,
    save_steps: int | None = None,
    logging_steps: int = 1,
    progress: bool = True,
    device: Any = None,
    **overrides: Any,
) -> Any:
    """``TrainingArguments`` from the profile: cosine schedule with 3% warm-up (as the paper's recipe), AdamW,
    no weight decay; checkpoints every ``save_steps`` (none when ``None``). The device (default
    :func:`nerlib.device.get_device`) sets the precision (:func:`training_precision`) and keeps the Trainer on the
    CPU when that is the chosen device."""
    import torch
    from transformers import TrainingArguments

    device = get_device() if device is None else torch.device(device)
    precision = training_precision(settings, device)
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        bf16=precision == "bf16",
        fp16=precision == "fp16",  # the Trainer adds the loss scaler
        use_cpu=device.type == "cpu",
        logging_steps=logging_steps,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        save_total_limit=2 if save_steps else None,
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=not progress,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=device.type == "cuda",
        ddp_find_unused_parameters=False,  # every trainable parameter (LoRA or full) is used in each forward pass
    )
    # transformers 5 reads a float warmup_steps as a ratio; 4.x has warmup_ratio
    params = inspect.signature(TrainingArguments.__init__).parameters
    kwargs["warmup_ratio" if "warmup_ratio" in params else "warmup_steps"] = 0.03
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


@dataclass
class TrainResult:
    """What a training run did: steps, loss, time and throughput, and what the data pipeline skipped."""

    output_dir: str
    global_step: int
    train_loss: float
    seconds: float
    tokens_seen: int
    tokens_per_second: float
    examples: int
    skipped_too_long: int
    world_size: int = 1  # processes that trained together (DDP/FSDP under ``accelerate launch``)
    resumed_from: str | None = None  # the checkpoint this run continued from
    precision: str = "fp32"
    machine: str = ""  # :func:`nerlib.config.machine_summary` of the machine that trained it
    log_history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def fit(
    model: Any,
    tokenizer: Any,
    examples: Sequence[InstructionExample],
    output_dir: str | Path,
    settings: UniNERSettings,
    seed: int = 42,
    save_steps: int | None = None,
    resume: bool | str = False,
    variant: str = "per_type",
    eos: str | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    answer_logits_only: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train ``model`` on ``examples`` with the Trainer; save the final model/adapter to ``output_dir``.

    ``resume``: ``True`` continues from the newest ``checkpoint-*`` in ``output_dir``, a path from that one.
    ``callbacks``: extra ``TrainerCallback`` objects. ``answer_logits_only`` (default) computes the loss with
    :func:`answer_loss` (the same loss, the output layer only where labels are); ``False`` is the plain ``Trainer``.
    """
    from transformers import Trainer, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    set_seed(seed)
    dataset = ConversationDataset(examples, tokenizer, settings.max_length, seed=seed, eos=eos, variant=variant)
    args = training_arguments(settings, output_dir, seed, save_steps, progress=progress, **overrides)
    trainer = (_answer_loss_trainer() if answer_logits_only else Trainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=make_collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[_epoch_callback()(dataset), *callbacks],
    )
    if not progress:  # without progress bars the Trainer prints every log line; keep them in log_history only
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if resume is True:
        resume = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if resume is None:
            raise FileNotFoundError(f"resume requested but {output_dir} has no checkpoint-* folder")
    start = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    return TrainResult(
        output_dir=str(output_dir),
        global_step=int(out.global_step),
        train_loss=float(out.training_loss),
        seconds=seconds,
        tokens_seen=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        examples=len(dataset),
        skipped_too_long=len(dataset.stats.skipped_too_long),
        world_size=int(args.world_size),
        resumed_from=Path(resume).name if resume else None,
        precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        machine=machine_summary(),
        log_history=list(trainer.state.log_history),
    )


# ------------------------------------------------------------------------------------------- cached students


def examples_fingerprint(examples: Sequence[InstructionExample]) -> str:
    """A short hash of the training data (so a cached adapter is reused only for the same data)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict(), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:16]


def run_key(settings: UniNERSettings, examples: Sequence[InstructionExample], seed: int, variant: str) -> str:
    """The cache key of a training run: every training setting, the data and the seed (not the evaluation
    settings, the teacher that made the data, which the data's fingerprint covers, or the chapter ablations')."""
    keep = {
        k: v
        for k, v in dataclasses.asdict(settings).items()
        if k not in ("eval_domains", "eval_passages_per_domain", "max_new_tokens", "base_max_new_tokens", "teacher",
                     "ablation_max_steps", "ablation_eval_passages")
    }
    return _run_key(length=16, settings=keep, data=examples_fingerprint(examples), seed=seed, variant=variant)


def load_trained(folder: str | Path, base: str | None = None, device: Any = None) -> tuple[Any, Any]:
    """Load a trained student for inference: a LoRA adapter folder (over its base model) or a full model, on
    ``device`` (default :func:`nerlib.device.get_device`; see :func:`ready_for_inference`)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        base = base or json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        path = models.resolve(base)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), str(folder))
        tokenizer = models.load_tokenizer(str(folder) if (folder / "tokenizer_config.json").exists() else path,
                                          pad=True)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder))
        tokenizer = models.load_tokenizer(str(folder), pad=True)
    return ready_for_inference(model, device), tokenizer
