"""Weight-level masks baked into the model as parametrizations.

``apply_weight_masks(model, masks)`` registers ``weight = original * mask`` on each named module
(``torch.nn.utils.parametrize``): the mask is a buffer of the parametrization, the optimizer
trains ``parametrizations.weight.original``, and the effective weight is recomputed on every
access. Pruned weights are therefore exactly zero in every forward pass whatever momentum or
weight decay do to ``original`` -- fine-tuning needs no pruner calls (HYDRA / ADMM masked
retraining, DESIGN.md). The state dict holds ``<m>.parametrizations.weight.original`` and
``<m>.parametrizations.weight.0.mask``; :func:`prunekit.pruning.serialize.rebuild` re-registers
the parametrizations from those keys.

Helpers ``topk_masks`` (per layer) and ``global_topk_masks`` build keep-masks from scores.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.models.common import find_classifier, find_stem

__all__ = ["WeightMask", "apply_weight_masks", "remove_weight_masks", "weight_masks",
           "topk_masks", "global_topk_masks", "prunable_layers"]


class WeightMask(nn.Module):
    """Parametrization ``W -> W * mask`` (mask stored as a float buffer of 0/1)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.float32).clone())

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask.to(weight.dtype)


def apply_weight_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Bake ``masks`` (module name -> keep mask of the weight's shape, bool or 0/1) into
    ``model`` in place; a module already masked gets its mask replaced. Returns ``model``.
    The masked entries of ``original`` are zeroed too, so checkpoints carry exact zeros."""
    named = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in named:
            raise ValueError(f"weight mask for unknown module {name!r}")
        mod = named[name]
        if parametrize.is_parametrized(mod, "weight"):
            orig = mod.parametrizations.weight.original
            if tuple(mask.shape) != tuple(orig.shape):
                raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, "
                                 f"weight {tuple(orig.shape)}")
            for p in mod.parametrizations.weight:
                if isinstance(p, WeightMask):
                    p.mask.copy_(mask.to(p.mask))
        else:
            w = getattr(mod, "weight", None)
            if not isinstance(w, Tensor) or tuple(mask.shape) != tuple(w.shape):
                raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, weight "
                                 f"{None if w is None else tuple(w.shape)}")
            parametrize.register_parametrization(mod, "weight",
                                                 WeightMask(mask.to(w.device)))
            orig = mod.parametrizations.weight.original
        with torch.no_grad():
            orig.mul_(mask.to(orig.device, orig.dtype))
    return model


def weight_masks(model: nn.Module) -> dict[str, Tensor]:
    """The baked keep-masks (bool) by module name."""
    out: dict[str, Tensor] = {}
    for name, mod in model.named_modules():
        if parametrize.is_parametrized(mod, "weight"):
            for p in mod.parametrizations.weight:
                if isinstance(p, WeightMask):
                    out[name] = p.mask.bool().clone()
    return out


def remove_weight_masks(model: nn.Module) -> nn.Module:
    """Replace each masked weight by a plain parameter holding ``original * mask``."""
    for mod in model.modules():
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model


def prunable_layers(model: nn.Module, include_stem: bool = False,
                    include_classifier: bool = False) -> dict[str, nn.Module]:
    """The layers weight-level pruning and the sparsity accounting act on: every ``nn.Conv*``
    and ``nn.Linear`` except the first ``nn.Conv2d`` (stem) and the last ``nn.Linear``
    (classifier), unless asked (DESIGN.md conventions)."""
    stem, classifier = find_stem(model), find_classifier(model)
    skip = {found[0] for found, keep in ((stem, include_stem), (classifier, include_classifier))
            if found is not None and not keep}
    return {n: m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and n not in skip}


def topk_masks(scores: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """Per-layer masks keeping the ``round((1 - sparsity) * numel)`` highest scores of each
    layer (at least one entry per layer)."""
    out = {}
    for name, s in scores.items():
        k = max(1, int(round((1.0 - sparsity) * s.numel())))
        flat = s.detach().flatten()
        m = torch.zeros_like(flat, dtype=torch.bool)
        m[torch.topk(flat, k, sorted=False).indices] = True
        out[name] = m.view_as(s)
    return out


def global_topk_masks(scores: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """Masks keeping the ``round((1 - sparsity) * total)`` highest scores over all layers
    together (scores must be comparable across layers), at least one entry per layer."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().float().cpu() for n in names])
    k = max(1, int(round((1.0 - sparsity) * flat.numel())))
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, k, sorted=False).indices] = True
    out, i = {}, 0
    for n in names:
        s = scores[n]
        m = keep[i:i + s.numel()].view(s.shape).to(s.device)
        i += s.numel()
        if not bool(m.any()):
            m = m.clone().flatten()
            m[int(torch.argmax(s.detach().flatten()))] = True
            m = m.view(s.shape)
        out[n] = m
    return out
