"""Robust ADMM pruning (Ye et al., *Adversarial Robustness vs. Model Compression, or Both?*,
ICCV 2019; official code ``yeshaokai/Robustness-Aware-Pruning-ADMM``, ``admm/admm.py`` and
``ADMM_examples/cifar10/adv_main.py``).

One class, :class:`ADMM`, with a projection strategy (:mod:`baselines.admm_projections`):
``projection="irregular"`` (registry name ``admm``; weight masks) or ``"filter"`` (registry name
``admm-filter``, the preset :class:`ADMMFilter`; channels removed physically). For every layer
under ADMM the pruner keeps ``Z`` (the sparse copy) and ``U`` (the scaled dual):

* init (official ``admm_initialization``, epoch 0): ``Z = proj(W)``, ``U = 0``;
* every ``admm_interval`` epochs (or steps): ``rho *= 1.3`` (``multi_rho``, applied *before* the
  update as in ``admm_update``), ``Z = proj(W + U)``, ``U = U + W - Z``;
* the loss adds ``sum_l rho/2 * ||W_l - Z_l + U_l||^2`` (``append_admm_loss``), see :meth:`penalty`;
* finalize hard-prunes to ``proj(W)`` and bakes the result (official ``masking`` + masked
  retrain with ``W.grad *= mask``; a baked mask also survives weight decay and momentum).
* ``lr_reset=True``: the official periodic learning rate (``admm_adjust_learning_rate``): the
  stage lr is reset at every Z/U update and divided by 10 after each third of the interval.

Convergence diagnostic (:meth:`summary`, every run): at the hard prune, the relative primal
residual ``||W - Z|| / ||W||`` and the fraction of the pruned weights' norm that survived the
ADMM stage, ``||W * (1 - M)|| / ||W_0 * (1 - M)||`` (``M`` = what the hard prune keeps, ``W_0`` =
the weights at attach). ADMM has done its job when both are small; with too little ``rho x lr x
steps`` the pruned weights keep their norm and the run is magnitude pruning plus fine-tuning
(issue 10: 99.6 % survived in the old CPU grids). A warning is logged when either exceeds
``converge_tol``.

Deviations (docs/baselines.md): exact per-layer counts instead of ``np.percentile``; the update
after the last epoch also runs (harmless: finalize projects W, not Z); the stem and the
classifier are left dense by default (``include_*`` flags); the filter projection couples
residual channels and compacts (see :mod:`baselines.admm_projections`).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from prunekit.pruning.base import Pruner

from baselines._common import check_choice
from baselines.admm_projections import PROJECTIONS, Projection

__all__ = ["ADMM", "ADMMFilter"]

log = logging.getLogger(__name__)


class ADMM(Pruner):
    """Robust ADMM pruning (``admm``; ``admm-filter`` = the filter projection).

    Args:
        sparsity: ``irregular``: fraction of each pruned layer's weights removed (official
            ``prune_ratios``); ``filter``: target conv + linear MACs reduction.
        projection: ``"irregular"`` or ``"filter"`` (:mod:`baselines.admm_projections`).
        rho: initial penalty weight (official 0.001).
        multi_rho / rho_factor / rho_max: multiply rho by ``rho_factor`` (1.3) at every update;
            the official code has no cap (``rho_max=None``).
        admm_interval / interval_unit: Z/U update period (official ``admm_epoch`` 20 epochs).
        lr_reset: the official periodic learning rate in the prune stage (needs
            ``interval_unit="epoch"``); default False = the stage's own schedule.
        converge_tol: warn at finalize when the relative residual or the surviving fraction of
            the pruned weights' norm exceeds this.
        include_stem / include_classifier: also prune the first conv / the last linear layer.
        norm_affine: filter projection only: the removed channels' BatchNorm gamma / beta are
            ADMM variables too, so the channel's output (not only its filter) goes to zero
            (default True; the official code projects the conv weights only -- see
            :mod:`baselines.admm_projections` for why that leaves the hard prune lossy).

    Example::

        pruner = PRUNERS.build("admm", sparsity=0.9, rho=0.1, admm_interval=4,
                               interval_unit="step")
    """

    granularity = "weight"                     # of the default projection; per instance below
    lossless_finalize = True                   # the hard prune should be near-lossless
    contract_tolerance = 0.005                 # per-layer exact counts: within 0.5 point
    contract_hparams = {"admm_interval": 1, "interval_unit": "step"}   # Z/U updates run

    def __init__(self, sparsity: float, *, projection: str = "irregular", rho: float = 1e-3,
                 multi_rho: bool = True, rho_factor: float = 1.3, rho_max: float | None = None,
                 admm_interval: int = 20, interval_unit: str = "epoch", lr_reset: bool = False,
                 converge_tol: float = 0.1, include_stem: bool = False,
                 include_classifier: bool = False, norm_affine: bool = True) -> None:
        super().__init__(sparsity)
        self.projection = check_choice("projection", projection, tuple(PROJECTIONS))
        self._check(isinstance(rho, (int, float)) and rho > 0, f"rho must be > 0, got {rho!r}")
        self._check(isinstance(rho_factor, (int, float)) and rho_factor >= 1,
                    f"rho_factor must be >= 1, got {rho_factor!r}")
        self._check(rho_max is None or (isinstance(rho_max, (int, float)) and rho_max >= rho),
                    f"rho_max must be >= rho ({rho}) or null, got {rho_max!r}")
        self._check(isinstance(admm_interval, int) and not isinstance(admm_interval, bool)
                    and admm_interval >= 1,
                    f"admm_interval must be an integer >= 1, got {admm_interval!r}")
        self.interval_unit = check_choice("interval_unit", interval_unit, ("epoch", "step"))
        self._check(not lr_reset or interval_unit == "epoch",
                    "lr_reset (the official periodic lr) needs interval_unit: epoch")
        self._check(isinstance(converge_tol, (int, float)) and converge_tol > 0,
                    f"converge_tol must be > 0, got {converge_tol!r}")
        self.rho = float(rho)
        self.rho_factor = float(rho_factor)
        self.multi_rho = bool(multi_rho)
        self.rho_max = None if rho_max is None else float(rho_max)
        self.admm_interval = admm_interval
        self.lr_reset = bool(lr_reset)
        self.converge_tol = float(converge_tol)
        self.n_updates = 0
        extra = {"norm_affine": bool(norm_affine)} if self.projection == "filter" else {}
        self._proj: Projection = PROJECTIONS[self.projection](
            self.sparsity, bool(include_stem), bool(include_classifier), **extra)
        self.granularity = self._proj.granularity          # type: ignore[misc]
        self.sparsity_target = self._proj.sparsity_target  # type: ignore[misc]
        self._weights: dict[str, Tensor] = {}
        self._W0: dict[str, Tensor] = {}
        self._Z: dict[str, Tensor] = {}
        self._U: dict[str, Tensor] = {}
        self._D: dict[str, Tensor] = {}    # Z - U, cached for the penalty
        self._diagnostic: dict[str, Any] = {}

    # -- ADMM -----------------------------------------------------------------------------------
    def project(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Euclidean projection onto the sparsity set: ``v * keep_mask(v)``."""
        masks = self._proj.keep_masks(values)
        return {n: values[n] * masks[n].to(values[n].dtype) for n in values}

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Pick the layers (projection) and initialise ``Z = proj(W)``, ``U = 0``."""
        self._weights = self._proj.setup(model, example_inputs)   # traces: autograd on
        with torch.no_grad():
            w = {n: t.detach() for n, t in self._weights.items()}
            self._W0 = {n: t.clone() for n, t in w.items()}
            self._Z = self.project(w)
            self._U = {n: torch.zeros_like(t) for n, t in w.items()}
            self._refresh()
        self.model = model

    def _refresh(self) -> None:
        self._D = {n: self._Z[n] - self._U[n] for n in self._Z}

    @torch.no_grad()
    def admm_update(self) -> None:
        """One dual step: ``rho *= factor`` (multi_rho), ``Z = proj(W + U)``, ``U = U + W - Z``."""
        if self.multi_rho:
            self.rho *= self.rho_factor
            if self.rho_max is not None:
                self.rho = min(self.rho, self.rho_max)
        w = {n: t.detach() for n, t in self._weights.items()}
        self._Z = self.project({n: w[n] + self._U[n] for n in w})
        self._U = {n: self._U[n] + w[n] - self._Z[n] for n in w}
        self._refresh()
        self.n_updates += 1
        log.debug("admm update %d: rho=%.4g", self.n_updates, self.rho)

    def penalty(self) -> Tensor:
        """Augmented-Lagrangian term ``sum_l rho/2 * ||W_l - Z_l + U_l||^2`` (differentiable in W)."""
        terms = [(w - self._D[n]).pow(2).sum() for n, w in self._weights.items()]
        if not terms:
            return torch.zeros(())
        return 0.5 * self.rho * torch.stack(terms).sum()

    def on_step_end(self, step: int) -> None:
        if self.interval_unit == "step" and (step + 1) % self.admm_interval == 0:
            self.admm_update()

    def on_epoch_end(self, epoch: int) -> None:
        # official: the update runs at batch 0 of every epoch e > 0 with e % admm_epoch == 0, i.e.
        # on W as left by epoch e - 1
        if self.interval_unit == "epoch" and (epoch + 1) % self.admm_interval == 0:
            self.admm_update()

    def stage_scheduler(self, optimizer: torch.optim.Optimizer, stage: Any) -> LRScheduler | None:
        """With ``lr_reset``: the official ``admm_adjust_learning_rate`` as a per-epoch schedule,
        ``lr(e) = lr * 0.1 ** ((e % interval) // (interval / 3))``; else None (stage schedule)."""
        if not self.lr_reset:
            return None
        k = self.admm_interval
        return LambdaLR(optimizer, lambda e: 0.1 ** ((e % k) // (k / 3)))

    # -- finalize -------------------------------------------------------------------------------
    def masks(self) -> dict[str, Tensor]:
        """Keep masks of ``proj(W)`` (what :meth:`finalize` will bake)."""
        return self._proj.masks(self._weights)

    @torch.no_grad()
    def convergence(self) -> dict[str, Any]:
        """The diagnostic of the current W, Z (see the module docstring)."""
        w = {n: t.detach() for n, t in self._weights.items()}
        keep = self._proj.keep_masks(w)
        sq = lambda ts: float(sum(float(t.float().pow(2).sum()) for t in ts))  # noqa: E731
        w_sq = sq(w.values())
        pruned_now = sq(w[n] * (~keep[n]).to(w[n].dtype) for n in w)
        pruned_init = sq(self._W0[n] * (~keep[n]).to(w[n].dtype) for n in w)
        out = {"n_updates": self.n_updates, "rho_final": self.rho,
               "rel_residual": math.sqrt(sq(w[n] - self._Z[n] for n in w) / max(w_sq, 1e-30)),
               "pruned_norm_survived": math.sqrt(pruned_now / max(pruned_init, 1e-30)),
               "hard_prune_rel_change": math.sqrt(pruned_now / max(w_sq, 1e-30))}
        out["converged"] = bool(out["rel_residual"] <= self.converge_tol
                                and out["pruned_norm_survived"] <= self.converge_tol)
        return out

    def finalize(self, model: nn.Module) -> nn.Module:
        """Record the convergence diagnostic, hard prune to ``proj(W)`` and bake it."""
        if self.n_updates == 0:
            log.warning("admm: no Z/U update ran (admm_interval=%d %ss is longer than the prune "
                        "stage); the penalty only pulled W towards proj(W_0)",
                        self.admm_interval, self.interval_unit)
        self._diagnostic = self.convergence()
        d = self._diagnostic
        if not d["converged"]:
            log.warning("admm: not converged at the hard prune (||W-Z||/||W|| = %.3f, pruned "
                        "weights kept %.1f %% of their norm; tolerance %.3f): raise rho, the "
                        "number of updates or the prune epochs", d["rel_residual"],
                        100 * d["pruned_norm_survived"], self.converge_tol)
        else:
            log.info("admm: converged (||W-Z||/||W|| = %.4f, pruned weights kept %.2f %% of "
                     "their norm)", d["rel_residual"], 100 * d["pruned_norm_survived"])
        out = self._proj.finalize(model, self._weights)
        self._weights, self._W0, self._Z, self._U, self._D, self.model = {}, {}, {}, {}, {}, None
        return out

    def summary(self) -> dict[str, Any]:
        """``projection`` and, after finalize, the convergence diagnostic: ``n_updates``,
        ``rho_final``, ``rel_residual``, ``pruned_norm_survived``, ``hard_prune_rel_change``,
        ``converged``."""
        return {"projection": self.projection, **self._diagnostic}

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rho": self.rho, "n_updates": self.n_updates,
                "Z": {n: t.clone() for n, t in self._Z.items()},
                "U": {n: t.clone() for n, t in self._U.items()},
                **self._proj.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state["Z"]) != set(self._weights):
            raise ValueError(f"admm state has layers {sorted(state['Z'])}, the attached model "
                             f"has {sorted(self._weights)}")
        self.rho = float(state["rho"])
        self.n_updates = int(state["n_updates"])
        dev = {n: t.device for n, t in self._weights.items()}
        self._Z = {n: t.to(dev[n]).clone() for n, t in state["Z"].items()}
        self._U = {n: t.to(dev[n]).clone() for n, t in state["U"].items()}
        self._refresh()
        self._proj.load_state_dict(state)


class ADMMFilter(ADMM):
    """``admm-filter``: :class:`ADMM` with ``projection="filter"`` (a registry preset, so the
    contract tests and the CSV's ``granularity`` see a channel method)."""

    granularity = "channel"
    sparsity_target = "macs"
    contract_tolerance = 0.02

    def __init__(self, sparsity: float, *, projection: str = "filter", **kwargs: Any) -> None:
        if projection != "filter":
            raise ValueError(f"admm-filter: projection must be filter, got {projection!r} "
                             f"(use admm for {projection})")
        super().__init__(sparsity, projection="filter", **kwargs)
