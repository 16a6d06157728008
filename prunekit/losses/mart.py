"""MART (Wang et al., ICLR 2020, eq. 9), as in the official ``mart_loss``
(github.com/YisenWang/MART, mart.py).

``L = BCE(p(x'), y) + beta * (1/B) * sum_i KL(p(x_i) || p(x'_i)) * (1 - p_{y_i}(x_i))`` with the
boosted CE ``BCE = CE(f(x'), y) - mean_i log(1 - max_{k != y_i} p_k(x'_i))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.losses.base import AdvLoss, _stats, fp32, official_start_attack
from prunekit.registry import LOSSES

__all__ = ["MART", "top_other_class"]


def top_other_class(probs: Tensor, y: Tensor) -> Tensor:
    """The most likely class other than ``y`` (the official code takes the top two of
    ``argsort`` and picks the one that is not ``y``)."""
    top2 = probs.topk(2, dim=1).indices
    return torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])


@LOSSES.register("mart")
class MART(AdvLoss):
    """MART loss, faithful to the official code.

    * attack: eval mode; start ``x + 0.001 N(0,1)`` (not clamped); ``steps`` sign steps ascending
      the cross-entropy; projection and clamp to [0, 1] after each step;
    * outer loss in the caller's mode, nothing detached, the official constants::

        p_adv = softmax(f(x_adv)); p_nat = softmax(f(x))
        loss = CE(f(x_adv), y) + NLL(log(1.0001 - p_adv + 1e-12), new_y)
             + beta / B * sum_i [sum_k p_nat * (log p_nat - log(p_adv + 1e-12))]_i
                               * (1.0000001 - p_nat[i, y_i])

      with ``new_y`` the most likely adversarial class other than ``y``.

    Deliberate deviation: ties in ``new_y`` are broken by ``topk`` instead of ``argsort`` (only
    matters for exactly equal probabilities). Defaults: beta 6, 10 steps.
    """

    def _pgd(self) -> PGD:
        return PGD(self.eps, self.step_size, self.steps, start="normal")  # per-example CE

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        # the official code ascends the batch-mean CE: same sign of the gradient as the sum
        return official_start_attack(model, x, y, self._pgd())

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        logits = model(x)
        adv_logits = model(x_adv)
        with fp32(x):
            loss, parts = mart_outer(logits.float(), adv_logits.float(), y, self.beta)
        return loss, _stats(loss, logits, adv_logits, y, **parts)


def mart_outer(logits: Tensor, adv_logits: Tensor, y: Tensor,
               beta: float) -> tuple[Tensor, dict[str, float]]:
    """The MART outer objective on given clean / adversarial logits."""
    adv_probs = F.softmax(adv_logits, dim=1)
    new_y = top_other_class(adv_probs, y)
    loss_adv = F.cross_entropy(adv_logits, y) + F.nll_loss(
        torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = nat_probs.gather(1, y.unsqueeze(1)).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / y.shape[0]
    loss = loss_adv + float(beta) * loss_robust
    return loss, {"bce": loss_adv.item(), "kl": loss_robust.item()}
