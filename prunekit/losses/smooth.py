"""Gaussian-noise training for randomized smoothing, as HYDRA's trainer/smooth.py:62-80
(non-ImageNet branch): ``CE(f(x), y) + beta * (1/B) * sum KL(softmax f(x) || softmax
f(x + N(0, sigma^2)))`` -- the stability-training term of Li et al. 2019 that HYDRA uses (its
``args.beta``, the TRADES beta, default 6). ``beta = 0`` is plain Gaussian data augmentation
(Cohen et al. 2019, HYDRA's ImageNet branch, ``CE(f(x + noise), y)`` is selected by
``stability=False``).

Deviation: none in the objective; the noise is drawn in [0, 1] space and not clipped, as
HYDRA (the models normalise inside, so HYDRA's division by the ImageNet std is not needed).
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.losses.base import AdvLoss, _stats, fp32
from prunekit.registry import LOSSES

__all__ = ["GaussianSmooth"]


@LOSSES.register("smooth", aliases=("gaussian", "randomized-smoothing"))
class GaussianSmooth(AdvLoss):
    """Noise training for randomized smoothing (``eps``/``steps``/``step_size`` unused).

    Args:
        sigma: noise standard deviation (HYDRA / Cohen CIFAR default 0.25).
        beta: weight of the stability KL (HYDRA: ``args.beta``).
        stability: True (HYDRA's CIFAR/SVHN objective) or False (``CE(f(x + noise), y)``).
    """

    threat: ClassVar[str] = "gaussian"

    def __init__(self, eps: float = 0.0, step_size: float | None = None, steps: int = 0,
                 beta: float = 6.0, sigma: float = 0.25, stability: bool = True) -> None:
        super().__init__(eps, step_size, steps, beta)
        if not float(sigma) >= 0:
            raise ValueError(f"sigma must be a number >= 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.stability = bool(stability)

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The noisy batch (the 'perturbation' is random, not adversarial)."""
        x = x.detach()
        return (x + self.sigma * torch.randn_like(x, memory_format=torch.contiguous_format))

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        noisy_logits = model(x_adv)
        if not self.stability:
            with fp32(x):
                loss = F.cross_entropy(noisy_logits.float(), y)
            with torch.no_grad():
                clean_logits = model(x)
            return loss, _stats(loss, clean_logits, noisy_logits, y)
        clean_logits = model(x)
        with fp32(x):
            natural = F.cross_entropy(clean_logits.float(), y)
            robust = F.kl_div(F.log_softmax(noisy_logits.float(), 1),
                              F.softmax(clean_logits.float(), 1), reduction="sum") / x.shape[0]
            loss = natural + self.beta * robust
        return loss, _stats(loss, clean_logits, noisy_logits, y, stability=robust.item())

    def __repr__(self) -> str:
        return (f"GaussianSmooth(sigma={self.sigma:g}, beta={self.beta:g}, "
                f"stability={self.stability})")
