"""HYDRA-channel: HYDRA's learned importance scores at channel granularity (``hydra-channel``).

The official HYDRA code has no structured variant (inspire-group/hydra issue #1). This one keeps
everything HYDRA does -- scaled score initialisation from the pretrained weights, top-k of
``|s|`` with a straight-through gradient, weights frozen while the scores (and BN affine
parameters) train -- but with one score per output channel of every torch-pruning dependency
group (residual-coupled channels share one score, as in D2BC), the gate applied on the layers
that consume the group's channels by :class:`prunekit.pruning.channel.ChannelPruner`
(prunekit/pruning/gating.py), and the pruned channels
removed physically at :meth:`finalize`.

Choices (docs/baselines.md): the score of channel ``c`` starts at
``sqrt(6 / fan_in(root)) * n_c / max_c n_c`` with ``n_c`` the L2 (or L1) norm of channel ``c``'s
filters over all the group's convs; every group keeps the same fraction of its channels (the
analogue of HYDRA's per-layer ``k``), that fraction calibrated once at ``attach`` so the
analytic conv + linear MACs reduction matches ``sparsity`` (ChannelPruner's target).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.channel import ChannelPruner
from prunekit.pruning.groups import ChannelGroups, channel_norms

from baselines._common import (score_param_groups, MaskCache, ScoreSTE, check_choice,
                               freeze_all_but_norm, topk_count, unfreeze, uniform_group_counts)

__all__ = ["HydraChannel"]

log = logging.getLogger(__name__)


class HydraChannel(ChannelPruner):
    """HYDRA with one learned score per output channel of each dependency group.

    Args:
        sparsity: target fraction of conv + linear MACs removed.
        channel_norm: ``"l2"`` or ``"l1"``: the filter norm the scores start from.
        include_stem / include_classifier: see :class:`~prunekit.pruning.channel.ChannelPruner`.

    Example::

        pruner = PRUNERS.build("hydra-channel", sparsity=0.5)
        pruner.attach(model, x[:2])
        opt = torch.optim.SGD(pruner.param_groups(model), lr=0.1, momentum=0.9)
        ...
        small = pruner.finalize(model)   # physically fewer channels
    """

    def __init__(self, sparsity: float, *, channel_norm: str = "l2", **kwargs: Any) -> None:
        super().__init__(sparsity, **kwargs)
        self.channel_norm = check_choice("channel_norm", channel_norm, ("l2", "l1"))
        self._scores: list[nn.Parameter] = []
        self._counts: list[int] = []
        self._caches: list[MaskCache] = []
        self._frozen: list[nn.Parameter] = []
        self._init_keep: list[Tensor] = []
        self._summary: dict[str, Any] = {}

    def init_gates(self, groups: ChannelGroups) -> None:
        """Scaled score init from the groups' channel norms; freeze all but BN (official
        ``freeze_vars``); calibrate the per-group kept counts to the MACs target."""
        named = dict(groups.model.named_modules())
        weights = {n: named[n].weight for g in groups for n in g.convs}
        norms = channel_norms(groups, weights, p=1 if self.channel_norm == "l1" else 2)
        self._scores = []
        for g, nrm in zip(groups, norms):
            fan_in = nn.init._calculate_correct_fan(named[g.root].weight, "fan_in")
            s = math.sqrt(6.0 / fan_in) * nrm / nrm.max().clamp_min(torch.finfo(nrm.dtype).tiny)
            self._scores.append(nn.Parameter(s.float()))
        self._counts = uniform_group_counts(groups, self.sparsity, cost=self.target)
        self._caches = [MaskCache() for _ in groups]
        self._frozen = freeze_all_but_norm(groups.model)
        self._init_keep = [topk_count(s.detach().abs(), k).cpu()
                           for s, k in zip(self._scores, self._counts)]
        log.info("hydra-channel: %d groups, kept channels %s of %s", len(groups), self._counts,
                 groups.sizes())

    def group_gates(self) -> list[Tensor]:
        gates = []
        for s, k, cache in zip(self._scores, self._counts, self._caches):
            mask = cache.get(s, lambda v, k=k: topk_count(v.abs(), k).float())
            gates.append(ScoreSTE.apply(s, mask))
        return gates

    def group_scores(self) -> list[Tensor]:
        return [s.detach().abs() for s in self._scores]

    def scores(self) -> list[nn.Parameter]:
        """The trainable per-group channel scores."""
        return list(self._scores)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Channel scores and batch-norm affine parameters (HYDRA prune mode)."""
        return score_param_groups(self.scores(), model)

    def finalize(self, model: nn.Module) -> nn.Module:
        """Compact physically (ChannelPruner) and unfreeze the weights for fine-tuning."""
        before = {id(p) for p in model.parameters()}
        keep = [k.cpu() for k in self.keep_masks()]
        if self._init_keep and len(self._init_keep) == len(keep):
            kept = sum(int(k.sum()) for k in keep)
            same = sum(int((k & k0).sum()) for k, k0 in zip(keep, self._init_keep))
            self._summary = {"kept_as_at_init": round(same / max(kept, 1), 6),
                             "search_reduction": round(self.reduction(), 6)}
        out = super().finalize(model)
        unfreeze(self._frozen)
        for p in out.parameters():   # torch-pruning re-creates the parameters it shrinks
            if id(p) not in before:
                p.requires_grad_(True)
        self._frozen, self._scores, self._caches = [], [], []
        return out

    def summary(self) -> dict[str, Any]:
        """``kept_as_at_init``: fraction of the finally kept channels that the initial scores
        (the filter-norm top-k per group) already kept -- 1.0 = the score training learned
        nothing beyond magnitude (L2) channel pruning, near the chance level k/n = the scores
        were re-randomised (issue 19: at lr 0.1, 28-39 %); ``search_reduction``: analytic MACs
        reduction at finalize."""
        return dict(self._summary)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": [s.detach().clone() for s in self._scores], "counts": list(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        scores = list(state.get("scores", []))
        if len(scores) != len(self._scores):
            raise ValueError(f"hydra-channel state has {len(scores)} groups, the attached model "
                             f"has {len(self._scores)}")
        with torch.no_grad():
            for s, v in zip(self._scores, scores):
                s.copy_(v)
        self._counts = [int(c) for c in state.get("counts", self._counts)]
