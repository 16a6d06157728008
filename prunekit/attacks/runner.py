"""One interface over prunekit's PGD and the official AutoAttack attacks:
``build_attack(spec, eps, norm, seed).run(model, x, y) -> AttackOutcome``."""
from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from prunekit.attacks.autoattack import AttackOutcome, AutoAttackRunner, model_device
from prunekit.attacks.parse import AttackSpec, parse_attack
from prunekit.attacks.pgd import PGD

__all__ = ["AttackRunner", "PGDRunner", "build_attack"]


class AttackRunner(Protocol):
    """Anything that attacks a batch and returns per-example robust flags."""

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome: ...


class PGDRunner:
    """``pgd-STEPS-RESTARTS``: :meth:`PGD.robust_flags` (uniform start per restart, robust only
    if every restart fails, each restart attacks only the points not yet broken). Randomness
    comes from the global torch RNG: the evaluator seeds it per (attack, batch)."""

    def __init__(self, spec: AttackSpec, eps: float, norm: str = "Linf",
                 early_exit: bool = True) -> None:
        if norm != "Linf":
            raise ValueError(f"{spec.name}: prunekit's PGD is L-inf only; got norm {norm!r} "
                             "(use apgd-ce / autoattack for L2 and L1)")
        self.spec = spec
        self.early_exit = early_exit
        self.pgd = PGD(eps, step_size=spec.pgd_step_size(eps), steps=spec.steps,
                       restarts=spec.restarts, start="uniform")

    def __repr__(self) -> str:
        return f"PGDRunner({self.pgd!r})"

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        device = model_device(model)
        x = x.detach().to(device=device).float()
        y = y.detach().to(device=device).long()
        before = self.pgd.grad_evals
        robust, x_adv = self.pgd.robust_flags(model, x, y, early_exit=self.early_exit)
        return AttackOutcome(robust=robust.cpu(), x_adv=x_adv,
                             grad_evals=self.pgd.grad_evals - before)


def build_attack(spec: AttackSpec | str, eps: float, norm: str = "Linf",
                 seed: int = 0) -> PGDRunner | AutoAttackRunner:
    """The runner for an attack name or spec (see :func:`parse_attack`)."""
    if isinstance(spec, str):
        spec = parse_attack(spec)
    if spec.kind == "pgd":
        return PGDRunner(spec, eps, norm)
    return AutoAttackRunner(eps, norm=norm, attacks=spec.aa_attacks, version=spec.version,
                            seed=seed)
