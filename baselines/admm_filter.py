"""Robust ADMM with the ``filter`` projection (``admm-filter``; also
``PRUNERS.build("admm", projection="filter")``).

Ye et al., ICCV 2019; official ``admm/admm.py:weight_pruning`` with ``sparsity_type="filter"``
(zero the output filters of smallest row L2 norm). ADMM variables, schedule and penalty are those
of :class:`baselines.admm.ADMMState`; only the projection differs:

* channels coupled by a dependency group (residual streams) are one filter set: their norm is the
  L2 norm of all the group's coupled filters together, which makes ``proj`` the exact Euclidean
  projection onto "the group keeps ``k`` channels";
* every group keeps the same fraction of channels (the official per-layer ``prune_ratios``),
  calibrated once at ``attach`` so the analytic conv + linear MACs reduction matches ``sparsity``
  (:class:`~prunekit.pruning.channel.ChannelPruner`'s target);
* during the ADMM stage the network trains dense (no gates act); ``finalize`` removes the
  filters of ``proj(W)`` physically. The official code only zeroes them, so their BN shift keeps
  feeding a constant channel; the compacted model drops it (deviation, docs/baselines.md).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.channel import ChannelPruner
from prunekit.pruning.groups import ChannelGroups, channel_norms

from baselines._common import group_row_masks, topk_count, uniform_group_counts
from baselines.admm import ADMMState

__all__ = ["ADMMFilter"]


class ADMMFilter(ADMMState, ChannelPruner):
    """Robust ADMM with filter (output-channel) projection per dependency group.

    Args: as :class:`baselines.admm.ADMM` (``sparsity`` is the MACs-reduction target here).
    """

    contract_hparams = {"admm_interval": 1, "interval_unit": "step"}

    def __init__(self, sparsity: float, *, projection: str = "filter", rho: float = 1e-3,
                 multi_rho: bool = True, rho_factor: float = 1.3, rho_max: float | None = None,
                 admm_interval: int = 20, interval_unit: str = "epoch", **kwargs: Any) -> None:
        if projection != "filter":
            raise ValueError(f"admm-filter: projection must be filter, got {projection!r}")
        ChannelPruner.__init__(self, sparsity, **kwargs)
        self.projection = projection
        self._admm_hparams(rho, rho_factor, multi_rho, rho_max, admm_interval, interval_unit)
        self._counts: list[int] = []

    def init_gates(self, groups: ChannelGroups) -> None:
        named = dict(groups.model.named_modules())
        self._weights = {n: named[n].weight for g in groups for n in g.convs}
        self._counts = uniform_group_counts(groups, self.sparsity)
        self._admm_init()

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Build the groups, init ``Z = proj(W)``, ``U = 0``; no gate acts while ADMM trains."""
        super().attach(model, example_inputs)
        self.remove_hooks()

    def channel_keeps(self, values: Mapping[str, Tensor]) -> list[Tensor]:
        """Per-group channel keep masks of ``proj(values)`` (top coupled filter norms)."""
        assert self.groups is not None, "attach() first"
        norms = channel_norms(self.groups, values, p=2)
        return [topk_count(n, k) for n, k in zip(norms, self._counts)]

    def project_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        assert self.groups is not None, "attach() first"
        return group_row_masks(self.groups, self.channel_keeps(values), values)

    def group_gates(self) -> list[Tensor]:
        """Hard gates of ``proj(W)`` (used by ``masks()`` and ``finalize``)."""
        with torch.no_grad():
            w = {n: t.detach() for n, t in self._weights.items()}
            return [k.float() for k in self.channel_keeps(w)]

    def finalize(self, model: nn.Module) -> nn.Module:
        """Hard prune: remove the filters of ``proj(W)`` physically."""
        self._warn_if_no_updates()
        out = super().finalize(model)
        self._weights, self._Z, self._U, self._D = {}, {}, {}, {}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**self._admm_state(), "counts": list(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._load_admm_state(state)
        self._counts = [int(c) for c in state.get("counts", self._counts)]
