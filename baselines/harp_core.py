"""HARP's two learned quantities shared by ``harp`` and ``harp-channel``: the per-layer rate
(a scalar score through a sigmoid with a floor) that decides how many entries a top-k mask keeps,
and the hinge size penalty with the growing-then-frozen gamma.

Zhao & Wressnegger, *Holistic Adversarially Robust Pruning*, ICLR 2023; official code
``intellisec/harp`` at 9f343c0:

* ``models/layers.py:14-53`` (``GetSubnet``): top-k of ``|s|`` with a learned ``k``; the backward
  sends ``g`` straight through to ``|s|`` and ``sum(g)`` to ``k`` -- :class:`RateTopK`.
* ``utils/utils.py:4-20``: ``k = sigmoid(k_score) * (1 - k_min) + k_min``, ``k_min = alpha * k``
  (the target kept fraction), and its inverse for the initial strategy, clipped to
  ``[0.01, 0.99]`` before the logit -- :func:`rate_of`, :func:`rate_logit`.
* ``utils/hw.py:132-173`` / ``hw.py:176-253``: ``loss_hw = relu(size(rates) / target - 1)``;
  ``gamma = (epoch + 1) * gamma0`` unless frozen; ``train.py:287-301``: frozen (at the gamma of
  that epoch) once ``round(loss_hw, 4) == 0`` at the end of an epoch -- :class:`HingeSchedule`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from baselines._common import check_choice

__all__ = ["RateTopK", "rate_of", "rate_logit", "HingeSchedule", "kept_count", "budget_scale",
           "check_harp_hparams", "HingeHooks", "projection_facts"]

#: the official clip of the initial rate before its logit (``rate_init_func``'s ``clip_dec``)
_CLIP = 1e-2


def rate_of(k_score: Tensor, k_min: float) -> Tensor:
    """Kept fraction of a layer: ``sigmoid(k_score) * (1 - k_min) + k_min`` (official
    ``rate_act_func``), differentiable in ``k_score``; always in ``[k_min, 1]``."""
    return torch.sigmoid(k_score) * (1.0 - k_min) + k_min


def rate_logit(keep: float, k_min: float) -> float:
    """The ``k_score`` whose rate is ``keep`` (official ``rate_init_func``: the normalised rate
    clipped to ``[0.01, 0.99]`` first, so a dense start is 0.99 of the way to 1)."""
    inv = (keep - k_min) / (1.0 - k_min)
    inv = min(max(inv, _CLIP), 1.0 - _CLIP)
    return math.log(inv / (1.0 - inv))


def kept_count(rate: float, n: int) -> int:
    """Entries a top-k with kept fraction ``rate`` keeps out of ``n`` (at least one)."""
    return min(n, max(1, int(round(rate * n))))


class RateTopK(torch.autograd.Function):
    """``GetSubnet(|s|, k)`` of HARP: the forward returns the given hard mask (top
    ``round(k n)`` of ``|s|``); the backward is straight-through: ``g * sign(s)`` to the scores
    ``s`` (the official code applies ``GetSubnet`` to ``|s|``) and ``sum(g)`` to the rate ``k``
    (``models/layers.py:47-53``), so a layer's rate grows when its mask gradient says "more
    weights lower the loss"."""

    @staticmethod
    def forward(ctx, scores: Tensor, rate: Tensor,  # type: ignore[override]
                mask: Tensor) -> Tensor:
        ctx.save_for_backward(scores)
        ctx.rate_shape = rate.shape
        return mask

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        (scores,) = ctx.saved_tensors
        return grad * scores.sign(), grad.sum().reshape(ctx.rate_shape), None


