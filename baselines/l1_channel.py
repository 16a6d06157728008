"""L1-norm filter pruning (``l1-channel``): Li, Kadav, Durdanovic, Samet, Graf, *Pruning Filters
for Efficient ConvNets*, ICLR 2017.

One shot, from the pretrained weights: the output filters of each layer are ranked by the L1
norm of their kernel weights and the smallest are removed. The importance is torch-pruning's own
(``tp.importance.MagnitudeImportance(p=1, normalizer=None, group_reduction=...)`` evaluated on the
dependency group of each prunekit channel group), so the scores are exactly what torch-pruning's
L1 pruners use:

* ``group_reduction="first"`` (default): the L1 norm of the group's root conv filters only --
  Li et al.'s per-layer score (for a residual stream, the root is one of the coupled convs);
* ``"sum"`` / ``"mean"``: torch-pruning's group L1 (every coupled filter, BN weight and consumer
  in-channel slice of the channel).

Allocation: ``"uniform"`` (default; every group keeps the same fraction of its channels,
calibrated once to the MACs target -- Li et al. prune a fixed fraction per layer, chosen there by
a sensitivity analysis that prunekit does not run) or ``"global"`` (scores divided by their
group's mean, ranked across groups within the MAC budget, as torch-pruning's global pruning).
The prune stage trains the masked network; ``finalize`` removes the channels physically. Li et
al. skip the sensitive layers and, in ResNets, prune only the first conv of each block; prunekit
prunes every dependency group (stem and classifier excluded by default) -- a deliberate
deviation so that the MACs target is comparable with the other channel methods.
"""
from __future__ import annotations

import logging
import torch_pruning as tp
from torch import Tensor

from prunekit.pruning.channel import select_by_macs
from prunekit.pruning.groups import ChannelGroups

from baselines._common import (FixedChannelSelection, check_choice, topk_count,
                               uniform_group_counts)

__all__ = ["L1Channel", "l1_importance"]

log = logging.getLogger(__name__)


def l1_importance(groups: ChannelGroups, group_reduction: str = "first") -> list[Tensor]:
    """torch-pruning's L1 magnitude importance of every channel of every group (root order)."""
    imp = tp.importance.MagnitudeImportance(p=1, normalizer=None,
                                            group_reduction=group_reduction)
    named = dict(groups.model.named_modules())
    out = []
    for g in groups:
        root = named[g.root]
        fn = groups.dg.get_pruner_of_module(root).prune_out_channels
        scores = imp(groups.dg.get_pruning_group(root, fn, idxs=list(range(g.size))))
        out.append(scores.detach().float().cpu())
    return out


class L1Channel(FixedChannelSelection):
    """Li et al. (2017) L1 filter pruning at the MACs target (``l1-channel``).

    Args:
        sparsity: target fraction of conv + linear MACs removed.
        group_reduction: ``"first"`` (root filters: Li et al.), ``"sum"`` or ``"mean"``
            (torch-pruning's group L1).
        allocation: ``"uniform"`` (same kept fraction per group) or ``"global"``.
        include_stem / include_classifier / target: see
            :class:`~prunekit.pruning.channel.ChannelPruner` (``target="params"``).

    Example::

        pruner = PRUNERS.build("l1-channel", sparsity=0.5)
    """

    def __init__(self, sparsity: float, *, group_reduction: str = "first",
                 allocation: str = "uniform", include_stem: bool = False,
                 include_classifier: bool = False, target: str = "macs") -> None:
        super().__init__(sparsity, include_stem=include_stem,
                         include_classifier=include_classifier, target=target)
        self.group_reduction = check_choice("group_reduction", group_reduction,
                                            ("first", "sum", "mean"))
        self.allocation = check_choice("allocation", allocation, ("uniform", "global"))

    def select(self, groups: ChannelGroups) -> list[Tensor]:
        scores = l1_importance(groups, self.group_reduction)
        if self.allocation == "global":
            keep = select_by_macs(groups, [s / s.mean().clamp_min(1e-12) for s in scores],
                                  self.sparsity, cost=self.target)
        else:
            keep = [topk_count(s, k) for s, k in
                    zip(scores, uniform_group_counts(groups, self.sparsity, cost=self.target))]
        log.info("l1-channel: kept %s of %s", [int(k.sum()) for k in keep], groups.sizes())
        return keep
