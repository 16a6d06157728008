"""TRADES (Zhang et al., ICML 2019, eq. 5), as in the official ``trades_loss``
(github.com/yaodongyu/TRADES, trades.py).

``L = CE(f(x), y) + beta * (1/B) * sum_i KL(softmax f(x_i) || softmax f(x'_i))``, with
``x'`` from PGD ascending ``sum_i KL(softmax f(x_i) || softmax f(x'_i))`` started at
``x + 0.001 N(0, 1)`` with the model in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.attacks.precision import attack_precision
from prunekit.losses.base import AdvLoss, _stats, fp32, official_start_attack
from prunekit.modes import eval_mode
from prunekit.registry import LOSSES

__all__ = ["TRADES", "trades_kl"]


def trades_kl(adv_logits: Tensor, nat_probs: Tensor) -> Tensor:
    """Per-example ``KL(nat_probs || softmax(adv_logits))`` (the official
    ``KLDivLoss(log_softmax(adv), softmax(nat))`` summed over classes)."""
    return F.kl_div(F.log_softmax(adv_logits.float(), dim=1), nat_probs, reduction="none").sum(1)


@LOSSES.register("trades")
class TRADES(AdvLoss):
    """TRADES loss, faithful to the official code.

    * attack: eval mode; start ``x + 0.001 N(0,1)`` (not clamped); ``steps`` sign steps of size
      ``step_size`` ascending the summed KL against the (eval-mode) clean softmax; projection onto
      the eps-ball and clamp to [0, 1] after each step;
    * outer loss in the caller's mode: ``CE(f(x), y)`` (batch mean) ``+ beta / B *`` summed KL
      between ``softmax f(x)`` and ``softmax f(x_adv)``; nothing is detached;
    * like the official code, ``f(x)`` is evaluated twice in the outer loss (once for the CE,
      once for the KL target), so train-mode BatchNorm running statistics receive the same
      three updates (clean, adversarial, clean) as in the reference implementation.

    Defaults (CIFAR script): eps 0.031, 10 steps, step 0.007, beta 6. With ``eps == 0`` the loss
    equals plain cross-entropy.

    Example::

        loss_fn = LOSSES.build("trades", eps=8/255, step_size=2/255, steps=10, beta=6.0)
        loss, stats = loss_fn(model, x, y); loss.backward()
    """

    def _pgd(self) -> PGD:
        return PGD(self.eps, self.step_size, self.steps, start="normal", loss_fn=trades_kl)

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with eval_mode(model), attack_precision(x), torch.no_grad():
            nat_probs = F.softmax(model(x.detach()).float(), dim=1)
        # the official code recomputes softmax(f(x)) in eval mode at every step: same value
        return official_start_attack(model, x, nat_probs, self._pgd())

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        logits = model(x)
        adv_logits = model(x_adv)
        nat_logits = model(x)  # the official KL target: a second clean forward (see docstring)
        with fp32(x):
            loss_natural = F.cross_entropy(logits.float(), y)
            nat_probs = F.softmax(nat_logits.float(), dim=1)
            loss_robust = trades_kl(adv_logits, nat_probs).sum() / x.shape[0]
            loss = loss_natural + self.beta * loss_robust
        return loss, _stats(loss, logits, adv_logits, y, ce=loss_natural.item(),
                            kl=loss_robust.item())
