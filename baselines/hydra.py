"""HYDRA: pruning adversarially robust networks with learned importance scores.

Sehwag, Wang, Mittal, Jana, *HYDRA: Pruning Adversarially Robust Neural Networks*, NeurIPS 2020;
official code ``inspire-group/hydra`` (``models/layers.py``, ``utils/model.py``).

* :class:`Hydra` (``hydra``): one score ``s`` per weight, scaled initialisation
  ``s = sqrt(6 / fan_in) * W / max|W|`` (``initialize_scaled_score``; ``fan_in`` = in-channels per
  group x kernel area, i.e. ``nn.init._calculate_correct_fan(W, "fan_in")``), forward with
  ``W * topk(|s|)`` per layer (the official ``k`` is the kept fraction: ``sparsity = 1 - k``),
  straight-through gradient to ``s``. During the prune stage every conv/linear weight and bias is
  frozen (``requires_grad=False``) and only the scores and the batch-norm affine parameters train
  (official ``freeze_vars(..., freeze_bn=False)``). :meth:`finalize` bakes ``topk(|s|)`` as a fixed
  weight mask and unfreezes the weights for fine-tuning.
* :class:`HydraChannel` (``hydra-channel``): the structured variant the official code lacks
  (its issue #1), see :mod:`baselines.hydra_channel`.

Deviations from the official code (docs/baselines.md): by default the stem conv and the
classifier are not pruned (set ``include_stem``/``include_classifier`` to reproduce "every conv
and linear layer"); the per-layer count of kept weights is ``round((1 - sparsity) * n)`` instead
of ``n - int((1 - k) * n)`` (at most one weight apart); the top-k mask is
recomputed only when the scores change (same values, fewer sorts).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks

from baselines._common import (score_param_groups, MaskCache, ScoreSTE, check_choice, freeze_all_but_norm,
                               scaled_score_init, select_layers, topk_keep, unfreeze)
from baselines.hydra_channel import HydraChannel  # noqa: F401  (entry-point path)

__all__ = ["Hydra", "HydraChannel", "scaled_score_init"]

log = logging.getLogger(__name__)


class _ScoreMask(nn.Module):
    """Parametrization ``W -> W * STE(topk(|s|))`` holding the layer's scores ``s`` (the
    official ``SubnetConv.forward``); the hard mask is cached between score updates."""

    def __init__(self, scores: Tensor, sparsity: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.sparsity = sparsity
        self._cache = MaskCache()

    def _mask(self) -> Tensor:
        return self._cache.get(self.scores, lambda s: topk_keep(s.abs(), self.sparsity).float())

    def keep_mask(self) -> Tensor:
        """The current hard keep mask (bool)."""
        return self._mask().bool()

    def forward(self, weight: Tensor) -> Tensor:
        return weight * ScoreSTE.apply(self.scores, self._mask().to(weight.dtype))


class Hydra(Pruner):
    """HYDRA weight pruning with learned per-weight importance scores (``hydra``).

    Args:
        sparsity: fraction of each pruned layer's weights removed (HYDRA's ``1 - k``).
        score_init: ``"scaled"`` (official ``--scaled-score-init``, the paper's method) or
            ``"kaiming_uniform"`` (the official default without that flag).
        include_stem / include_classifier: also prune the first conv / the last linear layer
            (both True = the official layer set: every conv and linear layer).

    Example::

        pruner = PRUNERS.build("hydra", sparsity=0.9)
        pruner.attach(model, x[:2])
        opt = torch.optim.SGD(pruner.param_groups(model), lr=0.1, momentum=0.9, weight_decay=1e-4)
        ...  # adversarial training steps train the scores (and BN) only
        model = pruner.finalize(model)  # fixed masks; fine-tune the weights at lr 0.01
    """

    granularity = "weight"
    contract_tolerance = 0.005                       # per-layer exact counts: within 0.5 point

    def __init__(self, sparsity: float, *, score_init: str = "scaled", include_stem: bool = False,
                 include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self.score_init = check_choice("score_init", score_init, ("scaled", "kaiming_uniform"))
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)
        self._layers: dict[str, _ScoreMask] = {}
        self._frozen: list[nn.Parameter] = []
        self._init_masks: dict[str, Tensor] = {}
        self._summary: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Freeze conv/linear parameters and wrap each pruned weight as ``W * topk(|s|)``."""
        if self._layers:
            raise RuntimeError("Hydra.attach called twice; build a new pruner per model")
        layers = select_layers(model, include_stem=self.include_stem,
                               include_classifier=self.include_classifier)
        self._frozen = freeze_all_but_norm(model)
        for name, mod in layers.items():
            w = mod.weight
            if self.score_init == "scaled":
                s = scaled_score_init(w)
            else:
                s = nn.init.kaiming_uniform_(torch.empty_like(w), a=math.sqrt(5))
            pm = _ScoreMask(s, self.sparsity)
            parametrize.register_parametrization(mod, "weight", pm)
            self._layers[name] = pm
        self.model = model
        self._init_masks = self.masks()
        log.info("hydra: %d layers scored at sparsity %.3f", len(layers), self.sparsity)

    def scores(self) -> list[nn.Parameter]:
        """The trainable score tensors (one per pruned layer)."""
        return [pm.scores for pm in self._layers.values()]

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Scores and batch-norm affine parameters (official HYDRA prune mode)."""
        return score_param_groups(self.scores(), model)

    def masks(self) -> dict[str, Tensor]:
        return {name: pm.keep_mask() for name, pm in self._layers.items()}

    def finalize(self, model: nn.Module) -> nn.Module:
        """Bake ``topk(|s|)`` onto the weights (fixed masks), drop the scores, unfreeze."""
        masks = self.masks()
        if self._init_masks:
            kept = sum(int(m.sum()) for m in masks.values())
            same = sum(int((m & self._init_masks[n]).sum()) for n, m in masks.items())
            self._summary = {"kept_as_at_init": same / max(kept, 1)}
        for name in self._layers:
            parametrize.remove_parametrizations(model.get_submodule(name), "weight",
                                                leave_parametrized=False)
        unfreeze(self._frozen)
        self._layers, self._frozen, self.model = {}, [], None
        apply_weight_masks(model, masks)
        return model

    def summary(self) -> dict[str, Any]:
        """``kept_as_at_init``: fraction of the finally kept weights that the initial scores
        already kept (with the scaled init: the top-|W| mask; 1.0 = HYDRA learned nothing beyond
        magnitude pruning)."""
        return {"score_init": self.score_init, **self._summary}

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"scores": {n: pm.scores.detach().clone() for n, pm in self._layers.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        scores = state.get("scores", {})
        if set(scores) != set(self._layers):
            raise ValueError(f"hydra state has layers {sorted(scores)}, the attached model has "
                             f"{sorted(self._layers)}")
        with torch.no_grad():
            for n, s in scores.items():
                self._layers[n].scores.copy_(s)

