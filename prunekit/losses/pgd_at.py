"""PGD adversarial training (Madry et al., ICLR 2018, eq. 2.1):
``min_theta E max_{||d||_inf <= eps} CE(f(x + d), y)``, the inner max by PGD from a uniform
random start in the eps-ball (as in the Robust-ADMM recipe: eps 8/255, 10 steps, step 2/255)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.losses.base import AdvLoss, _stats, fp32
from prunekit.modes import eval_mode
from prunekit.registry import LOSSES

__all__ = ["PGDAT"]


@LOSSES.register("pgd_at", aliases=("pgd-at", "madry"))
class PGDAT(AdvLoss):
    """Cross-entropy on PGD examples (``beta`` is ignored).

    The attack runs in eval mode (the caller's mode is restored), starts uniformly in the
    eps-ball, and ascends the cross-entropy. The loss is ``CE(f(x_adv), y)`` (batch mean) in the
    caller's mode. ``clean_acc`` in the stats comes from an extra no-grad eval-mode forward on
    ``x`` (it does not touch BatchNorm statistics or gradients).
    """

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return PGD(self.eps, self.step_size, self.steps, start="uniform")(model, x, y)

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        with eval_mode(model), torch.no_grad():
            clean_logits = model(x)
        adv_logits = model(x_adv)
        with fp32(x):
            loss = F.cross_entropy(adv_logits.float(), y)
        return loss, _stats(loss, clean_logits, adv_logits, y)
