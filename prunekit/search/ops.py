"""The DARTS operations (Liu et al., ICLR 2019, Sec. 3.1; official ``operations.py`` of DARTS /
LRNAS): the candidate ops of every edge plus the cells' preprocessing blocks.

Layouts (``C`` channels in and out, ``stride`` 1 or 2, BatchNorm ``affine`` only in the final
network -- the search network uses ``affine=False`` as the official code):

- ``none``: zeros (spatially subsampled with stride 2);
- ``max_pool_3x3`` / ``avg_pool_3x3``: 3x3 pooling, padding 1 (average without the padding);
- ``skip_connect``: identity, or a :class:`FactorizedReduce` at stride 2;
- ``sep_conv_KxK``: (ReLU, depthwise KxK, pointwise 1x1, BN) twice, the first with ``stride``;
- ``dil_conv_KxK``: ReLU, depthwise KxK with dilation 2, pointwise 1x1, BN.

Deviation (documented in docs/search.md): :class:`FactorizedReduce` pads its shifted branch by
one pixel at the bottom/right so that odd feature-map sizes work (the official code needs even
sizes; for even sizes the result is identical). Every ReLU is non-inplace (prunekit convention).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.search.genotype import PRIMITIVES

__all__ = ["build_op", "Zero", "FactorizedReduce", "ReLUConvBN", "SepConv", "DilConv",
           "is_identity"]


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output's shape (subsampled at stride 2)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = int(stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return x.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution: two 1x1 stride-2 convs (the second on the input shifted by one
    pixel), concatenated to ``C_out`` channels, then BN. ``C_out`` must be even.

    The stride-2 1x1 convs are computed as stride-1 1x1 convs of the even pixels
    (``x[:, :, ::2, ::2]``): the same arithmetic, the same parameters, MACs and output size,
    because torch 2.14.1's CPU backward of a channels_last 1x1 stride-2 conv with fewer than 8
    input channels corrupts the heap (``double free or corruption``; the search network's
    partial-channel reduction edges at C 8, k 4 have 4; tests/test_search_space.py)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # odd sizes: same output size as conv_1
        return self.bn(torch.cat([self.conv_1(x[:, :, ::2, ::2]),
                                  self.conv_2(shifted[:, :, ::2, ::2])], dim=1))


class ReLUConvBN(nn.Sequential):
    """ReLU, KxK conv, BN (the cells' 1x1 preprocessing)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding,
                                   bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


def _dw_pw(C_in: int, C_out: int, k: int, stride: int, padding: int, dilation: int,
           affine: bool) -> list[nn.Module]:
    """ReLU, depthwise KxK, pointwise 1x1, BN."""
    return [nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine)]


class SepConv(nn.Sequential):
    """Separable conv applied twice (the first block carries the stride)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(*_dw_pw(C_in, C_in, kernel_size, stride, padding, 1, affine),
                         *_dw_pw(C_in, C_out, kernel_size, 1, padding, 1, affine))


class DilConv(nn.Sequential):
    """Dilated separable conv (one block)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True) -> None:
        super().__init__(*_dw_pw(C_in, C_out, kernel_size, stride, padding, dilation, affine))


_BUILDERS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda C, s, a: Zero(s),
    "max_pool_3x3": lambda C, s, a: nn.MaxPool2d(3, stride=s, padding=1),
    "avg_pool_3x3": lambda C, s, a: nn.AvgPool2d(3, stride=s, padding=1,
                                                 count_include_pad=False),
    "skip_connect": lambda C, s, a: nn.Identity() if s == 1 else FactorizedReduce(C, C, a),
    "sep_conv_3x3": lambda C, s, a: SepConv(C, C, 3, s, 1, a),
    "sep_conv_5x5": lambda C, s, a: SepConv(C, C, 5, s, 2, a),
    "dil_conv_3x3": lambda C, s, a: DilConv(C, C, 3, s, 2, 2, a),
    "dil_conv_5x5": lambda C, s, a: DilConv(C, C, 5, s, 4, 2, a),
}
assert tuple(_BUILDERS) == PRIMITIVES


def build_op(name: str, C: int, stride: int, affine: bool = True) -> nn.Module:
    """The op ``name`` on ``C`` channels with ``stride`` (1 or 2)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; valid ops: {', '.join(PRIMITIVES)}") from None
    return builder(int(C), int(stride), bool(affine))


def is_identity(op: nn.Module) -> bool:
    """Drop path skips identity edges (official ``model.py``)."""
    return isinstance(op, nn.Identity)
