"""CIFAR-style VGG with BatchNorm (vgg11, vgg16) and the CPU-scale ``vgg-small``.

Layout: ``Normalize`` → ``features`` (conv3x3-BN-ReLU blocks and 2x2 max-pools) →
``AdaptiveAvgPool2d(1)`` → ``classifier`` (one ``nn.Linear``).

Deliberate choices (docs/data-and-models.md):
- a single linear classifier on the globally pooled 512-d feature, the common CIFAR VGG-16-BN
  head (e.g. the ANAS-P / many pruning papers' CIFAR VGG). HYDRA's official ``vgg16_bn`` uses a
  3-layer MLP head on a 2x2 pooled map instead; only CONV layers are pruned in the paper, so the
  head does not change the method comparison.
- max-pools use ``ceil_mode=True`` so 28x28 inputs survive five pools (28→14→7→4→2→1); for
  32x32 and 64x64 inputs this is identical to the usual floor pooling.
- every conv is followed by a BatchNorm2d and a non-inplace ReLU (channel masks act after BN).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from prunekit.models.common import Normalize, scale_width, set_spec
from prunekit.registry import MODELS

__all__ = ["VGG", "VGG_CFGS", "vgg11", "vgg16", "vgg_small"]

#: channel configs; "M" = 2x2 max-pool
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    # CPU-scale: 5 convs (a "VGG-6"), ~4.9 M MACs on 1x28x28
    "vgg-small": [16, "M", 32, "M", 64, 64, "M", 128],
}


class VGG(nn.Module):
    """VGG-BN for small images. ``cfg`` entries are channel counts (already width-scaled) or "M"."""

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std, in_channels)
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                c = int(v)
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=False)]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c_in, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(self.flatten(self.pool(x)))


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _build(name: str, num_classes: int, in_channels: int, width: float,
           mean: Sequence[float] | None, std: Sequence[float] | None) -> VGG:
    cfg = [v if v == "M" else scale_width(int(v), width) for v in VGG_CFGS[name]]
    model = VGG(cfg, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
    return set_spec(model, name, num_classes, in_channels, width, mean, std)  # type: ignore


@MODELS.register("vgg16")
def vgg16(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> VGG:
    """CIFAR VGG-16-BN (13 convs, one linear classifier); 313 M MACs on 3x32x32 at width 1."""
    return _build("vgg16", num_classes, in_channels, width, mean, std)


@MODELS.register("vgg11")
def vgg11(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> VGG:
    """CIFAR VGG-11-BN (8 convs, one linear classifier)."""
    return _build("vgg11", num_classes, in_channels, width, mean, std)


@MODELS.register("vgg-small", aliases=("vgg_small",))
def vgg_small(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> VGG:
    """CPU-scale VGG: convs 16, M, 32, M, 64, 64, M, 128 (+BN+ReLU), global pool, linear."""
    return _build("vgg-small", num_classes, in_channels, width, mean, std)


# options for a small, fast instance in the model contract tests (tests/test_model_contract.py)
vgg16.contract_kwargs = {"width": 0.125}  # type: ignore[attr-defined]
vgg11.contract_kwargs = {"width": 0.125}  # type: ignore[attr-defined]
