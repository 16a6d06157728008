"""Randomized smoothing certification: CERTIFY of Cohen, Rosenfeld & Kolter (ICML 2019,
Algorithm 1 / Theorem 1), as in their code (locuslab/smoothing core.py, which HYDRA's
utils/smoothing.py and eval_smoothing.py use: N0 100, alpha 0.001).

The smoothed classifier ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ N(0, sigma^2 I)``. CERTIFY
draws ``n0`` noisy copies to *select* the top class ``c_A`` and ``n`` fresh ones to *estimate*
its count ``n_A``; ``p_A`` is the one-sided ``1 - alpha`` Clopper-Pearson lower bound (scipy's
``binomtest(...).proportion_ci(confidence_level=1 - 2 alpha, method="exact")`` low end, i.e.
locuslab's ``proportion_confint(nA, n, alpha=2*alpha, method="beta")[0]``). If ``p_A < 1/2``
it abstains, else the L2 radius is ``sigma * Phi^{-1}(p_A)``. With probability >= 1 - alpha
over the noise the returned class is ``g(x)`` and ``g`` is constant within that radius.

Noise is added in [0, 1] input space (before the model's own ``Normalize``), never clipped
(as Cohen et al.; HYDRA divides by the ImageNet std because its ImageNet models normalise
outside -- prunekit's models normalise inside, so no division is needed).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ABSTAIN", "clopper_pearson_lower", "sample_counts", "certify"]

#: the class returned on abstention (also its radius is ``-inf`` -- never certified)
ABSTAIN = -1


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound on a binomial proportion (exact / beta;
    equal to statsmodels' ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``)."""
    if k <= 0:
        return 0.0
    from scipy.stats import beta  # deferred: scipy.stats costs ~1.3 CPU-s at every CLI start

    return float(beta.ppf(alpha, k, n - k + 1))


def sample_counts(model: nn.Module, x: Tensor, sigma: float, num: int, batch: int,
                  num_classes: int) -> Tensor:
    """Class counts ``[num_classes]`` of ``f(x + N(0, sigma^2))`` over ``num`` draws (``x``
    one example ``[C, H, W]``; draws from the global torch RNG)."""
    counts = torch.zeros(num_classes, dtype=torch.long, device=x.device)
    left = num
    with torch.no_grad():
        while left > 0:
            k = min(batch, left)
            xb = x.unsqueeze(0).expand(k, *x.shape)
            pred = model(xb + sigma * torch.randn_like(xb)).argmax(1)
            counts += torch.bincount(pred, minlength=num_classes)
            left -= k
    return counts


def certify(model: nn.Module, x: Tensor, sigma: float, n0: int, n: int, alpha: float,
            batch: int, num_classes: int) -> tuple[int, float]:
    """Cohen et al. CERTIFY for one example: ``(class or ABSTAIN, L2 radius)``."""
    c_a = int(sample_counts(model, x, sigma, n0, batch, num_classes).argmax())
    n_a = int(sample_counts(model, x, sigma, n, batch, num_classes)[c_a])
    p_a = clopper_pearson_lower(n_a, n, alpha)
    if p_a < 0.5:
        return ABSTAIN, -math.inf
    from scipy.stats import norm  # deferred: as above

    return c_a, float(sigma * norm.ppf(p_a))
