"""FGSM adversarial training with a random start (Wong, Rice & Kolter, "Fast is better than
free: revisiting adversarial training", ICLR 2020, Alg. 3), as in the official
``CIFAR10/train_fgsm.py`` (locuslab/fast_adversarial, lines 105-140), with its
catastrophic-overfitting check.

One attack forward/backward plus one training forward/backward per step: 2 passes, against
``K + 2`` for PGD-AT (docs/training.md, "Fast adversarial training").
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.attacks.precision import attack_precision
from prunekit.losses.base import AdvLoss, accuracy, adv_ce_outer
from prunekit.modes import eval_mode
from prunekit.registry import LOSSES

__all__ = ["FGSMRS"]

log = logging.getLogger(__name__)

#: epoch-record key of the check's PGD accuracy on the epoch's first training batch
CHECK_KEY = "overfit_pgd_acc"


@LOSSES.register("fgsm_rs", aliases=("fgsm-rs", "fast_at"))
class FGSMRS(AdvLoss):
    """FGSM-RS: cross-entropy on one FGSM step from a uniform random start.

    * attack (eval mode, fp32 unless the loop opts it into bf16): ``delta ~ U[-eps, eps]``,
      clipped so that ``x + delta`` is in [0, 1] (train_fgsm.py:107-110); one step
      ``delta <- clip(delta + step_size * sign(grad_delta CE(f(x + delta), y)), -eps, eps)``,
      clipped to [0, 1] again (lines 112-118). ``step_size`` defaults to ``1.25 * eps`` (the
      paper's alpha, 10/255 at eps 8/255);
    * outer loss in the caller's mode: ``CE(f(x_adv), y)`` (lines 120-121).
    * catastrophic-overfitting check (the official ``--early-stop``, lines 130-140): after every
      epoch, PGD with ``check_steps`` steps of ``eps / 4`` (official: 5 steps of 2/255 at eps
      8/255), uniform start, one restart, on the epoch's first training batch, model in eval
      mode; its accuracy is the epoch record's ``overfit_pgd_acc``. A drop of more than
      ``check_drop`` (official 0.2) below the previous epoch's value is catastrophic
      overfitting: a logged warning and a stage warning (the run's ``method_summary``).

    Deliberate deviations: the attack forward runs in eval mode like every prunekit loss (the
    official one runs in train mode, so BatchNorm statistics also see the attack's input); on
    collapse training goes on for the configured epochs and the run is flagged, where the
    official early stop ends training and keeps the previous epoch's weights (a configured
    budget stays the budget; the flag tells the user to shorten the schedule). The check batch is
    a training batch, as in the official code (the pipeline has no validation split); collapse
    shows on training points as on test points. The check's forwards count as training compute.
    Stats: ``loss`` and ``adv_acc`` (the training forward); no ``clean_acc``.
    """

    clean_stats = False

    def __init__(self, eps: float, step_size: float | None = None, check_steps: int = 5,
                 check_drop: float = 0.2) -> None:
        if isinstance(check_steps, bool) or not isinstance(check_steps, int) or check_steps < 0:
            raise ValueError(f"check_steps must be an int >= 0 (0: no check), got "
                             f"{check_steps!r}")
        if not 0.0 < float(check_drop) <= 1.0:
            raise ValueError(f"check_drop must be in (0, 1], got {check_drop!r}")
        super().__init__(eps, step_size=1.25 * float(eps) if step_size is None else step_size,
                         steps=1, beta=0.0)
        self.check_steps = int(check_steps)
        self.check_drop = float(check_drop)
        self._batch: tuple[Tensor, Tensor] | None = None
        self._epoch = 0
        self._prev: float | None = None

    # -- the loss --------------------------------------------------------------------------------
    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        x = x.detach()
        if self._batch is None:
            self._batch = (x.clone(), y.detach().clone())
        with eval_mode(model), attack_precision(x):
            start = torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(
                -self.eps, self.eps)
            delta = ((x + start).clamp(0.0, 1.0) - x).requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [delta])
            delta = (delta.detach() + self.step_size * grad.sign()).clamp(-self.eps, self.eps)
        return (x + delta).clamp(0.0, 1.0).detach()

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        return adv_ce_outer(model, x, x_adv, y)

    # -- the catastrophic-overfitting check ----------------------------------------------------
    def begin_epoch(self, epoch: int, history: list[dict[str, Any]]) -> None:
        self._batch, self._epoch = None, int(epoch)
        prev = history[-1].get(CHECK_KEY) if history else None
        self._prev = float(prev) if isinstance(prev, (int, float)) else None

    def end_epoch(self, model: nn.Module) -> dict[str, Any]:
        if self.check_steps == 0 or self._batch is None:
            return {}
        x, y = self._batch
        self._batch = None
        x_adv = PGD(self.eps, self.eps / 4, self.check_steps, start="uniform")(model, x, y)
        with eval_mode(model), torch.no_grad():
            acc = accuracy(model(x_adv), y)
        out: dict[str, Any] = {CHECK_KEY: acc}
        if self._prev is not None and acc < self._prev - self.check_drop:
            msg = (f"fgsm_rs: catastrophic overfitting in epoch {self._epoch + 1}: PGD-"
                   f"{self.check_steps} accuracy on the epoch's first training batch fell from "
                   f"{self._prev:.1%} to {acc:.1%} (Wong et al. 2020); shorten the schedule, "
                   f"lower the learning rate or step_size, or use pgd_at")
            log.warning(msg)
            out["warnings"] = [msg]
        return out

    def __repr__(self) -> str:
        return (f"FGSMRS(eps={self.eps:.5g}, step_size={self.step_size:.5g}, "
                f"check_steps={self.check_steps}, check_drop={self.check_drop:g})")
