"""Certified L2 accuracy of the Gaussian-smoothed classifier (Cohen et al. 2019, CERTIFY;
:mod:`prunekit.certify.smoothing`): an example counts at radius ``r`` if CERTIFY returns its
label with certified radius ``>= r`` (locuslab/smoothing analyze.py: ``correct & radius >= r``).

Presets (``benchmarks/grids/*``): CPU ``n0 100, n 1000, alpha 0.001`` on a few hundred images
(radius resolution: with n = 1000 the largest certifiable radius is ``sigma * Phi^-1(
0.001^(1/1000)) ~ 2.6 sigma``); paper (Cohen, HYDRA eval_smoothing.py) ``n0 100, n 100000,
alpha 0.001`` (GPU).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from prunekit.certify.base import Certifier, CertOutcome
from prunekit.certify.smoothing import certify
from prunekit.registry import CERTIFIERS

__all__ = ["SmoothingCertifier"]


@CERTIFIERS.register("smoothing", aliases=("randomized-smoothing",))
class SmoothingCertifier(Certifier):
    """Args:
        sigma: noise std (must match the training sigma for meaningful numbers).
        n0, n: selection / estimation samples.
        alpha: failure probability.
        radii: the L2 radii certified accuracy is reported at.
        batch: noisy copies per forward pass.
    """

    norm: ClassVar[str] = "L2"

    def __init__(self, sigma: float = 0.25, n0: int = 100, n: int = 1000,
                 alpha: float = 0.001, radii: Sequence[float] = (0.0, 0.25, 0.5),
                 batch: int = 500) -> None:
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        if int(n0) < 1 or int(n) < 1 or int(batch) < 1:
            raise ValueError(f"n0, n and batch must be >= 1, got {n0}, {n}, {batch}")
        if not 0 < float(alpha) < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        radii = [float(r) for r in ([radii] if isinstance(radii, (int, float)) else radii)]
        if not radii or any(not r >= 0 for r in radii) or len(set(radii)) != len(radii):
            raise ValueError(f"radii must be distinct numbers >= 0, got {radii!r}")
        self.sigma, self.n0, self.n, self.alpha = float(sigma), int(n0), int(n), float(alpha)
        self.radii, self.batch = radii, int(batch)

    def metrics(self) -> list[str]:
        return [f"smooth{self.sigma:g}@{r:g}" for r in self.radii]

    def certify(self, model: nn.Module, x: Tensor, y: Tensor) -> CertOutcome:
        k = int(model(x[:1]).shape[1])
        pred, rad = [], []
        for i in range(x.shape[0]):
            c, r = certify(model, x[i], self.sigma, self.n0, self.n, self.alpha, self.batch, k)
            pred.append(c)
            rad.append(r)
        pred_t = torch.tensor(pred)
        radius = torch.tensor(rad, dtype=torch.float64)
        radius = torch.where(pred_t == y.cpu(), radius, torch.full_like(radius, -math.inf))
        flags = {m: radius >= r for m, r in zip(self.metrics(), self.radii)}
        return CertOutcome(flags, radius=radius, extra={"abstain": int((pred_t < 0).sum())})

    def record(self) -> dict[str, Any]:
        return {**super().record(), "sigma": self.sigma, "n0": self.n0, "n": self.n,
                "alpha": self.alpha, "radii": list(self.radii)}

    def __repr__(self) -> str:
        return (f"SmoothingCertifier(sigma={self.sigma:g}, n0={self.n0}, n={self.n}, "
                f"alpha={self.alpha:g}, radii={self.radii})")
