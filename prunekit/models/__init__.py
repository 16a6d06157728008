"""Models: CIFAR-style VGG / ResNet / WideResNet and CPU-scale small variants, plus
bring-your-own factories and torchvision models (:mod:`prunekit.models.foreign`).

All builders are registered in :data:`prunekit.MODELS` with the signature
``(num_classes=10, in_channels=3, width=1.0, mean=None, std=None, <own options>)``; inputs are
in [0, 1] and the first child of every model is :class:`Normalize`. See docs/data-and-models.md.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from prunekit.models.common import Normalize, classifier_of, model_spec, scale_width
from prunekit.models import vgg as vgg  # noqa: F401  (registers vgg11, vgg16, vgg-small)
from prunekit.models import resnet as resnet  # noqa: F401  (registers resnet18, resnet-small)
from prunekit.models import wrn as wrn  # noqa: F401  (registers wrn-16-4, wrn-28-4, wrn-34-10)
from prunekit.models import published as published  # noqa: F401  (resnet18-kuangliu, vgg16-bn-apb)
from prunekit.models.foreign import ForeignModel, import_model, is_import_path, wrap_factory
from prunekit.registry import MODELS, RegistryError

__all__ = ["Normalize", "model_spec", "build_from_spec", "scale_width", "classifier_of",
           "MODELS", "ForeignModel", "import_model", "is_import_path", "wrap_factory"]


def build_from_spec(spec: Mapping[str, Any], allow_import: bool = False) -> nn.Module:
    """Rebuild the dense model recorded by :func:`model_spec` (``MODELS.build(**spec)``).

    A ``package.module:factory`` name not registered in this process is imported only with
    ``allow_import=True`` (a spec read from a file must not run code on its own)."""
    kw = dict(spec)
    name = kw.pop("name")
    if is_import_path(name) and name not in MODELS:
        if not allow_import:
            raise RegistryError(f"model {name!r} comes from a module path: importing it runs "
                                f"that module's code; pass allow_import=True (prunekit eval "
                                f"--allow-import) if you trust it, or call "
                                f"prunekit.models.import_model({name!r}) first")
        import_model(name)
    return MODELS.build(name, **kw)