class HingeSchedule:
    """``gamma * relu(size / target - 1)`` with HARP's dynamic gamma.

    ``gamma = (epoch + 1) * gamma0`` (``dynamic``; else ``gamma0``), where ``epoch`` counts the
    finished epochs -- or optimizer steps with ``unit="step"`` (a prunekit option for short
    runs). At the end of an epoch (:meth:`end_period`), if ``round(loss_hw, 4) == 0`` the current
    gamma is frozen for the rest of the stage (official ``train.py:287-301``) -- but only once the
    constraint has been violated at some period end before (prunekit's deviation). The official
    run starts dense, above the target, so this is the official rule there; a start at the
    target (prunekit's default ``init_keep``) would otherwise freeze gamma at ``gamma0`` after
    the first period, and the task gradient then drove the rates far above the budget
    (fmnist-structured, 50 %: 0.80 of the dense MACs kept at the end; docs/baselines.md).

    ``reached`` is the state at the last period end (the hinge holds), not "held once"."""

    def __init__(self, gamma0: float, *, dynamic: bool = True, unit: str = "epoch") -> None:
        self.gamma0 = float(gamma0)
        self.dynamic = bool(dynamic)
        self.unit = unit
        self.period = 0
        self.frozen: float | None = None
        self.history: list[tuple[float, float]] = []   # (gamma, loss_hw) at each period end

    @property
    def reached(self) -> bool:
        """The hinge holds at the last period end."""
        return bool(self.history) and round(self.history[-1][1], 4) == 0.0

    @property
    def violated(self) -> bool:
        """The hinge was active at some period end (this arms the freeze)."""
        return any(round(h, 4) > 0.0 for _, h in self.history)

    def gamma(self) -> float:
        if self.frozen is not None:
            return self.frozen
        return (self.period + 1) * self.gamma0 if self.dynamic else self.gamma0

    @staticmethod
    def hinge(ratio: Tensor) -> Tensor:
        """``relu(ratio - 1)`` with ``ratio = size / target``."""
        return torch.clamp(ratio - 1.0, min=0.0)

    def penalty(self, ratio: Tensor) -> Tensor:
        return self.gamma() * self.hinge(ratio)

    def end_period(self, ratio: float) -> None:
        """Record the period's end; freeze gamma once the size constraint holds."""
        loss_hw = max(0.0, float(ratio) - 1.0)
        self.history.append((self.gamma(), loss_hw))
        if self.reached and self.violated and self.frozen is None:
            self.frozen = self.gamma()
        self.period += 1

    def state_dict(self) -> dict[str, Any]:
        return {"period": self.period, "frozen": self.frozen,
                "history": [list(h) for h in self.history]}   # reached / violated: from history

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.period = int(state.get("period", 0))
        frozen = state.get("frozen")
        self.frozen = None if frozen is None else float(frozen)
        self.history = [(float(a), float(b)) for a, b in state.get("history", [])]

    def summary(self) -> dict[str, Any]:
        return {"gamma_final": self.gamma(), "gamma_frozen": self.frozen is not None,
                "constraint_reached": self.reached, "periods": self.period,
                "loss_hw_last": self.history[-1][1] if self.history else None}


def projection_facts(scale: float, learned: float, rounded: float, target: float,
                     what: str, unit: str) -> dict[str, Any]:
    """``converged`` (the learned rates met the budget without the finalize projection) and,
    when they did not, the warning a report shows beside the row (``scale`` < 1: every rate
    was multiplied by it at finalize, so the baked model is not the learned one). ``learned``
    is the size fraction of the continuous rates, ``rounded`` that of the whole ``unit`` the
    rates keep (``kept_count``): the budget is checked on ``rounded``, which can exceed the
    target while ``learned`` is below it."""
    if scale >= 0.999:
        return {"converged": True}
    return {"converged": False,
            "warnings": [f"the learned rates keep {rounded:.4f} of the dense {what} in whole "
                         f"{unit} (continuous rates {learned:.4f}), above the target "
                         f"{target:.4f}; finalize scaled every rate by {scale:.4f}"]}


def budget_scale(sizes: list[int], rates: list[float], target: float,
                 size_of: Any, iters: int = 50) -> float:
    """Largest common factor ``c <= 1`` such that keeping ``kept_count(c * r_l, n_l)`` entries per
    layer/group gives ``size_of(counts) <= target`` (bisection; ``size_of`` is monotone in the
    counts). 1.0 when the learned rates already meet the target."""
    def size(c: float) -> float:
        return float(size_of([kept_count(c * r, n) for r, n in zip(rates, sizes)]))

    if size(1.0) <= target:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if size(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo if lo > 0 else hi


def check_harp_hparams(sparsity: float, alpha: float, gamma: float, init_keep: float | None,
                       gamma_unit: str) -> float:
    """Validate the hyperparameters both HARP modes share; returns ``init_keep`` resolved."""
    if not 0.0 <= float(alpha) < 1.0:
        raise ValueError(f"alpha must be in [0, 1) (rate floor = alpha * (1 - sparsity)), "
                         f"got {alpha}")
    if not float(gamma) >= 0.0:
        raise ValueError(f"gamma must be >= 0 (hinge weight per epoch), got {gamma}")
    check_choice("gamma_unit", gamma_unit, ("epoch", "step"))
    keep = 1.0 - sparsity if init_keep is None else float(init_keep)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"init_keep must be in (0, 1] (initial kept fraction), got {init_keep}")
    return keep


class HingeHooks:
    """The lifecycle hooks both HARP modes share: the hinge penalty on ``size_ratio()`` (size /
    target, differentiable in the rates) and the gamma schedule's period ends (per epoch or per
    optimizer step, :attr:`gamma_unit`). The class sets ``schedule`` and ``gamma_unit``."""

    schedule: HingeSchedule
    gamma_unit: str

    def size_ratio(self) -> Tensor:
        raise NotImplementedError

    def penalty(self) -> Tensor:
        return self.schedule.penalty(self.size_ratio())

    def on_step_end(self, step: int) -> None:
        if self.gamma_unit == "step":
            self._end_period()

    def on_epoch_end(self, epoch: int) -> None:
        if self.gamma_unit == "epoch":
            self._end_period()

    def _end_period(self) -> None:
        with torch.no_grad():
            self.schedule.end_period(float(self.size_ratio()))
