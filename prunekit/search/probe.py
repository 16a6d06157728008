"""The scoring radius probe of LRNAS (``fgsm_eps: auto``; a prunekit addition, docs/search.md
"Scoring eps").

LRNAS's contribution score adds the drop in the full supernet's FGSM accuracy to the drop in its
clean accuracy (official ``ranking.compute_value``, FGSM eps 8/255 on CIFAR). The supernet is
trained on clean cross-entropy only, so at a threat-model radius like Fashion-MNIST's 0.1 its
FGSM accuracy is ~0: no removal can lower it, every adversarial value is 0 and the adversarial
half of the score is dead (issue 25). The probe measures the full supernet's clean and FGSM
accuracy on one held-out validation batch at candidate radii and picks the **largest candidate
whose FGSM accuracy is at least** ``ratio`` **x the clean accuracy** (default 0.5: the
adversarial accuracy then has as much room to fall under a removal as the clean accuracy has
above it, and the radius stays as close to the threat model as that allows). Without such a
candidate the smallest is taken and the search's summary warns.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.modes import eval_mode

__all__ = ["probe_radii", "choose_radius", "default_candidates", "DEAD_ADV_ACC"]

#: a mean FGSM accuracy of the full supernet at the scoring eps below this means the adversarial
#: term of the contribution scores was (almost) dead: the search summary warns
DEAD_ADV_ACC = 0.05


def default_candidates(eps: float) -> list[float]:
    """``eps x 2^-i`` for i = 0..5, largest first (0.1 -> 0.1, 0.05, ..., 0.003125)."""
    return [float(eps) / 2 ** i for i in range(6)]


def probe_radii(net: nn.Module, x: Tensor, y: Tensor,
                radii: Sequence[float]) -> list[dict[str, float]]:
    """``[{"eps", "clean_acc", "fgsm_acc"}]`` of ``net`` (the full supernet) (eval mode, the scoring's
    FGSM: one step of size eps from the clean point) on ``(x, y)`` for every radius."""
    out = []
    with eval_mode(net):
        with torch.no_grad():
            clean = float((net(x).argmax(1) == y).float().mean())
        for eps in radii:
            x_adv = PGD(eps, step_size=eps, steps=1, start=None)(net, x, y)
            with torch.no_grad():
                adv = float((net(x_adv).argmax(1) == y).float().mean())
            out.append({"eps": float(eps), "clean_acc": clean, "fgsm_acc": adv})
    return out


def choose_radius(probe: Sequence[dict[str, float]], ratio: float = 0.5) -> float:
    """The largest probed eps whose FGSM accuracy is >= ``ratio`` x its clean accuracy (and
    > 0); the smallest probed eps if none is."""
    ok = [p["eps"] for p in probe if p["fgsm_acc"] > 0 and p["fgsm_acc"] >= ratio * p["clean_acc"]]
    return max(ok) if ok else min(p["eps"] for p in probe)
