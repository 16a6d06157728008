"""Robust ADMM pruning (Ye et al., *Adversarial Robustness vs. Model Compression, or Both?*,
ICCV 2019; official code ``yeshaokai/Robustness-Aware-Pruning-ADMM``, ``admm/admm.py``).

For every pruned layer the pruner keeps ``Z`` (the sparse copy) and ``U`` (the scaled dual):

* init (official ``admm_initialization``, epoch 0): ``Z = proj(W)``, ``U = 0``;
* every ``admm_interval`` epochs (or steps): ``rho *= 1.3`` (``multi_rho``, applied *before* the
  update as in ``admm_update``), ``Z = proj(W + U)``, ``U = U + W - Z``;
* the loss adds ``sum_l rho/2 * ||W_l - Z_l + U_l||^2`` (``append_admm_loss``), see :meth:`penalty`;
* finalize hard-prunes to ``proj(W)`` and bakes the masks (official ``masking`` + masked retrain
  with ``W.grad *= mask``; a baked mask also survives weight decay and momentum).

Projections: ``irregular`` (keep the largest ``|w|`` per layer; :class:`ADMM`) and ``filter``
(keep the output filters of largest row L2 norm, coupled across torch-pruning dependency groups,
compacted physically; :class:`baselines.admm_filter.ADMMFilter`, also reachable as
``PRUNERS.build("admm", projection="filter")``).

Deviations (docs/baselines.md): the official projection thresholds at ``np.percentile`` (linear
interpolation, ties dropped); prunekit keeps exactly ``round((1 - sparsity) * n)`` entries per
layer.
The official stem/last-layer choice is per config file; prunekit prunes convs except the stem by
default (``include_*`` flags). The official periodic learning-rate reset at every ADMM update
(``admm_adjust_learning_rate``) belongs to the stage scheduler and is not reproduced here.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks

from baselines._common import check_choice, select_layers, topk_keep

__all__ = ["ADMM", "ADMMState"]

log = logging.getLogger(__name__)


class ADMMState:
    """The ADMM variables and schedule shared by every projection (mixin for a :class:`Pruner`).

    A subclass sets ``self._weights`` (name -> weight tensor under ADMM) in ``attach``, calls
    :meth:`_admm_init`, and implements :meth:`project_masks` (the keep masks of the Euclidean
    projection of the given tensors onto the sparsity constraint).
    """

    def _admm_hparams(self, rho: float, rho_factor: float, multi_rho: bool,
                      rho_max: float | None, admm_interval: int, interval_unit: str) -> None:
        if not (isinstance(rho, (int, float)) and rho > 0):
            raise ValueError(f"rho must be > 0, got {rho!r}")
        if not (isinstance(rho_factor, (int, float)) and rho_factor >= 1):
            raise ValueError(f"rho_factor must be >= 1, got {rho_factor!r}")
        if rho_max is not None and not rho_max >= rho:
            raise ValueError(f"rho_max must be >= rho ({rho}) or null, got {rho_max!r}")
        if isinstance(admm_interval, bool) or not isinstance(admm_interval, int) or admm_interval < 1:
            raise ValueError(f"admm_interval must be an integer >= 1, got {admm_interval!r}")
        self.rho = float(rho)
        self.rho_factor = float(rho_factor)
        self.multi_rho = bool(multi_rho)
        self.rho_max = None if rho_max is None else float(rho_max)
        self.admm_interval = admm_interval
        self.interval_unit = check_choice("interval_unit", interval_unit, ("epoch", "step"))
        self.n_updates = 0
        self._weights: dict[str, Tensor] = {}
        self._Z: dict[str, Tensor] = {}
        self._U: dict[str, Tensor] = {}
        self._D: dict[str, Tensor] = {}   # Z - U, cached for the penalty

    def project_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Keep masks (broadcastable to each tensor) of ``proj(values)``."""
        raise NotImplementedError

    def project(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Euclidean projection onto the sparsity set: ``v * keep_mask(v)``."""
        masks = self.project_masks(values)
        return {n: values[n] * masks[n].to(values[n].dtype) for n in values}

    @torch.no_grad()
    def _admm_init(self) -> None:
        w = {n: t.detach() for n, t in self._weights.items()}
        self._Z = self.project(w)
        self._U = {n: torch.zeros_like(t) for n, t in w.items()}
        self._refresh()

    def _refresh(self) -> None:
        self._D = {n: self._Z[n] - self._U[n] for n in self._Z}

    @torch.no_grad()
    def admm_update(self) -> None:
        """One ADMM dual step: ``rho *= factor`` (multi_rho), ``Z = proj(W + U)``,
        ``U = U + W - Z``."""
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

    def _warn_if_no_updates(self) -> None:
        if self.n_updates == 0:
            log.warning("admm: no Z/U update ran (admm_interval=%d %ss is longer than the prune "
                        "stage); the penalty only pulled W towards proj(W_0)",
                        self.admm_interval, self.interval_unit)

    def _admm_state(self) -> dict[str, Any]:
        return {"rho": self.rho, "n_updates": self.n_updates,
                "Z": {n: t.clone() for n, t in self._Z.items()},
                "U": {n: t.clone() for n, t in self._U.items()}}

    def _load_admm_state(self, state: Mapping[str, Any]) -> None:
        if set(state["Z"]) != set(self._weights):
            raise ValueError(f"admm state has layers {sorted(state['Z'])}, the attached model "
                             f"has {sorted(self._weights)}")
        self.rho = float(state["rho"])
        self.n_updates = int(state["n_updates"])
        dev = {n: t.device for n, t in self._weights.items()}
        self._Z = {n: t.to(dev[n]).clone() for n, t in state["Z"].items()}
        self._U = {n: t.to(dev[n]).clone() for n, t in state["U"].items()}
        self._refresh()


class ADMM(ADMMState, Pruner):
    """Robust ADMM pruning with the ``irregular`` projection (``admm``): per layer, keep the
    ``1 - sparsity`` fraction of weights of largest magnitude.

    Args:
        sparsity: fraction of each pruned layer's weights removed (official ``prune_ratios``).
        projection: ``"irregular"``; ``"filter"`` builds :class:`ADMMFilter` (``admm-filter``).
        rho: initial penalty weight (official 0.001).
        multi_rho / rho_factor / rho_max: multiply rho by ``rho_factor`` (1.3) at every update;
            the official code has no cap (``rho_max=None``).
        admm_interval / interval_unit: Z/U update period (official ``admm_epoch`` 20 epochs).
        include_stem / include_classifier: also prune the first conv / the last linear layer.

    Example::

        pruner = PRUNERS.build("admm", sparsity=0.9, admm_interval=2)
    """

    granularity = "weight"
    contract_tolerance = 0.005                       # per-layer exact counts: within 0.5 point
    contract_hparams = {"admm_interval": 1, "interval_unit": "step"}   # Z/U updates run

    def __new__(cls, *args: Any, projection: str = "irregular", **kwargs: Any) -> Any:
        check_choice("projection", projection, ("irregular", "filter"))
        if cls is ADMM and projection == "filter":
            from baselines.admm_filter import ADMMFilter

            return ADMMFilter(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, sparsity: float, *, projection: str = "irregular", rho: float = 1e-3,
                 multi_rho: bool = True, rho_factor: float = 1.3, rho_max: float | None = None,
                 admm_interval: int = 20, interval_unit: str = "epoch",
                 include_stem: bool = False, include_classifier: bool = False) -> None:
        Pruner.__init__(self, sparsity)
        self.projection = projection
        self._admm_hparams(rho, rho_factor, multi_rho, rho_max, admm_interval, interval_unit)
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)

    def project_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {n: topk_keep(v.abs(), self.sparsity) for n, v in values.items()}

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Pick the layers and initialise ``Z = proj(W)``, ``U = 0``."""
        layers = select_layers(model, include_stem=self.include_stem,
                               include_classifier=self.include_classifier)
        self._weights = {n: m.weight for n, m in layers.items()}
        self._admm_init()
        self.model = model

    def masks(self) -> dict[str, Tensor]:
        """Keep masks of ``proj(W)`` (what :meth:`finalize` will bake)."""
        return self.project_masks({n: w.detach() for n, w in self._weights.items()})

    def finalize(self, model: nn.Module) -> nn.Module:
        """Hard prune ``W = proj(W)`` and bake the masks for the masked retrain."""
        self._warn_if_no_updates()
        masks = self.masks()
        self._weights, self._Z, self._U, self._D, self.model = {}, {}, {}, {}, None
        apply_weight_masks(model, masks)
        return model

    def state_dict(self) -> dict[str, Any]:
        return self._admm_state()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._load_admm_state(state)
