"""CIFAR-style ResNet (He et al., 2016) with BasicBlocks: ``resnet18`` and ``resnet-small``.

ResNet-18 for CIFAR: 3x3 stride-1 stem, no max-pool, stages [2, 2, 2] x 64/128/256/512 channels
with strides 1/2/2/2, a 1x1-conv + BN shortcut where the shape changes, global average pool and
one linear ``classifier``. Pruning-friendly by construction: every conv is followed by a
BatchNorm2d, ReLUs are not in-place and the residual sum is ``out = out + shortcut`` so
torch-pruning's DependencyGraph couples the conv2/shortcut channels of a stage into one group
(DESIGN.md: 12 conv groups for ResNet-18 = 4 residual streams + 8 block-internal).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from prunekit.models.common import Normalize, scale_width, set_spec
from prunekit.models.vgg import _init
from prunekit.registry import MODELS

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet_small"]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=False)
        self.shortcut: nn.Module
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    """Stem conv3x3(stride ``stem_stride``)-BN-ReLU, then ``len(blocks)`` stages of BasicBlocks."""

    def __init__(self, stem: int, widths: Sequence[int], blocks: Sequence[int],
                 strides: Sequence[int], num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std, in_channels)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=False)
        c = stem
        stages = []
        for w, n, s in zip(widths, blocks, strides):
            layers = []
            for i in range(n):
                layers.append(BasicBlock(c, w, s if i == 0 else 1))
                c = w
            stages.append(nn.Sequential(*layers))
        for i, stage in enumerate(stages):  # torchvision-style names layer1..layerN
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.classifier(self.flatten(self.pool(x)))


@MODELS.register("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ResNet:
    """CIFAR ResNet-18 (BasicBlock [2, 2, 2, 2], 64-512 channels); 556 M MACs on 3x32x32."""
    ws = [scale_width(c, width) for c in (64, 128, 256, 512)]
    model = ResNet(ws[0], ws, [2, 2, 2, 2], [1, 2, 2, 2], num_classes, in_channels, mean, std)
    return set_spec(model, "resnet18", num_classes, in_channels, width, mean, std)  # type: ignore


@MODELS.register("resnet-small", aliases=("resnet_small",))
def resnet_small(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ResNet:
    """CPU-scale ResNet: stem 12, stages 12/24/48 with 2 BasicBlocks each, all stages stride 2
    (the first block of each stage has a 1x1-conv shortcut, the second an identity one, so
    residual groups exist); ~3.3 M MACs on 1x28x28."""
    ws = [scale_width(c, width) for c in (12, 12, 24, 48)]
    model = ResNet(ws[0], ws[1:], [2, 2, 2], [2, 2, 2], num_classes, in_channels, mean, std)
    return set_spec(model, "resnet-small", num_classes, in_channels, width, mean, std)  # type: ignore


# options for a small, fast instance in the model contract tests (tests/test_model_contract.py)
resnet18.contract_kwargs = {"width": 0.125}  # type: ignore[attr-defined]
