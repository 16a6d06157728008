"""Save / load finalized models without pickles.

A finalized model is saved as its builder spec (the pipeline's job) plus its ``state_dict``.
:func:`rebuild` turns a freshly built *dense* model back into the finalized architecture:

1. every dependency group (stem group included) is shrunk to the channel count found in the
   state dict for its root conv -- which indices are removed does not matter, the weights are
   loaded afterwards;
2. weight-mask parametrizations are re-registered for every ``<m>.parametrizations.weight.original``
   key (mask from ``<m>.parametrizations.weight.0.mask``);
3. ``load_state_dict(strict=True)``.

Checkpoints are read with ``torch.load(path, weights_only=True)`` by the caller.
"""
from __future__ import annotations

import logging
from typing import Mapping

import torch
from torch import Tensor, nn

from prunekit.models.common import stem_and_classifier
from prunekit.pruning.compaction import remove_channels
from prunekit.pruning.groups import build_groups
from prunekit.pruning.masking import apply_weight_masks

__all__ = ["rebuild", "shrink_to_state_dict", "export_structure"]

log = logging.getLogger(__name__)

_ORIG = ".parametrizations.weight.original"
_MASK = ".parametrizations.weight.0.mask"


def _weight_key(state: Mapping[str, Tensor], module: str) -> str | None:
    for key in (f"{module}.weight", f"{module}{_ORIG}"):
        if key in state:
            return key
    return None


def export_structure(model: nn.Module) -> dict[str, list[int]]:
    """Weight shapes of every conv / linear module (plain lists: JSON- and provenance-friendly).
    Informational: :func:`rebuild` reads the shapes from the state dict itself."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out[name] = [int(d) for d in mod.weight.shape]
    return out


def _example_inputs(model: nn.Module) -> Tensor:
    stem, _ = stem_and_classifier(model)
    if not stem:
        raise ValueError("rebuild: cannot infer the input shape (no conv); pass example_inputs")
    in_ch = dict(model.named_modules())[stem].in_channels
    return torch.zeros(1, in_ch, 32, 32)


def shrink_to_state_dict(model: nn.Module, state: Mapping[str, Tensor],
                         example_inputs: Tensor | None = None) -> nn.Module:
    """Remove channels from ``model`` in place so that every conv of every group has the
    out-channel count of ``state``; returns ``model``. Which channels go does not matter (the
    weights are loaded afterwards), only how many each conv loses: a group whose convs are
    concatenated (DARTS' FactorizedReduce) loses the right number from each part."""
    x = _example_inputs(model) if example_inputs is None else example_inputs
    groups = build_groups(model, x, include_stem=True)
    named = dict(model.named_modules())
    removed = []
    for g in groups:
        # (the conv's group channels as root indices in the conv's own order, how many go);
        # the parts of a concatenation first, so that they fix which root channels go
        needs = []
        for conv in g.convs:
            key = _weight_key(state, conv)
            if key is None:
                raise ValueError(f"rebuild: state dict has no weight for {conv!r}")
            want, have = int(state[key].shape[0]), int(named[conv].weight.shape[0])
            sl = g.out_slices[conv]
            if want < 1 or not 0 <= have - want <= len(sl.idxs):
                raise ValueError(f"rebuild: {conv!r} has {want} channels in the state dict, "
                                 f"the dense model {have}")
            needs.append(([int(i) for i in sl.root_idxs[torch.argsort(sl.idxs)]], have - want))
        drop: list[int] = []
        for roots, k in sorted(needs, key=lambda t: len(t[0])):
            more = k - len(set(roots) & set(drop))
            if more < 0:
                raise ValueError(f"rebuild: the channel counts in the state dict do not fit "
                                 f"group {g.index} (root {g.root!r})")
            rest = [r for r in roots if r not in drop]
            drop += rest[len(rest) - more:] if more else []
        removed.append(sorted(drop))
    remove_channels(groups, removed)
    return model


def rebuild(dense_model: nn.Module, state_dict: Mapping[str, Tensor],
            example_inputs: Tensor | None = None) -> nn.Module:
    """Rebuild a finalized (compacted and/or weight-masked) model from a freshly built dense
    model and its saved ``state_dict`` (loaded with ``weights_only=True``), in place.

    ``example_inputs`` defaults to one ``1 x C x 32 x 32`` zero image (C from the stem); pass
    real inputs for models that need another size."""
    model = shrink_to_state_dict(dense_model, state_dict, example_inputs)
    masks = {k[: -len(_ORIG)]: state_dict[k[: -len(_ORIG)] + _MASK]
             for k in state_dict if k.endswith(_ORIG) and k[: -len(_ORIG)] + _MASK in state_dict}
    if masks:
        apply_weight_masks(model, {n: m.bool() for n, m in masks.items()})
    model.load_state_dict(dict(state_dict), strict=True)
    return model
