"""L1-norm filter pruning as a prunekit plug-in (the docs/adding-a-pruner.md example).

Li, Kadav, Durdanovic, Samet, Graf, *Pruning Filters for Efficient ConvNets*, ICLR 2017: rank
the output filters by the L1 norm of their weights and remove the smallest ones. One shot: the
channels are chosen once at ``attach`` from the pretrained weights; the prune stage then trains
the masked network and ``finalize`` removes the channels physically.
"""
from __future__ import annotations

import torch
from torch import Tensor

from prunekit.pruning.channel import ChannelPruner, select_by_macs
from prunekit.pruning.groups import ChannelGroups

__all__ = ["L1Filter"]


class L1Filter(ChannelPruner):
    """Remove the output channels of smallest filter L1 norm (``l1-filter``).

    Channels coupled by a residual connection form one group and are ranked by the sum of
    their filters' L1 norms over the group's convs. Each group's norms are divided by their
    mean so that groups of different sizes compare fairly, then channels are kept in
    decreasing order until the conv + linear MACs reach ``(1 - sparsity)`` of the dense model.
    """

    def init_gates(self, groups: ChannelGroups) -> None:
        modules = dict(groups.model.named_modules())
        scores = []
        for group in groups:
            s = torch.zeros(group.size)
            for name in group.convs:                      # every conv whose outputs are coupled
                sl = group.out_slices[name]               # its channels <-> the group's channels
                l1 = modules[name].weight.detach().abs().flatten(1).sum(1).cpu()
                s.index_add_(0, sl.root_idxs, l1[sl.idxs])
            scores.append(s / s.mean().clamp_min(1e-12))
        device = next(groups.model.parameters()).device
        self.keep = [k.to(device) for k in select_by_macs(groups, scores, self.sparsity)]

    def group_gates(self) -> list[Tensor]:
        return [k.float() for k in self.keep]
