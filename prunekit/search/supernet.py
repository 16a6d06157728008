"""The DARTS search network with partial-channel mixed ops (Liu et al., ICLR 2019; Xu et al.,
PC-DARTS, ICLR 2020, Sec. 3.2; official LRNAS ``model_search.py``).

Every edge of a cell is a :class:`MixedOp`: the first ``C / k`` channels go through every
candidate op, whose outputs are summed with the edge's op weights; the other channels bypass the
ops (2x2 max-pooled on a reduction edge) and the two parts are concatenated and channel-shuffled
with ``k`` groups. A node sums its mixed edges from every earlier state (2 + i edges for node i,
14 edges for 4 nodes); the cell output concatenates the 4 nodes. Ops use ``affine=False``
BatchNorm, as the official search network.

The architecture weights ``alphas_normal`` / ``alphas_reduce`` ([14, n_ops], initialised to
``1e-3 N(0, 1)``) are **buffers**: LRNAS never trains them by gradient (the official code makes
them ``nn.Parameter(requires_grad=False)``), they are updated from contribution scores
(:mod:`prunekit.search.lrnas`). ``forward(x, weights=None)`` uses ``softmax(alphas)`` unless
per-edge op weights are given (the scoring zeroes removed ops that way).

Deviations (docs/search.md): a ``Normalize`` layer first and any ``in_channels``; a reduced op
set may be given (``ops``; alphas then have that many columns); an op whose weight is exactly 0
is skipped instead of computed and multiplied by 0 (identical output for finite activations; it
is what makes the scoring's removal sequence cheaper); the bypass pooling uses ``ceil_mode`` so
odd feature-map sizes work (identical for even sizes); Gumbel / edge normalisation of PC-DARTS
are not used (LRNAS does not use them either).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.models.common import Normalize
from prunekit.search.genotype import PRIMITIVES
from prunekit.search.network import cell_plan
from prunekit.search.ops import FactorizedReduce, ReLUConvBN, build_op
from prunekit.search.pooling import FastAvgPool3x3, FastMaxPool3x3, fast_bypass_pool

__all__ = ["SearchNetwork", "MixedOp", "SearchCell", "channel_shuffle", "num_edges"]


def num_edges(steps: int = 4) -> int:
    """Edges of a cell with ``steps`` nodes: 2 + 3 + ... = 14 for 4 nodes."""
    return sum(2 + i for i in range(steps))


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet; PC-DARTS after the partial op)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _search_op(name: str, C: int, stride: int) -> nn.Module:
    """A candidate op of the search network (``affine=False`` BN); the pools are the slice-based
    ones of :mod:`prunekit.search.pooling` (same forward, library kernel under autograd)."""
    if name == "max_pool_3x3":
        return FastMaxPool3x3(stride)
    if name == "avg_pool_3x3":
        return FastAvgPool3x3(stride)
    return build_op(name, C, stride, affine=False)


class MixedOp(nn.Module):
    """Weighted sum of the candidate ops on ``C / k`` channels, bypass for the rest."""

    def __init__(self, C: int, stride: int, k: int, ops: Sequence[str]) -> None:
        super().__init__()
        if C % k:
            raise ValueError(f"partial channels: C={C} is not divisible by k={k}")
        self.k = k
        self.stride = stride
        self._ops = nn.ModuleList(_search_op(name, C // k, stride) for name in ops)

    def forward(self, x: Tensor, weights: Tensor, active: Sequence[bool] | None = None) -> Tensor:
        """``active[i] == False`` marks an op whose weight is exactly 0: it is skipped."""
        part = x.shape[1] // self.k
        xa, xb = x[:, :part], x[:, part:]
        out = None
        for i, (w, op) in enumerate(zip(weights, self._ops)):
            if active is not None and not active[i]:
                continue  # a removed op contributes exactly 0 (see the module docstring)
            y = w * op(xa)
            out = y if out is None else out + y
        if out is None:  # every op removed: the partial channels are zero
            out = xa[:, :, ::self.stride, ::self.stride].mul(0.0)
        if self.k == 1:
            return out
        if self.stride != 1:
            xb = fast_bypass_pool(xb)
        return channel_shuffle(torch.cat([out, xb], dim=1), self.k)


class SearchCell(nn.Module):
    """A cell of mixed edges: node i sums the mixed ops of all 2 + i earlier states."""

    def __init__(self, steps: int, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool, k: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList(MixedOp(C, 2 if reduction and j < 2 else 1, k, ops)
                                  for i in range(steps) for j in range(2 + i))

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor,
                active: Sequence[Sequence[bool]] | None = None) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = sum(self._ops[offset + j](h, weights[offset + j],
                                          None if active is None else active[offset + j])
                    for j, h in enumerate(states))
            offset += len(states)
            states.append(s)  # type: ignore[arg-type]
        return torch.cat(states[-self.steps:], dim=1)


class SearchNetwork(nn.Module):
    """The supernet (official defaults for the search: ``C = 16``, 8 cells, ``k = 4``)."""

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3,
                 k: int = 4, ops: Sequence[str] = PRIMITIVES, steps: int = 4,
                 mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        bad = [o for o in ops if o not in PRIMITIVES]
        if bad or len(set(ops)) != len(ops) or not ops:
            raise ValueError(f"ops must be distinct names from {', '.join(PRIMITIVES)}; got "
                             f"{list(ops)}")
        self.ops = tuple(ops)
        self.steps = steps
        self.normalize = Normalize(mean, std, in_channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * C))
        cells = []
        for plan in cell_plan(None, C, layers, multiplier=steps):
            cells.append(SearchCell(steps, *plan[:5], k=k, ops=self.ops))
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(plan.C_out, num_classes)
        shape = (num_edges(steps), len(self.ops))
        self.register_buffer("alphas_normal", 1e-3 * torch.randn(shape))
        self.register_buffer("alphas_reduce", 1e-3 * torch.randn(shape))

    @property
    def num_edges(self) -> int:
        return int(self.alphas_normal.shape[0])

    def op_weights(self) -> dict[str, Tensor]:
        """``softmax(alphas)`` per cell type (``{"normal": [E, n_ops], "reduce": ...}``)."""
        return {"normal": F.softmax(self.alphas_normal, dim=-1),
                "reduce": F.softmax(self.alphas_reduce, dim=-1)}

    def forward(self, x: Tensor, weights: Mapping[str, Tensor] | None = None) -> Tensor:
        """Logits with ``softmax(alphas)``, or with the given per-edge op weights (an op whose
        given weight is exactly 0 is skipped)."""
        if weights is None:
            w, active = self.op_weights(), {"normal": None, "reduce": None}
        else:
            w = weights
            active = {k: (v != 0).tolist() for k, v in weights.items()}  # one sync per forward
        s0 = s1 = self.stem(self.normalize(x))
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, w[kind], active[kind])
        return self.classifier(self.flatten(self.pool(s1)))
