"""Twin-Rep's weight re-parametrisations and the one-shot prune schedule, shared by ``twin-rep``
(:mod:`baselines.twin_rep`) and ``twin-rep-channel`` (:mod:`baselines.twin_rep_channel`).

Li, Qiu, Zhang, Guo, Cheng, *Learning Adversarially Robust Sparse Networks via Weight
Reparameterization*, AAAI 2023; official code UCAS-LCH/Twin-Rep at b35cda3:

* :class:`TwinWeight` -- Twin-Rep, ``W_eff = W * U * M`` element-wise with the auxiliary weight
  ``U`` Kaiming-uniform initialised (``a = sqrt(5)``, the ``nn.Conv2d`` default) and the mask
  ``M`` all ones until the prune (models/layers.py:9-43 ``TwinConv``, ``TwinLinear``). With
  weight decay ``lambda`` on both factors the smallest penalty of a given product is
  ``min_{W*U = V} lambda/2 (W^2 + U^2) = lambda |V|``: the re-parametrisation adds an L1 term on
  the effective weight without changing the training objective (the paper's "implicit sparsity
  constraint"; tests/test_twin_rep.py checks the soft-threshold fixed point).
* :class:`ChannelRepWeight` -- Channel-Rep, the paper's variant for channel pruning,
  ``W_eff = A @ W`` with an ``out x out`` auxiliary matrix ``A`` mixing the filters
  (models/layers.py:62-115 ``ChannelConv``, ``ChannelLinear``; einsum ``pq,qrst->prst``).

Both are ``torch.nn.utils.parametrize`` parametrizations of the module's ``weight``, so the
optimizer trains ``parametrizations.weight.original`` (``W``) and ``parametrizations.weight.0.aux``
(``U`` / ``A``) and every forward sees ``W_eff``; :func:`fold` replaces them by a plain weight
holding ``W_eff`` (the paper's "restore the original weight structure"; official
model_utils.py:71-103 ``subnet_to_dense``).

Deviation: the official ``MaskLinear.forward`` (models/layers.py:159-162, the ``mask`` layer
type, a baseline of the paper) has no ``return``; it is not part of Twin-Rep and not
reproduced.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["TwinWeight", "ChannelRepWeight", "reparametrize", "fold", "prune_due",
           "check_pruning_epoch", "REPARAMS"]

#: the re-parametrisations: element-wise twin (Twin-Rep) or filter-mixing matrix (Channel-Rep)
REPARAMS = ("twin", "channel")


def _kaiming_uniform(shape: torch.Size | tuple[int, ...], like: Tensor) -> Tensor:
    """``nn.init.kaiming_uniform_(a=sqrt(5))`` on a new tensor (official ``aux_weight`` init)."""
    t = torch.empty(shape, device=like.device, dtype=like.dtype)
    return nn.init.kaiming_uniform_(t, a=math.sqrt(5))


class TwinWeight(nn.Module):
    """Parametrization ``W -> W * U * M`` (Twin-Rep, official ``TwinConv.forward``)."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.aux = nn.Parameter(_kaiming_uniform(weight.shape, weight.detach()))
        self.register_buffer("mask", torch.ones_like(weight.detach()))

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.aux * self.mask.to(weight.dtype)


class ChannelRepWeight(nn.Module):
    """Parametrization ``W -> A @ W`` over the output filters (Channel-Rep, official
    ``ChannelConv.forward``); ``A`` is ``out x out``. The channel mask of
    ``twin-rep-channel`` acts on the consumers (prunekit's channel gating), not here."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        out = weight.shape[0]
        self.aux = nn.Parameter(_kaiming_uniform((out, out), weight.detach()))

    def forward(self, weight: Tensor) -> Tensor:
        return (self.aux @ weight.flatten(1)).view_as(weight)


def reparametrize(modules: Mapping[str, nn.Module], kind: str) -> dict[str, nn.Module]:
    """Register the ``kind`` re-parametrisation (:data:`REPARAMS`) on each module's ``weight``;
    returns the parametrization modules by name. A grouped conv gets the element-wise twin even
    for ``"channel"``: mixing filters across conv groups is not a grouped conv any more."""
    out: dict[str, nn.Module] = {}
    for name, mod in modules.items():
        w = mod.weight
        grouped = getattr(mod, "groups", 1) != 1
        pm = ChannelRepWeight(w) if kind == "channel" and not grouped else TwinWeight(w)
        parametrize.register_parametrization(mod, "weight", pm)
        out[name] = pm
    return out


def fold(modules: Mapping[str, nn.Module]) -> None:
    """Replace each re-parametrised ``weight`` by a plain parameter holding ``W_eff`` (the same
    ``Parameter`` object as the original ``W``, now with the product's values)."""
    for mod in modules.values():
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)


def check_pruning_epoch(value: int) -> int:
    """``pruning_epoch`` as an int >= 1, else a one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or value < 1:
        raise ValueError(f"pruning_epoch must be an integer >= 1 (the 1-based epoch at whose "
                         f"start the one-shot prune happens), got {value!r}")
    return int(value)


def prune_due(pruning_epoch: int, finished_epoch: int) -> bool:
    """Whether the prune is due once 0-based epoch ``finished_epoch`` has finished: the
    official loop (train.py:310-325) prunes at the start of the 1-based epoch
    ``pruning_epoch``, i.e. after ``pruning_epoch - 1`` epochs of dense training."""
    return finished_epoch + 1 >= pruning_epoch - 1
