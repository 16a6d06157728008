"""Slice-based 3x3 / 2x2 pooling for the search network's ops (docs/search.md, "Cost").

The contribution scoring (:mod:`prunekit.search.scoring`) runs thousands of small no-grad
forwards of the supernet; on the CPU the library pooling kernels are a large share of them at
the search's tiny, partial-channel feature maps. A 3x3 pool is the max (or the sum) of 9 strided
views of the padded input, a 2x2 stride-2 pool of 4 -- a few element-wise ops on whole tensors.

Forward: equal to ``F.max_pool2d(x, 3, s, 1)``, ``F.avg_pool2d(x, 3, s, 1,
count_include_pad=False)`` and ``F.max_pool2d(x, 2, 2, ceil_mode=True)`` bit for bit
(``torch.equal``; tests/test_search_pooling.py): the max is exact, and the window sum is taken in
the kernel's row-major order (the zero padding adds exact zeros) before the same division.

Backward: the slices are used **only when no gradient is needed** (``torch.no_grad`` or an input
that does not require grad -- the scoring); with autograd the library kernel runs, so training
and the FGSM step are unchanged. Reason: the slice max's gradient (``torch.maximum``) splits a
tie between the tied inputs (0.5 / 0.25 / ...), while ``max_pool2d`` gives it all to the first
maximum of the window; both are valid subgradients with the same sum, but training would no
longer match the official code at ties (exact ties do occur: padding-free windows of a constant
map, bf16 inputs). The tie behaviour is pinned by the tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["slice_max_pool3x3", "slice_avg_pool3x3", "slice_max_pool2x2", "FastMaxPool3x3",
           "FastAvgPool3x3", "fast_bypass_pool"]


def _windows(xp: Tensor, k: int, stride: int, h: int, w: int) -> list[Tensor]:
    """The ``k x k`` strided views of the padded ``xp`` for an ``h x w`` output, row-major."""
    hs, ws = stride * (h - 1) + 1, stride * (w - 1) + 1
    return [xp[:, :, i:i + hs:stride, j:j + ws:stride] for i in range(k) for j in range(k)]


def _out(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # 3x3, padding 1 (= ceil(n / stride))


def slice_max_pool3x3(x: Tensor, stride: int = 1) -> Tensor:
    """``F.max_pool2d(x, 3, stride, 1)`` from 9 views (NaN propagates as in the kernel)."""
    h, w = _out(x.shape[2], stride), _out(x.shape[3], stride)
    views = _windows(F.pad(x, (1, 1, 1, 1), value=float("-inf")), 3, stride, h, w)
    out = views[0]
    for v in views[1:]:
        out = torch.maximum(out, v)
    return out


def slice_avg_pool3x3(x: Tensor, stride: int = 1) -> Tensor:
    """``F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)`` from 9 views."""
    h, w = _out(x.shape[2], stride), _out(x.shape[3], stride)
    views = _windows(F.pad(x, (1, 1, 1, 1)), 3, stride, h, w)
    total = views[0]
    for v in views[1:]:
        total = total + v
    return total / _counts(x.shape[2], x.shape[3], stride, x.dtype, x.device)


def _counts(H: int, W: int, stride: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Valid (non-padding) positions per 3x3 window, ``[1, 1, h, w]``."""
    def axis(n: int) -> Tensor:
        starts = torch.arange(_out(n, stride), device=device) * stride - 1
        return (torch.clamp(starts + 3, max=n) - torch.clamp(starts, min=0)).to(dtype)
    return (axis(H)[:, None] * axis(W)[None, :])[None, None]


def slice_max_pool2x2(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, 2, 2, ceil_mode=True)`` from 4 views (odd sizes: -inf padded)."""
    H, W = x.shape[2], x.shape[3]
    if H % 2 or W % 2:
        x = F.pad(x, (0, W % 2, 0, H % 2), value=float("-inf"))
    views = _windows(x, 2, 2, (H + 1) // 2, (W + 1) // 2)
    out = views[0]
    for v in views[1:]:
        out = torch.maximum(out, v)
    return out


def _no_grad(x: Tensor) -> bool:
    return not (torch.is_grad_enabled() and x.requires_grad)


class FastMaxPool3x3(nn.MaxPool2d):
    """``nn.MaxPool2d(3, stride, 1)`` with the slice forward when no gradient is needed."""

    def __init__(self, stride: int) -> None:
        super().__init__(3, stride=stride, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return slice_max_pool3x3(x, int(self.stride)) if _no_grad(x) else super().forward(x)


class FastAvgPool3x3(nn.AvgPool2d):
    """``nn.AvgPool2d(3, stride, 1, count_include_pad=False)``, slice forward without grad."""

    def __init__(self, stride: int) -> None:
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        return slice_avg_pool3x3(x, int(self.stride)) if _no_grad(x) else super().forward(x)


def fast_bypass_pool(x: Tensor) -> Tensor:
    """The mixed op's bypass ``F.max_pool2d(x, 2, 2, ceil_mode=True)``, slices without grad."""
    return slice_max_pool2x2(x) if _no_grad(x) else F.max_pool2d(x, 2, 2, ceil_mode=True)
