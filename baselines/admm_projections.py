"""The projections of robust ADMM (Ye et al., ICCV 2019; official ``admm/admm.py:weight_pruning``):
the Euclidean projection onto the sparsity set, and what "hard prune" means for each.

A :class:`Projection` is the strategy object of :class:`baselines.admm.ADMM`: it picks the layers
under ADMM at ``setup``, returns the keep masks of ``proj(V)`` for given tensors, and bakes the
final masks at ``finalize``.

* :class:`IrregularProjection` (``projection="irregular"``): per layer, keep the
  ``round((1 - sparsity) * n)`` weights of largest ``|w|``; finalize bakes weight masks.
  (Official: a ``np.percentile`` threshold, ties dropped -- at most one weight apart.)
* :class:`FilterProjection` (``projection="filter"``): keep whole output filters. Channels
  coupled by a torch-pruning dependency group (residual streams) form one filter set whose norm
  is the L2 norm of all the coupled filters together -- the exact Euclidean projection onto "the
  group keeps ``k`` channels"; every group keeps the same fraction of its channels (the official
  per-layer ``prune_ratios``), calibrated once so the analytic conv + linear MACs reduction matches
  ``sparsity``. Finalize removes the filters physically. (Official: each layer projected alone,
  which cannot be compacted in a ResNet, and pruned filters only zeroed, so their BN shift keeps
  feeding a constant channel; the compacted model drops it.)
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping

from torch import Tensor, nn

from prunekit.pruning.channel import group_module_masks
from prunekit.pruning.compaction import compact
from prunekit.pruning.groups import ChannelGroups, build_groups, channel_norms
from prunekit.pruning.masking import apply_weight_masks

from baselines._common import group_row_masks, select_layers, topk_count, topk_keep, \
    uniform_group_counts

__all__ = ["Projection", "IrregularProjection", "FilterProjection", "PROJECTIONS"]


class Projection(abc.ABC):
    """How ADMM projects onto the sparsity set and hard-prunes (see the module docstring)."""

    granularity: ClassVar[str]
    sparsity_target: ClassVar[str]

    def __init__(self, sparsity: float, include_stem: bool, include_classifier: bool) -> None:
        self.sparsity = sparsity
        self.include_stem = include_stem
        self.include_classifier = include_classifier

    @abc.abstractmethod
    def setup(self, model: nn.Module, example_inputs: Tensor) -> dict[str, Tensor]:
        """The weights under ADMM, by module name."""

    @abc.abstractmethod
    def keep_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Keep masks (broadcastable to each tensor) of ``proj(values)``."""

    @abc.abstractmethod
    def masks(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The pruner's ``masks()`` for the current weights (what finalize will keep)."""

    @abc.abstractmethod
    def finalize(self, model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
        """Hard prune ``W = proj(W)`` and return the self-contained pruned model."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class IrregularProjection(Projection):
    """Per-layer top-``|w|`` (official ``sparsity_type: irregular``)."""

    granularity = "weight"
    sparsity_target = "weights"

    def setup(self, model: nn.Module, example_inputs: Tensor) -> dict[str, Tensor]:
        layers = select_layers(model, include_stem=self.include_stem,
                               include_classifier=self.include_classifier)
        return {n: m.weight for n, m in layers.items()}

    def keep_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {n: topk_keep(v.abs(), self.sparsity) for n, v in values.items()}

    def masks(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.keep_masks({n: w.detach() for n, w in weights.items()})

    def finalize(self, model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
        apply_weight_masks(model, self.masks(weights))
        return model


class FilterProjection(Projection):
    """Whole (coupled) output filters per dependency group (official ``sparsity_type: filter``)."""

    granularity = "channel"
    sparsity_target = "macs"

    def __init__(self, sparsity: float, include_stem: bool, include_classifier: bool) -> None:
        super().__init__(sparsity, include_stem, include_classifier)
        self.groups: ChannelGroups | None = None
        self.counts: list[int] = []

    def setup(self, model: nn.Module, example_inputs: Tensor) -> dict[str, Tensor]:
        self.groups = build_groups(model, example_inputs, include_stem=self.include_stem,
                                   include_classifier=self.include_classifier)
        self.counts = uniform_group_counts(self.groups, self.sparsity)
        named = dict(model.named_modules())
        return {n: named[n].weight for g in self.groups for n in g.convs}

    def channel_keeps(self, values: Mapping[str, Tensor]) -> list[Tensor]:
        """Per-group channel keep masks of ``proj(values)`` (top coupled filter norms)."""
        assert self.groups is not None, "attach() first"
        norms = channel_norms(self.groups, values, p=2)
        return [topk_count(n, k) for n, k in zip(norms, self.counts)]

    def keep_masks(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        assert self.groups is not None, "attach() first"
        return group_row_masks(self.groups, self.channel_keeps(values), values)

    def masks(self, weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if self.groups is None:
            return {}
        keeps = self.channel_keeps({n: w.detach() for n, w in weights.items()})
        return group_module_masks(self.groups, keeps)

    def finalize(self, model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
        if self.groups is None or model is not self.groups.model:
            raise ValueError("finalize() must be given the model passed to attach()")
        keeps = self.channel_keeps({n: w.detach() for n, w in weights.items()})
        out = compact(self.groups, keeps)
        self.groups = None
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.counts = [int(c) for c in state.get("counts", self.counts)]


#: projection name -> strategy class
PROJECTIONS: dict[str, type[Projection]] = {"irregular": IrregularProjection,
                                            "filter": FilterProjection}
