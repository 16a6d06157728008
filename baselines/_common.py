"""Helpers shared by the baseline pruners (HYDRA, ADMM): which layers to prune, exact top-k
keep masks, the straight-through score mask, and freezing everything but the scores.

Private to ``baselines``; a third-party plug-in would keep helpers like these in its own package.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunekit.pruning.channel import ChannelPruner
from prunekit.pruning.groups import ChannelGroups
from prunekit.pruning.masking import prunable_layers, topk_masks
from prunekit.seeding import method_seed

__all__ = ["select_layers", "topk_keep", "ScoreSTE", "freeze_all_but_norm", "unfreeze",
           "scaled_score_init", "check_choice", "norm_params", "uniform_group_counts",
           "group_row_masks", "topk_count", "MaskCache", "draw_seed", "FixedChannelSelection"]


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def select_layers(model: nn.Module, *, include_stem: bool = False,
                  include_classifier: bool = False) -> dict[str, nn.Module]:
    """The layers a weight-level baseline prunes, by module name: prunekit's prunable layers
    (every conv and linear except the stem and the classifier, the same set the sparsity
    accounting measures; :func:`prunekit.pruning.masking.prunable_layers`). Both flags True = the
    official HYDRA setting (every conv and linear layer)."""
    layers = prunable_layers(model, include_stem=include_stem,
                             include_classifier=include_classifier)
    if not layers:
        raise ValueError(f"no prunable layers in {type(model).__name__} (conv/linear layers "
                         f"except the stem and the classifier)")
    return layers


def topk_keep(values: Tensor, sparsity: float) -> Tensor:
    """Bool mask (shape of ``values``) keeping the ``round((1 - sparsity) * n)`` largest entries
    (at least one; :func:`prunekit.pruning.masking.topk_masks`)."""
    return topk_masks({"": values}, sparsity)[""]


class ScoreSTE(torch.autograd.Function):
    """Straight-through estimator of HYDRA's ``GetSubnet(|s|, k)`` (Sehwag et al. 2020, eq. 3;
    official ``models/layers.py``): the forward returns the given hard 0/1 mask of the top-k
    ``|s|``; the backward sends the incoming gradient straight to ``|s|``, i.e. ``g * sign(s)``
    to the scores ``s``."""

    @staticmethod
    def forward(ctx, scores: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(scores)
        return mask

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (scores,) = ctx.saved_tensors
        return grad * scores.sign(), None


def norm_params(model: nn.Module) -> list[nn.Parameter]:
    """Affine parameters of the batch-norm layers (they keep training while scores train)."""
    return [p for m in model.modules() if isinstance(m, _BatchNorm)
            for p in m.parameters(recurse=False)]


def score_param_groups(scores: Sequence[nn.Parameter], model: nn.Module) -> list[dict]:
    """HYDRA prune mode's optimizer groups: the scores, plus the batch-norm affine parameters
    (the official ``freeze_vars`` freezes conv/linear weights and biases only)."""
    groups: list[dict] = [{"params": list(scores), "name": "hydra_scores"}]
    bn = [p for p in norm_params(model) if p.requires_grad]
    if bn:
        groups.append({"params": bn, "name": "batchnorm"})
    return groups


def freeze_all_but_norm(model: nn.Module) -> list[nn.Parameter]:
    """Set ``requires_grad=False`` on every parameter except batch-norm affine ones (official
    HYDRA ``freeze_vars(model, "weight"/"bias")`` with ``freeze_bn=False``). Returns the
    parameters it froze so the caller can unfreeze them later."""
    keep = {id(p) for p in norm_params(model)}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in keep]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def unfreeze(params: Iterable[nn.Parameter]) -> None:
    """Undo :func:`freeze_all_but_norm`."""
    for p in params:
        p.requires_grad_(True)


def scaled_score_init(weight: Tensor) -> Tensor:
    """HYDRA's scaled score initialisation (official ``utils/model.py:initialize_scaled_score``):
    ``sqrt(6 / fan_in) * W / max|W|`` with ``fan_in`` = in-channels per group x kernel area
    (``nn.init._calculate_correct_fan(W, "fan_in")``); Kaiming-uniform scale, ordered like ``|W|``.
    """
    fan_in = nn.init._calculate_correct_fan(weight, "fan_in")
    w = weight.detach()
    return math.sqrt(6.0 / fan_in) * w / w.abs().max().clamp_min(torch.finfo(w.dtype).tiny)


# -- channel groups (hydra-channel, admm filter) ---------------------------------------------------
def uniform_group_counts(groups: ChannelGroups, sparsity: float, iters: int = 40,
                         cost: str = "macs") -> list[int]:
    """Channels kept per group when every group keeps the same fraction ``r`` of its channels
    (the channel analogue of a per-layer ratio, as HYDRA's per-layer ``k`` and ADMM's per-layer
    ``prune_ratios``), with ``r`` chosen by bisection so the analytic conv + linear MACs
    reduction is as close as possible to ``sparsity`` (ChannelPruner's target; ``cost="params"``:
    the parameter reduction). >= 1 per group."""
    def counts(r: float) -> list[int]:
        return [min(g.size, max(1, int(math.floor(r * g.size + 0.5)))) for g in groups]

    def reduction(c: list[int]) -> float:
        gates = [(torch.arange(g.size) < k).float() for g, k in zip(groups, c)]
        return 1.0 - float(groups.cost(cost, gates)) / groups.dense_cost(cost)

    lo, hi = 0.0, 1.0                     # reduction(counts(r)) decreases as r grows
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if reduction(counts(mid)) > sparsity:
            lo = mid
        else:
            hi = mid
    best = min((counts(lo), counts(hi)), key=lambda c: abs(reduction(c) - sparsity))
    return best


def group_row_masks(groups: ChannelGroups, keeps: Sequence[Tensor],
                    weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per-conv filter keep masks shaped ``[out, 1, ...]`` (broadcastable to the weight) from the
    per-group channel keep masks, for the convs in ``weights``."""
    out: dict[str, Tensor] = {}
    for g, keep in zip(groups, keeps):
        for name in g.convs:
            if name not in weights:
                continue
            w = weights[name]
            sl = g.out_slices[name]
            rows = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
            rows[sl.idxs.to(w.device)] = keep.to(w.device)[sl.root_idxs.to(w.device)]
            out[name] = rows.view(-1, *([1] * (w.dim() - 1)))
    return out


