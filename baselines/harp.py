"""HARP: HYDRA's importance scores plus a learned compression rate per layer (``harp``).

Zhao & Wressnegger, *Holistic Adversarially Robust Pruning*, ICLR 2023; official code
``intellisec/harp`` at 9f343c0 (file:line of each part in :mod:`baselines.harp_core`):

* every pruned layer holds HYDRA-style scores ``s`` (scaled init from the pretrained weights,
  official ``utils/model.py:101-131``, forced on in ``harp_prune`` by ``utils/logging.py``) and one
  scalar ``k_score``; its kept fraction is ``rate = sigmoid(k_score) (1 - k_min) + k_min`` with
  ``k_min = alpha * (1 - sparsity)``; the forward uses ``W * topk_rate(|s|)`` with a
  straight-through gradient to ``s`` and the summed mask gradient to ``rate``
  (``models/layers.py:14-53``);
* the prune stage trains scores, rates and BN affine parameters (weights frozen; official
  ``prepare_model(exp_mode="harp_prune")``) on ``adv_loss + gamma * relu(density / target - 1)``,
  ``density = sum_l n_l rate_l / sum_l n_l`` over the pruned layers (official ``hw_loss``: the
  parameter count, here of prunekit's prunable layers, the set ``measure()`` reports);
  ``gamma = (epoch + 1) gamma0``, frozen once the constraint holds at an epoch end;
* :meth:`Harp.finalize` bakes **the learned per-layer rates**: layer ``l`` keeps its
  ``round(rate_l n_l)`` largest ``|s|``. (The official ``subnet_to_dense``,
  ``utils/model.py:286-313``, exports every layer at the single global ``k`` and so discards
  the learned strategy.)

Deviations (docs/baselines.md): the initial strategy is uniform at the target (``init_keep``
default ``1 - sparsity``; official ``010_uni`` = 0.1 kept in every layer whatever the target,
identical at 90 %); stem and classifier are not pruned by default (official: every conv/linear);
``project_budget`` (default on): if at finalize the learned rates still exceed the budget (a
short stage whose gamma never froze), every layer's rate is multiplied by one common factor so
the baked model meets the target -- the learned allocation is kept, the factor is reported
(``budget_scale``, 1.0 when the hinge had already met the target); ``gamma_unit: step`` lets a
short run grow gamma per optimizer step instead of per epoch.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks

from baselines._common import (freeze_all_but_norm, norm_params,
                               scaled_score_init, select_layers, topk_count, unfreeze)
from baselines.harp_core import (HingeHooks, HingeSchedule, RateTopK, budget_scale,
                                 check_harp_hparams, kept_count, projection_facts, rate_logit,
                                 rate_of)
from baselines.harp_channel import HarpChannel  # noqa: F401  (entry-point path)

__all__ = ["Harp", "HarpChannel"]

log = logging.getLogger(__name__)


class _RateScoreMask(nn.Module):
    """Parametrization ``W -> W * RateTopK(s, rate)`` holding a layer's scores and ``k_score``;
    the hard mask is cached until either changes."""

    def __init__(self, scores: Tensor, k_score: float, k_min: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.k_score = nn.Parameter(torch.tensor(float(k_score), device=scores.device))
        self.k_min = float(k_min)
        self._key: tuple[int, ...] | None = None
        self._mask: Tensor | None = None

    def rate(self) -> Tensor:
        return rate_of(self.k_score, self.k_min)

    def keep_mask(self, count: int | None = None) -> Tensor:
        """Bool mask of the top ``count`` (default: the current rate's count) ``|s|``."""
        if count is not None:
            return topk_count(self.scores.detach().abs().flatten(), count).view_as(self.scores)
        key = (self.scores._version, self.k_score._version, self.scores.data_ptr())
        if key != self._key or self._mask is None:
            n = self.scores.numel()
            with torch.no_grad():
                k = kept_count(float(self.rate()), n)
                flat = self.scores.detach().abs().flatten()
                self._mask = topk_count(flat, k).view_as(self.scores)
            self._key = key
        return self._mask

    def forward(self, weight: Tensor) -> Tensor:
        mask = self.keep_mask().to(weight.dtype)
        return weight * RateTopK.apply(self.scores, self.rate(), mask)


class Harp(HingeHooks, Pruner):
    """HARP weight pruning: learned per-weight scores and per-layer rates (``harp``).

    Args:
        sparsity: target fraction of the pruned layers' weights removed (official ``1 - k``).
        alpha: rate floor ``k_min = alpha * (1 - sparsity)`` (official ``--alpha`` 0.1).
        gamma: ``gamma0`` of the hinge weight ``(epoch + 1) * gamma0`` (official README 0.01).
        gamma_dynamic: grow gamma per epoch and freeze it (official default) or keep ``gamma0``.
        gamma_unit: ``"epoch"`` (official) or ``"step"``: what advances / freezes gamma.
        init_keep: initial kept fraction of every layer (default ``1 - sparsity``).
        project_budget: shrink the learned rates by a common factor at finalize if they still
            exceed the target (see the module docstring).
        include_stem / include_classifier: also prune the first conv / the last linear.

    Example::

        pruner = PRUNERS.build("harp", sparsity=0.99, gamma=0.01)
    """

    granularity = "weight"
    contract_tolerance = 0.01
    contract_hparams = {"gamma": 1.0, "gamma_unit": "step"}

    def __init__(self, sparsity: float, *, alpha: float = 0.1, gamma: float = 0.01,
                 gamma_dynamic: bool = True, gamma_unit: str = "epoch",
                 init_keep: float | None = None, project_budget: bool = True,
                 include_stem: bool = False, include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self._init_keep = check_harp_hparams(self.sparsity, alpha, gamma, init_keep, gamma_unit)
        self.alpha, self.gamma, self.gamma_unit = float(alpha), float(gamma), gamma_unit
        self.gamma_dynamic, self.project_budget = bool(gamma_dynamic), bool(project_budget)
        self.init_keep = init_keep
        self.include_stem, self.include_classifier = bool(include_stem), bool(include_classifier)
        self.schedule = HingeSchedule(self.gamma, dynamic=self.gamma_dynamic, unit=gamma_unit)
        self._layers: dict[str, _RateScoreMask] = {}
        self._frozen: list[nn.Parameter] = []
        self._init_masks: dict[str, Tensor] = {}
        self._summary: dict[str, Any] = {}

    @property
    def target_density(self) -> float:
        return 1.0 - self.sparsity

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Freeze conv/linear parameters; wrap each pruned weight as ``W * topk_rate(|s|)``."""
        if self._layers:
            raise RuntimeError("Harp.attach called twice; build a new pruner per model")
        layers = select_layers(model, include_stem=self.include_stem,
                               include_classifier=self.include_classifier)
        self._frozen = freeze_all_but_norm(model)
        k_min = self.alpha * self.target_density
        k0 = rate_logit(self._init_keep, k_min)
        for name, mod in layers.items():
            pm = _RateScoreMask(scaled_score_init(mod.weight), k0, k_min)
            parametrize.register_parametrization(mod, "weight", pm)
            self._layers[name] = pm
        self.model = model
        self._init_masks = self.masks()
        log.info("harp: %d layers, target density %.4f, initial rate %.4f", len(layers),
                 self.target_density, float(rate_of(torch.tensor(k0), k_min)))

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Scores and rates (the official optimizer's weight decay applies to both), BN affine."""
        groups: list[dict[str, Any]] = [
            {"params": [p for pm in self._layers.values() for p in (pm.scores, pm.k_score)],
             "name": "harp_scores_rates"}]
        bn = [p for p in norm_params(model) if p.requires_grad]
        if bn:
            groups.append({"params": bn, "name": "batchnorm"})
        return groups

    def _sizes(self) -> list[int]:
        return [pm.scores.numel() for pm in self._layers.values()]

    def density(self) -> Tensor:
        """``sum_l n_l rate_l / sum_l n_l`` (differentiable in the rates; official ``hw_loss``)."""
        sizes = self._sizes()
        total = sum(n * pm.rate() for n, pm in zip(sizes, self._layers.values()))
        return total / float(sum(sizes))

    def size_ratio(self) -> Tensor:
        return self.density() / self.target_density

    def rates(self) -> dict[str, float]:
        """The learned kept fraction of every pruned layer."""
        with torch.no_grad():
            return {n: float(pm.rate()) for n, pm in self._layers.items()}

    def baked_counts(self) -> dict[str, int]:
        """Weights each layer keeps at finalize: ``round(rate_l n_l)``, times the budget factor
        when ``project_budget`` and the learned rates exceed the target."""
        names, sizes = list(self._layers), self._sizes()
        rates = [self.rates()[n] for n in names]
        scale = 1.0
        if self.project_budget:
            scale = budget_scale(sizes, rates, self.target_density * sum(sizes), sum)
        self._summary["budget_scale"] = scale
        self._summary["rounded_density"] = \
            sum(kept_count(r, s) for r, s in zip(rates, sizes)) / sum(sizes)
        return {n: kept_count(scale * r, s) for n, r, s in zip(names, rates, sizes)}

    def masks(self) -> dict[str, Tensor]:
        return {name: pm.keep_mask().bool().clone() for name, pm in self._layers.items()}

    def finalize(self, model: nn.Module) -> nn.Module:
        """Bake the top-|s| masks at the learned per-layer rates; drop scores/rates; unfreeze."""
        rates = self.rates()
        counts = self.baked_counts()
        masks = {n: self._layers[n].keep_mask(counts[n]) for n in self._layers}
        kept = sum(int(m.sum()) for m in masks.values())
        same = sum(int((m & self._init_masks[n]).sum()) for n, m in masks.items()) \
            if self._init_masks else kept
        sizes = dict(zip(self._layers, self._sizes()))
        self._summary.update({
            "layer_rates": {n: round(r, 5) for n, r in rates.items()},
            "learned_density": sum(rates[n] * sizes[n] for n in rates) / sum(sizes.values()),
            "baked_density": kept / sum(sizes.values()),
            "rate_min": min(rates.values()), "rate_max": max(rates.values()),
            "kept_as_at_init": same / max(kept, 1), **self.schedule.summary()})
        self._summary.update(projection_facts(self._summary["budget_scale"],
                                              self._summary["learned_density"],
                                              self._summary["rounded_density"],
                                              self.target_density, "weights", "weights"))
        for warning in self._summary.get("warnings", []):
            log.warning("harp: %s", warning)
        for name in self._layers:       # drop scores and rates, keep the frozen weights
            parametrize.remove_parametrizations(model.get_submodule(name), "weight", False)
        unfreeze(self._frozen)
        self._layers, self._frozen, self.model = {}, [], None
        return apply_weight_masks(model, masks)

    def summary(self) -> dict[str, Any]:
        """Learned per-layer rates, learned vs baked density, the budget factor, the gamma
        schedule (frozen? constraint reached?) and the overlap with the initial (top-|W|) mask."""
        return dict(self._summary)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"scores": {n: pm.scores.detach().clone() for n, pm in self._layers.items()},
                "k_scores": {n: pm.k_score.detach().clone() for n, pm in self._layers.items()},
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        scores, ks = state.get("scores", {}), state.get("k_scores", {})
        if set(scores) != set(self._layers) or set(ks) != set(self._layers):
            raise ValueError(f"harp state has layers {sorted(scores)}, the attached model has "
                             f"{sorted(self._layers)}")
        with torch.no_grad():
            for n, pm in self._layers.items():
                pm.scores.copy_(scores[n])
                pm.k_score.copy_(ks[n])
        self.schedule.load_state_dict(state.get("schedule", {}))
