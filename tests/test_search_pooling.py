"""Slice-based pools of the search network (prunekit.search.pooling): forward bit-equal to the
library kernels (contiguous and channels_last, even and odd sizes, strides 1 and 2, NaN), the
library kernel under autograd, and the slice max's tie handling (why it is not used there)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.search.pooling import FastAvgPool3x3, FastMaxPool3x3, fast_bypass_pool, \
    slice_avg_pool3x3, slice_max_pool2x2, slice_max_pool3x3

SHAPES = [(2, 3, 8, 8), (2, 4, 7, 7), (1, 2, 14, 9), (3, 2, 1, 1), (2, 5, 2, 3)]


def _inputs(shape: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g)
    return [x, x.to(memory_format=torch.channels_last), x.round()]  # round(): many exact ties


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [1, 2])
def test_forward_equals_the_library_kernels(shape: tuple[int, ...], stride: int) -> None:
    for x in _inputs(shape):
        assert torch.equal(slice_max_pool3x3(x, stride), F.max_pool2d(x, 3, stride, 1))
        assert torch.equal(slice_avg_pool3x3(x, stride),
                           F.avg_pool2d(x, 3, stride, 1, count_include_pad=False))
        assert torch.equal(slice_max_pool2x2(x), F.max_pool2d(x, 2, 2, ceil_mode=True))


def test_nan_propagates_like_the_kernel() -> None:
    x = torch.randn(1, 1, 5, 5)
    x[0, 0, 2, 2] = float("nan")
    a, b = slice_max_pool3x3(x), F.max_pool2d(x, 3, 1, 1)
    assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_modules_use_slices_without_grad_and_the_kernel_with_grad() -> None:
    x = torch.randn(2, 3, 6, 6).round().requires_grad_(True)  # ties everywhere
    for mod, ref in ((FastMaxPool3x3(2), lambda t: F.max_pool2d(t, 3, 2, 1)),
                     (FastAvgPool3x3(1), lambda t: F.avg_pool2d(t, 3, 1, 1,
                                                                count_include_pad=False)),
                     (fast_bypass_pool, lambda t: F.max_pool2d(t, 2, 2, ceil_mode=True))):
        with torch.no_grad():
            assert torch.equal(mod(x), ref(x))
        g = torch.randn_like(ref(x))
        got, = torch.autograd.grad(mod(x), x, g)
        want, = torch.autograd.grad(ref(x), x, g)
        assert torch.equal(got, want)  # training: the library backward, ties included


def test_slice_backward_splits_ties_which_is_why_autograd_keeps_the_kernel() -> None:
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)  # one window, four tied maxima
    kernel, = torch.autograd.grad(F.max_pool2d(x, 2, 2).sum(), x)
    sliced, = torch.autograd.grad(slice_max_pool2x2(x).sum(), x)
    assert kernel.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]  # all to the first maximum
    assert sliced.sum().item() == 1.0 and (sliced > 0).sum().item() > 1  # split, same sum
    y = torch.randn(2, 3, 8, 8, requires_grad=True)  # no ties: the same gradient
    a, = torch.autograd.grad(slice_max_pool3x3(y).sum(), y)
    b, = torch.autograd.grad(F.max_pool2d(y, 3, 1, 1).sum(), y)
    assert torch.equal(a, b)
