"""What every attack declares about itself: :class:`AttackMeta`.

The evaluator, its sanity checks, the CSV columns and the per-example files read this metadata;
nothing downstream looks at an attack's name or class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AttackMeta", "Box", "NORMS"]

Box = Literal["white", "black", "mixed"]
#: the threat models prunekit knows
NORMS = ("Linf", "L2", "L1")


@dataclass(frozen=True)
class AttackMeta:
    """Declared metadata of one configured attack.

    Attributes:
        name: the name as given in the run (the key of ``EvalResult.robust_acc``).
        label: human label for tables, e.g. ``"AutoAttack (standard)"``, ``"APGD-CE + APGD-T"``.
        components: canonical names of the attacks it runs, in order (an ensemble's stages); a
            single attack lists itself.
        norms: threat models it supports (``Linf``, ``L2``, ``L1``).
        box: ``"white"`` (uses gradients), ``"black"`` (queries only) or ``"mixed"`` (an
            ensemble with both).
        targeted: it attacks target classes (for an ensemble: any stage does).
        standard: it is the standard protocol of its kind (AutoAttack standard).
        column: the results-schema accuracy column it can fill (``pgd_acc``, ``apgd_acc``,
            ``aa_acc``) or None; where several attacks of a run can, a ``standard`` one wins,
            then the first in run order.
        reference: a parameter-free reliable attack (the official AutoAttack family), the
            yardstick of the gradient-masking checks.
    """

    name: str
    label: str
    components: tuple[str, ...]
    norms: tuple[str, ...] = ("Linf",)
    box: Box = "white"
    targeted: bool = False
    standard: bool = False
    column: str | None = None
    reference: bool = False

    @property
    def ensemble(self) -> bool:
        """More than one component."""
        return len(self.components) > 1

    def record(self) -> dict[str, Any]:
        """The documented per-example-file record (docs/results-schema.md): ``name``,
        ``label``, ``components``, ``norms``, ``box``, ``targeted``, ``standard``."""
        return {"name": self.name, "label": self.label, "components": list(self.components),
                "norms": list(self.norms), "box": self.box, "targeted": self.targeted,
                "standard": self.standard}
