"""PGD adversarial training with label smoothing as a prunekit loss plug-in (one class).

``loss: {name: pgd-at-ls, smoothing: 0.1}`` -- ``smoothing`` is this loss's own option of the
``loss:`` config section (checked against ``__init__``'s signature). The inner attack is
PGD-AT's (eval mode, uniform start, CE ascent); the outer objective is the cross-entropy with
label smoothing (Szegedy et al., 2016) on the adversarial batch. The loss contract tests
(tests/test_loss_contract.py) run on it once its entry point is installed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.losses.base import accuracy
from prunekit.losses.pgd_at import PGDAT
from prunekit.modes import eval_mode


class SmoothPGDAT(PGDAT):
    """``CE_smooth(f(x_adv), y)`` with PGD-AT's inner attack."""

    def __init__(self, eps: float, step_size: float | None = None, steps: int = 10,
                 smoothing: float = 0.1) -> None:
        super().__init__(eps, step_size, steps)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        with eval_mode(model), torch.no_grad():
            clean_logits = model(x)
        adv_logits = model(x_adv)
        loss = F.cross_entropy(adv_logits.float(), y, label_smoothing=self.smoothing)
        return loss, {"loss": loss.item(), "clean_acc": accuracy(clean_logits, y),
                      "adv_acc": accuracy(adv_logits, y)}
