"""The variants of MSD compared in the ablation (Ma et al., EMNLP 2022, Table 1), without importing torch.

A :class:`Variant` says which parts of MSD a student uses; :data:`VARIANTS` names the ablation's students and
:data:`ROWS` the rows of its table (the students plus ``direct transfer``). The command line builds its ``--help``
from these names, so this module must stay free of torch and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """Which parts of MSD a student uses: the short-channel distillers (multi-exit teacher and student) and the
    two MMD terms. ``Variant()`` is full MSD; all ``False`` is plain knowledge distillation."""

    distillers: bool = True
    mmd_m: bool = True
    mmd_l: bool = True


VARIANTS: dict[str, Variant] = {
    "MSD": Variant(True, True, True),
    "w/o distillers": Variant(False, True, True),
    "w/o MMD^L": Variant(True, True, False),
    "w/o MMD^M": Variant(True, False, True),
    "w/o all": Variant(False, False, False),
}

# Rows of the ablation table, in the paper's order. "direct transfer" is the single-head teacher applied to the
# target language as it is (no distillation): the baseline of chapter 6.
ROWS: tuple[str, ...] = (*VARIANTS, "direct transfer")
