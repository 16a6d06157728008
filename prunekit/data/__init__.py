"""Datasets: builders registered in :data:`prunekit.DATASETS`, :class:`DataSpec`, splits.

Every builder has the signature ``(root=None, split="train"|"test", augment=None,
download=False, **kw)`` and returns a map-style Dataset yielding ``(x, y)``: ``x`` a float32
tensor in [0, 1] of ``spec.input_shape`` (no normalisation; that is inside the model), ``y`` an
int; the dataset has ``.spec``. See docs/data-and-models.md.
"""
from __future__ import annotations

from prunekit.data.augment import Augment
from prunekit.data.base import FileImageDataset, TensorImageDataset
from prunekit.data.spec import DataNotFoundError, DataSpec, cache_dir
from prunekit.data.splits import kfold, make_loader, subset, without_augment
# builders (explicit imports register them)
from prunekit.data import fashion_mnist as fashion_mnist  # noqa: F401
from prunekit.data import folders as folders  # noqa: F401
from prunekit.data import synthetic as synthetic  # noqa: F401
from prunekit.data import torchvision_sets as torchvision_sets  # noqa: F401
from prunekit.registry import DATASETS

__all__ = ["DATASETS", "DataSpec", "DataNotFoundError", "Augment", "TensorImageDataset",
           "FileImageDataset", "subset", "kfold", "without_augment", "make_loader", "cache_dir"]
