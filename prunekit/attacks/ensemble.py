"""Ensembles: attacks run in order, each only on the points still robust after the previous ones
(AutoAttack's scheme, Croce & Hein, ICML 2020, sec. 4), and the reuse of their stages.

Stage ``k`` of an ensemble runs on exactly the points stages ``0..k-1`` left robust, so the
ensemble's result after its first ``k`` stages *is* the result of an ensemble of those ``k``
stages alone -- for ``k = 1``, of the first stage run alone on the whole batch -- provided each of
those stages is ``seeded`` (its result depends on its parameters, seed and inputs only, not on
the global RNG). That is what :meth:`Ensemble.provides` declares and :func:`reuse_plan` uses:
with ``apgd-ce`` and ``autoattack`` in one evaluation, APGD-CE is AutoAttack's first stage and
runs once.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from prunekit.attacks.base import NORMS, Attack, AttackOutcome, Box
from prunekit.attacks.parse import parse_attack

__all__ = ["Ensemble", "reuse_plan"]


class Ensemble(Attack):
    """An attack made of the registered attacks named in ``components`` (built with the
    ensemble's eps, norm and seed), run in order on the still-robust points.

    Subclasses declare ``components`` (and ``label``, ``standard``, ``column``); ``norms``,
    ``box``, ``targeted`` and ``seeded`` follow from the stages.
    """

    components: ClassVar[tuple[str, ...]] = ()

    def __init__(self, eps: float, norm: str = "Linf", seed: int = 0, *,
                 name: str | None = None) -> None:
        if len(self.components) < 2:
            raise TypeError(f"{type(self).__name__}: an ensemble needs >= 2 components")
        super().__init__(eps, norm, seed, name=name)   # validates the norm for all stages
        self._stages: tuple[Attack, ...] = tuple(
            parse_attack(c).build(eps, norm=norm, seed=seed) for c in self.components)

    @classmethod
    def supported_norms(cls) -> tuple[str, ...]:
        stage_norms = [parse_attack(c).cls.supported_norms() for c in cls.components]
        return tuple(n for n in NORMS if all(n in s for s in stage_norms))

    @property
    def stages(self) -> tuple[Attack, ...]:
        return self._stages

    @property
    def box(self) -> Box:  # type: ignore[override]
        boxes = {s.box for s in self._stages}
        return boxes.pop() if len(boxes) == 1 else "mixed"

    @property
    def targeted(self) -> bool:  # type: ignore[override]
        return any(s.targeted for s in self._stages)

    @property
    def seeded(self) -> bool:  # type: ignore[override]
        return all(s.seeded for s in self._stages)

    def describe(self) -> str:
        return self.label or " + ".join(s.describe() for s in self._stages)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "stages": [repr(s) for s in self._stages]}

    def provides(self, other: Attack) -> bool:
        """``other``'s stages are a proper prefix of this ensemble's (equal attacks, all
        ``seeded``): this ensemble's first stages give ``other``'s exact result."""
        theirs = other.stages
        return (len(theirs) < len(self._stages) and
                all(a.same_as(b) and b.seeded for a, b in zip(theirs, self._stages)))

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        n = x.shape[0]
        broken_at = torch.full((n,), -1, dtype=torch.long)
        x_adv = x.clone()
        todo = torch.arange(n)
        seconds: list[float] = []
        grads: list[int] = []
        messages: list[str] = []
        robust_after: dict[str, float] = {}
        for k, stage in enumerate(self._stages):
            if todo.numel() == 0:   # nothing left to attack (AutoAttack stops here too)
                seconds.append(0.0)
                grads.append(0)
                continue
            sel = todo.to(x.device)
            t0 = time.perf_counter()
            out = stage(model, x[sel], y[sel])
            seconds.append(time.perf_counter() - t0)
            grads.append(out.grad_evals)
            messages.extend(out.messages)
            lost = ~out.robust
            broken_at[todo[lost]] = k
            x_adv[sel[lost.to(x.device)]] = out.x_adv[lost.to(x.device)]
            todo = todo[out.robust]
            robust_after[stage.canonical()] = todo.numel() / max(1, n)
        messages.extend(self.finish(robust_after, model, x, y))
        return AttackOutcome(robust=broken_at < 0, x_adv=x_adv, messages=messages,
                             broken_at=broken_at, stage_seconds=seconds, stage_grad_evals=grads)

    def finish(self, robust_after: dict[str, float], model: nn.Module, x: Tensor,
               y: Tensor) -> list[str]:
        """Hook after the last stage (``robust_after``: robust fraction after each stage that
        ran); returns extra messages. Default: none."""
        return []


def reuse_plan(attacks: Sequence[Attack]) -> dict[str, str]:
    """``{attack name: provider name}`` for every attack another attack of the list provides
    (:meth:`Attack.provides`); the provider with the most stages is chosen, and a provider is
    never itself provided."""
    plan: dict[str, str] = {}
    for a in attacks:
        providers = [p for p in attacks if p is not a and p.provides(a)]
        if providers:
            plan[a.name] = max(providers, key=lambda p: len(p.stages)).name
    return plan
