"""Model definitions in the layouts published checkpoints use, so their state dicts load
unchanged (``load_state_dict(sd, strict=True)``, no key renaming):

* ``resnet18-kuangliu``: the kuangliu/pytorch-cifar ResNet-18 (keys ``conv1, bn1,
  layer1..4.{0,1}.{conv1,bn1,conv2,bn2,shortcut.{0,1}}, linear``), the layout of
  pralab/AdversarialPruningBenchmark ``models/base_resnet18.py`` (BasicBlock l.8-39, ResNet
  l.80-113) and of most CIFAR robust-training repositories;
* ``vgg16-bn-apb``: the benchmark's ``vgg16_bn`` (``models/base_vgg16.py`` l.6-23 and
  ``make_layers`` l.50-62): ``features.*`` (conv3x3 without bias, BN, ReLU; 2x2 max-pools),
  ``AdaptiveAvgPool2d((2, 2))`` and ``classifier`` = Linear(2048, 256)-ReLU-Linear(256, 256)-
  ReLU-Linear(256, classes) (keys ``classifier.0/2/4``).

Both take inputs in [0, 1] and, by default, do **not** normalise (the benchmark's checkpoints
see raw [0, 1] inputs): the first child is an identity :class:`Normalize` whose buffers are
not saved, so the state dict has exactly the published keys. ``normalize: true`` turns the
same layer into the normalisation wrapper a checkpoint trained on standardised inputs needs
(mean/std: the builder's ``mean``/``std``, i.e. the dataset's in a run config); the values are
kept in the builder spec, not in the state dict.

Deliberate deviations (docs/data-and-models.md, "Published layouts"): the ResNet's final
``F.avg_pool2d(out, 4)`` is a global average pool (the same on 32x32 inputs, and it lets
smaller inputs through); ReLUs are not in-place and the residual sum is ``out = out + s``
(no state-dict effect; torch-pruning traces them); ``in_channels`` and ``width`` are options
(1 and 3 input channels; width 1 is the published model).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.models.common import Normalize, scale_width, set_spec
from prunekit.models.vgg import VGG_CFGS, _init
from prunekit.registry import MODELS

__all__ = ["KuangliuBlock", "KuangliuResNet", "ApbVGG", "resnet18_kuangliu", "vgg16_bn_apb"]


def _normalize(mean: Sequence[float] | None, std: Sequence[float] | None, channels: int,
               normalize: bool) -> Normalize:
    """The first child: identity unless ``normalize`` (buffers never in the state dict)."""
    return Normalize(mean if normalize else None, std if normalize else None, channels,
                     persistent=False)


class KuangliuBlock(nn.Module):
    """BasicBlock: relu(bn1(conv1)) -> bn2(conv2) + shortcut -> relu; ``shortcut`` is an empty
    ``nn.Sequential`` (no keys) or 1x1 conv + BN (keys ``shortcut.0``, ``shortcut.1``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class KuangliuResNet(nn.Module):
    """conv1-bn1-relu, layer1..4 of two blocks each (strides 1/2/2/2), global pool, ``linear``."""

    def __init__(self, widths: Sequence[int], num_classes: int, in_channels: int,
                 normalize: Normalize) -> None:
        super().__init__()
        self.normalize = normalize
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, (w, s) in enumerate(zip(widths, (1, 2, 2, 2))):
            self.add_module(f"layer{i + 1}", nn.Sequential(KuangliuBlock(c, w, s),
                                                           KuangliuBlock(w, w, 1)))
            c = w
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c, num_classes)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.pool(out).flatten(1))


class ApbVGG(nn.Module):
    """VGG-16-BN of the benchmark: ``features`` -> 2x2 adaptive average pool -> 3-layer MLP."""

    def __init__(self, cfg: Sequence[int | str], hidden: int, num_classes: int,
                 in_channels: int, normalize: Normalize) -> None:
        super().__init__()
        self.normalize = normalize
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=False)]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(c * 4, hidden), nn.ReLU(inplace=False), nn.Linear(hidden, hidden),
            nn.ReLU(inplace=False), nn.Linear(hidden, num_classes))
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(self.normalize(x)))
        return self.classifier(x.flatten(1))


@MODELS.register("resnet18-kuangliu", aliases=("resnet18_kuangliu",))
def resnet18_kuangliu(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                      mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                      normalize: bool = False) -> KuangliuResNet:
    """kuangliu-layout CIFAR ResNet-18 (556 M MACs on 3x32x32 at width 1); no normalisation
    unless ``normalize``."""
    ws = [scale_width(c, width) for c in (64, 128, 256, 512)]
    model = KuangliuResNet(ws, num_classes, in_channels,
                           _normalize(mean, std, in_channels, normalize))
    return set_spec(model, "resnet18-kuangliu", num_classes, in_channels, width, mean,  # type: ignore
                    std, normalize=bool(normalize))


@MODELS.register("vgg16-bn-apb", aliases=("vgg16_bn_apb",))
def vgg16_bn_apb(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 normalize: bool = False) -> ApbVGG:
    """The AdversarialPruningBenchmark's vgg16_bn (13 convs; head 2048-256-256-classes at width
    1, the 4 max-pools of its config, no fifth); no normalisation unless ``normalize``."""
    cfg = [v if v == "M" else scale_width(int(v), width) for v in VGG_CFGS["vgg16"][:-1]]
    model = ApbVGG(cfg, scale_width(256, width), num_classes, in_channels,
                   _normalize(mean, std, in_channels, normalize))
    return set_spec(model, "vgg16-bn-apb", num_classes, in_channels, width, mean,  # type: ignore
                    std, normalize=bool(normalize))


# small contract-test instances; normalize=True so the contract's Normalize(mean, std) check runs
resnet18_kuangliu.contract_kwargs = {"width": 0.125, "normalize": True}  # type: ignore[attr-defined]
vgg16_bn_apb.contract_kwargs = {"width": 0.125, "normalize": True}  # type: ignore[attr-defined]
