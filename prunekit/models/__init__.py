"""Models: CIFAR-style VGG / ResNet / WideResNet and CPU-scale small variants.

All builders are registered in :data:`prunekit.MODELS` with the signature
``(num_classes=10, in_channels=3, width=1.0, mean=None, std=None, **kw)``; inputs are in [0, 1]
and the first child of every model is :class:`Normalize`. See docs/data-and-models.md.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from prunekit.models.common import Normalize, model_spec, scale_width
from prunekit.models import vgg as vgg  # noqa: F401  (registers vgg11, vgg16, vgg-small)
from prunekit.models import resnet as resnet  # noqa: F401  (registers resnet18, resnet-small)
from prunekit.models import wrn as wrn  # noqa: F401  (registers wrn-16-4, wrn-28-4, wrn-34-10)
from prunekit.registry import MODELS

__all__ = ["Normalize", "model_spec", "build_from_spec", "scale_width", "classifier_of",
           "MODELS"]


def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the dense model recorded by :func:`model_spec` (``MODELS.build(**spec)``)."""
    kw = dict(spec)
    name = kw.pop("name")
    return MODELS.build(name, **kw)


def classifier_of(model: nn.Module) -> nn.Linear:
    """The classifier: the last ``nn.Linear`` of ``model`` (named ``classifier`` in prunekit's
    own models)."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return last
