"""``pgd-STEPS-RESTARTS[@STEP]``: prunekit's L-inf PGD (Madry et al., ICLR 2018) as an attack of
the family; the paper protocol's PGD-50-10 is ``pgd-50-10`` (50 steps, 10 restarts, step eps/4 =
2/255 at eps 8/255, uniform random start per restart).

The name is read here (:meth:`PGDAttack.parse`): ``pgd-STEPS`` means one restart; a step size can
follow ``@`` as an absolute value (``pgd-50-10@0.0078``), a fraction (``pgd-50-10@2/255``) or a
multiple of eps (``pgd-50-10@eps/4``, ``pgd-20-1@0.1eps``).
"""
from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from prunekit.attacks.base import Attack, AttackOutcome
from prunekit.attacks.parse import invalid_attack
from prunekit.attacks.pgd import PGD
from prunekit.registry import ATTACKS

__all__ = ["PGDAttack"]

_PGD_RE = re.compile(r"^pgd-(\d+)(?:-(\d+))?(?:@(.*))?$")
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"


def _parse_step(name: str, text: str) -> tuple[float | None, float]:
    """``0.0078`` | ``2/255`` | ``eps/4`` | ``0.25eps`` -> (absolute, multiple of eps)."""
    t = text.strip().lower().replace(" ", "")
    m = re.fullmatch(rf"({_NUM})?\*?eps(?:/({_NUM}))?", t)
    if m and t != "":
        mult = float(m.group(1)) if m.group(1) else 1.0
        div = float(m.group(2)) if m.group(2) else 1.0
        if mult <= 0 or div <= 0:
            raise invalid_attack(name, "step size must be > 0")
        return None, mult / div
    m = re.fullmatch(rf"({_NUM})(?:/({_NUM}))?", t)
    if not m:
        raise invalid_attack(name, f"cannot read step size {text!r}")
    val = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
    if val <= 0:
        raise invalid_attack(name, "step size must be > 0")
    return val, 0.25


@ATTACKS.register("pgd", aliases=("pgd-50-10",))
class PGDAttack(Attack):
    """PGD-STEPS-RESTARTS through :meth:`PGD.robust_flags`: robust only if every restart fails;
    a point is broken as soon as any iterate is misclassified, and each restart attacks only
    the points not broken yet. Randomness comes from the global torch RNG, which the evaluator
    seeds per (attack, batch).

    Args:
        steps, restarts: iterations per restart, restarts.
        step_size: absolute step, or None for ``step_eps * eps`` (default eps/4).
        early_exit: drop broken points (default; ``False`` attacks every point every step).
    """

    label = "PGD"
    column = "pgd_acc"
    forms = ("pgd-STEPS-RESTARTS[@STEP]",)

    def __init__(self, eps: float, norm: str = "Linf", seed: int = 0, *,
                 name: str | None = None, steps: int = 50, restarts: int = 10,
                 step_size: float | None = None, step_eps: float = 0.25,
                 early_exit: bool = True) -> None:
        if steps < 1 or restarts < 1:
            raise ValueError(f"PGD steps and restarts must be >= 1, got {steps}, {restarts}")
        self.steps, self.restarts = int(steps), int(restarts)
        self.step_abs = None if step_size is None else float(step_size)
        self.step_eps = float(step_eps)
        self.early_exit = bool(early_exit)
        super().__init__(eps, norm, seed, name=name)
        self.pgd = PGD(self.eps, step_size=self.step_size, steps=self.steps,
                       restarts=self.restarts, start="uniform")

    @classmethod
    def parse(cls, name: str) -> dict[str, Any] | None:
        m = _PGD_RE.match(name)
        if not m:
            return None
        steps = int(m.group(1))
        restarts = int(m.group(2)) if m.group(2) is not None else 1
        if steps < 1 or restarts < 1:
            raise invalid_attack(name, "STEPS and RESTARTS must be >= 1")
        kw: dict[str, Any] = {"steps": steps, "restarts": restarts}
        if m.group(3) is not None:
            kw["step_size"], kw["step_eps"] = _parse_step(name, m.group(3))
        return kw

    @property
    def step_size(self) -> float:
        """The absolute step size."""
        return self.step_abs if self.step_abs is not None else self.step_eps * self.eps

    def _step_suffix(self) -> str:
        if self.step_abs is not None:
            return f"@{self.step_abs!r}"
        return "" if self.step_eps == 0.25 else f"@{self.step_eps!r}eps"

    def canonical(self) -> str:
        return f"pgd-{self.steps}-{self.restarts}{self._step_suffix()}"

    def describe(self) -> str:
        if self.step_abs is not None:
            step = f" (step {self.step_abs:.3g})"
        else:
            step = "" if self.step_eps == 0.25 else f" (step {self.step_eps:.3g} eps)"
        return f"PGD-{self.steps}-{self.restarts}{step}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "steps": self.steps, "restarts": self.restarts,
                "step_size": self.step_size, "early_exit": self.early_exit}

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        robust, x_adv = self.pgd.robust_flags(model, x, y, early_exit=self.early_exit)
        return AttackOutcome(robust=robust, x_adv=x_adv)
