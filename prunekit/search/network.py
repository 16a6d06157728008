"""The final DARTS network built from a genotype (Liu et al., ICLR 2019, Sec. 3.2; official
``model.py`` ``NetworkCIFAR`` of DARTS / LRNAS), registered as the prunekit model ``darts``.

Layout: ``Normalize`` -> stem (3x3 conv to ``3 C`` channels, BN) -> ``layers`` cells (reduction
cells at ``layers // 3`` and ``2 layers // 3`` double the channels and halve the resolution) ->
global average pool -> ``classifier``. Each cell preprocesses its two inputs (1x1 ReLU-conv-BN,
or a FactorizedReduce after a reduction cell), applies the genotype's two ops per node, sums
them, and concatenates the listed states. Optional auxiliary head after cell ``2 layers // 3``
(training mode only; its logits are kept on ``model.aux_logits``) and drop path (per-sample,
on every non-identity op output, training mode only, rate ``model.drop_path_prob``).

Parameters are counted without the auxiliary head, as the official ``count_parameters_in_MB``
(:func:`count_params`); the oracles are in tests/test_search_space.py.

Deviations (docs/search.md): inputs are in [0, 1] and a ``Normalize`` layer comes first (as every
prunekit model); the stem takes ``in_channels``; the auxiliary head's pooling generalises the
official CIFAR (8x8 input) and Tiny-ImageNet (16x16) heads to any size (pool ``min(5, s)``,
stride 3, then a conv whose kernel is the pooled size, which is exactly 2 resp. 4 in the official
heads); drop path is computed out of place; the forward returns the logits only (the official
``NetworkCIFAR`` also returns only the logits; the auxiliary logits are an attribute).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from prunekit.models.common import Normalize, scale_width, set_spec
from prunekit.registry import MODELS
from prunekit.search.genotype import Genotype, genotype_from
from prunekit.search.ops import FactorizedReduce, ReLUConvBN, build_op, is_identity

__all__ = ["DARTSNetwork", "Cell", "AuxiliaryHead", "count_params", "reduction_layers", "cell_plan",
           "CellPlan", "darts"]


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: ``layers // 3`` and ``2 layers // 3`` (official)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


class CellPlan(NamedTuple):
    """Channels and resolution of one cell: its inputs' channels, its op width ``C``, whether
    it (and its predecessor) reduce, its output channels and output size."""

    C_prev_prev: int
    C_prev: int
    C: int
    reduction: bool
    reduction_prev: bool
    C_out: int
    size: tuple[int, int]


def cell_plan(genotype: Genotype | None, C: int, layers: int,
              image_size: int | Sequence[int] = 32, multiplier: int = 4) -> Iterator[CellPlan]:
    """The official channel bookkeeping: stem ``3 C``; each reduction doubles ``C``; a cell
    outputs ``len(concat) * C`` channels (``multiplier`` for the search network, which has no
    genotype)."""
    C_prev_prev, C_prev, C_curr = 3 * C, 3 * C, C
    reductions, reduction_prev, size = reduction_layers(layers), False, _hw(image_size)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            C_curr *= 2
            size = (math.ceil(size[0] / 2), math.ceil(size[1] / 2))
        mult = multiplier if genotype is None else len(genotype.cell(reduction)[1])
        yield CellPlan(C_prev_prev, C_prev, C_curr, reduction, reduction_prev, mult * C_curr,
                       size)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, mult * C_curr


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def drop_path(x: Tensor, p: float) -> Tensor:
    """Zero whole examples with probability ``p`` and rescale the rest by ``1 / (1 - p)``."""
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One cell of the final network (two ops per node, as listed in the genotype)."""

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        edges, concat = genotype.cell(reduction)
        self.steps = len(edges) // 2
        self.concat = tuple(concat)
        self.multiplier = len(concat)
        self.indices = tuple(j for _, j in edges)
        self._ops = nn.ModuleList(build_op(op, C, 2 if reduction and j < 2 else 1)
                                  for op, j in edges)
        self.drop_path_prob = 0.0

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and self.drop_path_prob > 0.0
        for i in range(self.steps):
            total = None
            for k in (2 * i, 2 * i + 1):
                op = self._ops[k]
                h = op(states[self.indices[k]])
                if drop and not is_identity(op):
                    h = drop_path(h, self.drop_path_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on an ``h x w`` feature map (official CIFAR head for 8 x 8)."""

    def __init__(self, C: int, num_classes: int, size: tuple[int, int]) -> None:
        super().__init__()
        k = (min(5, size[0]), min(5, size[1]))
        pooled = ((size[0] - k[0]) // 3 + 1, (size[1] - k[1]) // 3 + 1)
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(k, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, pooled, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class DARTSNetwork(nn.Module):
    """The final network of a genotype (see the module docstring).

    Args:
        genotype: the architecture.
        C: initial channels (36 in the DARTS / LRNAS CIFAR recipe).
        layers: number of cells (20).
        num_classes, in_channels, mean, std: as every prunekit model.
        auxiliary: build the auxiliary head (its logits land on ``self.aux_logits`` in training).
        image_size: input size (``H`` or ``(H, W)``), only needed to size the auxiliary head.
        drop_path_prob: initial drop-path rate (the trainer may update it per epoch).
    """

    def __init__(self, genotype: Genotype, C: int = 36, layers: int = 20, num_classes: int = 10,
                 in_channels: int = 3, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, auxiliary: bool = False,
                 image_size: int | Sequence[int] = 32, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        if C < 1 or layers < 1:
            raise ValueError(f"DARTS network needs C >= 1 and layers >= 1, got C={C}, "
                             f"layers={layers}")
        self.normalize = Normalize(mean, std, in_channels)
        self.genotype = genotype
        self.layers = int(layers)
        self._aux_at = 2 * layers // 3
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * C))
        cells, aux_c, aux_size = [], 0, (1, 1)
        for i, plan in enumerate(cell_plan(genotype, C, layers, image_size)):
            cells.append(Cell(genotype, *plan[:5]))
            if i == self._aux_at:
                aux_c, aux_size = plan.C_out, plan.size
        C_prev = plan.C_out
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHead(aux_c, num_classes, aux_size) if auxiliary else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.aux_logits: Tensor | None = None
        self.drop_path_prob = float(drop_path_prob)

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {p}")
        self._drop_path_prob = float(p)
        for cell in self.cells:
            cell.drop_path_prob = float(p)

    def forward(self, x: Tensor) -> Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_at and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        self.aux_logits = aux
        return self.classifier(self.flatten(self.pool(s1)))


def count_params(genotype: Genotype | Mapping[str, Any] | str, C: int = 36, layers: int = 20,
                 num_classes: int = 10, in_channels: int = 3) -> int:
    """Parameters of the final network without the auxiliary head (official
    ``count_parameters_in_MB`` x 1e6), built on the meta device (no memory, a few ms)."""
    geno = genotype_from(genotype)
    total = in_channels * 9 * 3 * C + 2 * 3 * C  # stem conv + BN
    for plan in cell_plan(geno, C, layers):
        total += _numel("pre0", plan.C_prev_prev, plan.C, plan.reduction_prev)
        total += _numel("pre1", plan.C_prev, plan.C, False)
        edges, _ = geno.cell(plan.reduction)
        total += sum(_numel(op, plan.C, plan.C, plan.reduction and j < 2) for op, j in edges)
    return total + (plan.C_out + 1) * num_classes  # classifier


@functools.lru_cache(maxsize=4096)
def _numel(kind: str, C_in: int, C: int, reduce: bool) -> int:
    """Parameters of one preprocessing block or op, built once on the meta device (the same
    classes as the network, so the count cannot drift from the model)."""
    with torch.device("meta"):
        if kind == "pre0":
            mod = FactorizedReduce(C_in, C) if reduce else ReLUConvBN(C_in, C, 1, 1, 0)
        elif kind == "pre1":
            mod = ReLUConvBN(C_in, C, 1, 1, 0)
        else:
            mod = build_op(kind, C, 2 if reduce else 1)
    return sum(p.numel() for p in mod.parameters())


@MODELS.register("darts", aliases=("darts-net",))
def darts(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
          genotype: "Genotype | Mapping[str, Any] | str | None" = None, C: int = 36,
          layers: int = 20, auxiliary: bool = False, image_size: int | Sequence[int] = 32,
          drop_path_prob: float = 0.0) -> DARTSNetwork:
    """DARTS network from a genotype (default ``darts_v2``); extra arguments ``genotype`` (a
    name in ``prunekit.search.GENOTYPES`` or a JSON genotype), ``C`` (36, scaled by ``width``),
    ``layers`` (20), ``auxiliary`` (false), ``image_size`` (32 or [H, W]), ``drop_path_prob`` (0)."""
    geno = genotype_from(genotype)
    size = int(image_size) if isinstance(image_size, (int, float)) else [int(v) for v in image_size]
    net = DARTSNetwork(geno, C=scale_width(int(C), width), layers=int(layers),
                       num_classes=num_classes, in_channels=in_channels, mean=mean, std=std,
                       auxiliary=bool(auxiliary), image_size=size,
                       drop_path_prob=float(drop_path_prob))
    return set_spec(net, "darts", num_classes, in_channels, width, mean, std,  # type: ignore
                    genotype=geno.to_dict(), C=int(C), layers=int(layers),
                    auxiliary=bool(auxiliary), image_size=size,
                    drop_path_prob=float(drop_path_prob))


# options for a small, fast instance in the model contract tests (tests/test_model_contract.py)
darts.contract_kwargs = {"C": 8, "layers": 5}  # type: ignore[attr-defined]
