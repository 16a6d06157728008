"""Unstructured magnitude pruning (``magnitude``): Han, Pool, Tran, Dally, *Learning both Weights
and Connections for Efficient Neural Networks*, NeurIPS 2015.

One shot, from the pretrained weights: keep the weights of largest ``|w|`` -- per layer
(``scope="layer"``: every pruned layer keeps exactly ``round((1 - sparsity) * n)`` weights) or
over all pruned layers together (``scope="global"``: one threshold, at least one weight kept
per layer). The masks are baked at ``attach`` (``weight = original * mask``), so the prune stage
is the masked retraining of Han et al.; ``finalize`` returns the masked model. Han et al.
iterate prune/retrain and set per-layer thresholds from a quality parameter times the layer's
weight std; prunekit does a single step at an exact sparsity (deviation, docs/baselines.md).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks, global_topk_masks, topk_masks, \
    weight_masks

from baselines._common import check_choice, select_layers

__all__ = ["Magnitude"]

log = logging.getLogger(__name__)


class Magnitude(Pruner):
    """Magnitude pruning, layer-wise or global (``magnitude``).

    Args:
        sparsity: fraction of the pruned layers' weights removed.
        scope: ``"layer"`` (same sparsity in every layer) or ``"global"`` (one threshold).
        include_stem / include_classifier: also prune the first conv / the last linear layer.

    Example::

        pruner = PRUNERS.build("magnitude", sparsity=0.9, scope="global")
    """

    granularity = "weight"
    contract_tolerance = 0.005

    def __init__(self, sparsity: float, *, scope: str = "layer", include_stem: bool = False,
                 include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self.scope = check_choice("scope", scope, ("layer", "global"))
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)
        self._masks: dict[str, Tensor] = {}

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Compute ``top-|w|`` masks from the current weights and bake them."""
        layers = select_layers(model, include_stem=self.include_stem,
                               include_classifier=self.include_classifier)
        scores = self.scores(layers)
        fn = topk_masks if self.scope == "layer" else global_topk_masks
        self._masks = {n: m.bool() for n, m in fn(scores, self.sparsity).items()}
        apply_weight_masks(model, self._masks)
        self.model = model
        log.info("%s (%s): %d layers masked at sparsity %.3f", self.registry_name or "magnitude",
                 self.scope, len(layers), self.sparsity)

    def scores(self, layers: dict[str, nn.Module]) -> dict[str, Tensor]:
        """What is kept highest: ``|w|`` (a subclass may rank by something else)."""
        return {n: m.weight.detach().abs() for n, m in layers.items()}

    def masks(self) -> dict[str, Tensor]:
        return {n: m.clone() for n, m in self._masks.items()}

    def finalize(self, model: nn.Module) -> nn.Module:
        """The masks are already baked: return the model (masks checked to be in place)."""
        baked = weight_masks(model)
        missing = set(self._masks) - set(baked)
        if missing:
            raise ValueError(f"magnitude: masks missing on {sorted(missing)}; finalize() must be "
                             f"given the model passed to attach()")
        self.model = None
        return model

    def summary(self) -> dict[str, Any]:
        if not self._masks:
            return {"scope": self.scope}
        kept = {n: float(m.float().mean()) for n, m in self._masks.items()}
        return {"scope": self.scope, "layer_density_min": min(kept.values()),
                "layer_density_max": max(kept.values())}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {n: m.clone() for n, m in self._masks.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        masks = dict(state.get("masks", {}))
        if set(masks) != set(self._masks):
            raise ValueError(f"magnitude state has layers {sorted(masks)}, the attached model "
                             f"{sorted(self._masks)}")
        self._masks = {n: m.to(torch.bool) for n, m in masks.items()}
        if self.model is not None:
            apply_weight_masks(self.model, self._masks)
