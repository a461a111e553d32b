"""The multi-exit token classifier of MSD (Ma et al., EMNLP 2022, Section 3.1).

A pretrained encoder gets a linear classifier on the output of every layer from ``first_exit_layer`` (4) to the
last. The heads below the last are the *short-channel distillers*: shallow paths from the input to a prediction.
Their losses are mixed with weights ``softmax(omega)``, ``omega`` a learned vector; the prediction itself always
comes from the last head. With ``multi_exit=False`` the same class is the single-head baseline (plain
token classification), so every variant of the ablation shares one code path.

The model is a transformers ``PreTrainedModel`` with its own config (:class:`MSDConfig`, model type
``msd-multi-exit``) and output (:class:`MultiExitOutput`): ``save_pretrained``/``from_pretrained`` are its save
format. :meth:`MultiExitTokenClassifier.from_encoder` puts fresh heads on a pretrained encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class MSDConfig(PretrainedConfig):
    """What a :class:`MultiExitTokenClassifier` is: the tag names (``id2label``), the exits and the encoder.

    ``encoder`` names the pretrained encoder the model started from (a short name, hub name or folder; run folders
    store only the trained tensors and rebuild the rest from it); ``encoder_config`` is that encoder's own config as
    a dict, so a complete saved model rebuilds its encoder without downloading anything.
    """

    model_type = "msd-multi-exit"

    def __init__(self, encoder: str | None = None, encoder_config: dict | None = None, first_exit_layer: int = 4,
                 multi_exit: bool = True, head_dropout: float = 0.1, **kwargs: Any) -> None:
        self.encoder = encoder
        self.encoder_config = encoder_config
        self.first_exit_layer = first_exit_layer
        self.multi_exit = multi_exit
        self.head_dropout = head_dropout
        super().__init__(**kwargs)

    @property
    def labels(self) -> list[str]:
        """The tag names in class-id order."""
        return [self.id2label[i] for i in range(len(self.id2label))]


@dataclass
class MultiExitOutput(ModelOutput):
    """What a forward pass returns.

    ``logits``: one ``[batch, seq, labels]`` tensor per exit, ordered from the shallowest exit to the last layer
    (so ``logits[-1]`` is the prediction head). ``cls``: the last layer's first-token ([CLS]) vector ``[batch,
    hidden]``, the feature MSD aligns across languages with MMD. ``aux_weights``: ``softmax(omega)`` over the
    auxiliary exits (empty for a single-head model).
    """

    logits: list[torch.Tensor] | None = None
    cls: torch.Tensor | None = None
    aux_weights: torch.Tensor | None = None


class MultiExitTokenClassifier(PreTrainedModel):
    """An encoder with a token classifier on every layer from ``config.first_exit_layer`` to the last.

    Build one with :meth:`from_encoder` (fresh heads on a pretrained encoder) or :meth:`from_pretrained` (a saved
    model). ``encoder``: an already built encoder module to use instead of building one from
    ``config.encoder_config`` (its weights are kept as they are).
    """

    config_class = MSDConfig
    base_model_prefix = "msd"
    main_input_name = "input_ids"

    def __init__(self, config: MSDConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config)
        if encoder is None:
            if not config.encoder_config:
                raise ValueError("MSDConfig.encoder_config is empty: build the model with from_encoder(...)")
            enc_config = dict(config.encoder_config)
            encoder = AutoModel.from_config(AutoConfig.for_model(**enc_config), add_pooling_layer=False)
        else:
            for module in encoder.modules():  # post_init below must not re-initialise pretrained weights
                module._is_hf_initialized = True
        n_layers = int(encoder.config.num_hidden_layers)
        labels = config.labels
        if config.multi_exit and not 1 <= config.first_exit_layer <= n_layers:
            raise ValueError(f"first_exit_layer={config.first_exit_layer} must lie in 1..{n_layers} (encoder depth)")
        if len(labels) < 2:
            raise ValueError(f"need at least two labels, got {labels}")
        self.encoder = encoder
        self.labels = labels
        self.first_exit_layer = config.first_exit_layer
        self.multi_exit = config.multi_exit
        self.exit_layers: list[int] = (list(range(config.first_exit_layer, n_layers + 1)) if config.multi_exit
                                       else [n_layers])
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(config.head_dropout)
        self.heads = nn.ModuleList(nn.Linear(hidden, len(labels)) for _ in self.exit_layers)
        # omega: one learned mixing logit per auxiliary exit (all exits but the last); zeros = uniform mixture.
        self.omega = nn.Parameter(torch.zeros(len(self.exit_layers) - 1))
        for head in self.heads:
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: the heads are initialised in ``__init__`` and the encoder initialises its own weights
        (a saved model's weights are all loaded)."""

    @classmethod
    def from_encoder(
        cls,
        encoder: str | Path | nn.Module,
        labels: list[str] | tuple[str, ...],
        first_exit_layer: int = 4,
        multi_exit: bool = True,
        dropout: float = 0.1,
    ) -> "MultiExitTokenClassifier":
        """Fresh heads on a pretrained encoder: a short name such as ``me5-small`` (resolved by
        ``nerlib.models.resolve``), a hub name such as ``bert-base-multilingual-cased``, a local folder, or an
        encoder module (e.g. a tiny random one from :mod:`nerlib.msd.tiny`)."""
        name = None
        if not isinstance(encoder, nn.Module):
            name = str(encoder)
            encoder = AutoModel.from_pretrained(resolve_encoder(name), add_pooling_layer=False)
        config = MSDConfig(encoder=name, encoder_config=encoder.config.to_dict(), first_exit_layer=first_exit_layer,
                           multi_exit=multi_exit, head_dropout=dropout, id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
        return cls(config, encoder)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args: Any, **kwargs: Any):
        """Load a model saved with ``save_pretrained`` (transformers' loader). To put fresh heads on a pretrained
        encoder, use :meth:`from_encoder`."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir() and not (path / "config.json").is_file():
            raise ValueError(f"{path}: not a saved MSD model folder (no config.json); to put fresh heads on an "
                             "encoder use MultiExitTokenClassifier.from_encoder(encoder, labels)")
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def aux_weights(self) -> torch.Tensor:
        """``softmax(omega)``: the mixture weights of the auxiliary exits (lambda in the paper)."""
        return torch.softmax(self.omega, dim=0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        exits: str = "all",
    ) -> MultiExitOutput:
        """Run the encoder once and every head on its layer. ``exits="last"`` skips the auxiliary heads
        (inference and plain evaluation); ``exits="none"`` runs no head (only the [CLS] vector is wanted, as for
        MMD on source text), so ``logits`` is empty.

        The frozen embeddings and bottom layers (:meth:`freeze_bottom`) build no autograd graph: neither their
        weights nor their inputs need a gradient, so autograd records nothing until the first trainable layer."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden_states = self.encoder(**kwargs).hidden_states  # embeddings + one per layer
        pairs = list(zip(self.exit_layers, self.heads))
        if exits == "last":
            pairs = pairs[-1:]
        elif exits == "none":
            pairs = []
        elif exits != "all":
            raise ValueError(f"exits must be 'all', 'last' or 'none', got {exits!r}")
        logits = [head(self.dropout(hidden_states[layer])) for layer, head in pairs]
        return MultiExitOutput(logits=logits, cls=hidden_states[-1][:, 0], aux_weights=self.aux_weights())

    def freeze_bottom(self, n_layers: int) -> None:
        """Freeze the embeddings and the ``n_layers`` lowest transformer layers (the paper freezes 3)."""
        embeddings = getattr(self.encoder, "embeddings", None)
        layers = _encoder_layers(self.encoder)
        if n_layers > len(layers):
            raise ValueError(f"cannot freeze {n_layers} layers of a {len(layers)}-layer encoder")
        frozen = ([embeddings] if embeddings is not None else []) + list(layers[:n_layers])
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)


AutoConfig.register(MSDConfig.model_type, MSDConfig)
AutoModel.register(MSDConfig, MultiExitTokenClassifier)


def is_msd_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a model saved by :meth:`MultiExitTokenClassifier.save_pretrained`."""
    import json

    config = Path(folder) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == MSDConfig.model_type


def model_device(model: nn.Module) -> torch.device:
    """The device a model's parameters live on (batches follow it)."""
    return next(model.parameters()).device


def resolve_encoder(name: str) -> str:
    """A name ``from_pretrained`` accepts: offline short names go through ``nerlib.models.resolve``."""
    from nerlib.models import resolve

    return resolve(name)


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The list of transformer layers of a BERT-like encoder (``encoder.encoder.layer``)."""
    inner = getattr(encoder, "encoder", None)
    layers = getattr(inner, "layer", None) or getattr(inner, "layers", None)
    if layers is None:
        raise TypeError(f"{type(encoder).__name__}: cannot find its transformer layers (encoder.layer)")
    return layers
