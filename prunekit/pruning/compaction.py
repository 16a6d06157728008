"""Physical channel removal with torch-pruning (DESIGN.md: ``get_pruning_group(root,
prune_out_channels, idxs).prune()`` gives outputs equal to the masked model's)."""
from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import Tensor, nn

from prunekit.pruning.groups import ChannelGroups

__all__ = ["compact", "remove_channels"]

log = logging.getLogger(__name__)


def remove_channels(groups: ChannelGroups, removed: Sequence[Sequence[int]]) -> nn.Module:
    """Remove, for every group ``i``, the root-indexed channels ``removed[i]`` from
    ``groups.model`` *in place* (every coupled conv, norm and consumer) and return the model.
    ``groups`` is consumed: its graph no longer matches the model afterwards."""
    if len(removed) != len(groups):
        raise ValueError(f"expected {len(groups)} index lists, got {len(removed)}")
    named = dict(groups.model.named_modules())
    dg = groups.dg
    for g, idxs in zip(groups, removed):
        idxs = sorted(int(i) for i in idxs)
        if not idxs:
            continue
        if len(idxs) >= g.size:
            raise ValueError(f"group {g.index} (root {g.root}): cannot remove all {g.size} channels")
        root = named[g.root]
        fn = dg.get_pruner_of_module(root).prune_out_channels
        dg.get_pruning_group(root, fn, idxs).prune()
    return groups.model


def compact(groups: ChannelGroups, keep: Sequence[Tensor]) -> nn.Module:
    """Keep the channels where ``keep[i]`` (bool, one per group channel) is True; remove the rest
    physically (in place) and return the smaller dense model. Every group must keep >= 1."""
    removed = []
    for g, k in zip(groups, keep):
        k = torch.as_tensor(k).bool().flatten().cpu()
        if k.numel() != g.size:
            raise ValueError(f"group {g.index}: keep mask has {k.numel()} entries, expected {g.size}")
        removed.append(torch.nonzero(~k).flatten().tolist())
    model = remove_channels(groups, removed)
    log.info("compacted %d groups: kept %s", len(groups),
             [int(torch.as_tensor(k).sum()) for k in keep])
    return model
