"""HARP at channel granularity (``harp-channel``): one learned score per channel and one learned
rate per dependency group, a hinge on the analytic MACs.

Official code ``intellisec/harp`` at 9f343c0, ``prune_reg='channel'``: per-channel scores scaled
from the filter norms (``utils/model.py:117-129``), a per-layer ``k_score`` through
:func:`baselines.harp_core.rate_of`, ``GetSubnet`` keeping the top ``round(k * channels)``
(``models/layers.py:32-38``), the hinge ``relu(FLOPs(rates) / FLOPs_target - 1)``
(``utils/hw.py:176-253``) with the gamma schedule of ``train.py:287-301``, and shortcut rates
re-synchronised to their block's first conv after every step (``trainer/adv.py:109-111``,
``map_shortcut_rate``).

prunekit's version (docs/baselines.md): the rate lives on a torch-pruning dependency group, so
residual-coupled channels share one rate and one score by construction (no re-sync needed); the
size is prunekit's analytic conv + linear MACs :meth:`ChannelGroups.macs` evaluated at the
relaxed gates ``rate_g * 1`` (the official hard-coded per-architecture FLOPs lists and feature-map
sizes are not used), the target is ``(1 - sparsity)`` of the dense MACs (prunekit's channel
target; official: the FLOPs of keeping ``round(k * channels)`` in every layer); scores and
freezing are hydra-channel's (:class:`baselines.hydra_channel.HydraChannel`, which this class
extends); ``init_keep`` defaults to the uniform kept fraction that meets the MACs target (official
strategy ``original``: start dense, ``init_keep: 1.0``); finalize removes the channels at the
learned rates (with the common ``project_budget`` factor if they still exceed the budget).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.groups import ChannelGroups

from baselines._common import topk_count, uniform_group_counts
from baselines.harp_core import (HingeHooks, HingeSchedule, RateTopK, budget_scale,
                                 check_harp_hparams, kept_count, projection_facts, rate_logit,
                                 rate_of)
from baselines.hydra_channel import HydraChannel

__all__ = ["HarpChannel"]

log = logging.getLogger(__name__)


class HarpChannel(HingeHooks, HydraChannel):
    """HARP channel pruning with learned per-group rates (``harp-channel``).

    Args:
        sparsity: target fraction of the conv + linear MACs removed.
        alpha, gamma, gamma_dynamic, gamma_unit, project_budget: as :class:`baselines.harp.Harp`.
        init_keep: initial kept fraction of every group (default: the uniform fraction that meets
            the MACs target; 1.0 = the official dense start).
        channel_norm, include_stem, include_classifier: as ``hydra-channel``.
    """

    contract_tolerance = 0.03
    contract_hparams = {"gamma": 1.0, "gamma_unit": "step"}

    def __init__(self, sparsity: float, *, alpha: float = 0.1, gamma: float = 0.01,
                 gamma_dynamic: bool = True, gamma_unit: str = "epoch",
                 init_keep: float | None = None, project_budget: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(sparsity, **kwargs)
        check_harp_hparams(self.sparsity, alpha, gamma, init_keep, gamma_unit)
        self.alpha, self.gamma, self.gamma_unit = float(alpha), float(gamma), gamma_unit
        self.gamma_dynamic, self.project_budget = bool(gamma_dynamic), bool(project_budget)
        self.init_keep = init_keep
        self.schedule = HingeSchedule(self.gamma, dynamic=self.gamma_dynamic, unit=gamma_unit)
        self._k_scores: list[nn.Parameter] = []
        self._k_min = 0.0
        self._final_counts: list[int] | None = None
        self._harp_facts: dict[str, Any] = {}

    # -- rates ----------------------------------------------------------------------------------
    def init_gates(self, groups: ChannelGroups) -> None:
        """hydra-channel's scores and freezing; one ``k_score`` per group at ``init_keep``."""
        super().init_gates(groups)
        uniform = sum(self._counts) / max(1, sum(groups.sizes()))
        self._k_min = self.alpha * uniform
        keep = uniform if self.init_keep is None else float(self.init_keep)
        k0 = rate_logit(keep, self._k_min)
        device = next(groups.model.parameters()).device
        self._k_scores = [nn.Parameter(torch.tensor(k0, device=device)) for _ in groups]
        self._target_macs = (1.0 - self.sparsity) * groups.dense_macs

    def rates(self) -> list[Tensor]:
        return [rate_of(k, self._k_min) for k in self._k_scores]

    def group_gates(self) -> list[Tensor]:
        gates = []
        for gi, (s, rate) in enumerate(zip(self._scores, self.rates())):
            if self._final_counts is not None:
                k = self._final_counts[gi]
            else:
                k = kept_count(float(rate.detach()), s.numel())
            mask = topk_count(s.detach().abs(), k).float()
            gates.append(RateTopK.apply(s, rate, mask))
        return gates

    def expected_macs(self) -> Tensor:
        """Analytic MACs at the relaxed gates ``rate_g * 1`` (differentiable in the rates)."""
        assert self.groups is not None, "attach() first"
        return self.groups.macs([r * torch.ones(g.size, device=r.device)
                                 for r, g in zip(self.rates(), self.groups)])

    def size_ratio(self) -> Tensor:
        return self.expected_macs() / self._target_macs

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        groups = super().param_groups(model)
        groups[0] = {"params": list(self._scores) + list(self._k_scores),
                     "name": "harp_scores_rates"}
        return groups

    # -- finalize -------------------------------------------------------------------------------
    def baked_counts(self) -> list[int]:
        """Channels each group keeps at finalize: ``round(rate_g size_g)`` (times the common
        budget factor when the learned rates exceed the MACs target and ``project_budget``)."""
        assert self.groups is not None, "attach() first"
        groups = self.groups
        sizes = groups.sizes()
        rates = [float(r.detach()) for r in self.rates()]

        def macs_of(counts: list[int]) -> float:
            gates = [(torch.arange(n) < c).float() for n, c in zip(sizes, counts)]
            return float(groups.macs(gates))

        scale = budget_scale(sizes, rates, self._target_macs, macs_of) if self.project_budget \
            else 1.0
        self._harp_facts["budget_scale"] = scale
        self._harp_facts["rounded_macs_kept"] = \
            macs_of([kept_count(r, n) for r, n in zip(rates, sizes)]) / groups.dense_macs
        return [kept_count(scale * r, n) for r, n in zip(rates, sizes)]

    def finalize(self, model: nn.Module) -> nn.Module:
        """Remove the channels at the learned per-group rates (compacted physically)."""
        assert self.groups is not None, "attach() first"
        rates = [float(r.detach()) for r in self.rates()]
        uniform = uniform_group_counts(self.groups, self.sparsity)
        self._final_counts = self.baked_counts()
        with torch.no_grad():
            learned = float(self.expected_macs()) / self.groups.dense_macs
        self._harp_facts.update({
            "group_rates": [round(r, 5) for r in rates], "rate_min": min(rates, default=1.0),
            "rate_max": max(rates, default=1.0), "learned_macs_kept": learned,
            "kept_channels": list(self._final_counts), "uniform_channels": uniform,
            **self.schedule.summary()})
        self._harp_facts.update(projection_facts(
            self._harp_facts["budget_scale"], learned, self._harp_facts["rounded_macs_kept"],
            1.0 - self.sparsity, "MACs", "channels"))
        for warning in self._harp_facts.get("warnings", []):
            log.warning("harp-channel: %s", warning)
        out = super().finalize(model)
        self._k_scores, self._final_counts = [], None
        return out

    def summary(self) -> dict[str, Any]:
        """Learned group rates, kept vs uniform channel counts, budget factor, gamma schedule."""
        return {**super().summary(), **self._harp_facts}  # hydra-channel's facts kept

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "k_scores": [k.detach().clone() for k in self._k_scores],
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        ks = list(state.get("k_scores", []))
        if len(ks) != len(self._k_scores):
            raise ValueError(f"harp-channel state has {len(ks)} rates, the attached model has "
                             f"{len(self._k_scores)}")
        with torch.no_grad():
            for k, v in zip(self._k_scores, ks):
                k.copy_(v)
        self.schedule.load_state_dict(state.get("schedule", {}))
