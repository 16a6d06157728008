"""Verified L-inf accuracy at eps by IBP (Gowal et al. 2018) or CROWN-IBP (Zhang et al.
2020): an example counts if every margin ``z_y - z_j`` has a positive lower bound over the
eps-ball clipped to [0, 1] (:mod:`prunekit.certify.bounds`). A verified example is correctly
classified, so verified accuracy <= every attack's robust accuracy at the same eps; the evaluator
checks this per example (:mod:`prunekit.certify.consistency`).
"""
from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from prunekit.certify.base import Certifier, CertOutcome
from prunekit.certify.bounds import Bounds
from prunekit.registry import CERTIFIERS

__all__ = ["VerifiedIBP", "VerifiedCROWNIBP"]


@CERTIFIERS.register("ibp")
class VerifiedIBP(Certifier):
    """Verified accuracy by interval bounds.

    Args:
        eps: L-inf radius (None: the evaluator's eps).
    """

    norm: ClassVar[str] = "Linf"
    method: ClassVar[str] = "ibp"

    def __init__(self, eps: float | None = None) -> None:
        if eps is not None and not float(eps) >= 0:
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")
        self.eps = None if eps is None else float(eps)

    def metrics(self) -> list[str]:
        return [self.name or self.method]

    def certify(self, model: nn.Module, x: Tensor, y: Tensor) -> CertOutcome:
        assert self.eps is not None, "build through build_certifier (sets eps)"
        m = Bounds(model).margins(x, y, self.eps, self.method)
        return CertOutcome({self.metrics()[0]: m.gt(0).all(1).cpu()})

    def record(self) -> dict[str, Any]:
        return {**super().record(), "eps": self.eps, "method": self.method}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


@CERTIFIERS.register("crown-ibp", aliases=("crown_ibp",))
class VerifiedCROWNIBP(VerifiedIBP):
    """Verified accuracy by CROWN-IBP bounds (element-wise max with IBP: never looser)."""

    method: ClassVar[str] = "crown-ibp"
