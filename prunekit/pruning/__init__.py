"""Pruning: the Pruner lifecycle, channel groups, gates, compaction, weight masks, accounting,
save/load of finalized models, and the D2BC / ANAS-P pruner (docs/pruning.md)."""
from __future__ import annotations

from prunekit.models.common import stem_and_classifier  # public here too: what pruning skips
from prunekit.pruning.accounting import Measurement, count_macs_params, measure
from prunekit.pruning.base import SPARSITY_TARGETS, Granularity, Pruner, sparsity_target_of
from prunekit.pruning.channel import ChannelPruner, select_by_macs
from prunekit.pruning.compaction import compact, remove_channels
from prunekit.pruning.d2bc import D2BC, binarize_ste
from prunekit.pruning.gating import ChannelGating
from prunekit.pruning.groups import ChannelGroup, ChannelGroups, build_groups, channel_norms
from prunekit.pruning.masking import (
    WeightMask, apply_weight_masks, global_topk_masks, prunable_layers, remove_weight_masks,
    topk_masks, weight_masks,
)
from prunekit.pruning.serialize import export_structure, rebuild, shrink_to_state_dict

__all__ = [
    "Pruner", "Granularity", "SPARSITY_TARGETS", "sparsity_target_of", "ChannelGating",
    "channel_norms", "ChannelPruner", "select_by_macs", "ChannelGroup", "ChannelGroups",
    "build_groups", "stem_and_classifier", "compact", "remove_channels", "WeightMask",
    "apply_weight_masks", "remove_weight_masks", "weight_masks", "topk_masks",
    "global_topk_masks", "prunable_layers", "Measurement", "measure", "count_macs_params",
    "rebuild", "shrink_to_state_dict", "export_structure", "D2BC", "binarize_ste",
]
