"""WideResNet (Zagoruyko & Komodakis, 2016), pre-activation, as used by TRADES and MART.

``wrn-D-K``: depth D = 6n + 4 (n blocks per group), widen factor K, channel groups
16 / 16K / 32K / 64K with strides 1 / 2 / 2, dropout 0 (the TRADES/MART CIFAR setting).

Block (pre-activation): ``BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3`` plus a shortcut: the input
itself when the shape is unchanged, otherwise a 1x1 conv applied to the *activated* input (as in
the official code). The network ends with ``BN-ReLU-global pool-classifier``.

Pruning note: in a pre-activation net a conv is followed by BN on the conv path, but a residual
stream (sum of conv2 and shortcut outputs) is read only through the next blocks' ``bn1``, the
identity shortcuts and the final BN. So masks applied after every BN of a dependency group still
make masked and compacted models agree. ReLUs are not in-place, the sum is ``out + shortcut``.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from prunekit.models.common import Normalize, scale_width, set_spec
from prunekit.models.vgg import _init
from prunekit.registry import MODELS

__all__ = ["WideBasicBlock", "WideResNet", "wide_resnet"]


class WideBasicBlock(nn.Module):
    """Pre-activation wide block; ``drop_rate`` dropout between the convs (0 by default)."""

    def __init__(self, c_in: int, c_out: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.equal_in_out = c_in == c_out and stride == 1
        self.shortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.drop(self.relu2(self.bn2(out))))
        if self.shortcut is None:
            return out + x
        return out + self.shortcut(act)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``; ``width`` (prunekit multiplier) scales every channel count."""

    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        ch = [scale_width(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen)]
        self.normalize = Normalize(mean, std, in_channels)
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        c = ch[0]
        for g, (w, s) in enumerate(zip(ch[1:], (1, 2, 2))):
            blocks = []
            for i in range(n):
                blocks.append(WideBasicBlock(c, w, s if i == 0 else 1, drop_rate))
                c = w
            self.add_module(f"block{g + 1}", nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.normalize(x))
        x = self.block3(self.block2(self.block1(x)))
        x = self.relu(self.bn1(x))
        return self.classifier(self.flatten(self.pool(x)))


def wide_resnet(depth: int, widen: int, contract_width: float):  # type: ignore[no-untyped-def]
    """Make the registered builder for WRN-``depth``-``widen`` (``contract_width``: the width of
    the small instance the model contract tests build)."""
    name = f"wrn-{depth}-{widen}"

    def build(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              drop_rate: float = 0.0) -> WideResNet:
        model = WideResNet(depth, widen, num_classes, in_channels, width, mean, std, drop_rate)
        extra = {"drop_rate": float(drop_rate)} if drop_rate else {}
        return set_spec(model, name, num_classes, in_channels, width, mean, std,  # type: ignore
                        **extra)

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    build.__doc__ = f"WideResNet-{depth}-{widen} (pre-activation, TRADES/MART CIFAR variant)."
    build.contract_kwargs = {"width": contract_width}  # type: ignore[attr-defined]
    MODELS.add(name, build)
    return build


wrn_16_4 = wide_resnet(16, 4, 0.25)
wrn_28_4 = wide_resnet(28, 4, 0.125)
wrn_34_10 = wide_resnet(34, 10, 0.05)