def topk_count(values: Tensor, k: int) -> Tensor:
    """Bool mask keeping the ``k`` largest entries of a 1-D tensor."""
    mask = torch.zeros(values.numel(), dtype=torch.bool, device=values.device)
    mask[torch.topk(values.detach().flatten(), k, sorted=False).indices] = True
    return mask.view_as(values)


def draw_seed(seed: int | None, name: str) -> int:
    """``seed`` if given, else the method's own stream (:func:`prunekit.seeding.method_seed`:
    derived from the run seed's torch draw and ``name``), so a random baseline varies with the
    run seed and never repeats another method's draw (issue 19)."""
    return method_seed(name, seed)


class MaskCache:
    """Memo of a hard mask computed from a score tensor, recomputed only when the scores change
    (their version counter moves on every in-place update: optimizer steps, ``copy_``). An
    adversarial training step runs ~11 forwards per optimizer step; this sorts once."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._value: Tensor | None = None

    def get(self, scores: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        key = (scores._version, scores.data_ptr())
        if self._key != key or self._value is None:
            with torch.no_grad():
                self._value = fn(scores.detach())
            self._key = key
        return self._value


class FixedChannelSelection(ChannelPruner):
    """A channel pruner whose kept channels are chosen once, in :meth:`select` (called at
    ``attach``), and stay fixed: the prune stage trains the masked network (one-shot criteria
    such as random-channel and l1-channel)."""

    def __init__(self, sparsity: float, **kwargs: Any) -> None:
        super().__init__(sparsity, **kwargs)
        self.keep: list[Tensor] = []

    def select(self, groups: ChannelGroups) -> list[Tensor]:
        """Bool keep mask per group (subclass)."""
        raise NotImplementedError

    def init_gates(self, groups: ChannelGroups) -> None:
        device = next(groups.model.parameters()).device
        self.keep = [k.to(device=device, dtype=torch.bool) for k in self.select(groups)]

    def group_gates(self) -> list[Tensor]:
        return [k.float() for k in self.keep]

    def finalize(self, model: nn.Module) -> nn.Module:
        """Record the analytic MACs reduction of the fixed selection, then compact."""
        if self.groups is not None:
            self._search_reduction = round(self.reduction(), 6)
        return super().finalize(model)

    def summary(self) -> dict[str, Any]:
        """``search_reduction``: analytic MACs reduction of the selection at finalize (the
        selection is fixed, so it is the final one; reported like every channel method's)."""
        red = getattr(self, "_search_reduction", None)
        return {} if red is None else {"search_reduction": red}

    def state_dict(self) -> dict[str, Any]:
        return {"keep": [k.clone() for k in self.keep]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        keep = list(state["keep"])
        if len(keep) != len(self.keep):
            raise ValueError(f"{type(self).__name__} state has {len(keep)} groups, the attached "
                             f"model {len(self.keep)}")
        self.keep = [k.to(device=old.device, dtype=torch.bool) for k, old in zip(keep, self.keep)]
