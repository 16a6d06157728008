"""Verified training: IBP (Gowal et al. 2018, eq. 7-8) and CROWN-IBP (Zhang et al. 2020,
eq. 8), following HYDRA's trainer/crown-ibp.py:95-140 for the robust term.

``loss = kappa * CE(f(x), y) + (1 - kappa) * CE(-m, y)`` where ``m`` are the lower bounds of
the margins ``z_y - z_j`` over the eps_t-ball (0 at ``j = y``; HYDRA's ``lb_s.scatter``), for
CROWN-IBP ``m = beta * m_CROWN-IBP + (1 - beta) * m_IBP`` (crown-ibp.py:120-135).

Schedules (Gowal sec. 4; Zhang sec. 4): with ``t = clip((pos - ramp_start) / ramp_epochs, 0,
1)``, ``eps_t = t * eps`` (linear ramp), ``kappa`` and ``beta`` move linearly from their
``*_start`` to their ``*_end`` with ``t``. ``pos`` is the fractional epoch the training loop
sets through :meth:`set_position` (the generic loss hook ``set_position(epoch: float, stage:
str)``: the loop calls it, if a loss has it, before every step with ``epoch + step /
steps_per_epoch`` and the stage name); the ramp runs in the stage ``ramp_stage`` (default
``pretrain``; ``None``: every stage); in other stages, and without a position (outside the
loop), ``t = 1``. Defaults: IBP kappa 1 -> 0.5 (Gowal), CROWN-IBP
kappa 1 -> 0 and beta 1 -> 0 (Zhang); HYDRA's script is kappa 0 throughout (``kappa_start=0,
kappa_end=0``), beta 1 -> 0.

BatchNorm inside the bounds (``bn_stats``): ``running`` computes them with the model in eval
mode (BN with running statistics; the clean term in the caller's mode); ``batch`` freezes every
BN at the clean batch's per-channel mean / variance (differentiable; auto_LiRPA's training-mode
BN, which Gowal et al. and Shi et al. 2021 train with). With ``running`` the robust term can
shrink its bounds by shrinking a conv's weights (the running variance is a constant to it) while
the train-mode clean term is scale invariant; measured in docs/training.md. Certification
(prunekit/certify/verified.py) always uses eval mode. docs/design-decisions.md.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.certify.bounds import Bounds, input_box, margin_spec
from prunekit.losses.base import AdvLoss, _stats, fp32
from prunekit.modes import eval_mode
from prunekit.registry import LOSSES

__all__ = ["IBPLoss", "CROWNIBPLoss"]


class IBPLoss(AdvLoss):
    """IBP training (``steps``/``step_size`` unused; ``beta`` is CROWN-IBP's, see
    :class:`CROWNIBPLoss`).

    Args:
        eps: final L-inf radius.
        ramp_start, ramp_epochs: the eps / kappa / beta ramp, in (fractional) epochs.
        kappa_start, kappa_end: weight of the clean CE at the start / end of the ramp
            (``kappa_end`` None: 0.5 for IBP, 0 for CROWN-IBP).
        bn_stats: BatchNorm statistics inside the training bounds, ``running`` or ``batch``
            (module docstring).
    """

    threat: ClassVar[str] = "verified"
    method: ClassVar[str] = "ibp"
    default_kappa_end: ClassVar[float] = 0.5      # Gowal et al.: kappa 1 -> 0.5

    def __init__(self, eps: float, step_size: float | None = None, steps: int = 0,
                 beta: float = 0.0, ramp_start: float = 0.0, ramp_epochs: float = 0.0,
                 kappa_start: float = 1.0, kappa_end: float | None = None,
                 beta_start: float = 1.0, beta_end: float = 0.0,
                 ramp_stage: str | None = "pretrain", bn_stats: str = "running") -> None:
        super().__init__(eps, step_size, steps, beta)
        self.ramp_stage = ramp_stage
        if bn_stats not in ("running", "batch"):
            raise ValueError(f"bn_stats must be one of running, batch; got {bn_stats!r}")
        self.bn_stats = bn_stats
        if kappa_end is None:
            kappa_end = self.default_kappa_end
        for name, v in (("kappa_start", kappa_start), ("kappa_end", kappa_end),
                        ("beta_start", beta_start), ("beta_end", beta_end)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if float(ramp_start) < 0 or float(ramp_epochs) < 0:
            raise ValueError(f"ramp_start and ramp_epochs must be >= 0, got "
                             f"{ramp_start!r}, {ramp_epochs!r}")
        self.ramp_start, self.ramp_epochs = float(ramp_start), float(ramp_epochs)
        self.kappa = (float(kappa_start), float(kappa_end))
        self.beta_sched = (float(beta_start), float(beta_end))
        self.position: float | None = None
        self.stage: str | None = None

    def set_position(self, epoch: float, stage: str | None = None) -> None:
        """The training loop's schedule position (fractional epochs since ``stage`` began)."""
        self.position = float(epoch)
        self.stage = stage

    def progress(self) -> float:
        """``t`` in [0, 1]: how far along the ramp (1 without a position or in another stage
        than ``ramp_stage``)."""
        if self.position is None or (self.ramp_stage is not None and self.stage is not None
                                     and self.stage != self.ramp_stage):
            return 1.0
        if self.ramp_epochs <= 0:
            return 1.0 if self.position >= self.ramp_start else 0.0
        return min(max((self.position - self.ramp_start) / self.ramp_epochs, 0.0), 1.0)

    def schedule(self) -> dict[str, float]:
        """``eps``, ``kappa`` and ``beta`` at the current position."""
        t = self.progress()
        lerp = lambda ab: ab[0] + (ab[1] - ab[0]) * t  # noqa: E731
        return {"eps": self.eps * t, "kappa": lerp(self.kappa), "beta": lerp(self.beta_sched)}

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """No inner maximisation: the bounds cover the whole ball."""
        return x.detach()

    def clean(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The eps = 0 objective (then the bounds are the logits themselves)."""
        return self._objective(model, x, y, {**self.schedule(), "eps": 0.0})

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        return self._objective(model, x, y, self.schedule())

    def bounds(self, model: nn.Module, x: Tensor) -> Bounds:
        """The bound propagation of ``model`` (DDP unwrapped), BN per ``bn_stats``."""
        bounds = Bounds(getattr(model, "module", model))
        return bounds.use_batch_stats(x) if self.bn_stats == "batch" else bounds

    def margins(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, beta: float,
                k: int) -> Tensor:
        """Lower margin bounds ``[B, K-1]`` over ``k`` classes (differentiable)."""
        bounds = self.bounds(model, x)
        lo, up = input_box(x, eps)
        spec = margin_spec(y, k).to(x.dtype)
        return bounds.ibp(lo, up, spec)[0]

    def _objective(self, model: nn.Module, x: Tensor, y: Tensor,
                   s: dict[str, float]) -> tuple[Tensor, dict[str, float]]:
        clean_logits = model(x)
        with eval_mode(model), fp32(x):
            lb = self.margins(model, x.float(), y, s["eps"], s["beta"], clean_logits.shape[1])
        full = torch.zeros(x.shape[0], lb.shape[1] + 1, device=x.device, dtype=lb.dtype)
        keep = torch.arange(full.shape[1], device=x.device).unsqueeze(0) != y.unsqueeze(1)
        full = full.masked_scatter(keep, lb)      # 0 at the true class, as HYDRA's scatter
        with fp32(x):
            robust = F.cross_entropy(-full, y)
            natural = F.cross_entropy(clean_logits.float(), y)
            loss = s["kappa"] * natural + (1 - s["kappa"]) * robust
        verified = float((lb.detach() > 0).all(1).float().mean())
        return loss, _stats(loss, clean_logits, -full, y, verified_acc=verified,
                            eps_t=s["eps"], kappa=s["kappa"], robust_loss=robust.item())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(eps={self.eps:.5g}, ramp_start={self.ramp_start:g}, "
                f"ramp_epochs={self.ramp_epochs:g}, kappa={self.kappa}, beta={self.beta_sched}, "
                f"bn_stats={self.bn_stats})")


LOSSES.register("ibp")(IBPLoss)


@LOSSES.register("crown-ibp", aliases=("crown_ibp",))
class CROWNIBPLoss(IBPLoss):
    """CROWN-IBP training: the margin bound mixes CROWN-IBP and IBP with ``beta`` (1 -> 0)."""

    method: ClassVar[str] = "crown-ibp"
    default_kappa_end: ClassVar[float] = 0.0      # Zhang et al.: kappa 1 -> 0

    def margins(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, beta: float,
                k: int) -> Tensor:
        bounds = self.bounds(model, x)
        lo, up = input_box(x, eps)
        spec = margin_spec(y, k).to(x.dtype)
        ibp = bounds.ibp(lo, up, spec)[0]
        if beta < 1e-5:    # HYDRA crown-ibp.py:123: pure IBP once beta vanishes
            return ibp
        return beta * bounds.crown_ibp(lo, up, spec) + (1 - beta) * ibp
