"""The variants of MSD compared in the ablation (Ma et al., EMNLP 2022, Table 1), without importing torch.

A :class:`Variant` says which parts of MSD a student uses; :data:`VARIANTS` names the ablation's students,
:data:`ROWS` the rows of the paper's table (its students plus ``direct transfer``) and :data:`CONTROLS` our extra
rows, which the paper does not have. The command line builds its ``--help``
from these names, so this module must stay free of torch and transformers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Variant:
    """Which parts of MSD a student uses: the short-channel distillers (multi-exit teacher and student) and the
    two MMD terms. ``Variant()`` is full MSD; all ``False`` is plain knowledge distillation.

    ``multi_exit_teacher``: which teacher the student learns from; ``None`` (the paper's variants) means a
    multi-exit teacher exactly when the student uses the distillers. ``True`` without distillers distils only the
    last exit of the multi-exit teacher: a control that keeps MSD's teacher and removes every part of the method."""

    distillers: bool = True
    mmd_m: bool = True
    mmd_l: bool = True
    multi_exit_teacher: bool | None = None

    def __post_init__(self) -> None:
        if self.distillers and self.multi_exit_teacher is False:
            raise ValueError("Variant: the distillers need a multi-exit teacher (multi_exit_teacher=False)")

    @property
    def teacher_is_multi_exit(self) -> bool:
        """Whether this student's teacher has an exit on every layer."""
        return self.distillers if self.multi_exit_teacher is None else self.multi_exit_teacher

    def key(self) -> dict:
        """The fields that name this variant in cache keys (``multi_exit_teacher`` only when set, so the keys of
        students cached before the field existed stay the same)."""
        fields = asdict(self)
        if self.multi_exit_teacher is None:
            del fields["multi_exit_teacher"]
        return fields


VARIANTS: dict[str, Variant] = {
    "MSD": Variant(True, True, True),
    "w/o distillers": Variant(False, True, True),
    "w/o MMD^L": Variant(True, True, False),
    "w/o MMD^M": Variant(True, False, True),
    "w/o all": Variant(False, False, False),
    "w/o all, multi-exit teacher": Variant(False, False, False, multi_exit_teacher=True),
}

# Rows of the ablation table, in the paper's order. "direct transfer" is the single-head teacher applied to the
# target language as it is (no distillation): the baseline of chapter 6.
ROWS: tuple[str, ...] = ("MSD", "w/o distillers", "w/o MMD^L", "w/o MMD^M", "w/o all", "direct transfer")

# Our control, not in the paper: plain distillation from MSD's own (multi-exit) teacher. MSD minus this row is the
# method's gain with the teacher held fixed; "w/o all" learns from a single-head teacher, which may differ in quality.
CONTROLS: tuple[str, ...] = ("w/o all, multi-exit teacher",)
