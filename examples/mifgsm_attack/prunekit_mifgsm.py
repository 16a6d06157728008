"""MI-FGSM as a prunekit attack: one file, one class, one entry point (pyproject.toml).

Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018, eq. 6-7:
``g_{t+1} = mu * g_t + grad / ||grad||_1``, ``x_{t+1} = clip_{x, eps}(x_t + alpha * sign(g_{t+1}))``
with ``alpha = eps / T`` and ``mu = 1`` (the paper's choices). The attack itself is
``torchattacks.MIFGSM`` (torchattacks 3.5.1), called, not re-implemented; this class only adds
what prunekit's evaluator needs: a name form, declared metadata and per-example robust flags.

Names: ``mi-fgsm`` (10 steps) or ``mi-fgsm-STEPS``, e.g. ``prunekit eval model.pt --attacks
pgd-50-10 mi-fgsm-20``. Deviation: torchattacks' default step is 2/255 whatever eps and T are;
here it is eps / T as in the paper, so T steps can just reach the eps-ball's corner.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.attacks import Attack, AttackOutcome
from prunekit.attacks.parse import invalid_attack

__all__ = ["MIFGSM"]

_NAME = re.compile(r"^mi-fgsm(?:-(\d+))?$")


class MIFGSM(Attack):
    """Momentum iterative FGSM, L-inf, untargeted; no random start, so the result depends on
    the inputs only (``seeded``).

    Args:
        steps: iterations T (default 10); decay: momentum mu (default 1.0).
    """

    label = "MI-FGSM"
    norms = ("Linf",)
    box = "white"
    seeded = True
    forms = ("mi-fgsm[-STEPS]",)

    def __init__(self, eps: float, norm: str = "Linf", seed: int = 0, *,
                 name: str | None = None, steps: int = 10, decay: float = 1.0) -> None:
        self.steps, self.decay = int(steps), float(decay)
        super().__init__(eps, norm, seed, name=name)

    @classmethod
    def parse(cls, name: str) -> dict[str, Any] | None:
        m = _NAME.match(name)
        if not m:
            return None
        steps = int(m.group(1) or 10)
        if steps < 1:
            raise invalid_attack(name, "STEPS must be >= 1")
        return {"steps": steps}

    def canonical(self) -> str:
        return f"mi-fgsm-{self.steps}"

    def describe(self) -> str:
        return f"MI-FGSM-{self.steps}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "steps": self.steps, "decay": self.decay}

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        import torchattacks

        with torch.no_grad():
            correct = model(x).argmax(1) == y
        x_adv = x.clone()
        if bool(correct.any()):
            atk = torchattacks.MIFGSM(model, eps=self.eps, alpha=self.eps / self.steps,
                                      steps=self.steps, decay=self.decay)
            x_adv[correct] = atk(x[correct], y[correct])
        with torch.no_grad():
            robust = correct & (model(x_adv).argmax(1) == y)
        return AttackOutcome(robust=robust, x_adv=x_adv)
