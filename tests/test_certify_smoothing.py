"""Randomized smoothing on a linear binary classifier (issue 21 acceptance): the smoothed
prediction of ``sign(w.x + b)`` is the hard one and its exact radius is ``|w.x + b| / ||w|| =
sigma * Phi^-1(p_A)``; CERTIFY's radius must stay below it, failing at a rate <= alpha."""
from __future__ import annotations

import math

import torch
from scipy.stats import binom, norm
from statsmodels.stats.proportion import proportion_confint
from torch import nn

from prunekit.certify.smoothing import ABSTAIN, certify, clopper_pearson_lower


class _Linear2(nn.Module):
    """Logits ``[0, w.x + b]``: class 1 iff ``w.x + b > 0``."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


def test_clopper_pearson_matches_statsmodels() -> None:
    for k, n, a in [(0, 10, 0.05), (7, 10, 0.05), (990, 1000, 0.001), (50, 50, 0.01)]:
        ref = proportion_confint(k, n, alpha=2 * a, method="beta")[0]
        assert math.isclose(clopper_pearson_lower(k, n, a), ref, rel_tol=1e-9, abs_tol=1e-12)


def test_radius_below_exact_at_rate_at_most_alpha() -> None:
    torch.manual_seed(0)
    w, b, sigma, alpha = torch.tensor([0.6, -0.8, 0.0]), 0.1, 0.5, 0.1
    model = _Linear2(w, b)
    x = torch.tensor([0.5, 0.1, 0.3]).view(1, 3)     # w.x + b = 0.32, ||w|| = 1
    margin = float(x.flatten() @ w + b)
    exact = abs(margin) / float(w.norm())
    p_a = norm.cdf(exact / sigma)
    assert math.isclose(sigma * norm.ppf(p_a), exact, rel_tol=1e-9)   # the closed form
    trials, exceed, wrong = 400, 0, 0
    for _ in range(trials):
        c, r = certify(model, x.view(3), sigma, n0=20, n=200, alpha=alpha, batch=200,
                       num_classes=2)
        if c != ABSTAIN:
            wrong += int(c != 1)
            exceed += int(r > exact)
    # exceed ~ Binomial(trials, <= alpha): reject only if implausible even at alpha
    assert exceed <= binom.ppf(0.999, trials, alpha)
    assert wrong <= binom.ppf(0.999, trials, alpha)
    assert exceed > 0   # not vacuous: the bound is tight enough to fail sometimes


def test_abstains_on_the_boundary() -> None:
    torch.manual_seed(1)
    model = _Linear2(torch.tensor([1.0]), 0.0)
    c, r = certify(model, torch.zeros(1), 0.25, n0=10, n=100, alpha=0.001, batch=100,
                   num_classes=2)
    assert c == ABSTAIN and r == -math.inf
