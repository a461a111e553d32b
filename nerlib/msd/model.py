"""The multi-exit token classifier of MSD (Ma et al., EMNLP 2022, Section 3.1).

A pretrained encoder gets a linear classifier on the output of every layer from ``first_exit_layer`` (4) to the
last. The heads below the last are the *short-channel distillers*: shallow paths from the input to a prediction.
Their losses are mixed with weights ``softmax(omega)``, ``omega`` a learned vector; the prediction itself always
comes from the last head. With ``multi_exit=False`` the same class is the single-head baseline (plain
token classification), so every variant of the ablation shares one code path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

CONFIG_NAME = "msd_config.json"
HEADS_NAME = "msd_heads.pt"
ENCODER_DIR = "encoder"


@dataclass
class MultiExitOutput:
    """What a forward pass returns.

    ``logits``: one ``[batch, seq, labels]`` tensor per exit, ordered from the shallowest exit to the last layer
    (so ``logits[-1]`` is the prediction head). ``cls``: the last layer's first-token ([CLS]) vector ``[batch,
    hidden]``, the feature MSD aligns across languages with MMD. ``aux_weights``: ``softmax(omega)`` over the
    auxiliary exits (empty for a single-head model).
    """

    logits: list[torch.Tensor]
    cls: torch.Tensor
    aux_weights: torch.Tensor


class MultiExitTokenClassifier(nn.Module):
    """An encoder with a token classifier on every layer from ``first_exit_layer`` to the last.

    Args:
        encoder: a transformers encoder (``BertModel``-like) returning ``hidden_states``.
        labels: the tag names (IOB2 strings), index = class id.
        first_exit_layer: the shallowest layer (1-based) that gets a head (the paper uses 4).
        multi_exit: ``False`` builds the single-head baseline (only the last layer has a head).
        dropout: dropout applied to hidden states before every head.
    """

    def __init__(
        self,
        encoder: nn.Module,
        labels: list[str] | tuple[str, ...],
        first_exit_layer: int = 4,
        multi_exit: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        n_layers = int(encoder.config.num_hidden_layers)
        if multi_exit and not 1 <= first_exit_layer <= n_layers:
            raise ValueError(f"first_exit_layer={first_exit_layer} must lie in 1..{n_layers} (encoder depth)")
        if len(labels) < 2:
            raise ValueError(f"need at least two labels, got {list(labels)}")
        self.encoder = encoder
        self.labels = list(labels)
        self.first_exit_layer = first_exit_layer
        self.multi_exit = multi_exit
        self.exit_layers: list[int] = list(range(first_exit_layer, n_layers + 1)) if multi_exit else [n_layers]
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(hidden, len(self.labels)) for _ in self.exit_layers)
        # omega: one learned mixing logit per auxiliary exit (all exits but the last); zeros = uniform mixture.
        self.omega = nn.Parameter(torch.zeros(len(self.exit_layers) - 1))
        for head in self.heads:
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)

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

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the encoder (transformers format), the heads and omega, and a small JSON config."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / ENCODER_DIR)
        heads = {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        torch.save(heads, folder / HEADS_NAME)
        config = {"labels": self.labels, "first_exit_layer": self.first_exit_layer, "multi_exit": self.multi_exit,
                  "dropout": self.dropout.p}
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        return folder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        labels: list[str] | tuple[str, ...] | None = None,
        first_exit_layer: int = 4,
        multi_exit: bool = True,
        dropout: float = 0.1,
    ) -> "MultiExitTokenClassifier":
        """Load a saved MSD model (a folder written by :meth:`save_pretrained`), or build fresh heads on a
        pretrained encoder: a short name such as ``me5-small`` (resolved by ``nerlib.models.resolve``), a hub name
        such as ``bert-base-multilingual-cased``, or a local folder."""
        from transformers import AutoModel

        path = Path(name_or_path)
        if (path / CONFIG_NAME).is_file():
            config = json.loads((path / CONFIG_NAME).read_text())
            encoder = AutoModel.from_pretrained(path / ENCODER_DIR, add_pooling_layer=False)
            model = cls(encoder, config["labels"], config["first_exit_layer"], config["multi_exit"],
                        config.get("dropout", 0.1))
            state = torch.load(path / HEADS_NAME, map_location="cpu", weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("encoder.")]
            if missing or unexpected:
                raise ValueError(f"{path / HEADS_NAME}: missing {missing}, unexpected {unexpected}")
            return model
        if labels is None:
            raise ValueError(f"{name_or_path}: not a saved MSD model folder, so `labels` must be given")
        encoder = AutoModel.from_pretrained(resolve_encoder(str(name_or_path)), add_pooling_layer=False)
        return cls(encoder, labels, first_exit_layer, multi_exit, dropout)


def resolve_encoder(name: str) -> str:
    """A name ``from_pretrained`` accepts: offline short names go through ``nerlib.models.resolve``."""
    try:
        from nerlib.models import resolve
    except ImportError:  # the models module is optional for hub names and local folders
        return name
    return resolve(name)


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The list of transformer layers of a BERT-like encoder (``encoder.encoder.layer``)."""
    inner = getattr(encoder, "encoder", None)
    layers = getattr(inner, "layer", None) or getattr(inner, "layers", None)
    if layers is None:
        raise TypeError(f"{type(encoder).__name__}: cannot find its transformer layers (encoder.layer)")
    return layers
