"""A tiny residual CNN as a prunekit model plug-in -- plain PyTorch, no prunekit import.

prunekit turns the factory into a model builder (docs/data-and-models.md, "Your own model"):
it passes ``num_classes``, ``in_channels`` and ``width`` (the factory names them), adds its
input ``Normalize`` in front (the factory takes no ``mean``/``std``) and records the spec that
rebuilds the model from a checkpoint. Every other argument (``depth``) is an option of the
``model:`` config section. Use it by module path, ``model: {name: "tiny_model:tiny_cnn"}``, or
by the name its entry point registers, ``model: {name: tiny-cnn}`` (pyproject.toml).
"""
from __future__ import annotations

from torch import Tensor, nn


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class Block(nn.Module):
    """Two conv-BN layers with an identity shortcut (``out + x``: a residual group)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn2(self.conv2(self.conv1(x))) + x)


class TinyCNN(nn.Module):
    """Stem conv, ``depth`` residual blocks at ``c`` channels, a strided conv to ``2c``,
    global average pool, linear classifier."""

    def __init__(self, num_classes: int, in_channels: int, c: int, depth: int) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, c)
        self.blocks = nn.Sequential(*(Block(c) for _ in range(depth)))
        self.down = _conv_bn(c, 2 * c, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(self.blocks(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def tiny_cnn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             depth: int = 1) -> nn.Module:
    """TinyCNN with ``16 * width`` base channels and ``depth`` residual blocks."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    return TinyCNN(num_classes, in_channels, max(1, round(16 * width)), depth)
